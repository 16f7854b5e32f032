package cache

import (
	"context"
	"errors"
	"log/slog"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
)

// openDead opens a client for a port where nothing listens: Open succeeds
// and every operation fails with core.KindUnavailable.
func openDead(t *testing.T) *Valkey {
	t.Helper()
	v, err := Open(context.Background(), deadURL, nil)
	require.NoError(t, err)
	t.Cleanup(v.Close)
	return v
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	t.Run("invalid URLs are refused", func(t *testing.T) {
		for _, u := range []string{"http://127.0.0.1:6379", "unix:///tmp/redis.sock", "redis://127.0.0.1:6379/x", "redis://[::1"} {
			_, err := Open(ctx, u, nil)
			require.Error(t, err, u)
		}
	})
	t.Run("an unreachable server is not an error at start", func(t *testing.T) {
		logs := newLevelCounter()
		v, err := Open(ctx, deadURL, slog.New(logs))
		require.NoError(t, err)
		defer v.Close()
		require.Equal(t, 1, logs.count(slog.LevelWarn))
		err = v.Ping(ctx)
		require.Error(t, err)
		require.True(t, core.IsKind(err, core.KindUnavailable))
		_, _, err = v.Limiter().Hit(ctx, "k", time.Minute)
		require.True(t, core.IsKind(err, core.KindUnavailable))
		_, err = v.Revocations().IsRevoked(ctx, "s")
		require.True(t, core.IsKind(err, core.KindUnavailable))
	})
	t.Run("a handshake the server rejects is an error", func(t *testing.T) {
		openTestValkey(t)
		u, err := url.Parse(testValkeyURL())
		require.NoError(t, err)
		u.Path = "/99999" // no such database
		_, err = Open(ctx, u.String(), nil)
		require.Error(t, err)
	})
	t.Run("a done context is refused", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := Open(cctx, testValkeyURL(), nil)
		require.ErrorIs(t, err, context.Canceled)
	})
	t.Run("ping answers", func(t *testing.T) {
		require.NoError(t, openTestValkey(t).Ping(ctx))
	})
}

// flakyLimiter is a primary whose failure the test switches.
type flakyLimiter struct {
	core.RateLimiter
	down  atomic.Bool
	calls atomic.Int64
}

func (f *flakyLimiter) Hit(ctx context.Context, key string, w time.Duration) (int64, time.Duration, error) {
	f.calls.Add(1)
	if f.down.Load() {
		return 0, 0, core.Unavailable(errors.New("down"))
	}
	return f.RateLimiter.Hit(ctx, key, w)
}

func TestFailoverLimiter(t *testing.T) {
	ctx := context.Background()
	clock := core.NewFixedClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))

	t.Run("a dead primary still limits through the fallback", func(t *testing.T) {
		logs := newLevelCounter()
		fallback := NewLocalLimiter(clock)
		l := NewFailoverLimiter(openDead(t).Limiter(), fallback, slog.New(logs))
		for i := int64(1); i <= 5; i++ {
			n, reset, err := l.Hit(ctx, "login", time.Minute)
			require.NoError(t, err)
			require.Equal(t, i, n)
			require.Equal(t, time.Minute, reset)
		}
		require.NoError(t, l.Undo(ctx, "login"))
		n, _, err := l.Peek(ctx, "login")
		require.NoError(t, err)
		require.Equal(t, int64(4), n)
		n, _, err = fallback.Peek(ctx, "login")
		require.NoError(t, err)
		require.Equal(t, int64(4), n, "counted in the fallback")
		require.Equal(t, 1, logs.count(slog.LevelWarn), "the warning is rate-limited")
	})
	t.Run("while down, the primary is probed once per interval, then used again", func(t *testing.T) {
		logs := newLevelCounter()
		primary := &flakyLimiter{RateLimiter: NewLocalLimiter(clock)}
		primary.down.Store(true)
		l := NewFailoverLimiter(primary, NewLocalLimiter(clock), slog.New(logs))
		for range 10 {
			_, _, err := l.Hit(ctx, "k", time.Minute)
			require.NoError(t, err)
		}
		require.Equal(t, int64(1), primary.calls.Load(), "skipped until the next probe")
		primary.down.Store(false)
		require.Eventually(t, func() bool {
			n, _, err := l.Hit(ctx, "k2", time.Minute)
			return err == nil && primary.calls.Load() > 1 && n == 1
		}, 3*probeInterval, 20*time.Millisecond)
		n, _, err := primary.Peek(ctx, "k2")
		require.NoError(t, err)
		require.Equal(t, int64(1), n, "recovered: counting in the primary again")
		require.Equal(t, 1, logs.count(slog.LevelInfo), "recovery is logged once")
	})
	t.Run("a caller whose context ended gets the error, not the fallback", func(t *testing.T) {
		fallback := NewLocalLimiter(clock)
		l := NewFailoverLimiter(openDead(t).Limiter(), fallback, nil)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, _, err := l.Hit(cctx, "k", time.Minute)
		require.Error(t, err)
		n, _, err := fallback.Peek(ctx, "k")
		require.NoError(t, err)
		require.Zero(t, n)
	})
}

