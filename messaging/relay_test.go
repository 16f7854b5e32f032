package messaging_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/audit"
	"github.com/ghasi-ehealth/identity-service/messaging"
	"github.com/ghasi-ehealth/identity-service/messaging/eventtest"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

var auditAll = audit.Query{AllTenants: true}

// collect drains ch into a slice until the test ends.
func collect(t *testing.T, ch <-chan *message.Message) func() []*message.Message {
	var mu sync.Mutex
	var got []*message.Message
	go func() {
		for m := range ch {
			mu.Lock()
			got = append(got, m)
			mu.Unlock()
			m.Ack()
		}
	}()
	return func() []*message.Message {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

func TestRelayPublishesEventsCommittedBeforeItStarted(t *testing.T) {
	for name, open := range dbtest.Dialects() {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			// The service was down (no relay) when these committed.
			events := []core.Event{
				sampleEvent(t, "identity.user.suspended.v1"),
				sampleEvent(t, "identity.user.reactivated.v1"),
				sampleEvent(t, "identity.user.suspended.v1"),
			}
			commit(t, db, events[0])
			commit(t, db, events[1:]...)
			require.Equal(t, 3, unpublished(t, db))

			// "Restart": a new bus, subscribers and relay.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			bus, err := messaging.NewBus(ctx, "", testLogger(t))
			require.NoError(t, err)
			defer bus.Close()
			suspended, err := bus.Subscribe(ctx, "test", "identity.user.suspended.v1")
			require.NoError(t, err)
			reactivated, err := bus.Subscribe(ctx, "test", "identity.user.reactivated.v1")
			require.NoError(t, err)
			gotSuspended, gotReactivated := collect(t, suspended), collect(t, reactivated)

			runRelay(t, messaging.NewRelay(db, bus.Publisher, nil, testLogger(t)))

			require.Eventually(t, func() bool {
				return len(gotSuspended()) == 2 && len(gotReactivated()) == 1
			}, waitFor, tick)
			msgs := append(gotSuspended(), gotReactivated()...)
			require.ElementsMatch(t, []string{events[0].ID, events[1].ID, events[2].ID},
				[]string{msgs[0].UUID, msgs[1].UUID, msgs[2].UUID})
			for _, m := range msgs {
				eventtest.RequireValid(t, m.Payload)
				require.Equal(t, messaging.ContentType, m.Metadata.Get("Content-Type"))
			}
			require.Eventually(t, func() bool { return unpublished(t, db) == 0 }, waitFor, tick)
			eventtest.RequireValidStored(t, db, "identity.user.suspended.v1")
		})
	}
}

func TestRelayWakesOnCommit(t *testing.T) {
	db := dbtest.SQLite(t)
	rec := &recorder{}
	// A poll interval this long means only the commit hook can explain a
	// prompt publication.
	r := messaging.NewRelay(db, rec, nil, testLogger(t), messaging.WithPollInterval(time.Hour))
	runRelay(t, r)
	for i := range 3 {
		evt := sampleEvent(t, "identity.device.trusted.v1")
		commit(t, db, evt)
		require.Eventually(t, func() bool { return len(rec.ids()) == i+1 }, waitFor, tick)
		require.Equal(t, evt.ID, rec.ids()[i])
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Equal(t, []string{"identity.device.trusted.v1"}, slices.Compact(slices.Clone(rec.topics)))
}

func TestRelayBacksOffOnPublishErrorsThenDelivers(t *testing.T) {
	db := dbtest.SQLite(t)
	rec := &recorder{failNext: 3}
	a, b := sampleEvent(t, "identity.api_key.issued.v1"), sampleEvent(t, "identity.api_key.revoked.v1")
	commit(t, db, a, b)
	r := messaging.NewRelay(db, rec, nil, testLogger(t), messaging.WithBackoff(time.Millisecond, 4*time.Millisecond))
	runRelay(t, r)
	require.Eventually(t, func() bool { return len(rec.ids()) == 2 }, waitFor, tick)
	require.Equal(t, []string{a.ID, b.ID}, rec.ids(), "each once, in order")
	require.Eventually(t, func() bool { return unpublished(t, db) == 0 }, waitFor, tick)
	rec.mu.Lock()
	require.GreaterOrEqual(t, rec.calls, 5, "3 failures, then 2 publications")
	rec.mu.Unlock()
}

func TestRelayMarksOnlyThePublishedPrefix(t *testing.T) {
	db := dbtest.SQLite(t)
	first := sampleEvent(t, "identity.device.registered.v1")
	second := sampleEvent(t, "identity.device.revoked.v1")
	commit(t, db, first, second)
	rec := &recorder{}
	failing := &failAfter{recorder: rec, okCalls: 1}
	r := messaging.NewRelay(db, failing, nil, testLogger(t))
	n, err := r.Flush(context.Background())
	require.ErrorIs(t, err, errBrokerDown)
	require.Equal(t, 1, n)
	require.Equal(t, 1, unpublished(t, db), "the first event stays published, the second waits")

	n, err = messaging.NewRelay(db, rec, nil, testLogger(t)).Flush(context.Background())
	require.NoError(t, err)
	require.Equal(t, 1, n)
	require.Equal(t, []string{first.ID, second.ID}, rec.ids())
}

// TestRelayBacklog: the backlog is what a failing broker leaves unpublished,
// aged by the relay's clock from the oldest event, and empty once it is
// delivered.
func TestRelayBacklog(t *testing.T) {
	db := dbtest.SQLite(t)
	t0 := time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)
	clock := core.NewFixedClock(t0)
	rec := &recorder{}
	r := messaging.NewRelay(db, &failAfter{recorder: rec}, nil, testLogger(t), messaging.WithClock(clock))
	ctx := context.Background()

	b, err := r.Backlog(ctx)
	require.NoError(t, err)
	require.Equal(t, messaging.Backlog{}, b)

	for i, typ := range []string{"identity.device.registered.v1", "identity.device.revoked.v1"} {
		e := sampleEvent(t, typ)
		e.Time = t0.Add(time.Duration(i) * 10 * time.Second)
		commit(t, db, e)
	}
	clock.Advance(90 * time.Second)
	_, err = r.Flush(ctx)
	require.ErrorIs(t, err, errBrokerDown)
	b, err = r.Backlog(ctx)
	require.NoError(t, err)
	require.Equal(t, messaging.Backlog{Pending: 2, Lag: 90 * time.Second}, b, "aged from the oldest event")

	// An event stamped ahead of the relay's clock does not go negative.
	behind := messaging.NewRelay(db, rec, nil, testLogger(t), messaging.WithClock(core.NewFixedClock(t0.Add(-time.Minute))))
	b, err = behind.Backlog(ctx)
	require.NoError(t, err)
	require.Zero(t, b.Lag)

	_, err = messaging.NewRelay(db, rec, nil, testLogger(t)).Flush(ctx)
	require.NoError(t, err)
	b, err = r.Backlog(ctx)
	require.NoError(t, err)
	require.Equal(t, messaging.Backlog{}, b)
}

