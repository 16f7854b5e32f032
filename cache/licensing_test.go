package cache

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core/licensing"
)

func TestValkeyEffectiveCache(t *testing.T) {
	ctx := context.Background()
	a := openTestValkey(t).EffectiveLicenses()
	b := NewValkeyEffectiveCache(openTestValkey(t))
	tenant := uuid.NewString()
	key := licensing.CacheKey{TenantID: tenant, ProviderID: "p", NodeID: uuid.NewString()}
	val := []licensing.EffectiveModule{{Code: "lab", Status: licensing.StatusActive, Granted: true,
		Scope: licensing.ScopeInheritDown, SourceNodeID: "n", AssignmentID: "x"}}

	_, stamp, hit, err := a.Get(ctx, key)
	require.NoError(t, err)
	require.False(t, hit)
	require.NoError(t, a.Set(ctx, key, stamp, val, time.Minute))
	for _, c := range []ValkeyEffectiveCache{a, b} {
		require.Eventually(t, func() bool {
			got, _, hit, err := c.Get(ctx, key)
			return err == nil && hit && got[0] == val[0]
		}, time.Second, 10*time.Millisecond)
	}
	// TTL
	_, stamp, _, _ = a.Get(ctx, key)
	short := licensing.CacheKey{TenantID: tenant, NodeID: "short"}
	require.NoError(t, a.Set(ctx, short, stamp, val, 50*time.Millisecond))
	require.Eventually(t, func() bool { _, _, hit, _ := a.Get(ctx, short); return !hit }, 2*time.Second, 20*time.Millisecond)

	// b invalidates; a sees it within a second (server invalidation push).
	require.NoError(t, b.InvalidateTenant(ctx, tenant))
	require.Eventually(t, func() bool { _, _, hit, _ := a.Get(ctx, key); return !hit }, time.Second, 5*time.Millisecond)
	// A set under the pre-invalidation stamp is never served.
	require.NoError(t, a.Set(ctx, key, stamp, val, time.Minute))
	_, _, hit, _ = a.Get(ctx, key)
	require.False(t, hit)

	_, stamp, _, _ = b.Get(ctx, key)
	require.NoError(t, b.Set(ctx, key, stamp, val, time.Minute))
	require.Eventually(t, func() bool { _, _, hit, _ := a.Get(ctx, key); return hit }, time.Second, 5*time.Millisecond)
	require.NoError(t, a.InvalidateAll(ctx))
	require.Eventually(t, func() bool { _, _, hit, _ := b.Get(ctx, key); return !hit }, time.Second, 5*time.Millisecond)
}

func BenchmarkEffectiveWarm(b *testing.B) {
	ctx := context.Background()
	c := openTestValkey(b).EffectiveLicenses()
	key := licensing.CacheKey{TenantID: uuid.NewString(), NodeID: "n"}
	_, stamp, _, _ := c.Get(ctx, key)
	require.NoError(b, c.Set(ctx, key, stamp, []licensing.EffectiveModule{{Code: "lab"}}, time.Minute))
	_, _, _, _ = c.Get(ctx, key)
	b.ResetTimer()
	for b.Loop() {
		if _, _, hit, err := c.Get(ctx, key); err != nil || !hit {
			b.Fatal("miss", err)
		}
	}
}
