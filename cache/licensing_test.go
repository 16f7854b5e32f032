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
		}, 5*time.Second, 10*time.Millisecond,
			"A and B see A's entry (A's cached miss is invalidated by a push; the client-side cache TTL is 5 min)")
	}
	// TTL
	_, stamp, _, _ = a.Get(ctx, key)
	short := licensing.CacheKey{TenantID: tenant, NodeID: "short"}
	require.NoError(t, a.Set(ctx, short, stamp, val, 50*time.Millisecond))
	require.Eventually(t, func() bool { _, _, hit, _ := a.Get(ctx, short); return !hit }, 2*time.Second, 20*time.Millisecond)

	// b invalidates; a sees it by the server's invalidation push, long before
	// its cached generation would expire.
	require.NoError(t, b.InvalidateTenant(ctx, tenant))
	require.Eventually(t, func() bool { _, _, hit, _ := a.Get(ctx, key); return !hit }, 5*time.Second, 5*time.Millisecond,
		"A sees B's invalidation (pushed; the generation cache TTL is 5 min)")
	// A set under the pre-invalidation stamp is never served.
	require.NoError(t, a.Set(ctx, key, stamp, val, time.Minute))
	_, _, hit, _ = a.Get(ctx, key)
	require.False(t, hit)

	_, stamp, _, _ = b.Get(ctx, key)
	require.NoError(t, b.Set(ctx, key, stamp, val, time.Minute))
	require.Eventually(t, func() bool { _, _, hit, _ := a.Get(ctx, key); return hit }, 5*time.Second, 5*time.Millisecond,
		"A sees B's entry (A's cached miss is invalidated by a push; the cache TTL is 5 min)")
	require.NoError(t, a.InvalidateAll(ctx))
	require.Eventually(t, func() bool { _, _, hit, _ := b.Get(ctx, key); return !hit }, 5*time.Second, 5*time.Millisecond,
		"B sees A's invalidation (pushed; the generation cache TTL is 5 min)")
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
