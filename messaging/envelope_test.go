package messaging_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/messaging"
	"github.com/ghasi-ehealth/identity-service/persistence"
)

func TestEnvelopeJSON(t *testing.T) {
	stored := persistence.StoredEvent{
		Seq: 7, ID: "01900000-0000-7000-8000-0000000000e1", Type: "identity.user.email_verified.v1",
		Subject: "u1", TenantID: "t1",
		Time: time.Date(2025, 3, 1, 14, 30, 0, 500000000, time.FixedZone("AFT", 16200)),
		Data: json.RawMessage(`{"userId": "u1", "tenantId": "t1"}`),
	}
	env := messaging.EnvelopeOf(stored)
	b, err := json.Marshal(env)
	require.NoError(t, err)
	require.JSONEq(t, `{
		"specversion": "1.0", "id": "01900000-0000-7000-8000-0000000000e1",
		"type": "identity.user.email_verified.v1", "source": "identity-service",
		"time": "2025-03-01T10:00:00.5Z", "subject": "u1", "tenantid": "t1",
		"datacontenttype": "application/json", "data": {"userId": "u1", "tenantId": "t1"}
	}`, string(b))
	require.NotContains(t, string(b), "traceparent", "omitted when empty")

	stored.Traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	b, err = json.Marshal(messaging.EnvelopeOf(stored))
	require.NoError(t, err)
	back, err := messaging.ParseEnvelope(b)
	require.NoError(t, err)
	require.Equal(t, stored.Traceparent, back.TraceParent)
	require.True(t, stored.Time.Equal(back.Time))
	require.Equal(t, time.UTC, back.Time.Location())
	require.JSONEq(t, string(stored.Data), string(back.Data))
	require.Equal(t, "identity-service", back.Source)
	require.Equal(t, messaging.DataContentType, back.DataContentType)
}

func TestParseEnvelopeRejects(t *testing.T) {
	for name, payload := range map[string]string{
		"not json":  `{`,
		"no id":     `{"type": "identity.x.v1", "data": {}}`,
		"no type":   `{"id": "x", "data": {}}`,
		"bad time":  `{"id": "x", "type": "identity.x.v1", "time": "noon"}`,
		"not array": `[]`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := messaging.ParseEnvelope([]byte(payload))
			require.Error(t, err)
		})
	}
}
