package messaging_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/messaging"
	"github.com/ghasi-ehealth/identity-service/messaging/eventtest"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

// jetStream connects a raw client for setup and cleanup, skipping the test
// when NATS is unreachable (failing it under CI=true).
func jetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(dbtest.NATSURL(), nats.Timeout(2*time.Second))
	dbtest.NeedServer(t, "NATS", err)
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	return js
}

// natsBus opens a Bus on the test server; consumers created with names from
// uniqueConsumer are deleted when the test ends.
func natsBus(t *testing.T) (*messaging.Bus, jetstream.JetStream) {
	t.Helper()
	js := jetStream(t)
	bus, err := messaging.NewBus(context.Background(), dbtest.NATSURL(), testLogger(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = bus.Close() })
	require.False(t, bus.InProcess())
	require.NoError(t, bus.Ping(context.Background()))
	return bus, js
}

// uniqueConsumer returns a consumer name private to this test and deletes
// its durable on eventType when the test ends.
func uniqueConsumer(t *testing.T, js jetstream.JetStream, eventType string) string {
	name := "test-" + core.NewID()
	t.Cleanup(func() {
		ctx := context.Background()
		stream, err := js.StreamNameBySubject(ctx, eventType)
		if err == nil {
			_ = js.DeleteConsumer(ctx, stream, messaging.DurableName(name, eventType))
		}
	})
	return name
}

// await returns the first message whose envelope has id, acking any other
// message (other tests may publish the same type on the shared stream).
func await(t *testing.T, ch <-chan *message.Message, id string) *message.Message {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		select {
		case m, ok := <-ch:
			require.True(t, ok, "subscription closed")
			if env, err := messaging.ParseEnvelope(m.Payload); err == nil && env.ID == id {
				return m
			}
			m.Ack()
		case <-deadline:
			t.Fatalf("no message %s", id)
		}
	}
}

func TestRelayToJetStream(t *testing.T) {
	bus, js := natsBus(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const typ = "identity.device.bound_for_offline.v1"
	ch, err := bus.Subscribe(ctx, uniqueConsumer(t, js, typ), typ)
	require.NoError(t, err)

	stream, err := js.Stream(ctx, messaging.StreamName)
	require.NoError(t, err)
	require.Equal(t, []string{messaging.StreamSubject}, stream.CachedInfo().Config.Subjects)
	require.Equal(t, jetstream.FileStorage, stream.CachedInfo().Config.Storage)

	db := dbtest.SQLite(t)
	evt := sampleEvent(t, typ)
	commit(t, db, evt) // committed before any relay runs
	runRelay(t, messaging.NewRelay(db, bus.Publisher, nil, testLogger(t)))

	m := await(t, ch, evt.ID)
	m.Ack()
	require.Equal(t, evt.ID, m.UUID, "message UUID = event id")
	eventtest.RequireValid(t, m.Payload)
	env, err := messaging.ParseEnvelope(m.Payload)
	require.NoError(t, err)
	require.Equal(t, evt.ID, env.ID)
	require.Equal(t, typ, env.Type)
	require.Equal(t, evt.Subject, env.Subject)
	require.Equal(t, messaging.ContentType, m.Metadata.Get("Content-Type"))
	require.Eventually(t, func() bool { return unpublished(t, db) == 0 }, waitFor, tick)
}

func TestConsumeOnJetStreamDedupesAndRetries(t *testing.T) {
	for name, open := range dbtest.Dialects() {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			bus, js := natsBus(t)
			const typ = "identity.user.email_verified.v1"
			inboxConsumerTest(t, bus, db, uniqueConsumer(t, js, typ), typ)
		})
	}
}