// Valkey goes away while in use and comes back: counting moves to the
// fallback and back without any action.
func TestFailoverLimiterRecovers(t *testing.T) {
	ctx := context.Background()
	p, proxied := newProxy(t)
	direct := openTestValkey(t).Limiter()
	fallback := NewLocalLimiter(core.SystemClock{})
	l := NewFailoverLimiter(openValkeyAt(t, proxied).Limiter(), fallback, nil)
	key := uniquePrefix(t) + "login"
	hit := func() int64 {
		t.Helper()
		n, _, err := l.Hit(ctx, key, time.Minute)
		require.NoError(t, err)
		return n
	}

	require.Equal(t, int64(1), hit())
	p.stop()
	require.Equal(t, int64(1), hit(), "first count in the fallback")
	require.Equal(t, int64(2), hit())
	p.start()
	require.Eventually(t, func() bool {
		n := hit()
		inValkey, _, err := direct.Peek(ctx, key)
		return err == nil && n > 1 && n == inValkey
	}, 3*time.Second, 20*time.Millisecond, "hits are counted in Valkey again")
}

// dbLookup stands in for the database lookup of sessions.revoked_at.
type dbLookup struct {
	mu      sync.Mutex
	revoked map[string]bool
	err     error
	calls   int
}

func (d *dbLookup) isRevoked(_ context.Context, id string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	return d.revoked[id], d.err
}

func TestFailoverRevocations(t *testing.T) {
	ctx := context.Background()

	t.Run("a dead primary answers from the fallback", func(t *testing.T) {
		logs := newLevelCounter()
		db := &dbLookup{revoked: map[string]bool{"s-revoked": true}}
		r := NewFailoverRevocations(openDead(t).Revocations(), db.isRevoked, slog.New(logs))
		for range 3 {
			revoked, err := r.IsRevoked(ctx, "s-revoked")
			require.NoError(t, err)
			require.True(t, revoked)
			revoked, err = r.IsRevoked(ctx, "s-live")
			require.NoError(t, err)
			require.False(t, revoked)
		}
		require.Equal(t, 6, db.calls)
		require.Equal(t, 1, logs.count(slog.LevelWarn))
	})
	t.Run("a failing fallback fails the check", func(t *testing.T) {
		db := &dbLookup{err: core.Unavailable(errors.New("db down"))}
		r := NewFailoverRevocations(openDead(t).Revocations(), db.isRevoked, nil)
		_, err := r.IsRevoked(ctx, "s")
		require.True(t, core.IsKind(err, core.KindUnavailable))
	})
	t.Run("without a fallback the check fails closed", func(t *testing.T) {
		r := NewFailoverRevocations(openDead(t).Revocations(), nil, nil)
		for range 2 { // the primary, then the breaker while it is down
			_, err := r.IsRevoked(ctx, "s")
			require.True(t, core.IsKind(err, core.KindUnavailable))
		}
	})
	t.Run("revoke returns the primary's error; this instance still answers revoked", func(t *testing.T) {
		db := &dbLookup{} // as if revoked_at were not visible: the pending entry must answer
		r := NewFailoverRevocations(openDead(t).Revocations(), db.isRevoked, nil)
		err := r.Revoke(ctx, []string{"s1"}, time.Minute)
		require.True(t, core.IsKind(err, core.KindUnavailable))
		revoked, err := r.IsRevoked(ctx, "s1")
		require.NoError(t, err)
		require.True(t, revoked)
		require.Zero(t, db.calls)
	})
}

// A revocation that failed while Valkey was down reaches Valkey after it is
// back, so other instances and gateways see it too.
func TestFailoverRevocationsReplay(t *testing.T) {
	ctx := context.Background()
	p, proxied := newProxy(t)
	other := openTestValkey(t).Revocations()
	db := &dbLookup{}
	r := NewFailoverRevocations(openValkeyAt(t, proxied).Revocations(), db.isRevoked, nil)
	prefix := uniquePrefix(t)

	p.stop()
	require.Error(t, r.Revoke(ctx, []string{prefix + "s1", prefix + "s2"}, time.Minute))
	revoked, err := other.IsRevoked(ctx, prefix+"s1")
	require.NoError(t, err)
	require.False(t, revoked, "not in Valkey yet")
	p.start()
	require.Eventually(t, func() bool {
		_, _ = r.IsRevoked(ctx, prefix+"unrelated") // any primary success replays
		a, errA := other.IsRevoked(ctx, prefix+"s1")
		b, errB := other.IsRevoked(ctx, prefix+"s2")
		return errA == nil && errB == nil && a && b
	}, 3*time.Second, 20*time.Millisecond)
	require.Zero(t, r.npending.Load())
}
