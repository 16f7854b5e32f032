package cache

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/access"
	"github.com/ghasi-ehealth/identity-service/core/licensing"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
)

func TestValkeyAccessCache(t *testing.T) {
	ctx := context.Background()
	a := openTestValkey(t).AccessContexts()
	b := NewValkeyAccessCache(openTestValkey(t))
	user, tenant, node := uuid.NewString(), uuid.NewString(), uuid.NewString()
	exp := time.Now().Add(time.Minute).Truncate(time.Millisecond)
	entry := access.Entry{ExpiresAt: exp, Context: access.Context{UserID: user, TenantID: tenant, NodeID: node,
		Roles:       []string{"NURSE"},
		Memberships: []core.Membership{{UserID: user, TenantID: tenant, NodeID: node, Roles: []string{"NURSE"}}},
		EffectiveModules: []licensing.EffectiveModule{{Code: "ehr.lab", Status: licensing.StatusActive, Granted: true,
			Scope: licensing.ScopeInheritDown, SourceNodeID: node, AssignmentID: "x"}}}}

	_, ok, err := a.Get(ctx, user, node)
	require.NoError(t, err)
	require.False(t, ok)
	stamp, err := a.Stamp(ctx, user, tenant)
	require.NoError(t, err)
	require.NoError(t, a.Set(ctx, user, node, stamp, entry, time.Minute))
	for _, c := range []ValkeyAccessCache{a, b} {
		require.Eventually(t, func() bool {
			_, ok, err := c.Get(ctx, user, node)
			return err == nil && ok
		}, 5*time.Second, 10*time.Millisecond,
			"A and B see A's entry (A's cached miss is invalidated by a push; the client-side cache TTL is 5 min)")
		got, _, err := c.Get(ctx, user, node)
		require.NoError(t, err)
		require.True(t, got.ExpiresAt.Equal(exp))
		got.ExpiresAt = exp
		require.Equal(t, entry, got)
	}
	_, pttl := rawGet(t, a.v, acEntryKey(user, node))
	require.InDelta(t, time.Minute.Milliseconds(), pttl, 5000)

	// Each invalidation by one instance is pushed to the other (seen long
	// before any TTL), and a set under the pre-invalidation stamp is never
	// served.
	for name, inv := range map[string]func(c ValkeyAccessCache) error{
		"user":   func(c ValkeyAccessCache) error { return c.InvalidateUser(ctx, user) },
		"tenant": func(c ValkeyAccessCache) error { return c.InvalidateTenant(ctx, tenant) },
		"all":    func(c ValkeyAccessCache) error { return c.InvalidateAll(ctx) },
	} {
		stamp, err := a.Stamp(ctx, user, tenant)
		require.NoError(t, err)
		require.NoError(t, a.Set(ctx, user, node, stamp, entry, time.Minute))
		require.Eventually(t, func() bool { _, ok, _ := b.Get(ctx, user, node); return ok }, 5*time.Second, 5*time.Millisecond,
			"%s: B sees A's entry (pushed; the client-side cache TTL is 5 min, the entry lives 1 min)", name)
		// Warm A's client-side cache. A may still serve its own earlier miss
		// until the push of its write, read on another connection, arrives.
		require.Eventually(t, func() bool { _, ok, _ := a.Get(ctx, user, node); return ok }, 5*time.Second, 5*time.Millisecond, name)
		require.NoError(t, inv(b))
		require.Eventually(t, func() bool { _, ok, _ := a.Get(ctx, user, node); return !ok }, 5*time.Second, 5*time.Millisecond,
			"%s: A sees B's invalidation (pushed; the client-side cache TTL is 5 min, the entry lives 1 min)", name)
		require.NoError(t, a.Set(ctx, user, node, stamp, entry, time.Minute))
		_, ok, _ = a.Get(ctx, user, node)
		require.False(t, ok, name)
	}
	// Other users' and tenants' invalidations keep the entry.
	stamp, err = a.Stamp(ctx, user, tenant)
	require.NoError(t, err)
	require.NoError(t, a.Set(ctx, user, node, stamp, entry, time.Minute))
	require.Eventually(t, func() bool { _, ok, _ := a.Get(ctx, user, node); return ok }, 5*time.Second, 5*time.Millisecond)
	require.NoError(t, b.InvalidateUser(ctx, uuid.NewString()))
	require.NoError(t, b.InvalidateTenant(ctx, uuid.NewString()))
	// Give a wrongly pushed invalidation time to arrive before checking.
	time.Sleep(50 * time.Millisecond)
	_, ok, _ = a.Get(ctx, user, node)
	require.True(t, ok, "other users' and tenants' invalidations keep the entry")
	// Generations expire, but only after every entry stored under them.
	_, pttl = rawGet(t, a.v, acUserGenKey(user))
	require.Greater(t, pttl, (access.ContextTTL + access.StaleGrace).Milliseconds())
	// Keep time.
	require.NoError(t, a.Set(ctx, user, "short", stamp, entry, 50*time.Millisecond))
	require.Eventually(t, func() bool { _, ok, _ := a.Get(ctx, user, "short"); return !ok }, 2*time.Second, 20*time.Millisecond)
}

