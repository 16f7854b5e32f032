package messaging_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/messaging"
	"github.com/ghasi-ehealth/identity-service/messaging/eventtest"
	"github.com/ghasi-ehealth/identity-service/persistence"
)

const waitFor, tick = 10 * time.Second, 5 * time.Millisecond

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// sampleEvent turns the schema sample of eventType into a fresh core.Event.
func sampleEvent(t testing.TB, eventType string) core.Event {
	t.Helper()
	env, ok := eventtest.Sample(eventType)
	require.True(t, ok, eventType)
	var data map[string]any
	require.NoError(t, json.Unmarshal(env.Data, &data))
	return core.NewEvent(time.Now(), eventType, env.Subject, env.TenantID, data)
}

func commit(t testing.TB, db *persistence.DB, events ...core.Event) {
	t.Helper()
	require.NoError(t, db.InTx(context.Background(), func(ctx context.Context) error {
		return db.AddEvents(ctx, events...)
	}))
}

func unpublished(t testing.TB, db *persistence.DB) int {
	t.Helper()
	n := 0
	evs, err := db.ListStoredEvents(context.Background(), auditAll)
	require.NoError(t, err)
	for _, e := range evs {
		if e.PublishedAt.IsZero() {
			n++
		}
	}
	return n
}

// runRelay starts r and stops it when the test ends, checking it returns nil.
func runRelay(t testing.TB, r *messaging.Relay) context.CancelFunc {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			require.NoError(t, err)
		case <-time.After(waitFor):
			t.Error("relay did not stop")
		}
	})
	return cancel
}

// recorder is a publisher that records what it publishes and can fail on
// demand (a stand-in for the broker, the outside world).
type recorder struct {
	mu       sync.Mutex
	msgs     []*message.Message
	topics   []string
	failNext int
	calls    int
}

var errBrokerDown = errors.New("broker down")

func (r *recorder) Publish(topic string, msgs ...*message.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	if r.failNext > 0 {
		r.failNext--
		return errBrokerDown
	}
	for _, m := range msgs {
		r.msgs = append(r.msgs, m)
		r.topics = append(r.topics, topic)
	}
	return nil
}

func (r *recorder) Close() error { return nil }

func (r *recorder) ids() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.msgs))
	for i, m := range r.msgs {
		out[i] = m.UUID
	}
	return out
}
