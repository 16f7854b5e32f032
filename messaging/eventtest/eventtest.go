// Package eventtest holds test helpers for events: validate an envelope
// against its JSON Schema, validate every stored event of a type, and
// sample envelopes for every type. Tests of any package that emits events
// call RequireValidStored after triggering the state change.
package eventtest

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core/audit"
	"github.com/ghasi-ehealth/identity-service/messaging"
	"github.com/ghasi-ehealth/identity-service/persistence"
)

// Schemas compiles the embedded schemas, failing the test if one is broken.
func Schemas(t testing.TB) *messaging.SchemaSet {
	t.Helper()
	set, err := messaging.NewSchemaSet()
	require.NoError(t, err, "embedded event schemas must compile")
	return set
}

// RequireValid fails the test unless envelopeJSON validates against the
// schema of its type.
func RequireValid(t testing.TB, envelopeJSON []byte) {
	t.Helper()
	require.NoError(t, Schemas(t).ValidateEvent(envelopeJSON), "event: %s", envelopeJSON)
}

// RequireValidStored loads every stored event of eventType from db, builds
// the envelope the relay would publish and validates each against its
// schema. It fails when there is no such event (the test meant to trigger
// one) and returns the envelopes, oldest first, for further assertions.
func RequireValidStored(t testing.TB, db *persistence.DB, eventType string) []messaging.Envelope {
	t.Helper()
	set := Schemas(t)
	stored, err := db.ListStoredEvents(context.Background(), audit.Query{Type: eventType, AllTenants: true})
	require.NoError(t, err)
	require.NotEmpty(t, stored, "no stored event of type %s", eventType)
	envs := make([]messaging.Envelope, 0, len(stored))
	for i := len(stored) - 1; i >= 0; i-- { // the log lists newest first
		env := messaging.EnvelopeOf(stored[i])
		b, err := json.Marshal(env)
		require.NoError(t, err)
		require.NoError(t, set.ValidateEvent(b), "stored event: %s", b)
		envs = append(envs, env)
	}
	return envs
}
