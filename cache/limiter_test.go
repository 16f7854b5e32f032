package cache

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
)

// limiterFixture is one backend under the limiter conformance suite.
type limiterFixture struct {
	l      core.RateLimiter
	prefix string           // unique per test
	clock  *core.FixedClock // in process: time is stepped
	v      *Valkey          // on Valkey: real time
	// long is a window no test outlives; short is one a test waits out.
	long, short time.Duration
	// slack is how far resetIn may fall below the ideal value (round trips
	// and oversleeping on a loaded machine; zero with the fixed clock).
	slack time.Duration
}

func (f limiterFixture) key(name string) string { return f.prefix + name }

// elapse lets d pass.
func (f limiterFixture) elapse(d time.Duration) {
	if f.clock != nil {
		f.clock.Advance(d)
		return
	}
	time.Sleep(d)
}

// after lets d pass and requires cond: at once in process, by polling on
// Valkey (a server's expiry is not exact to the millisecond).
func (f limiterFixture) after(t *testing.T, d time.Duration, cond func() bool) {
	t.Helper()
	if f.clock != nil {
		f.clock.Advance(d)
		require.True(t, cond())
		return
	}
	require.Eventually(t, cond, d+2*time.Second, 10*time.Millisecond)
}

// requireReset checks resetIn against the ideal value want.
func (f limiterFixture) requireReset(t *testing.T, want, got time.Duration) {
	t.Helper()
	require.LessOrEqual(t, got, want)
	require.GreaterOrEqual(t, got, want-f.slack)
}

func limiterBackends() map[string]func(t *testing.T) limiterFixture {
	return map[string]func(t *testing.T) limiterFixture{
		"local": func(t *testing.T) limiterFixture {
			clock := core.NewFixedClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
			return limiterFixture{l: NewLocalLimiter(clock), prefix: uniquePrefix(t), clock: clock,
				long: time.Minute, short: time.Minute}
		},
		"valkey": func(t *testing.T) limiterFixture {
			v := openTestValkey(t)
			return limiterFixture{l: v.Limiter(), prefix: uniquePrefix(t), v: v,
				long: time.Minute, short: 300 * time.Millisecond, slack: 2 * time.Second}
		},
	}
}

