package cache

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
)

// revocationFixture is one backend under the revocation conformance suite.
type revocationFixture struct {
	r      core.RevocationSet
	prefix string
	clock  *core.FixedClock // in process: time is stepped
	// long is a ttl no test outlives; short is one a test waits out.
	long, short time.Duration
}

func (f revocationFixture) id(name string) string { return f.prefix + name }

func (f revocationFixture) elapse(d time.Duration) {
	if f.clock != nil {
		f.clock.Advance(d)
		return
	}
	time.Sleep(d)
}

func (f revocationFixture) after(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	if f.clock != nil {
		f.clock.Advance(d)
		require.True(t, cond())
		return
	}
	require.Eventually(t, cond, d+2*time.Second, 10*time.Millisecond)
}

func revocationBackends() map[string]func(t *testing.T) revocationFixture {
	return map[string]func(t *testing.T) revocationFixture{
		"local": func(t *testing.T) revocationFixture {
			clock := core.NewFixedClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
			return revocationFixture{r: NewLocalRevocations(clock), prefix: uniquePrefix(t), clock: clock,
				long: time.Hour, short: time.Minute}
		},
		"valkey": func(t *testing.T) revocationFixture {
			return revocationFixture{r: openTestValkey(t).Revocations(), prefix: uniquePrefix(t),
				long: time.Minute, short: 2 * time.Second} // short: a stalled check right after Revoke still sees it
		},
	}
}

func TestRevocationConformance(t *testing.T) {
	ctx := context.Background()
	revoked := func(t *testing.T, f revocationFixture, name string) bool {
		t.Helper()
		ok, err := f.r.IsRevoked(ctx, f.id(name))
		require.NoError(t, err)
		return ok
	}
	cases := []struct {
		name string
		run  func(t *testing.T, f revocationFixture)
	}{
		{"an unknown session is not revoked", func(t *testing.T, f revocationFixture) {
			require.False(t, revoked(t, f, "none"))
			require.False(t, revoked(t, f, "none"), "the cached answer agrees")
		}},
		{"revoked sessions are revoked, others not", func(t *testing.T, f revocationFixture) {
			require.False(t, revoked(t, f, "a"), "checked (and cached) before the revocation")
			require.NoError(t, f.r.Revoke(ctx, []string{f.id("a"), f.id("b")}, f.long))
			require.True(t, revoked(t, f, "a"))
			require.True(t, revoked(t, f, "b"))
			require.False(t, revoked(t, f, "c"))
		}},
		{"nothing to revoke is a no-op", func(t *testing.T, f revocationFixture) {
			require.NoError(t, f.r.Revoke(ctx, nil, f.long))
			require.NoError(t, f.r.Revoke(ctx, []string{f.id("a")}, 0))
			require.NoError(t, f.r.Revoke(ctx, []string{f.id("a")}, -time.Second))
			require.False(t, revoked(t, f, "a"))
		}},
		{"a revocation ends with its ttl", func(t *testing.T, f revocationFixture) {
			require.NoError(t, f.r.Revoke(ctx, []string{f.id("a")}, f.short))
			require.True(t, revoked(t, f, "a"))
			f.after(t, f.short, func() bool { return !revoked(t, f, "a") })
		}},
		{"a shorter ttl never shortens a revocation", func(t *testing.T, f revocationFixture) {
			require.NoError(t, f.r.Revoke(ctx, []string{f.id("a")}, f.long))
			require.NoError(t, f.r.Revoke(ctx, []string{f.id("a")}, f.short))
			f.elapse(f.short + f.short/2)
			require.True(t, revoked(t, f, "a"))
		}},
		{"a longer ttl extends a revocation", func(t *testing.T, f revocationFixture) {
			require.NoError(t, f.r.Revoke(ctx, []string{f.id("a")}, f.short))
			require.NoError(t, f.r.Revoke(ctx, []string{f.id("a")}, f.long))
			f.elapse(f.short + f.short/2)
			require.True(t, revoked(t, f, "a"))
		}},
		{"many sessions at once", func(t *testing.T, f revocationFixture) {
			ids := make([]string, 1000)
			for i := range ids {
				ids[i] = f.id(strconv.Itoa(i))
			}
			require.NoError(t, f.r.Revoke(ctx, ids, f.long))
			for i := range ids {
				require.True(t, revoked(t, f, strconv.Itoa(i)))
			}
		}},
	}
	for name, open := range revocationBackends() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.run(t, open(t))
				})
			}
		})
	}
}

