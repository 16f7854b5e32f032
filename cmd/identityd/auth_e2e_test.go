package main

// End-to-end tests of IDENT-US-001 (password login) and IDENT-US-002
// (refresh rotation with replay detection, logout) through the REST and
// GraphQL surfaces of a running service, on SQLite with the in-process
// limiter and revocation set and on Postgres with Valkey.

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// loggedInData is identity.user.logged_in.v1's data.
type loggedInData struct {
	UserID    string   `json:"userId"`
	TenantID  string   `json:"tenantId"`
	SessionID string   `json:"sessionId"`
	AMR       []string `json:"amr"`
	IP        string   `json:"ip"`
}

// incidentData is identity.user.security_incident.v1's data.
type incidentData struct {
	UserID    string `json:"userId"`
	TenantID  string `json:"tenantId"`
	Kind      string `json:"kind"`
	SessionID string `json:"sessionId"`
	IP        string `json:"ip"`
}

// TestPasswordLogin is IDENT-US-001: the token response and the frozen F01
// access-token shape, the login events, one indistinguishable 401 for every
// failure, contextNodeId, and tenantId disambiguation of an email held in two
// tenants.
func TestPasswordLogin(t *testing.T) {
	for name, env := range authDialects {
		t.Run(name, func(t *testing.T) {
			s := startService(t, env(t))
			f := newAuthFixture(t, s)
			A, B := f.tenantA.ID, f.tenantB.ID
			alice := f.activeUser(t, A, f.email("alice"), passwordA)
			c := s.from(t)

			// --- success: the token response, the token, the events ---
			res := c.login(t, "  "+strings.ToUpper(alice.Email)+"\t", passwordA, nil)
			tr := requireTokenResponse(t, res)
			require.Equal(t, 28800, tr.RefreshExpiresIn, "8 h")
			require.Equal(t, alice.ID, tr.User.ID)
			require.Equal(t, A, tr.User.TenantID)
			require.Equal(t, alice.Email, tr.User.Email)
			require.Equal(t, "Pat", tr.User.FirstName)
			require.Equal(t, "Login", tr.User.LastName)
			require.Equal(t, "no-store", res.Header.Get("Cache-Control"), "token responses are not cached")
			j := s.requireAccessToken(t, tr.AccessToken, alice.ID, A, []string{A}, "")
			sid := j.sessionID()

			require.Equal(t, []sessionEvent{{SessionID: sid, UserID: alice.ID, TenantID: A, Reason: "login"}},
				s.sessionEvents(t, "identity.session.created.v1", sid))
			logged := s.eventsFor(t, "identity.user.logged_in.v1", alice.ID)
			require.Len(t, logged, 1)
			var li loggedInData
			require.NoError(t, json.Unmarshal(logged[0].Data, &li))
			require.Equal(t, loggedInData{UserID: alice.ID, TenantID: A, SessionID: sid, AMR: []string{"pwd"}, IP: c.ip}, li)
			require.Equal(t, A, logged[0].TenantID)
			for _, env := range append(logged, s.eventsFor(t, "identity.session.created.v1", sid)...) {
				require.NotContains(t, string(env.Data), tr.RefreshToken)
				require.NotContains(t, string(env.Data), passwordA)
			}
			c.requireAccepted(t, tr.AccessToken, alice.ID)

			// A second login is a second session.
			again := c.mustLogin(t, alice.Email, passwordA, nil)
			require.NotEqual(t, sid, s.decodeJWT(t, again.AccessToken).sessionID())
			require.NotEqual(t, tr.RefreshToken, again.RefreshToken)

			// --- every failure is the same 401 ---
			suspended := f.activeUser(t, A, f.email("suspended"), passwordA)
			var u userDoc
			s.call(t, http.MethodPost, "/api/v1/users/"+suspended.ID+"/suspend", f.super, nil).decode(t, http.StatusOK, &u)
			require.Equal(t, "suspended", u.Status)
			erased := f.activeUser(t, A, f.email("erased"), passwordA)
			s.call(t, http.MethodDelete, "/api/v1/users/"+erased.ID, f.super, nil).decode(t, http.StatusOK, &u)
			require.Equal(t, "deactivated", u.Status)
			pending := f.pendingUser(t, A, f.email("pending"), passwordA)
			require.Equal(t, "pending_verification", pending.Status)

			sessionsBefore := s.count(t, `SELECT count(*) FROM sessions`)
			var reference map[string]json.RawMessage
			for _, tc := range []struct {
				name, email, password string
				extra                 map[string]any
			}{
				{"wrong password", alice.Email, passwordB, nil},
				{"unknown email", f.email("nobody"), passwordA, nil},
				{"suspended", suspended.Email, passwordA, nil},
				{"deactivated (erased)", erased.Email, passwordA, nil},
				{"pending verification", pending.Email, passwordA, nil},
				{"empty password", alice.Email, "", nil},
				{"another tenant", alice.Email, passwordA, map[string]any{"tenantId": B}},
				{"malformed tenantId", alice.Email, passwordA, map[string]any{"tenantId": "clinic-a"}},
				{"unknown contextNodeId", alice.Email, passwordA, map[string]any{"contextNodeId": "01900000-0000-7000-8000-0000000000ff"}},
			} {
				// Each from its own address: this is not about throttling.
				res := s.from(t).login(t, tc.email, tc.password, tc.extra)
				requireProblem(t, res, http.StatusUnauthorized, "IDENT_INVALID_CREDENTIALS")
				body := problemMembers(t, res)
				if reference == nil {
					reference = body
					continue
				}
				require.Equal(t, reference, body, "%s: the body tells nothing about the cause", tc.name)
			}
			require.Equal(t, sessionsBefore, s.count(t, `SELECT count(*) FROM sessions`), "a failed login opens no session")

			// Malformed requests are 400, not a login failure.
			requireProblem(t, c.do(t, http.MethodPost, "/api/v1/auth/login", "", `{"email":`), http.StatusBadRequest, "IDENT_VALIDATION")
			p := requireProblem(t, c.do(t, http.MethodPost, "/api/v1/auth/login", "",
				map[string]any{"email": alice.Email, "password": passwordA, "remember": true}), http.StatusBadRequest, "IDENT_VALIDATION")
			require.Contains(t, p.Fields, "remember")

			// --- contextNodeId: inside the memberships → claim; outside → 401 ---
			createNode := func(tenantID, parentID, name string) string {
				in := map[string]any{"tenantId": tenantID, "name": name, "kind": "district"}
				if parentID != "" {
					in["parentId"] = parentID
				}
				var out struct{ CreateNode struct{ ID string } }
				s.graphql(t, f.super, createNodeQ, map[string]any{"in": in}).decode(t, &out)
				return out.CreateNode.ID
			}
			province := createNode(A, "", "Kabul")
			district := createNode(A, province, "Kabul District 1")
			sibling := createNode(A, "", "Herat")
			nodeInB := createNode(B, "", "Balkh")
			var member struct{ AddMembership struct{ NodeID string } }
			s.graphql(t, f.super, addMemberQ, map[string]any{"in": map[string]any{"userId": alice.ID, "tenantId": A,
				"nodeId": province, "roles": []string{"nurse"}}}).decode(t, &member)
			require.Equal(t, province, member.AddMembership.NodeID)

			var inDistrict tokenResponseDoc
			for _, node := range []string{province, district} {
				tr := c.mustLogin(t, alice.Email, passwordA, map[string]any{"contextNodeId": node})
				s.requireAccessToken(t, tr.AccessToken, alice.ID, A, []string{A}, node)
				// The context node survives a refresh.
				inDistrict = requireTokenResponse(t, c.refresh(t, tr.RefreshToken))
				s.requireAccessToken(t, inDistrict.AccessToken, alice.ID, A, []string{A}, node)
			}
			for _, node := range []string{sibling, nodeInB, "not-a-node"} {
				res := s.from(t).login(t, alice.Email, passwordA, map[string]any{"contextNodeId": node})
				requireProblem(t, res, http.StatusUnauthorized, "IDENT_INVALID_CREDENTIALS")
				require.Equal(t, reference, problemMembers(t, res), "context node %s", node)
			}
			// A tenant-wide membership covers every node of its tenant.
			bob := f.activeUser(t, A, f.email("bob"), passwordA)
			s.addMembershipGQL(t, f.super, bob.ID, A, "clerk")
			tr = c.mustLogin(t, bob.Email, passwordA, map[string]any{"contextNodeId": sibling})
			s.requireAccessToken(t, tr.AccessToken, bob.ID, A, []string{A}, sibling)
			requireProblem(t, s.from(t).login(t, bob.Email, passwordA, map[string]any{"contextNodeId": nodeInB}),
				http.StatusUnauthorized, "IDENT_INVALID_CREDENTIALS")

			// A context node no longer covered cannot be refreshed into.
			var removed struct{ RemoveMembership bool }
			s.graphql(t, f.super, removeMemberQ, map[string]any{"u": alice.ID, "t": A, "n": province}).decode(t, &removed)
			require.True(t, removed.RemoveMembership)
			requireProblem(t, c.refresh(t, inDistrict.RefreshToken), http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")
			requireProblem(t, s.from(t).login(t, alice.Email, passwordA, map[string]any{"contextNodeId": district}),
				http.StatusUnauthorized, "IDENT_INVALID_CREDENTIALS")

			// --- the same email in two tenants: tenantId decides ---
			shared := f.email("shared")
			inA := f.activeUser(t, A, shared, passwordA)
			inB := f.activeUser(t, B, shared, passwordB)
			for _, pw := range []string{passwordA, passwordB} {
				res := s.from(t).login(t, shared, pw, nil)
				requireProblem(t, res, http.StatusUnauthorized, "IDENT_INVALID_CREDENTIALS")
				require.Equal(t, reference, problemMembers(t, res), "ambiguous without tenantId")
			}
			for _, tc := range []struct {
				tenant, password string
				want             userDoc
			}{{B, passwordB, inB}, {A, passwordA, inA}} {
				tr = c.mustLogin(t, shared, tc.password, map[string]any{"tenantId": tc.tenant})
				require.Equal(t, tc.want.ID, tr.User.ID)
				require.Equal(t, tc.tenant, tr.User.TenantID)
				s.requireAccessToken(t, tr.AccessToken, tc.want.ID, tc.tenant, []string{tc.tenant}, "")
			}
			requireProblem(t, s.from(t).login(t, shared, passwordA, map[string]any{"tenantId": B}),
				http.StatusUnauthorized, "IDENT_INVALID_CREDENTIALS")

			// tids: the home tenant plus every tenant of the memberships,
			// recomputed on refresh.
			s.addMembershipGQL(t, f.super, inA.ID, B, "auditor")
			refreshed := requireTokenResponse(t, c.refresh(t, tr.RefreshToken))
			s.requireAccessToken(t, refreshed.AccessToken, inA.ID, A, []string{A, B}, "")
			tr = c.mustLogin(t, shared, passwordA, map[string]any{"tenantId": A})
			s.requireAccessToken(t, tr.AccessToken, inA.ID, A, []string{A, B}, "")
		})
	}
}

// TestWhoami is GET /auth/whoami for a logged-in user and without a usable
// credential.
func TestWhoami(t *testing.T) {
	for name, env := range authDialects {
		t.Run(name, func(t *testing.T) {
			s := startService(t, env(t))
			f := newAuthFixture(t, s)
			u := f.activeUser(t, f.tenantA.ID, f.email("who"), passwordA)
			c := s.from(t)
			tr := c.mustLogin(t, u.Email, passwordA, nil)

			res := c.whoami(t, tr.AccessToken)
			var who whoamiDoc
			res.decode(t, http.StatusOK, &who)
			require.ElementsMatch(t, []string{"type", "id", "tenantId", "tenantIds", "amr"}, res.members(t))
			require.Equal(t, whoamiDoc{Type: "user", ID: u.ID, TenantID: f.tenantA.ID, TenantIDs: []string{f.tenantA.ID},
				AMR: []string{"pwd"}}, who)

			for _, tc := range []struct {
				name   string
				header http.Header
			}{
				{"no credential", nil},
				{"garbage bearer", http.Header{"Authorization": {"Bearer not.a.jwt"}}},
				{"empty bearer", http.Header{"Authorization": {"Bearer "}}},
				{"basic scheme", http.Header{"Authorization": {"Basic " + tr.AccessToken}}},
				{"tampered token", http.Header{"Authorization": {"Bearer " + tamper(tr.AccessToken)}}},
				{"refresh token as bearer", http.Header{"Authorization": {"Bearer " + tr.RefreshToken}}},
				{"unknown API key", http.Header{"X-API-Key": {"idk_not_a_real_key"}}},
			} {
				h := http.Header{"X-Forwarded-For": {c.ip}}
				for k, v := range tc.header {
					h[k] = v
				}
				res := s.callWith(t, http.MethodGet, "/api/v1/auth/whoami", "", nil, h)
				requireProblem(t, res, http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")
			}
		})
	}
}

// tamper flips one character of a JWT's payload.
func tamper(jwt string) string {
	segs := strings.Split(jwt, ".")
	b := []byte(segs[1])
	if b[5] == 'A' {
		b[5] = 'B'
	} else {
		b[5] = 'A'
	}
	segs[1] = string(b)
	return strings.Join(segs, ".")
}

// TestLoginThrottling: six failures from one client IP, then the seventh
// attempt — and every one after it, a correct password included — is 429
// with Retry-After, while other addresses are unaffected; ten failures for
// one account from anywhere lock that account.
func TestLoginThrottling(t *testing.T) {
	for name, env := range authDialects {
		t.Run(name, func(t *testing.T) {
			s := startService(t, env(t))
			f := newAuthFixture(t, s)
			u := f.activeUser(t, f.tenantA.ID, f.email("target"), passwordA)
			other := f.activeUser(t, f.tenantA.ID, f.email("bystander"), passwordA)
			x := s.from(t)

			// Six failures, wrong passwords and unknown emails alike, from x.
			for i := range 6 {
				email := u.Email
				if i%2 == 1 {
					email = f.email("ghost")
				}
				requireProblem(t, x.login(t, email, "not the password", nil), http.StatusUnauthorized, "IDENT_INVALID_CREDENTIALS")
			}
			wait := requireRateLimited(t, x.login(t, u.Email, "not the password", nil), 5*time.Minute)
			require.Greater(t, wait, 240, "the window (5 min) started a moment ago")
			// Blocked means blocked: the correct password, another account.
			requireRateLimited(t, x.login(t, u.Email, passwordA, nil), 5*time.Minute)
			requireRateLimited(t, x.login(t, other.Email, passwordA, nil), 5*time.Minute)

			// Another address is unaffected, for the same account too.
			y := s.from(t)
			tr := y.mustLogin(t, u.Email, passwordA, nil)
			y.requireAccepted(t, tr.AccessToken, u.ID)
			// … and successes do not count as failures.
			for range 8 {
				y.mustLogin(t, other.Email, passwordA, nil)
			}

			// Concurrent failures at one account from one address: the
			// account is counted before the password check, so at most ten
			// get that far (at least six: the address blocks after six).
			burst := s.from(t)
			outcomes := concurrently(t, 20, func(int) outcome {
				return burst.postAsync("/api/v1/auth/login", map[string]string{"email": f.email("burst"), "password": "not the password"})
			})
			requireBurstBounded(t, tally(outcomes), 20)

			// Concurrent correct logins from one address (a clinic behind
			// NAT) are never refused and leave no count behind.
			nat := s.from(t)
			outcomes = concurrently(t, 8, func(int) outcome {
				return nat.postAsync("/api/v1/auth/login", map[string]string{"email": other.Email, "password": passwordA})
			})
			require.Equal(t, map[string]int{"200 ": 8}, tally(outcomes))
			nat.mustLogin(t, other.Email, passwordA, nil)

			// Ten failures for one account, each from a different address,
			// then that account is refused from anywhere.
			locked := f.activeUser(t, f.tenantA.ID, f.email("locked"), passwordA)
			for range 10 {
				requireProblem(t, s.from(t).login(t, locked.Email, "not the password", nil), http.StatusUnauthorized, "IDENT_INVALID_CREDENTIALS")
			}
			requireRateLimited(t, s.from(t).login(t, locked.Email, passwordA, nil), 15*time.Minute)
			// The address of that attempt is not blocked for others.
			z := s.from(t)
			requireRateLimited(t, z.login(t, locked.Email, passwordA, nil), 15*time.Minute)
			z.mustLogin(t, other.Email, passwordA, nil)
		})
	}
}

// TestRefreshRotationAndReplay is IDENT-US-002's rotation and replay: a
// refresh returns new tokens and consumes the old refresh token; presenting
// it again revokes the whole session (events, newer tokens, access tokens).
func TestRefreshRotationAndReplay(t *testing.T) {
	for name, env := range authDialects {
		t.Run(name, func(t *testing.T) {
			s := startService(t, env(t))
			f := newAuthFixture(t, s)
			A := f.tenantA.ID
			u := f.activeUser(t, A, f.email("rotator"), passwordA)
			c := s.from(t)
			first := c.mustLogin(t, u.Email, passwordA, nil)
			sid := s.decodeJWT(t, first.AccessToken).sessionID()
			bystander := c.mustLogin(t, u.Email, passwordA, nil) // another session of the same user

			// --- rotation ---
			second := requireTokenResponse(t, c.refresh(t, first.RefreshToken))
			require.NotEqual(t, first.AccessToken, second.AccessToken)
			require.NotEqual(t, first.RefreshToken, second.RefreshToken)
			require.Equal(t, u.ID, second.User.ID)
			require.LessOrEqual(t, second.RefreshExpiresIn, 28800, "the session's absolute end does not move")
			require.Greater(t, second.RefreshExpiresIn, 28800-120)
			j2 := s.requireAccessToken(t, second.AccessToken, u.ID, A, []string{A}, "")
			require.Equal(t, sid, j2.sessionID(), "same session")
			require.NotEqual(t, s.decodeJWT(t, first.AccessToken).str("jti"), j2.str("jti"))
			c.requireAccepted(t, second.AccessToken, u.ID)
			s.noRevokedEvent(t, sid)
			third := requireTokenResponse(t, c.refresh(t, second.RefreshToken))

			// --- replay of the first token, by someone elsewhere ---
			thief := s.from(t)
			requireProblem(t, thief.refresh(t, first.RefreshToken), http.StatusUnauthorized, "IDENT_REFRESH_REPLAY")
			s.requireRevokedEvent(t, sid, u.ID, A, "replay")
			incidents := s.eventsFor(t, "identity.user.security_incident.v1", u.ID)
			require.Len(t, incidents, 1)
			var inc incidentData
			require.NoError(t, json.Unmarshal(incidents[0].Data, &inc))
			require.Equal(t, incidentData{UserID: u.ID, TenantID: A, Kind: "refresh_replay", SessionID: sid, IP: thief.ip}, inc)
			require.Equal(t, A, incidents[0].TenantID)

			// The whole session is dead: the newest refresh token, every access token.
			requireProblem(t, c.refresh(t, third.RefreshToken), http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")
			for _, tok := range []string{first.AccessToken, second.AccessToken, third.AccessToken} {
				c.requireRejected(t, tok)
				require.Equal(t, "IDENT_UNAUTHENTICATED", s.graphql(t, tok, `{ me { id } }`, nil).code())
			}
			// Replaying again is still a replay and revokes nothing more.
			requireProblem(t, thief.refresh(t, second.RefreshToken), http.StatusUnauthorized, "IDENT_REFRESH_REPLAY")
			s.requireRevokedEvent(t, sid, u.ID, A, "replay")

			// Other sessions of the user are untouched.
			c.requireAccepted(t, bystander.AccessToken, u.ID)
			requireTokenResponse(t, c.refresh(t, bystander.RefreshToken))

			// Unknown or malformed refresh tokens.
			for _, bad := range []string{"", "short", strings.Repeat("A", 43), first.RefreshToken + "x", first.AccessToken} {
				requireProblem(t, c.refresh(t, bad), http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")
			}
			requireProblem(t, c.do(t, http.MethodPost, "/api/v1/auth/refresh", "", `{"refresh_token":"x"}`), http.StatusBadRequest, "IDENT_VALIDATION")
		})
	}
}

// TestRefreshRace: 50 concurrent refreshes of one token → exactly one 200,
// every other one IDENT_REFRESH_REPLAY, and the session ends up revoked
// (the winner's new tokens die with it).
func TestRefreshRace(t *testing.T) {
	for name, env := range authDialects {
		t.Run(name, func(t *testing.T) {
			s := startService(t, env(t))
			f := newAuthFixture(t, s)
			u := f.activeUser(t, f.tenantA.ID, f.email("racer"), passwordA)
			c := s.from(t)
			tr := c.mustLogin(t, u.Email, passwordA, nil)
			sid := s.decodeJWT(t, tr.AccessToken).sessionID()

			const n = 50
			outcomes := raceRefreshes(t, []client{c}, tr.RefreshToken, n)
			require.Equal(t, map[string]int{"200 ": 1, "401 IDENT_REFRESH_REPLAY": n - 1}, tally(outcomes), "exactly one refresh wins")
			var winners []outcome
			for _, o := range outcomes {
				if o.Status == http.StatusOK {
					winners = append(winners, o)
				}
			}
			s.requireRevokedEvent(t, sid, u.ID, f.tenantA.ID, "replay")
			require.NotEmpty(t, s.eventsFor(t, "identity.user.security_incident.v1", u.ID))
			won := winners[0].Tokens
			requireProblem(t, c.refresh(t, won.RefreshToken), http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")
			c.requireRejected(t, won.AccessToken)
			c.requireRejected(t, tr.AccessToken)
		})
	}
}

// raceRefreshes sends n refreshes of one token at once, round-robin over
// clients (which may be different instances), and returns every outcome.
func raceRefreshes(t *testing.T, clients []client, refreshToken string, n int) []outcome {
	t.Helper()
	return concurrently(t, n, func(i int) outcome {
		return clients[i%len(clients)].postAsync("/api/v1/auth/refresh", map[string]string{"refreshToken": refreshToken})
	})
}

// TestLogout: logout ends one session (refresh 401, access token rejected by
// REST and GraphQL at once), logout-all every session, and an admin's
// suspension or erasure every session of that user.
func TestLogout(t *testing.T) {
	for name, env := range authDialects {
		t.Run(name, func(t *testing.T) {
			cfg := env(t)
			s := startService(t, cfg)
			f := newAuthFixture(t, s)
			A := f.tenantA.ID
			u := f.activeUser(t, A, f.email("leaver"), passwordA)
			c := s.from(t)
			s1 := c.mustLogin(t, u.Email, passwordA, nil)
			s2 := c.mustLogin(t, u.Email, passwordA, nil)
			sid1 := s.decodeJWT(t, s1.AccessToken).sessionID()
			sid2 := s.decodeJWT(t, s2.AccessToken).sessionID()

			// --- refusals ---
			requireProblem(t, c.do(t, http.MethodPost, "/api/v1/auth/logout", "", nil), http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")
			requireProblem(t, c.do(t, http.MethodPost, "/api/v1/auth/logout-all", "", nil), http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")
			p := requireProblem(t, c.do(t, http.MethodPost, "/api/v1/auth/logout", s1.AccessToken,
				map[string]any{"refreshToken": s2.RefreshToken}), http.StatusBadRequest, "IDENT_VALIDATION")
			require.Contains(t, p.Fields, "refreshToken", "another session's refresh token")
			c.requireAccepted(t, s1.AccessToken, u.ID)
			s.noRevokedEvent(t, sid1)

			// --- logout ---
			c.requireAccepted(t, s1.AccessToken, u.ID) // a cached "not revoked" must not survive the logout
			res := c.do(t, http.MethodPost, "/api/v1/auth/logout", s1.AccessToken, nil)
			require.Equal(t, http.StatusNoContent, res.Status, "body: %s", res.Body)
			require.Empty(t, res.Body)
			c.requireRejected(t, s1.AccessToken)
			require.Equal(t, "IDENT_UNAUTHENTICATED", s.graphql(t, s1.AccessToken, `{ me { id } }`, nil).code())
			requireProblem(t, c.refresh(t, s1.RefreshToken), http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")
			s.requireRevokedEvent(t, sid1, u.ID, A, "logout")
			requireProblem(t, c.do(t, http.MethodPost, "/api/v1/auth/logout", s1.AccessToken, nil), http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")
			// The other session lives on.
			c.requireAccepted(t, s2.AccessToken, u.ID)

			// Logout naming the session's own (current) refresh token.
			s3 := c.mustLogin(t, u.Email, passwordA, nil)
			s3 = requireTokenResponse(t, c.refresh(t, s3.RefreshToken))
			res = c.do(t, http.MethodPost, "/api/v1/auth/logout", s3.AccessToken, map[string]any{"refreshToken": s3.RefreshToken})
			require.Equal(t, http.StatusNoContent, res.Status, "body: %s", res.Body)
			requireProblem(t, c.refresh(t, s3.RefreshToken), http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")
			s.requireRevokedEvent(t, s.decodeJWT(t, s3.AccessToken).sessionID(), u.ID, A, "logout")

			// Body variants: absent or empty refreshToken is no refreshToken.
			for _, tc := range []struct {
				name   string
				body   any
				status int
			}{
				{"no body", nil, http.StatusNoContent},
				{"empty object", `{}`, http.StatusNoContent},
				{"null refreshToken", `{"refreshToken":null}`, http.StatusNoContent},
				{"empty refreshToken", `{"refreshToken":""}`, http.StatusNoContent},
				{"garbage refreshToken", `{"refreshToken":"garbage"}`, http.StatusBadRequest},
				{"unknown member", `{"everywhere":true}`, http.StatusBadRequest},
				{"malformed JSON", `{"refreshToken":`, http.StatusBadRequest},
			} {
				tr := c.mustLogin(t, u.Email, passwordA, nil)
				res := c.do(t, http.MethodPost, "/api/v1/auth/logout", tr.AccessToken, tc.body)
				require.Equal(t, tc.status, res.Status, "%s: %s", tc.name, res.Body)
				if tc.status == http.StatusNoContent {
					c.requireRejected(t, tr.AccessToken)
					continue
				}
				requireProblem(t, res, http.StatusBadRequest, "IDENT_VALIDATION")
				c.requireAccepted(t, tr.AccessToken, u.ID) // a refused logout revokes nothing
				require.Equal(t, http.StatusNoContent, c.do(t, http.MethodPost, "/api/v1/auth/logout", tr.AccessToken, nil).Status)
			}

			// --- logout-all: two more live sessions, one of them rotated ---
			s2 = requireTokenResponse(t, c.refresh(t, s2.RefreshToken))
			elsewhere := s.from(t)
			s4 := elsewhere.mustLogin(t, u.Email, passwordA, nil)
			sid4 := s.decodeJWT(t, s4.AccessToken).sessionID()
			elsewhere.requireAccepted(t, s4.AccessToken, u.ID)
			res = c.do(t, http.MethodPost, "/api/v1/auth/logout-all", s2.AccessToken, nil)
			require.Equal(t, http.StatusNoContent, res.Status, "body: %s", res.Body)
			require.Empty(t, res.Body)
			for _, sess := range []struct {
				tr  tokenResponseDoc
				sid string
			}{{s2, sid2}, {s4, sid4}} {
				requireProblem(t, c.refresh(t, sess.tr.RefreshToken), http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")
				c.requireRejected(t, sess.tr.AccessToken)
				require.Equal(t, "IDENT_UNAUTHENTICATED", s.graphql(t, sess.tr.AccessToken, `{ me { id } }`, nil).code())
				s.requireRevokedEvent(t, sess.sid, u.ID, A, "logout_all")
			}
			s.requireRevokedEvent(t, sid1, u.ID, A, "logout") // not revoked twice
			// Logging in again works.
			c.requireAccepted(t, c.mustLogin(t, u.Email, passwordA, nil).AccessToken, u.ID)

			// --- an admin's suspension revokes the user's sessions at once ---
			v := f.activeUser(t, A, f.email("suspendee"), passwordA)
			tv := c.mustLogin(t, v.Email, passwordA, nil)
			sidV := s.decodeJWT(t, tv.AccessToken).sessionID()
			c.requireAccepted(t, tv.AccessToken, v.ID)
			var ud userDoc
			s.call(t, http.MethodPost, "/api/v1/users/"+v.ID+"/suspend", f.super, nil).decode(t, http.StatusOK, &ud)
			require.Equal(t, "suspended", ud.Status)
			c.requireRejected(t, tv.AccessToken)
			require.Equal(t, "IDENT_UNAUTHENTICATED", s.graphql(t, tv.AccessToken, `{ me { id } }`, nil).code())
			requireProblem(t, c.refresh(t, tv.RefreshToken), http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")
			s.requireRevokedEvent(t, sidV, v.ID, A, "suspended")
			requireProblem(t, s.from(t).login(t, v.Email, passwordA, nil), http.StatusUnauthorized, "IDENT_INVALID_CREDENTIALS")
			// Reactivation does not revive the old session.
			s.call(t, http.MethodPost, "/api/v1/users/"+v.ID+"/reactivate", f.super, nil).decode(t, http.StatusOK, &ud)
			requireProblem(t, c.refresh(t, tv.RefreshToken), http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")
			c.requireRejected(t, tv.AccessToken)
			c.requireAccepted(t, c.mustLogin(t, v.Email, passwordA, nil).AccessToken, v.ID)

			// --- and so does erasure ---
			e := f.activeUser(t, A, f.email("erasee"), passwordA)
			te := c.mustLogin(t, e.Email, passwordA, nil)
			c.requireAccepted(t, te.AccessToken, e.ID)
			s.call(t, http.MethodDelete, "/api/v1/users/"+e.ID, f.super, nil).decode(t, http.StatusOK, &ud)
			c.requireRejected(t, te.AccessToken)
			requireProblem(t, c.refresh(t, te.RefreshToken), http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")
			s.requireRevokedEvent(t, s.decodeJWT(t, te.AccessToken).sessionID(), e.ID, A, "erased")

			// --- a restart forgets no revocation ---
			live := c.mustLogin(t, u.Email, passwordA, nil)
			s.stop(t)
			s = startService(t, cfg)
			c = s.at(c.ip)
			for _, tok := range []string{s1.AccessToken, s2.AccessToken, s4.AccessToken, tv.AccessToken, te.AccessToken} {
				c.requireRejected(t, tok)
			}
			requireProblem(t, c.refresh(t, s2.RefreshToken), http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")
			c.requireAccepted(t, live.AccessToken, u.ID)
			requireTokenResponse(t, c.refresh(t, live.RefreshToken))
		})
	}
}

// TestForwardedForIsIgnoredFromUntrustedPeers: without
// IDENTITY_TRUSTED_PROXIES a client cannot escape the per-IP limit by
// inventing X-Forwarded-For addresses (in-process limiter only: the peer
// address 127.0.0.1 would be a global key in Valkey).
func TestForwardedForIsIgnoredFromUntrustedPeers(t *testing.T) {
	s := startService(t, baseEnv(t))
	f := newAuthFixture(t, s)
	u := f.activeUser(t, f.tenantA.ID, f.email("spoofed"), passwordA)
	for range 6 {
		requireProblem(t, s.from(t).login(t, u.Email, "not the password", nil), http.StatusUnauthorized, "IDENT_INVALID_CREDENTIALS")
	}
	requireRateLimited(t, s.from(t).login(t, u.Email, passwordA, nil), 5*time.Minute)
}