// stubDirectory: user u is NURSE at node n (a root of tenant tn).
type stubDirectory struct {
	user, tenant, node string
	calls              atomic.Int64
	down               atomic.Bool
}

func (d *stubDirectory) call() error {
	d.calls.Add(1)
	if d.down.Load() {
		return core.Unavailable(context.DeadlineExceeded)
	}
	return nil
}

func (d *stubDirectory) MembershipsOfUser(context.Context, string) ([]core.Membership, error) {
	return []core.Membership{{UserID: d.user, TenantID: d.tenant, NodeID: d.node, Roles: []string{"NURSE"}}}, d.call()
}

func (d *stubDirectory) Ancestors(context.Context, string) ([]tenancy.Ancestor, error) {
	return nil, d.call()
}

func (d *stubDirectory) NodeTenantID(context.Context, string) (string, error) {
	return d.tenant, d.call()
}

type stubResolver struct{}

func (stubResolver) Effective(context.Context, string, string, string) ([]licensing.EffectiveModule, error) {
	return []licensing.EffectiveModule{{Code: "ehr.core", Status: licensing.StatusActive, Granted: true,
		Scope: licensing.ScopeInheritDown}}, nil
}

// Two service instances sharing Valkey: a hit on either calls no directory;
// an invalidation on one is pushed to the other (seen long before the
// 5-min TTL); a cached context is served stale while the directory is down.
func TestAccessServiceOnValkey(t *testing.T) {
	dir := &stubDirectory{user: uuid.NewString(), tenant: uuid.NewString(), node: uuid.NewString()}
	clock := core.NewFixedClock(time.Now())
	cacheA, cacheB := openTestValkey(t).AccessContexts(), openTestValkey(t).AccessContexts()
	svcA := access.NewService(dir, stubResolver{}, cacheA, clock, nil, nil)
	svcB := access.NewService(dir, stubResolver{}, cacheB, clock, nil, nil)
	ctx := core.WithPrincipal(context.Background(), &core.Principal{Type: core.PrincipalUser, ID: dir.user, TenantID: dir.tenant})
	// cached waits until c serves the current entry: a client that cached
	// the key before it was last written serves its old value until the
	// server's invalidation push is read, which may be on another of the
	// client's connections than the write (even for its own write).
	cached := func(c ValkeyAccessCache) {
		t.Helper()
		require.Eventually(t, func() bool { _, ok, err := c.Get(ctx, dir.user, dir.node); return err == nil && ok },
			5*time.Second, 5*time.Millisecond, "the entry is pushed to the client (the cache TTL is 5 min)")
	}

	c, err := svcA.AccessContext(ctx, dir.node)
	require.NoError(t, err)
	require.Equal(t, []string{"NURSE"}, c.Roles)
	cached(cacheA) // A cached its miss before it stored the entry
	calls := dir.calls.Load()
	for _, s := range []*access.Service{svcA, svcB, svcA} {
		got, err := s.AccessContext(ctx, dir.node)
		require.NoError(t, err)
		require.Equal(t, c, got)
	}
	require.Equal(t, calls, dir.calls.Load(), "hits call no directory")

	for _, inv := range []func() error{
		func() error { return svcB.InvalidateUser(context.Background(), dir.user) },
		func() error { return svcB.InvalidateTenant(context.Background(), dir.tenant) },
		func() error { return svcB.InvalidateAll(context.Background()) },
		func() error {
			return svcB.HandleTenantEvent(context.Background(), access.EventTenantMembershipChanged,
				[]byte(`{"userId":"`+dir.user+`"}`))
		},
	} {
		cached(cacheA) // A serves its last entry: its next recompute is the invalidation's
		require.NoError(t, inv())
		require.Eventually(t, func() bool {
			before := dir.calls.Load()
			_, err := svcA.AccessContext(ctx, dir.node)
			return err == nil && dir.calls.Load() > before
		}, 5*time.Second, 5*time.Millisecond, "A sees B's invalidation (pushed; the access-context TTL is 5 min)")
	}

	cached(cacheB) // B cached an entry that A has replaced since
	dir.down.Store(true)
	clock.Advance(access.ContextTTL + time.Minute)
	c, err = svcB.AccessContext(ctx, dir.node)
	require.NoError(t, err)
	require.True(t, c.Stale)
	_, err = svcB.AccessContext(ctx, uuid.NewString())
	require.Equal(t, core.CodeUnavailable, core.CodeOf(err))
}
