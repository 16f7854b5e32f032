package main

import (
	"crypto/rand"
	"encoding/base64"
	"maps"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

// TestAccessContextInvalidationAcrossInstances: two instances share
// Postgres and Redis; a context cached on B is invalidated by a membership
// change made through A, and B serves the new roles without waiting for the
// 5-min TTL (the invalidation is pushed). The 1-s target itself is measured
// by BenchmarkCrossInstancePropagation, not asserted here.
func TestAccessContextInvalidationAcrossInstances(t *testing.T) {
	key := make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(t, err)
	shared := baseEnv(t)
	shared["IDENTITY_DATABASE_URL"] = dbtest.PostgresSchemaURL(t)
	shared["IDENTITY_VALKEY_URL"] = testValkeyURL(t)
	shared["IDENTITY_MASTER_KEY"] = base64.StdEncoding.EncodeToString(key)
	shared["IDENTITY_PUBLIC_URL"] = "https://identity.test.example"
	a := startService(t, shared)
	b := startService(t, maps.Clone(shared))
	w := newLicensingWorld(t, a)

	nurse := a.createUserREST(t, w.super, map[string]any{"tenantId": w.tenantA.ID, "email": "nurse2@clinic-a.example.org", "firstName": "N", "lastName": "Urse"})
	addRoles := func(roles ...string) {
		var out struct{ AddMembership struct{ UserID string } }
		a.graphql(t, w.super, `mutation($in: MembershipInput!) { addMembership(input: $in) { userId } }`,
			map[string]any{"in": map[string]any{"userId": nurse.ID, "tenantId": w.tenantA.ID, "nodeId": w.district, "roles": roles}}).decode(t, &out)
	}
	addRoles("NURSE")
	a.verifyEmail(t, nurse.ID, goodPassword)
	tok := a.tokenFor(t, "nurse2@clinic-a.example.org") // verifies on B too: shared keyring

	rolesOnB := func() []string {
		var got accessContextDoc
		b.call(t, http.MethodGet, "/api/v1/me/access-context?nodeId="+w.facility, tok, nil).decode(t, http.StatusOK, &got)
		return got.Roles
	}
	require.Equal(t, []string{"NURSE"}, rolesOnB())
	require.Equal(t, []string{"NURSE"}, rolesOnB(), "cached on B")

	addRoles("NURSE", "PHARMACIST") // through A
	require.Eventually(t, func() bool {
		r := rolesOnB()
		return len(r) == 2
	}, 5*time.Second, 20*time.Millisecond, "B sees A's membership change (pushed; the access-context TTL is 5 min)")
}
