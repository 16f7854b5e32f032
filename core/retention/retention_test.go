package retention

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/telemetry"
	"github.com/ghasi-ehealth/identity-service/telemetry/telemetrytest"
)

var t0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

type call struct {
	kind   Kind
	before time.Time
	limit  int
}

// fakeStore answers DeleteExpired from a script: due[kind] rows are waiting
// (deleted limit at a time), fail[kind] errors are returned first, one per
// call. It records every call and signals each on calls.
type fakeStore struct {
	mu    sync.Mutex
	due   map[Kind]int
	fail  map[Kind][]error
	log   []call
	calls chan call
}

func newFakeStore() *fakeStore {
	return &fakeStore{due: map[Kind]int{}, fail: map[Kind][]error{}, calls: make(chan call, 1000)}
}

func (f *fakeStore) DeleteExpired(ctx context.Context, kind Kind, before time.Time, limit int) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := call{kind, before, limit}
	f.log = append(f.log, c)
	select {
	case f.calls <- c:
	default:
	}
	if errs := f.fail[kind]; len(errs) > 0 {
		f.fail[kind] = errs[1:]
		return 0, errs[0]
	}
	if err := ctx.Err(); err != nil {
		return 0, core.Unavailable(err) // as persistence translates it
	}
	n := min(f.due[kind], limit)
	f.due[kind] -= n
	return n, nil
}

func (f *fakeStore) callsOf(kind Kind) []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []call
	for _, c := range f.log {
		if c.kind == kind {
			out = append(out, c)
		}
	}
	return out
}

func newTestService(t *testing.T, store Store, cfg Config) (*Service, *sdkmetric.ManualReader) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	m, err := telemetry.NewMetrics(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	require.NoError(t, err)
	return NewService(Deps{Store: store, Clock: core.NewFixedClock(t0), Metrics: m}, cfg), reader
}

func TestRules(t *testing.T) {
	var kinds []Kind
	for _, r := range Rules() {
		kinds = append(kinds, r.Kind)
		require.Contains(t, telemetry.RetentionKinds, string(r.Kind), "pre-initialised at 0")
	}
	require.Len(t, telemetry.RetentionKinds, len(kinds))
	require.Equal(t, []Kind{KindRefreshTokens, KindSessions, KindVerificationTokens, KindMFAChallenges,
		KindWebAuthnCeremonies, KindInbox}, kinds, "refresh tokens before their sessions")

	r := Rules()
	r[0].Grace = 0
	require.Equal(t, SessionGrace, Rules()[0].Grace, "Rules returns a copy")
	// The inbox must outlive JetStream's 7-day redelivery window
	// (messaging's streamMaxAge) with margin.
	require.Greater(t, InboxGrace, 7*24*time.Hour)
}

func TestSweep(t *testing.T) {
	tests := []struct {
		name    string
		due     map[Kind]int
		batch   int
		want    map[Kind]int
		batches map[Kind]int // calls per kind
	}{
		{
			name:    "nothing due: one short batch per kind",
			batch:   10,
			want:    map[Kind]int{KindRefreshTokens: 0, KindSessions: 0, KindVerificationTokens: 0, KindMFAChallenges: 0, KindWebAuthnCeremonies: 0, KindInbox: 0},
			batches: map[Kind]int{KindRefreshTokens: 1, KindSessions: 1, KindInbox: 1},
		},
		{
			name:    "several batches until a short one",
			due:     map[Kind]int{KindSessions: 23, KindInbox: 20, KindMFAChallenges: 3},
			batch:   10,
			want:    map[Kind]int{KindRefreshTokens: 0, KindSessions: 23, KindVerificationTokens: 0, KindMFAChallenges: 3, KindWebAuthnCeremonies: 0, KindInbox: 20},
			batches: map[Kind]int{KindSessions: 3, KindInbox: 3, KindMFAChallenges: 1},
		},
		{
			name:    "default batch size",
			due:     map[Kind]int{KindRefreshTokens: 2500},
			want:    map[Kind]int{KindRefreshTokens: 2500, KindSessions: 0, KindVerificationTokens: 0, KindMFAChallenges: 0, KindWebAuthnCeremonies: 0, KindInbox: 0},
			batches: map[Kind]int{KindRefreshTokens: 3},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			store := newFakeStore()
			for k, n := range tc.due {
				store.due[k] = n
			}
			svc, reader := newTestService(t, store, Config{BatchSize: tc.batch})
			res, err := svc.Sweep(context.Background())
			require.NoError(t, err)
			require.Equal(t, tc.want, res.Deleted)
			total := 0
			for _, n := range tc.want {
				total += n
			}
			require.Equal(t, total, res.Total())
			for k, n := range tc.batches {
				require.Len(t, store.callsOf(k), n, k)
			}
			deleted := telemetrytest.CounterByAttr(t, reader, telemetry.MetricRetentionDeleted, telemetry.AttrKind)
			for k, n := range tc.want {
				require.Equal(t, int64(n), deleted[string(k)], k)
			}
		})
	}
}

