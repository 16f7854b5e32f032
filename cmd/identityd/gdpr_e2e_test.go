package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

// TestGDPRErasureAuditTrail (IDENT-US-017): after an erasure the GraphQL
// `events` audit trail shows who erased whom, when and which fields, to the
// tenant's admin and the SUPER_ADMIN (not to another tenant's admin), and no
// personal data of the erased user remains anywhere in the database or in
// the audit trail: email, names, client IP, user agent, device label, TOTP
// factor, IdP link.
func TestGDPRErasureAuditTrail(t *testing.T) {
	s := startService(t, withTrustedProxy(baseEnv(t)))
	w := newWorld(t, s)
	tag := randomTag(t)
	email := "zebulon.quixley." + tag + "@clinic-a.example.org"
	first, last := "Zebulon"+tag, "Quixley"+tag
	ip := "203.0.113." + itoa(1+int(time.Now().UnixNano()%250))
	agent := "GDPR-Probe-Agent/" + tag
	deviceName := "Tablet of " + first

	u := s.createUserREST(t, w.tokA, map[string]any{"email": email, "firstName": first, "lastName": last})
	s.verifyEmail(t, u.ID, goodPassword)
	c := s.at(ip)
	res := c.s.callWith(t, http.MethodPost, "/api/v1/auth/login", "", map[string]any{"email": email, "password": goodPassword},
		http.Header{"X-Forwarded-For": {ip}, "User-Agent": {agent}})
	tok := requireTokenResponse(t, res)
	enrolment, gen := c.enrollTOTP(t, tok.AccessToken, email)
	c.confirmTOTP(t, tok.AccessToken, enrolment.FactorID, gen)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	require.NoError(t, err)
	var dev struct{ ID, Status string }
	s.call(t, http.MethodPost, "/api/v1/me/devices", tok.AccessToken, map[string]any{"fingerprint": "fp-" + tag,
		"publicKey": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})), "name": deviceName, "platform": "android"}).
		decode(t, http.StatusCreated, &dev)

	personal := []string{email, first, last, ip, agent, deviceName}
	for _, needle := range personal {
		require.NotEmpty(t, dbtest.FindEverywhere(t, s.main.db, needle), "positive control: %q is stored before erasure", needle)
	}
	require.Equal(t, 1, s.count(t, "SELECT COUNT(*) FROM mfa_factors WHERE user_id = ?", u.ID))

	erase := s.graphql(t, w.tokA, `mutation($id: ID!) { eraseUser(id: $id) { status email firstName lastName deactivatedAt } }`, map[string]any{"id": u.ID})
	require.Empty(t, erase.Errors)
	erasedAt := time.Now()

	// The audit trail, as the tenant's admin reads it.
	const eventsQuery = `query($s: String) { events(subject: $s, first: 100) { edges { node { id type subject tenantId time data } } } }`
	trail := s.graphql(t, w.tokA, eventsQuery, map[string]any{"s": u.ID})
	require.Empty(t, trail.Errors)
	var out struct {
		Events struct {
			Edges []struct {
				Node struct {
					Type, Subject, TenantID string
					Time                    time.Time
					Data                    map[string]any
				}
			}
		}
	}
	trail.decode(t, &out)
	var erasure map[string]any
	var erasureTime time.Time
	types := map[string]bool{}
	for _, e := range out.Events.Edges {
		types[e.Node.Type] = true
		if e.Node.Type == "identity.user.deactivated.v1" {
			require.Nil(t, erasure, "one erasure record")
			erasure, erasureTime = e.Node.Data, e.Node.Time
			require.Equal(t, w.tenantA.ID, e.Node.TenantID)
		}
	}
	require.NotNil(t, erasure, "the erasure record is in the audit trail")
	require.Equal(t, u.ID, erasure["userId"])
	require.Equal(t, w.adminA.ID, erasure["actorId"], "who erased")
	require.Equal(t, []any{"firstName", "lastName", "email"}, erasure["erasedFields"], "what was erased")
	at, err := time.Parse(time.RFC3339Nano, erasure["deactivatedAt"].(string))
	require.NoError(t, err)
	require.WithinDuration(t, erasedAt, at, time.Minute, "when")
	// One erasure, one transaction: the event's time and deactivatedAt are
	// the same instant.
	require.True(t, at.Equal(erasureTime), "event time %s, deactivatedAt %s", erasureTime, at)
	require.True(t, types["identity.user.registered.v1"] && types["identity.user.email_verified.v1"], "earlier events stay (redacted): %v", types)

	// The SUPER_ADMIN sees it too; another tenant's admin does not.
	superTrail := s.graphql(t, w.super, eventsQuery, map[string]any{"s": u.ID})
	require.Empty(t, superTrail.Errors)
	require.Contains(t, string(superTrail.Data), "identity.user.deactivated.v1")
	other := s.graphql(t, w.tokB, eventsQuery, map[string]any{"s": u.ID})
	require.NotContains(t, string(other.Data), "identity.user.deactivated.v1")

	// No personal data remains: not in any table, not in the audit trail.
	for _, needle := range personal {
		require.Empty(t, dbtest.FindEverywhere(t, s.main.db, needle), "no copy of %q may remain", needle)
		for _, raw := range []json.RawMessage{trail.Data, superTrail.Data} {
			require.NotContains(t, strings.ToLower(string(raw)), strings.ToLower(needle))
		}
	}
	require.Zero(t, s.count(t, "SELECT COUNT(*) FROM mfa_factors WHERE user_id = ?", u.ID), "second factors are deleted")
	require.Zero(t, s.count(t, "SELECT COUNT(*) FROM mfa_recovery_codes WHERE user_id = ?", u.ID))
	var status string
	require.NoError(t, s.main.db.Bun().QueryRowContext(t.Context(), "SELECT status FROM devices WHERE id = ?", dev.ID).Scan(&status))
	require.Equal(t, "revoked", status, "the erased user's devices are revoked")
}
