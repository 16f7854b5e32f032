package cache

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/federation"
)

var (
	_ federation.FlowStore = ValkeyOneTime{}
	_ federation.FlowStore = (*LocalOneTime)(nil)
)

// oneTimeFixture is one backend under the single-use record conformance suite.
type oneTimeFixture struct {
	s federation.FlowStore
	// other is a store of another namespace on the same backend.
	other  federation.FlowStore
	prefix string           // unique per test
	clock  *core.FixedClock // in process: time is stepped
	// short is a ttl a test waits out (real time on Valkey).
	short time.Duration
	// exists reports, without consuming it, whether the server may still
	// hold key (Valkey only).
	exists func(key string) bool
}

func (f oneTimeFixture) key(name string) string { return f.prefix + name }

// requireGone lets the short ttl pass and requires key to be gone: at once
// in process; on Valkey by polling the server without consuming the key (a
// server's expiry is not exact to the millisecond), then with Take.
func (f oneTimeFixture) requireGone(t *testing.T, key string) {
	t.Helper()
	if f.clock != nil {
		f.clock.Advance(f.short)
	} else {
		time.Sleep(f.short)
		require.Eventually(t, func() bool { return !f.exists(key) }, 2*time.Second, 10*time.Millisecond)
	}
	_, ok, err := f.s.Take(context.Background(), key)
	require.NoError(t, err)
	require.False(t, ok)
}

func oneTimeBackends() map[string]func(t *testing.T) oneTimeFixture {
	return map[string]func(t *testing.T) oneTimeFixture{
		"local": func(t *testing.T) oneTimeFixture {
			clock := core.NewFixedClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
			// In process every store is its own namespace.
			return oneTimeFixture{s: NewLocalOneTime(clock), other: NewLocalOneTime(clock),
				prefix: uniquePrefix(t), clock: clock, short: time.Minute}
		},
		"valkey": func(t *testing.T) oneTimeFixture {
			v := openTestValkey(t)
			return oneTimeFixture{s: v.OneTime("test-flow"), other: v.OneTime("test-other"),
				prefix: uniquePrefix(t), short: 50 * time.Millisecond,
				exists: func(key string) bool {
					c := v.client
					n, err := c.Do(context.Background(), c.B().Exists().Key("identity:onetime:test-flow:"+key).Build()).AsInt64()
					return err != nil || n != 0
				}}
		},
	}
}