func TestValkeyRevocationKey(t *testing.T) {
	ctx := context.Background()
	v := openTestValkey(t)
	prefix := uniquePrefix(t)
	// The server's state, not this client's memory of its own writes.
	cases := []struct {
		name      string
		ttls      []time.Duration
		min, max  int64 // expected PTTL in ms
		sessionID string
	}{
		{"one revocation", []time.Duration{15 * time.Minute}, 14 * 60_000, 15 * 60_000, "0190f3a0-0000-7000-8000-000000000001"},
		{"a shorter ttl keeps the longer one", []time.Duration{time.Minute, time.Second}, 55_000, 60_000, "s2"},
		{"a longer ttl extends", []time.Duration{time.Second, time.Minute}, 55_000, 60_000, "s3"},
		{"sub-millisecond rounds up", []time.Duration{time.Microsecond}, -2, 1, "s4"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := prefix + tc.sessionID
			for _, ttl := range tc.ttls {
				require.NoError(t, v.Revocations().Revoke(ctx, []string{id}, ttl))
			}
			val, pttl := rawGet(t, v, "identity:revoked:session:"+id)
			if pttl >= 0 {
				require.Equal(t, "1", val)
			}
			require.GreaterOrEqual(t, pttl, tc.min)
			require.LessOrEqual(t, pttl, tc.max)
		})
	}
}

// Two instances: A has cached "not revoked"; B revokes; the server's
// invalidation push makes A see it without waiting for A's cache ttl.
func TestValkeyRevocationVisibleAcrossClients(t *testing.T) {
	ctx := context.Background()
	a := openTestValkey(t).Revocations().(valkeyRevocations)
	b := openTestValkey(t).Revocations()
	id := uniquePrefix(t) + "s1"

	revoked, _, err := a.isRevoked(ctx, id)
	require.NoError(t, err)
	require.False(t, revoked)
	revoked, cached, err := a.isRevoked(ctx, id)
	require.NoError(t, err)
	require.False(t, revoked)
	require.True(t, cached, "the second check is a local read")

	require.NoError(t, b.Revoke(ctx, []string{id}, time.Minute))
	require.Eventually(t, func() bool {
		revoked, _, err := a.isRevoked(ctx, id)
		return err == nil && revoked
	}, 5*time.Second, 5*time.Millisecond, "A sees B's revocation (pushed; the cache TTL is 1 min)")

	revoked, cached, err = a.isRevoked(ctx, id)
	require.NoError(t, err)
	require.True(t, revoked)
	require.True(t, cached, "the revocation is cached too")
}

// A cached "revoked" ends with the key's expiry, not the cache ttl.
func TestValkeyCachedRevocationExpires(t *testing.T) {
	ctx := context.Background()
	a := openTestValkey(t).Revocations().(valkeyRevocations)
	b := openTestValkey(t).Revocations()
	id := uniquePrefix(t) + "s1"

	// A reads the revocation twice (the second from its cache) while the
	// key lives: ttl leaves a slow machine ample time for that. The cache
	// ttl is a minute, so an answer that turns to "not revoked" within
	// ttl + 7 s ended with the key.
	const ttl = 3 * time.Second
	require.NoError(t, b.Revoke(ctx, []string{id}, ttl))
	require.Eventually(t, func() bool {
		revoked, cached, err := a.isRevoked(ctx, id)
		return err == nil && revoked && cached
	}, ttl, 5*time.Millisecond, "A caches the revocation")
	require.Eventually(t, func() bool {
		revoked, _, err := a.isRevoked(ctx, id)
		return err == nil && !revoked
	}, ttl+7*time.Second, 10*time.Millisecond, "the cached revocation ends with the key, not with the 1 min cache ttl")
}

// A lost connection drops the client-side cache: invalidations sent while
// it was down would otherwise be missed and "not revoked" served stale.
func TestValkeyCacheDroppedWhenConnectionLost(t *testing.T) {
	ctx := context.Background()
	p, proxied := newProxy(t)
	a := openValkeyAt(t, proxied).Revocations().(valkeyRevocations)
	b := openTestValkey(t).Revocations()
	id := uniquePrefix(t) + "s1"

	for range 2 {
		revoked, _, err := a.isRevoked(ctx, id)
		require.NoError(t, err)
		require.False(t, revoked)
	}
	p.stop()
	require.NoError(t, b.Revoke(ctx, []string{id}, time.Minute))
	require.Eventually(t, func() bool {
		_, err := a.IsRevoked(ctx, id)
		return err != nil
	}, 3*time.Second, 10*time.Millisecond, "with the server gone, a check fails instead of answering from the cache")
	p.start()
	require.Eventually(t, func() bool {
		revoked, err := a.IsRevoked(ctx, id)
		return err == nil && revoked
	}, 3*time.Second, 10*time.Millisecond)
}

func TestLocalRevocationsSweepExpired(t *testing.T) {
	ctx := context.Background()
	clock := core.NewFixedClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	r := NewLocalRevocations(clock)
	ids := make([]string, minSweep)
	for i := range ids {
		ids[i] = strconv.Itoa(i)
	}
	require.NoError(t, r.Revoke(ctx, ids, time.Minute))
	clock.Advance(time.Minute)
	require.NoError(t, r.Revoke(ctx, []string{"fresh"}, time.Minute))
	r.mu.Lock()
	defer r.mu.Unlock()
	require.Len(t, r.until, 1, "the insert past the sweep mark drops every expired entry")
}