// TestSweepCutoffs: each kind is swept with now minus its grace, fixed for
// the whole pass, in the order of Rules.
func TestSweepCutoffs(t *testing.T) {
	store := newFakeStore()
	store.due[KindSessions] = 5
	svc, _ := newTestService(t, store, Config{BatchSize: 2})
	_, err := svc.Sweep(context.Background())
	require.NoError(t, err)
	want := map[Kind]time.Duration{
		KindRefreshTokens: 7 * 24 * time.Hour, KindSessions: 7 * 24 * time.Hour, KindVerificationTokens: 24 * time.Hour,
		KindMFAChallenges: time.Hour, KindWebAuthnCeremonies: time.Hour, KindInbox: 14 * 24 * time.Hour,
	}
	var order []Kind
	for _, c := range store.log {
		require.Equal(t, t0.Add(-want[c.kind]), c.before, c.kind)
		require.Equal(t, 2, c.limit)
		if len(order) == 0 || order[len(order)-1] != c.kind {
			order = append(order, c.kind)
		}
	}
	require.Equal(t, []Kind{KindRefreshTokens, KindSessions, KindVerificationTokens, KindMFAChallenges,
		KindWebAuthnCeremonies, KindInbox}, order)
	require.Len(t, store.callsOf(KindSessions), 3, "2 + 2 + 1")
}

// TestSweepFailure: a failing kind is counted and reported, and the other
// kinds are still swept.
func TestSweepFailure(t *testing.T) {
	store := newFakeStore()
	store.due[KindSessions], store.due[KindInbox] = 4, 1
	store.fail[KindRefreshTokens] = []error{core.Unavailable(errors.New("connection refused"))}
	store.fail[KindMFAChallenges] = []error{core.Internal(errors.New("boom"))}
	svc, reader := newTestService(t, store, Config{})
	res, err := svc.Sweep(context.Background())
	require.Error(t, err)
	require.Equal(t, core.KindUnavailable, core.KindOf(err), "the first failure's kind")
	require.ErrorContains(t, err, "retention of refresh_tokens: ")
	require.ErrorContains(t, err, "retention of mfa_challenges: ")
	require.Equal(t, 4, res.Deleted[KindSessions])
	require.Equal(t, 1, res.Deleted[KindInbox])
	require.Equal(t, 5, res.Total())
	require.Equal(t, map[string]int64{"refresh_tokens": 1, "mfa_challenges": 1, "sessions": 0, "verification_tokens": 0,
		"webauthn_ceremonies": 0, "inbox": 0}, telemetrytest.CounterByAttr(t, reader, telemetry.MetricRetentionFailures, telemetry.AttrKind))
}

