package main

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core/keys"
	"github.com/ghasi-ehealth/identity-service/messaging"
	"github.com/ghasi-ehealth/identity-service/messaging/eventtest"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

// TestPostgresAndNATS runs the service the way production does (Postgres +
// NATS JetStream) and follows one state change from the GraphQL mutation
// through the outbox to a JetStream subscriber.
func TestPostgresAndNATS(t *testing.T) {
	nc, err := nats.Connect(dbtest.NATSURL(), nats.Timeout(2*time.Second))
	dbtest.NeedServer(t, "NATS", err)
	defer nc.Close()

	env := postgresEnv(t)
	env["IDENTITY_NATS_URL"] = dbtest.NATSURL()
	s := startService(t, env)

	var ready map[string]any
	res := getJSON(t, s.baseURL+"/readyz", &ready)
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, map[string]any{"database": "ok", "nats": "ok"}, ready["dependencies"])

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	// An ordered consumer is created lazily on the first Next, so start from
	// a time instead of "new messages" to not miss a fast relay.
	since := time.Now().Add(-time.Second)
	consumer, err := js.OrderedConsumer(ctx, messaging.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{keys.EventJWKSRotated},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &since,
	})
	require.NoError(t, err)

	resp := s.graphql(t, s.adminToken(t), `mutation { rotateSigningKey { kid } }`, nil)
	require.Empty(t, resp.Errors)
	var rotated struct {
		RotateSigningKey struct{ Kid string } `json:"rotateSigningKey"`
	}
	require.NoError(t, json.Unmarshal(resp.Data, &rotated))

	// Other tests share the stream; wait for this service's event.
	for {
		msg, err := consumer.Next(jetstream.FetchMaxWait(10 * time.Second))
		require.NoError(t, err, "the rotation event reaches JetStream")
		eventtest.RequireValid(t, msg.Data())
		got, err := messaging.ParseEnvelope(msg.Data())
		require.NoError(t, err)
		if got.Subject == rotated.RotateSigningKey.Kid {
			require.Equal(t, keys.EventJWKSRotated, got.Type)
			require.Equal(t, keys.EventJWKSRotated, msg.Subject(), "subject = event type")
			break
		}
	}
	// The relay marks it published (right after JetStream acknowledged it,
	// so possibly after the subscriber saw it), and it stays in the audit log.
	require.Eventually(t, func() bool {
		var published int
		require.NoError(t, s.main.db.Bun().QueryRowContext(ctx,
			"SELECT count(*) FROM events WHERE type = ? AND published_at IS NOT NULL", keys.EventJWKSRotated).Scan(&published))
		return published == 1
	}, 10*time.Second, 20*time.Millisecond)
}