func TestOneTimeConformance(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		run  func(t *testing.T, f oneTimeFixture)
	}{
		{"put then take once", func(t *testing.T, f oneTimeFixture) {
			require.NoError(t, f.s.Put(ctx, f.key("k"), []byte("value"), time.Minute))
			got, ok, err := f.s.Take(ctx, f.key("k"))
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, []byte("value"), got)

			got, ok, err = f.s.Take(ctx, f.key("k"))
			require.NoError(t, err)
			require.False(t, ok, "second take")
			require.Nil(t, got)
		}},
		{"unknown key", func(t *testing.T, f oneTimeFixture) {
			got, ok, err := f.s.Take(ctx, f.key("never"))
			require.NoError(t, err)
			require.False(t, ok)
			require.Nil(t, got)
		}},
		{"binary and empty values round-trip", func(t *testing.T, f oneTimeFixture) {
			for name, v := range map[string][]byte{"binary": {0, 0xff, '\r', '\n', 0x80}, "empty": {}, "nil": nil} {
				require.NoError(t, f.s.Put(ctx, f.key(name), v, time.Minute))
				got, ok, err := f.s.Take(ctx, f.key(name))
				require.NoError(t, err)
				require.True(t, ok, name)
				require.NotNil(t, got, name)
				require.Equal(t, append([]byte{}, v...), got, name)
			}
		}},
		{"put replaces", func(t *testing.T, f oneTimeFixture) {
			require.NoError(t, f.s.Put(ctx, f.key("k"), []byte("old"), time.Minute))
			require.NoError(t, f.s.Put(ctx, f.key("k"), []byte("new"), time.Minute))
			got, ok, err := f.s.Take(ctx, f.key("k"))
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, []byte("new"), got)
		}},
		{"put copies the value", func(t *testing.T, f oneTimeFixture) {
			v := []byte("value")
			require.NoError(t, f.s.Put(ctx, f.key("k"), v, time.Minute))
			v[0] = 'X'
			got, ok, err := f.s.Take(ctx, f.key("k"))
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, []byte("value"), got)
		}},
		{"record expires", func(t *testing.T, f oneTimeFixture) {
			require.NoError(t, f.s.Put(ctx, f.key("short"), []byte("v"), f.short))
			require.NoError(t, f.s.Put(ctx, f.key("long"), []byte("v"), f.short+time.Hour))
			f.requireGone(t, f.key("short"))
			_, ok, err := f.s.Take(ctx, f.key("long"))
			require.NoError(t, err)
			require.True(t, ok, "a longer ttl outlives the short one")
		}},
		{"non-positive ttl is a caller error", func(t *testing.T, f oneTimeFixture) {
			for _, ttl := range []time.Duration{0, -time.Second} {
				err := f.s.Put(ctx, f.key("k"), []byte("v"), ttl)
				require.Error(t, err)
				require.True(t, core.IsKind(err, core.KindInternal), "%v", err)
			}
			_, ok, err := f.s.Take(ctx, f.key("k"))
			require.NoError(t, err)
			require.False(t, ok)
		}},
		{"concurrent takes: exactly one wins", func(t *testing.T, f oneTimeFixture) {
			for round := range 5 {
				key := f.key("race-" + strconv.Itoa(round))
				require.NoError(t, f.s.Put(ctx, key, []byte("v"), time.Minute))
				const takers = 20
				var (
					wg    sync.WaitGroup
					start = make(chan struct{})
					mu    sync.Mutex
					wins  int
					errs  []error
				)
				for range takers {
					wg.Go(func() {
						<-start
						got, ok, err := f.s.Take(ctx, key)
						mu.Lock()
						defer mu.Unlock()
						if err != nil {
							errs = append(errs, err)
						}
						if ok {
							wins++
							if string(got) != "v" {
								errs = append(errs, errValue(got))
							}
						}
					})
				}
				close(start)
				wg.Wait()
				require.Empty(t, errs)
				require.Equal(t, 1, wins, "round %d", round)
			}
		}},
		{"namespaces do not collide", func(t *testing.T, f oneTimeFixture) {
			require.NoError(t, f.s.Put(ctx, f.key("k"), []byte("mine"), time.Minute))
			require.NoError(t, f.other.Put(ctx, f.key("k"), []byte("theirs"), time.Minute))

			got, ok, err := f.other.Take(ctx, f.key("k"))
			require.NoError(t, err)
			require.True(t, ok)
			require.Equal(t, []byte("theirs"), got)

			got, ok, err = f.s.Take(ctx, f.key("k"))
			require.NoError(t, err)
			require.True(t, ok, "taking from the other namespace left this one alone")
			require.Equal(t, []byte("mine"), got)

			_, ok, err = f.other.Take(ctx, f.key("only-mine"))
			require.NoError(t, err)
			require.False(t, ok)
		}},
	}
	for backend, open := range oneTimeBackends() {
		t.Run(backend, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					tc.run(t, open(t))
				})
			}
		})
	}
}

type errValue []byte

func (e errValue) Error() string { return "unexpected value " + strconv.Quote(string(e)) }

func TestValkeyOneTimeKeys(t *testing.T) {
	ctx := context.Background()
	v := openTestValkey(t)
	s := v.OneTime("test-flow")
	key := uniquePrefix(t) + "k"
	require.NoError(t, s.Put(ctx, key, []byte("v"), time.Minute))

	value, pttl := rawGet(t, v, "identity:onetime:test-flow:"+key)
	require.Equal(t, "v", value)
	// The TTL is the minute asked for: not left unset (PTTL -1), not a few
	// seconds. The slack below 60 000 ms covers the time between the write
	// and this read on a slow machine.
	require.Greater(t, pttl, int64(50_000))
	require.LessOrEqual(t, pttl, int64(60_000))

	_, ok, err := s.Take(ctx, key)
	require.NoError(t, err)
	require.True(t, ok)
	_, pttl = rawGet(t, v, "identity:onetime:test-flow:"+key)
	require.Equal(t, int64(-2), pttl, "take deleted the key")
}