// TestSweepCancelled: a sweep whose context ends stops, returns the
// context's error and what it deleted, and counts no failure.
func TestSweepCancelled(t *testing.T) {
	store := newFakeStore()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	svc, reader := newTestService(t, store, Config{})
	res, err := svc.Sweep(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.Zero(t, res.Total())
	require.Empty(t, store.log)

	// Cancelled while a kind is mid-way: the store's error is the
	// cancellation, not a failure.
	store = newFakeStore()
	store.due[KindRefreshTokens] = 100
	ctx, cancel = context.WithCancel(context.Background())
	svc, reader = newTestService(t, stopAfter{store, cancel, 2}, Config{BatchSize: 10})
	res, err = svc.Sweep(ctx)
	require.ErrorIs(t, err, context.Canceled)
	require.Equal(t, 20, res.Deleted[KindRefreshTokens])
	for kind, n := range telemetrytest.CounterByAttr(t, reader, telemetry.MetricRetentionFailures, telemetry.AttrKind) {
		require.Zero(t, n, kind)
	}
}

// stopAfter cancels the sweep's context after n calls.
type stopAfter struct {
	*fakeStore
	cancel context.CancelFunc
	n      int
}

func (s stopAfter) DeleteExpired(ctx context.Context, kind Kind, before time.Time, limit int) (int, error) {
	s.mu.Lock()
	calls := len(s.log)
	s.mu.Unlock()
	if calls == s.n {
		s.cancel()
	}
	return s.fakeStore.DeleteExpired(ctx, kind, before, limit)
}

// TestRunKeepsGoing: a failed sweep is followed by the next one on
// schedule; Run returns when its context ends.
func TestRunKeepsGoing(t *testing.T) {
	store := newFakeStore()
	boom := core.Unavailable(errors.New("database down"))
	store.fail[KindRefreshTokens] = []error{boom, boom, boom}
	svc, reader := newTestService(t, store, Config{Interval: time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		svc.Run(ctx)
	}()
	// Three failed sweeps, then at least one that gets through.
	require.Eventually(t, func() bool { return len(store.callsOf(KindRefreshTokens)) >= 5 }, 5*time.Second, time.Millisecond)
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	require.Equal(t, int64(3), telemetrytest.CounterByAttr(t, reader, telemetry.MetricRetentionFailures, telemetry.AttrKind)["refresh_tokens"])
	require.GreaterOrEqual(t, len(store.callsOf(KindInbox)), 4, "the other kinds were swept every time")
}

// TestRunStops: Run returns promptly when its context ends, also while it
// waits for a long interval, and at once when disabled.
func TestRunStops(t *testing.T) {
	for _, interval := range []time.Duration{24 * time.Hour, 0, -time.Second} {
		store := newFakeStore()
		svc, _ := newTestService(t, store, Config{Interval: interval})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			svc.Run(ctx)
		}()
		if interval <= 0 {
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatalf("Run with interval %v did not return at once", interval)
			}
			require.Empty(t, store.log, "disabled")
		}
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("Run with interval %v did not return after its context ended", interval)
		}
	}
}

func TestJitter(t *testing.T) {
	for range 1000 {
		d := jittered(time.Hour)
		require.GreaterOrEqual(t, d, 54*time.Minute)
		require.LessOrEqual(t, d, 66*time.Minute)
		require.Less(t, firstDelay(time.Hour), time.Minute, "a fresh instance sweeps within a minute")
		require.GreaterOrEqual(t, firstDelay(time.Hour), time.Duration(0))
		require.Less(t, firstDelay(time.Second), time.Second)
	}
	require.Equal(t, 5*time.Nanosecond, jittered(5*time.Nanosecond), "too short to vary")
	require.Zero(t, firstDelay(0))
}

func TestNewServiceDefaults(t *testing.T) {
	svc := NewService(Deps{Store: newFakeStore()}, Config{})
	require.Equal(t, DefaultBatchSize, svc.cfg.BatchSize)
	require.NotNil(t, svc.clock)
	res, err := svc.Sweep(context.Background())
	require.NoError(t, err)
	require.Zero(t, res.Total(), "nil metrics and logger are fine")
}
