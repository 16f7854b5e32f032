package messaging_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/messaging"
	"github.com/ghasi-ehealth/identity-service/messaging/eventtest"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

// outcomes records what a consumer did, per event id.
type outcomes struct {
	mu   sync.Mutex
	byID map[string][]messaging.Outcome
}

func (o *outcomes) observe(env messaging.Envelope, out messaging.Outcome) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.byID == nil {
		o.byID = map[string][]messaging.Outcome{}
	}
	o.byID[env.ID] = append(o.byID[env.ID], out)
}

func (o *outcomes) of(id string) []messaging.Outcome {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]messaging.Outcome(nil), o.byID[id]...)
}

// publishEnvelope publishes env as a new message (a fresh message UUID, so
// the broker does not dedupe it: this is how a redelivery looks to a consumer).
func publishEnvelope(t *testing.T, bus *messaging.Bus, env messaging.Envelope) {
	t.Helper()
	payload, err := json.Marshal(env)
	require.NoError(t, err)
	require.NoError(t, bus.Publisher.Publish(env.Type, message.NewMessage(watermill.NewUUID(), payload)))
}

// sideEffects counts the events a handler wrote (its database effect).
func sideEffects(t *testing.T, db *persistence.DB, subject string) int {
	t.Helper()
	evs, err := db.ListStoredEvents(context.Background(), auditAll)
	require.NoError(t, err)
	n := 0
	for _, e := range evs {
		if e.Subject == subject {
			n++
		}
	}
	return n
}

// inboxConsumerTest checks, on one bus and database, that duplicates run
// the handler once and that a failing handler is retried with its effects
// rolled back.
func inboxConsumerTest(t *testing.T, bus *messaging.Bus, db *persistence.DB, consumer, eventType string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	calls := map[string]int{}
	failFirst := map[string]bool{}
	handler := func(ctx context.Context, env messaging.Envelope) error {
		mu.Lock()
		calls[env.ID]++
		fail := failFirst[env.ID] && calls[env.ID] == 1
		mu.Unlock()
		// The handler's own write joins the inbox transaction.
		effect := core.NewEvent(env.Time, "identity.test.handled.v1", "handled-"+env.ID, "", map[string]any{})
		if err := db.AddEvents(ctx, effect); err != nil {
			return err
		}
		if fail {
			return errors.New("transient failure")
		}
		return nil
	}
	seen := &outcomes{}
	c, err := messaging.Consume(ctx, bus, db, consumer, eventType, handler,
		messaging.WithRetryDelay(0), messaging.WithObserver(seen.observe))
	require.NoError(t, err)

	env, ok := eventtest.Sample(eventType)
	require.True(t, ok)
	env.ID = core.NewID()
	for range 3 {
		publishEnvelope(t, bus, env)
	}
	require.Eventually(t, func() bool { return len(seen.of(env.ID)) == 3 }, waitFor, tick)
	require.ElementsMatch(t, []messaging.Outcome{messaging.Processed, messaging.Duplicate, messaging.Duplicate}, seen.of(env.ID))
	mu.Lock()
	require.Equal(t, 1, calls[env.ID], "the handler runs once per event id")
	mu.Unlock()
	require.Equal(t, 1, sideEffects(t, db, "handled-"+env.ID))

	retried := env
	retried.ID = core.NewID()
	mu.Lock()
	failFirst[retried.ID] = true
	mu.Unlock()
	publishEnvelope(t, bus, retried)
	require.Eventually(t, func() bool { return len(seen.of(retried.ID)) == 2 }, waitFor, tick)
	require.Equal(t, []messaging.Outcome{messaging.Failed, messaging.Processed}, seen.of(retried.ID))
	require.Equal(t, 1, sideEffects(t, db, "handled-"+retried.ID), "the failed attempt's write rolled back")

	cancel()
	select {
	case <-c.Done():
	case <-time.After(waitFor):
		t.Fatal("the consumer did not stop with its context")
	}
}

func TestConsumeInProcessDedupesAndRetries(t *testing.T) {
	for name, open := range dbtest.Dialects() {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			bus, err := messaging.NewBus(context.Background(), "", testLogger(t))
			require.NoError(t, err)
			defer bus.Close()
			inboxConsumerTest(t, bus, db, "access-cache", "tenant.membership.changed.v1")
		})
	}
}

func TestConsumeDropsMalformedPayload(t *testing.T) {
	db := dbtest.SQLite(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bus, err := messaging.NewBus(ctx, "", testLogger(t))
	require.NoError(t, err)
	defer bus.Close()
	seen := &outcomes{}
	_, err = messaging.Consume(ctx, bus, db, "c", "identity.user.suspended.v1",
		func(context.Context, messaging.Envelope) error {
			t.Error("the handler must not see a malformed message")
			return nil
		}, messaging.WithObserver(seen.observe))
	require.NoError(t, err)
	require.NoError(t, bus.Publisher.Publish("identity.user.suspended.v1", message.NewMessage(watermill.NewUUID(), []byte("garbage"))))
	require.Eventually(t, func() bool { return len(seen.of("")) == 1 }, waitFor, tick)
	require.Equal(t, []messaging.Outcome{messaging.Dropped}, seen.of(""))
}

func TestSubscribeNeedsNames(t *testing.T) {
	bus, err := messaging.NewBus(context.Background(), "", testLogger(t))
	require.NoError(t, err)
	defer bus.Close()
	_, err = bus.Subscribe(context.Background(), "", "identity.user.suspended.v1")
	require.Error(t, err)
	require.True(t, bus.InProcess())
	require.NoError(t, bus.Ping(context.Background()))
}