// failAfter lets okCalls publications through, then fails.
type failAfter struct {
	*recorder
	okCalls int
}

func (f *failAfter) Publish(topic string, msgs ...*message.Message) error {
	if f.okCalls == 0 {
		return errBrokerDown
	}
	f.okCalls--
	return f.recorder.Publish(topic, msgs...)
}

func TestRelayStopsWhileBackingOff(t *testing.T) {
	db := dbtest.SQLite(t)
	commit(t, db, sampleEvent(t, "identity.device.trusted.v1"))
	rec := &recorder{failNext: 1 << 30}
	r := messaging.NewRelay(db, rec, nil, testLogger(t), messaging.WithBackoff(time.Hour, time.Hour))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	// Once it failed, it sits in an hour-long backoff.
	require.Eventually(t, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return rec.calls > 0
	}, waitFor, tick)
	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(waitFor):
		t.Fatal("Run did not return after cancel")
	}
}

func TestRelayPublishSpanContinuesTheEmittingTrace(t *testing.T) {
	db := dbtest.SQLite(t)
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer func() { _ = tp.Shutdown(context.Background()) }()

	reqCtx, reqSpan := tp.Tracer("test").Start(context.Background(), "identity.user.suspend")
	evt := sampleEvent(t, "identity.user.suspended.v1")
	require.NoError(t, db.InTx(reqCtx, func(ctx context.Context) error { return db.AddEvents(ctx, evt) }))
	reqSpan.End()
	untraced := sampleEvent(t, "identity.user.reactivated.v1")
	commit(t, db, untraced)

	rec := &recorder{}
	n, err := messaging.NewRelay(db, rec, tp, testLogger(t)).Flush(context.Background())
	require.NoError(t, err)
	require.Equal(t, 2, n)

	var publish []sdktrace.ReadOnlySpan
	for _, s := range spans.Ended() {
		if s.Name() == messaging.PublishSpanName {
			publish = append(publish, s)
		}
	}
	require.Len(t, publish, 2, "one span per event")
	require.Equal(t, trace.SpanKindProducer, publish[0].SpanKind())
	require.Equal(t, reqSpan.SpanContext().TraceID(), publish[0].Parent().TraceID())
	require.Equal(t, reqSpan.SpanContext().SpanID(), publish[0].Parent().SpanID())
	require.False(t, publish[1].Parent().IsValid(), "no stored traceparent: a root span")

	env, err := messaging.ParseEnvelope(rec.msgs[0].Payload)
	require.NoError(t, err)
	require.Contains(t, env.TraceParent, reqSpan.SpanContext().TraceID().String())
	eventtest.RequireValid(t, rec.msgs[0].Payload)
}

// TestTwoRelaysShareOnePostgresOutbox runs two relays (two "nodes", each
// with its own connection pool) on one Postgres database while events keep
// being committed: every event is published exactly once and none is stuck.
func TestTwoRelaysShareOnePostgresOutbox(t *testing.T) {
	url := dbtest.PostgresSchemaURL(t)
	openDB := func() *persistence.DB {
		db, err := persistence.Open(context.Background(), url)
		require.NoError(t, err)
		t.Cleanup(func() { _ = db.Close() })
		return db
	}
	dbA, dbB := openDB(), openDB()
	_, err := dbA.Migrate(context.Background())
	require.NoError(t, err)

	var ids []string
	commitBatch := func(n int) {
		var evs []core.Event
		for range n {
			e := sampleEvent(t, "identity.session.created.v1")
			evs = append(evs, e)
			ids = append(ids, e.ID)
		}
		commit(t, dbA, evs...)
	}
	for range 10 {
		commitBatch(10) // a backlog from before the relays started
	}
	recA, recB := &recorder{}, &recorder{}
	opts := []messaging.RelayOption{messaging.WithBatchSize(7), messaging.WithPollInterval(10 * time.Millisecond)}
	runRelay(t, messaging.NewRelay(dbA, recA, nil, testLogger(t), opts...))
	runRelay(t, messaging.NewRelay(dbB, recB, nil, testLogger(t), opts...))
	for range 10 {
		commitBatch(5) // and more while they run
	}

	require.Eventually(t, func() bool { return unpublished(t, dbA) == 0 }, waitFor, tick)
	published := append(recA.ids(), recB.ids()...)
	require.ElementsMatch(t, ids, published, "every event exactly once")
	t.Logf("relay A published %d, relay B %d", len(recA.ids()), len(recB.ids()))
}