func TestValkeyOneTimeNamespaceMustBeSimple(t *testing.T) {
	v := &Valkey{} // OneTime does not touch the connection
	for _, ns := range []string{"", "a:b", ":"} {
		require.Panics(t, func() { v.OneTime(ns) }, "%q", ns)
	}
	require.NotPanics(t, func() { v.OneTime("oidc-state") })
}

func TestValkeyOneTimeUnavailable(t *testing.T) {
	ctx := context.Background()
	v, err := Open(ctx, deadURL, nil)
	require.NoError(t, err)
	t.Cleanup(v.Close)
	s := v.OneTime("test-flow")

	err = s.Put(ctx, "k", []byte("v"), time.Minute)
	require.Equal(t, core.CodeUnavailable, core.CodeOf(err), "%v", err)
	require.True(t, core.IsKind(err, core.KindUnavailable))

	_, ok, err := s.Take(ctx, "k")
	require.False(t, ok)
	require.Equal(t, core.CodeUnavailable, core.CodeOf(err), "%v", err)
}

func TestLocalOneTimeBounded(t *testing.T) {
	ctx := context.Background()
	clock := core.NewFixedClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	s := NewLocalOneTime(clock)
	require.Equal(t, MaxLocalOneTime, s.max)
	s.max = 3

	require.NoError(t, s.Put(ctx, "a", []byte("v"), time.Minute))
	require.NoError(t, s.Put(ctx, "b", []byte("v"), 2*time.Minute))
	require.NoError(t, s.Put(ctx, "c", []byte("v"), 3*time.Minute))

	err := s.Put(ctx, "d", []byte("v"), time.Minute)
	ce := core.AsError(err)
	require.NotNil(t, ce)
	require.Equal(t, core.KindUnavailable, ce.Kind)
	require.Equal(t, core.CodeOverloaded, ce.Code)
	require.Equal(t, time.Minute, ce.RetryAfter, "until the first record expires")

	// Replacing an existing key does not grow the store.
	require.NoError(t, s.Put(ctx, "a", []byte("w"), time.Minute))

	// A take frees a slot.
	_, ok, err := s.Take(ctx, "c")
	require.NoError(t, err)
	require.True(t, ok)
	require.NoError(t, s.Put(ctx, "d", []byte("v"), time.Minute))

	// Full again; once the earliest record has expired, a put sweeps it.
	require.Error(t, s.Put(ctx, "e", []byte("v"), time.Minute))
	clock.Advance(time.Minute)
	require.NoError(t, s.Put(ctx, "e", []byte("v"), time.Minute))
	require.Len(t, s.records, 2, "a and d expired and were swept; b and e are live")
	_, ok, _ = s.Take(ctx, "b")
	require.True(t, ok)
}

func TestLocalOneTimeSweeps(t *testing.T) {
	ctx := context.Background()
	clock := core.NewFixedClock(time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	s := NewLocalOneTime(clock)
	for i := range minSweep {
		require.NoError(t, s.Put(ctx, "old-"+strconv.Itoa(i), []byte("v"), time.Minute))
	}
	clock.Advance(time.Minute)
	require.NoError(t, s.Put(ctx, "new", []byte("v"), time.Minute))
	require.Len(t, s.records, 1, "the insert at the sweep mark dropped every expired record")
	require.Equal(t, minSweep, s.sweepAt)
}

func TestLocalOneTimeNilClock(t *testing.T) {
	ctx := context.Background()
	s := NewLocalOneTime(nil)
	require.NoError(t, s.Put(ctx, "k", []byte("v"), time.Minute))
	got, ok, err := s.Take(ctx, "k")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, []byte("v"), got)
}