// TestDurableSubscriptionResumes shows a consumer that was down receives,
// on resubscribing, what was published meanwhile.
func TestDurableSubscriptionResumes(t *testing.T) {
	bus, js := natsBus(t)
	const typ = "identity.api_key.rotated.v1"
	consumer := uniqueConsumer(t, js, typ)

	ctx1, stop := context.WithCancel(context.Background())
	ch, err := bus.Subscribe(ctx1, consumer, typ)
	require.NoError(t, err)
	stop()
	for range ch { // wait until the subscription is gone
	}
	// The channel closes just before the client drains its pull request; a
	// message the server hands to that request meanwhile would only come
	// back after the ack wait. Wait until the server holds no request.
	stream, err := js.StreamNameBySubject(context.Background(), typ)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		c, err := js.Consumer(context.Background(), stream, messaging.DurableName(consumer, typ))
		if err != nil {
			return false
		}
		info, err := c.Info(context.Background())
		return err == nil && info.NumWaiting == 0
	}, waitFor, tick)

	env, _ := eventtest.Sample(typ)
	env.ID = core.NewID()
	publishEnvelope(t, bus, env)

	ctx2, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err = bus.Subscribe(ctx2, consumer, typ)
	require.NoError(t, err)
	await(t, ch, env.ID).Ack()
}

// TestSubscribeToAnotherServicesStream: subjects outside identity.> work
// once the owning service's stream exists, and fail clearly before.
func TestSubscribeToAnotherServicesStream(t *testing.T) {
	bus, js := natsBus(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	prefix := "tenant" + core.NewID()[:8]
	subject := prefix + ".membership.changed.v1"

	_, err := bus.Subscribe(ctx, "c", subject)
	require.Error(t, err, "no stream holds the subject yet")
	require.Equal(t, core.KindUnavailable, core.KindOf(err))

	streamName := "TEST_" + prefix
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{Name: streamName, Subjects: []string{prefix + ".>"}, Storage: jetstream.MemoryStorage})
	require.NoError(t, err)
	t.Cleanup(func() { _ = js.DeleteStream(context.Background(), streamName) })

	ch, err := bus.Subscribe(ctx, "identity-access-cache", subject)
	require.NoError(t, err)
	env, _ := eventtest.Sample("tenant.membership.changed.v1")
	env.ID = core.NewID()
	payload, err := json.Marshal(env)
	require.NoError(t, err)
	_, err = js.Publish(ctx, subject, payload) // a foreign producer: no watermill headers
	require.NoError(t, err)

	deadline := time.After(waitFor)
	select {
	case m := <-ch:
		got, err := messaging.ParseEnvelope(m.Payload)
		require.NoError(t, err)
		require.Equal(t, env.ID, got.ID)
		m.Ack()
	case <-deadline:
		t.Fatal("no message from the other stream")
	}
}

func TestNewBusFailsWithoutServer(t *testing.T) {
	_, err := messaging.NewBus(context.Background(), "nats://127.0.0.1:1", testLogger(t))
	require.Error(t, err)
	require.Equal(t, core.KindUnavailable, core.KindOf(err))
}

// TestJetStreamDropsARepublishedEvent: the relay publishes with message
// UUID = event id, which becomes Nats-Msg-Id, so a republish after a crash
// between publish and commit is dropped by the stream's duplicate window.
func TestJetStreamDropsARepublishedEvent(t *testing.T) {
	bus, js := natsBus(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const typ = "identity.device.revoked.v1"
	ch, err := bus.Subscribe(ctx, uniqueConsumer(t, js, typ), typ)
	require.NoError(t, err)

	env, _ := eventtest.Sample(typ)
	env.ID = core.NewID()
	payload, err := json.Marshal(env)
	require.NoError(t, err)
	for range 2 {
		require.NoError(t, bus.Publisher.Publish(typ, message.NewMessage(env.ID, payload)))
	}
	sentinel := env
	sentinel.ID = core.NewID()
	publishEnvelope(t, bus, sentinel)

	copies := 0
	deadline := time.After(waitFor)
	for done := false; !done; {
		select {
		case m := <-ch:
			got, err := messaging.ParseEnvelope(m.Payload)
			require.NoError(t, err)
			switch got.ID {
			case env.ID:
				copies++
			case sentinel.ID:
				done = true
			}
			m.Ack()
		case <-deadline:
			t.Fatal("sentinel not received")
		}
	}
	require.Equal(t, 1, copies)
}