func TestLimiterConformance(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		run  func(t *testing.T, f limiterFixture)
	}{
		{"first hit starts the window", func(t *testing.T, f limiterFixture) {
			n, reset, err := f.l.Hit(ctx, f.key("k"), f.long)
			require.NoError(t, err)
			require.Equal(t, int64(1), n)
			f.requireReset(t, f.long, reset)
		}},
		{"hits count within one window that later hits do not extend", func(t *testing.T, f limiterFixture) {
			for i := int64(1); i <= 3; i++ {
				n, reset, err := f.l.Hit(ctx, f.key("k"), f.long)
				require.NoError(t, err)
				require.Equal(t, i, n)
				f.requireReset(t, f.long-time.Duration(i-1)*100*time.Millisecond, reset)
				f.elapse(100 * time.Millisecond)
			}
		}},
		{"keys are independent", func(t *testing.T, f limiterFixture) {
			for range 3 {
				_, _, err := f.l.Hit(ctx, f.key("a"), f.long)
				require.NoError(t, err)
			}
			n, _, err := f.l.Hit(ctx, f.key("b"), f.long)
			require.NoError(t, err)
			require.Equal(t, int64(1), n)
		}},
		{"window expires and the next hit starts a new one", func(t *testing.T, f limiterFixture) {
			for range 2 {
				_, _, err := f.l.Hit(ctx, f.key("k"), f.short)
				require.NoError(t, err)
			}
			f.after(t, f.short, func() bool {
				n, reset, err := f.l.Peek(ctx, f.key("k"))
				return err == nil && n == 0 && reset == 0
			})
			n, reset, err := f.l.Hit(ctx, f.key("k"), f.short)
			require.NoError(t, err)
			require.Equal(t, int64(1), n)
			f.requireReset(t, f.short, reset)
		}},
		{"peek returns count and time left without counting", func(t *testing.T, f limiterFixture) {
			for range 2 {
				_, _, err := f.l.Hit(ctx, f.key("k"), f.long)
				require.NoError(t, err)
			}
			for range 2 {
				n, reset, err := f.l.Peek(ctx, f.key("k"))
				require.NoError(t, err)
				require.Equal(t, int64(2), n)
				f.requireReset(t, f.long, reset)
			}
			n, _, err := f.l.Hit(ctx, f.key("k"), f.long)
			require.NoError(t, err)
			require.Equal(t, int64(3), n)
		}},
		{"peek of an unknown key is zero", func(t *testing.T, f limiterFixture) {
			n, reset, err := f.l.Peek(ctx, f.key("none"))
			require.NoError(t, err)
			require.Zero(t, n)
			require.Zero(t, reset)
		}},
		{"undo takes one hit back", func(t *testing.T, f limiterFixture) {
			for range 3 {
				_, _, err := f.l.Hit(ctx, f.key("k"), f.long)
				require.NoError(t, err)
			}
			require.NoError(t, f.l.Undo(ctx, f.key("k")))
			n, _, err := f.l.Peek(ctx, f.key("k"))
			require.NoError(t, err)
			require.Equal(t, int64(2), n)
			n, _, err = f.l.Hit(ctx, f.key("k"), f.long)
			require.NoError(t, err)
			require.Equal(t, int64(3), n)
		}},
		{"undo of an unknown key creates nothing", func(t *testing.T, f limiterFixture) {
			require.NoError(t, f.l.Undo(ctx, f.key("none")))
			n, reset, err := f.l.Peek(ctx, f.key("none"))
			require.NoError(t, err)
			require.Zero(t, n)
			require.Zero(t, reset)
			if f.v != nil {
				_, pttl := rawGet(t, f.v, limiterKey(f.key("none")))
				require.Equal(t, int64(-2), pttl, "no key may exist")
			}
		}},
		{"undo never goes below zero", func(t *testing.T, f limiterFixture) {
			_, _, err := f.l.Hit(ctx, f.key("k"), f.long)
			require.NoError(t, err)
			for range 3 {
				require.NoError(t, f.l.Undo(ctx, f.key("k")))
			}
			n, _, err := f.l.Peek(ctx, f.key("k"))
			require.NoError(t, err)
			require.Zero(t, n)
			n, _, err = f.l.Hit(ctx, f.key("k"), f.long)
			require.NoError(t, err)
			require.Equal(t, int64(1), n)
		}},
		{"undo keeps the window", func(t *testing.T, f limiterFixture) {
			_, _, err := f.l.Hit(ctx, f.key("k"), f.long)
			require.NoError(t, err)
			f.elapse(200 * time.Millisecond)
			require.NoError(t, f.l.Undo(ctx, f.key("k")))
			n, reset, err := f.l.Hit(ctx, f.key("k"), f.long)
			require.NoError(t, err)
			require.Equal(t, int64(1), n)
			f.requireReset(t, f.long-200*time.Millisecond, reset)
		}},
		{"a non-positive window is refused", func(t *testing.T, f limiterFixture) {
			for _, w := range []time.Duration{0, -time.Second} {
				_, _, err := f.l.Hit(ctx, f.key("k"), w)
				require.Error(t, err)
			}
			n, _, err := f.l.Peek(ctx, f.key("k"))
			require.NoError(t, err)
			require.Zero(t, n)
		}},
		{"concurrent hits get every count exactly once", func(t *testing.T, f limiterFixture) {
			const workers = 100
			counts := make([]int64, workers)
			var wg sync.WaitGroup
			for i := range workers {
				wg.Go(func() {
					n, _, err := f.l.Hit(ctx, f.key("k"), f.long)
					if err == nil {
						counts[i] = n
					}
				})
			}
			wg.Wait()
			slices.Sort(counts)
			want := make([]int64, workers)
			for i := range want {
				want[i] = int64(i + 1)
			}
			require.Equal(t, want, counts)
		}},
	}
	for name, open := range limiterBackends() {
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

func TestValkeyLimiterKeys(t *testing.T) {
	ctx := context.Background()
	v := openTestValkey(t)
	l := v.Limiter()
	prefix := uniquePrefix(t)

	t.Run("counter lives at identity:rl:{key} with the window as expiry", func(t *testing.T) {
		_, _, err := l.Hit(ctx, prefix+"login:ip", time.Minute)
		require.NoError(t, err)
		val, pttl := rawGet(t, v, "identity:rl:"+prefix+"login:ip")
		require.Equal(t, "1", val)
		require.Greater(t, pttl, int64(55_000))
		require.LessOrEqual(t, pttl, int64(60_000))
	})
	t.Run("a counter without expiry gets one on the next hit", func(t *testing.T) {
		key := prefix + "no-ttl"
		c := v.client
		require.NoError(t, c.Do(ctx, c.B().Set().Key(limiterKey(key)).Value("5").Build()).Error())
		n, reset, err := l.Hit(ctx, key, time.Minute)
		require.NoError(t, err)
		require.Equal(t, int64(6), n)
		require.Equal(t, time.Minute, reset)
		_, pttl := rawGet(t, v, limiterKey(key))
		require.Positive(t, pttl)
	})
	t.Run("undo keeps the expiry", func(t *testing.T) {
		key := prefix + "undo"
		for range 2 {
			_, _, err := l.Hit(ctx, key, time.Minute)
			require.NoError(t, err)
		}
		require.NoError(t, l.Undo(ctx, key))
		val, pttl := rawGet(t, v, limiterKey(key))
		require.Equal(t, "1", val)
		require.Positive(t, pttl)
	})
	t.Run("a sub-millisecond window rounds up", func(t *testing.T) {
		n, reset, err := l.Hit(ctx, prefix+"tiny", time.Microsecond)
		require.NoError(t, err)
		require.Equal(t, int64(1), n)
		require.Equal(t, time.Millisecond, reset)
	})
}

func TestLocalLimiterSweepsExpiredWindows(t *testing.T) {
	ctx := context.Background()
	clock := core.NewFixedClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	l := NewLocalLimiter(clock)
	for i := range minSweep {
		_, _, err := l.Hit(ctx, strconv.Itoa(i), time.Minute)
		require.NoError(t, err)
	}
	clock.Advance(time.Minute)
	_, _, err := l.Hit(ctx, "fresh", time.Minute)
	require.NoError(t, err)
	l.mu.Lock()
	defer l.mu.Unlock()
	require.Len(t, l.windows, 1, "the insert past the sweep mark drops every expired window")
	require.Equal(t, minSweep, l.sweepAt)
}
