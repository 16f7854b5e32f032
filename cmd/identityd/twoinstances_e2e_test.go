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

// TestTwoInstancesShareLimitsAndRevocations runs two service instances on
// one Postgres schema and one Valkey, as a multi-node deployment does: one
// login limit across both, a refresh replay detected on the other instance,
// a logout on one rejected by the other at once, and each one's access
// tokens verified by the other.
func TestTwoInstancesShareLimitsAndRevocations(t *testing.T) {
	dbURL := dbtest.PostgresSchemaURL(t)
	valkeyURL := testValkeyURL(t)
	key := make([]byte, 32)
	_, err := rand.Read(key)
	require.NoError(t, err)
	shared := withTrustedProxy(baseEnv(t))
	shared["IDENTITY_DATABASE_URL"] = dbURL
	shared["IDENTITY_VALKEY_URL"] = valkeyURL
	shared["IDENTITY_MASTER_KEY"] = base64.StdEncoding.EncodeToString(key)
	shared["IDENTITY_PUBLIC_URL"] = "https://identity.test.example" // one issuer for the cluster
	a := startService(t, shared)                                    // migrates and bootstraps
	b := startService(t, maps.Clone(shared))                        // finds both done (bootstrap is idempotent)
	require.NotEqual(t, a.baseURL, b.baseURL)

	f := newAuthFixture(t, a)
	A := f.tenantA.ID
	u := f.activeUser(t, A, f.email("roamer"), passwordA)
	other := f.activeUser(t, A, f.email("neighbour"), passwordA)

	t.Run("access tokens verify on both instances", func(t *testing.T) {
		ip := randomIP(t)
		fromA := a.at(ip).mustLogin(t, u.Email, passwordA, nil)
		fromB := b.at(ip).mustLogin(t, u.Email, passwordA, nil)
		for _, s := range []*testService{a, b} {
			s.at(ip).requireAccepted(t, fromA.AccessToken, u.ID)
			s.at(ip).requireAccepted(t, fromB.AccessToken, u.ID)
			s.requireAccessToken(t, fromA.AccessToken, u.ID, A, []string{A}, "")
		}
		var me struct{ Me struct{ ID string } }
		b.graphql(t, fromA.AccessToken, `{ me { id } }`, nil).decode(t, &me)
		require.Equal(t, u.ID, me.Me.ID)
		// A token minted by B refreshes on A.
		requireTokenResponse(t, a.at(ip).refresh(t, fromB.RefreshToken))
	})

	t.Run("one login limit across both instances", func(t *testing.T) {
		ip := randomIP(t)
		instances := []*testService{a, b}
		for i := range 6 {
			requireProblem(t, instances[i%2].at(ip).login(t, u.Email, "not the password", nil),
				http.StatusUnauthorized, "IDENT_INVALID_CREDENTIALS")
		}
		// The 7th overall, on either instance, is refused; so is the correct password.
		requireRateLimited(t, a.at(ip).login(t, u.Email, "not the password", nil), 5*time.Minute)
		requireRateLimited(t, b.at(ip).login(t, u.Email, passwordA, nil), 5*time.Minute)
		requireRateLimited(t, a.at(ip).login(t, other.Email, passwordA, nil), 5*time.Minute)
		// Concurrent failures at one account from a fresh address over both
		// instances: at most the account limit get through to a password check.
		burst := randomIP(t)
		outcomes := concurrently(t, 20, func(i int) outcome {
			return instances[i%2].at(burst).postAsync("/api/v1/auth/login",
				map[string]string{"email": f.email("nobody"), "password": "not the password"})
		})
		requireBurstBounded(t, tally(outcomes), 20)
		// Another address still logs in, on both.
		elsewhere := randomIP(t)
		a.at(elsewhere).mustLogin(t, u.Email, passwordA, nil)
		b.at(elsewhere).mustLogin(t, u.Email, passwordA, nil)
	})

	t.Run("replay detected on the other instance", func(t *testing.T) {
		ip := randomIP(t)
		first := a.at(ip).mustLogin(t, u.Email, passwordA, nil)
		sid := a.decodeJWT(t, first.AccessToken).sessionID()
		second := requireTokenResponse(t, a.at(ip).refresh(t, first.RefreshToken))
		b.at(ip).requireAccepted(t, second.AccessToken, u.ID) // B has looked at the session before
		thief := randomIP(t)
		requireProblem(t, b.at(thief).refresh(t, first.RefreshToken), http.StatusUnauthorized, "IDENT_REFRESH_REPLAY")
		a.requireRevokedEvent(t, sid, u.ID, A, "replay")
		for _, s := range []*testService{a, b} {
			requireProblem(t, s.at(ip).refresh(t, second.RefreshToken), http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")
			s.at(ip).requireRejected(t, second.AccessToken)
			s.at(ip).requireRejected(t, first.AccessToken)
		}
	})

	t.Run("concurrent refreshes over both instances: one winner", func(t *testing.T) {
		ip := randomIP(t)
		tr := b.at(ip).mustLogin(t, u.Email, passwordA, nil)
		outcomes := raceRefreshes(t, []client{a.at(ip), b.at(ip)}, tr.RefreshToken, 20)
		require.Equal(t, map[string]int{"200 ": 1, "401 IDENT_REFRESH_REPLAY": 19}, tally(outcomes))
		a.requireRevokedEvent(t, a.decodeJWT(t, tr.AccessToken).sessionID(), u.ID, A, "replay")
	})

	t.Run("logout on one instance rejects the token on the other at once", func(t *testing.T) {
		// Several rounds: B has just answered "not revoked" for the session
		// (and may cache that answer) when A revokes it.
		for round := range 5 {
			ip := randomIP(t)
			tr := a.at(ip).mustLogin(t, u.Email, passwordA, nil)
			b.at(ip).requireAccepted(t, tr.AccessToken, u.ID)
			res := a.at(ip).do(t, http.MethodPost, "/api/v1/auth/logout", tr.AccessToken, nil)
			require.Equal(t, http.StatusNoContent, res.Status, "round %d: %s", round, res.Body)
			b.at(ip).requireRejected(t, tr.AccessToken)
			require.Equal(t, "IDENT_UNAUTHENTICATED", b.graphql(t, tr.AccessToken, `{ me { id } }`, nil).code())
			requireProblem(t, b.at(ip).refresh(t, tr.RefreshToken), http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")
		}
		// logout-all on B reaches sessions opened on A, and A's view of them.
		ip := randomIP(t)
		onA := a.at(ip).mustLogin(t, other.Email, passwordA, nil)
		onB := b.at(ip).mustLogin(t, other.Email, passwordA, nil)
		a.at(ip).requireAccepted(t, onA.AccessToken, other.ID)
		a.at(ip).requireAccepted(t, onB.AccessToken, other.ID)
		res := b.at(ip).do(t, http.MethodPost, "/api/v1/auth/logout-all", onB.AccessToken, nil)
		require.Equal(t, http.StatusNoContent, res.Status, "body: %s", res.Body)
		for _, s := range []*testService{a, b} {
			for _, tr := range []tokenResponseDoc{onA, onB} {
				s.at(ip).requireRejected(t, tr.AccessToken)
			}
		}
		// An admin's suspension on B ends u's sessions on A.
		tr := a.at(ip).mustLogin(t, u.Email, passwordA, nil)
		a.at(ip).requireAccepted(t, tr.AccessToken, u.ID)
		res = b.call(t, http.MethodPost, "/api/v1/users/"+u.ID+"/suspend", b.adminToken(t), nil)
		require.Equal(t, http.StatusOK, res.Status, "body: %s", res.Body)
		a.at(ip).requireRejected(t, tr.AccessToken)
		requireProblem(t, a.at(ip).refresh(t, tr.RefreshToken), http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")
	})
}
