package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core/serviceaccount"
	"github.com/ghasi-ehealth/identity-service/internal/oidctest"
)

// TestHostileInput drives every externally reachable operation that takes
// strings — REST bodies, path and query parameters, credentials, the
// RFC 6749/8693 endpoints, GraphQL arguments and Connect messages (JSON and
// binary) — with hostile values on both databases (SQLite accepts NUL and
// invalid UTF-8, Postgres refuses them). Every answer must be a clear client
// error in its transport's envelope (or a success), never a 5xx, never a
// value only the database refused; the service stays healthy. Cases that
// change state (rotate a secret, end a session, make a module always-on)
// act on resources of their own, and checkReach proves that each group of
// cases got past authentication and the fixture's state to the checks it
// aims at, whatever order the requests ran in.
func TestHostileInput(t *testing.T) {
	for name, env := range map[string]func(testing.TB) map[string]string{"sqlite": baseEnv, "postgres": postgresEnv} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			realm := oidctest.New(t, oidctest.Config{ClientID: "ghasi-broker", ClientSecret: "broker-secret"})
			e := withTrustedProxy(env(t))
			e["IDENTITY_KEYCLOAK_ISSUER"] = realm.Issuer()
			e["IDENTITY_KEYCLOAK_AUDIENCE"] = "ghasi-broker"
			e["IDENTITY_KEYCLOAK_TENANT_ID"] = "clinic-a"
			s := startService(t, e)
			f := newHostileFixture(t, s)
			cases := f.restCases(t)
			cases = append(cases, f.graphqlCases()...)
			cases = append(cases, f.connectCases()...)
			cases = append(cases, f.upstreamCases(t, realm)...)
			start := time.Now()
			failures, answers := runHostile(cases)
			for _, failure := range failures {
				t.Error(failure)
			}
			checkReach(t, answers, f.reaches())
			t.Logf("%d hostile requests in %s", len(cases), time.Since(start))
			f.requireHealthy(t)
		})
	}
}

// hostileFixture is a service with one of everything an operation can name.
// What one group of cases changes, no other group uses.
type hostileFixture struct {
	*licensingWorld
	s                              *testService
	svc                            string // platform service account: licensing:read, api_keys:verify
	nodeID, assignmentID, apiKeyID string
	tenantC, pubPEM                string
	// memberID is the user the membership mutations add and remove roles of.
	memberID string
	// moduleCode is the module the update cases change; flagModule is the
	// only one whose isAlwaysOn they set: once a case turns it on, an update
	// sending isAlwaysOn false is refused (422 IDENT_LIC_ALWAYS_ON_IMMUTABLE)
	// before its other members are checked.
	moduleCode, flagModule string
	// clientID and clientSecret (svc's account) authenticate the token
	// endpoint's cases: never rotated, never sent a wrong secret.
	clientID, clientSecret string
	// rotateSAID is the only service account whose secret the cases rotate.
	rotateSAID string
	// badClients are the client ids hostile secrets are sent for, each
	// fewer times than the throttle (serviceaccount.FailureLimit) allows.
	badClients  []string
	loginEmails []string
}

func newHostileFixture(t *testing.T, s *testService) *hostileFixture {
	t.Helper()
	f := &hostileFixture{licensingWorld: newLicensingWorld(t, s), s: s, moduleCode: "hostile.base", flagModule: "hostile.flag"}
	f.nodeID = f.facility
	sa := s.createServiceAccount(t, f.super, f.platformID, "tenant:licensing:read", "tenant:api_keys:verify")
	f.svc = s.clientToken(t, sa.ClientID, sa.ClientSecret)
	f.clientID, f.clientSecret = sa.ClientID, sa.ClientSecret
	f.rotateSAID = s.createServiceAccount(t, f.super, f.platformID, "tenant:licensing:read").ID
	// A hostile secret is one failure for its client id: JSON, form and
	// Basic cases per value, spread so that no client is throttled.
	for range 3*len(hostileValues)/(serviceaccount.FailureLimit-1) + 1 {
		f.badClients = append(f.badClients, s.createServiceAccount(t, f.super, f.platformID, "tenant:licensing:read").ClientID)
	}
	s.createModule(t, f.super, map[string]any{"code": f.moduleCode, "name": "Base", "dependsOn": []string{}})
	s.createModule(t, f.super, map[string]any{"code": f.flagModule, "name": "Flag", "dependsOn": []string{}})
	f.memberID = s.createUserREST(t, f.super, map[string]any{"tenantId": f.tenantA.ID, "email": "member@clinic-a.example.org",
		"firstName": "Mem", "lastName": "Ber"}).ID
	f.assignmentID = s.assign(t, f.super, map[string]any{"tenantId": f.tenantA.ID, "nodeId": f.nodeID,
		"moduleCode": f.moduleCode, "scope": "exact", "status": "active"}).ID
	f.apiKeyID = s.createAPIKey(t, f.super, map[string]any{"name": "base", "scopes": []string{"tenant:users:read"}, "tenantId": f.tenantA.ID}).ID
	f.tenantC = s.createTenantREST(t, f.super, "Clinic C", "clinic-c", false).ID

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	require.NoError(t, err)
	f.pubPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki}))

	// Users with passwords in tenant B, so a login with a hostile
	// contextNodeId gets past the password; several, so their per-account
	// throttle (10 failures) does not answer first.
	for i := range 4 {
		email := "login" + itoa(i) + "@clinic-b.example.org"
		u := s.createUserREST(t, f.super, map[string]any{"tenantId": f.tenantB.ID, "email": email,
			"firstName": "Log", "lastName": "In", "password": goodPassword})
		s.verifyEmail(t, u.ID, "")
		f.loginEmails = append(f.loginEmails, email)
	}
	// An unconfirmed TOTP factor to confirm.
	require.Equal(t, http.StatusOK, s.call(t, http.MethodPost, "/api/v1/me/mfa/totp/enroll", f.tokA, nil).Status)
	return f
}

// rotating returns a base value that cycles through vs.
func rotating(vs []string) func() any {
	var i atomic.Int64
	return func() any { return vs[int(i.Add(1))%len(vs)] }
}

// fresh returns a base value that is new per request (prefix + random).
func fresh(prefix, suffix string) func() any {
	return func() any { return fmt.Sprintf("%s%016x%s", prefix, mrand.Uint64(), suffix) }
}

// restOp is one REST operation: each member of body (and the whole body, "."),
// each query parameter and the path's {h} segment is driven in turn.
type restOp struct {
	method, path, as string
	query            map[string]string
	body             map[string]any
	check            envelope
}

func (f *hostileFixture) restCases(t *testing.T) []hostileCase {
	A, B, C := f.tenantA.ID, f.tenantB.ID, f.tenantC
	assign := map[string]any{"tenantId": A, "nodeId": f.nodeID, "moduleCode": f.moduleCode, "scope": "exact", "status": "active"}
	ops := []restOp{
		{method: "POST", path: "/api/v1/auth/login", body: map[string]any{"email": fresh("nobody", "@x.org"), "password": "wrong password", "tenantId": B}},
		{method: "POST", path: "/api/v1/auth/login", body: map[string]any{"email": rotating(f.loginEmails), "password": goodPassword, "contextNodeId": f.nodeID}},
		{method: "POST", path: "/api/v1/auth/refresh", body: map[string]any{"refreshToken": "x"}},
		{method: "POST", path: "/api/v1/auth/logout", as: "session", body: map[string]any{"refreshToken": "x"}},
		{method: "POST", path: "/api/v1/auth/register", body: map[string]any{"tenantId": A, "email": fresh("reg", "@x.org"),
			"password": goodPassword, "firstName": "Reg", "lastName": "Ister"}},
		{method: "POST", path: "/api/v1/auth/verify-email", body: map[string]any{"token": "x", "password": goodPassword}},
		{method: "POST", path: "/api/v1/auth/mfa/verify", body: map[string]any{"challengeId": "x", "method": "totp", "code": "123456", "assertion": map[string]any{}}},
		{method: "POST", path: "/api/v1/auth/oidc/token", body: map[string]any{"code": "x"}},
		{method: "GET", path: "/api/v1/auth/oidc/{h}/start", query: map[string]string{"tenantId": A, "returnTo": "ghasi-app://x"}},
		{method: "GET", path: "/api/v1/auth/oidc/{h}/callback", query: map[string]string{"code": "x", "state": "y", "error": "", "error_description": ""}},
		{method: "POST", path: "/api/v1/me/mfa/totp/confirm", as: "user", body: map[string]any{"code": "123456"}},
		{method: "POST", path: "/api/v1/me/mfa/webauthn/register/options", as: "user", body: map[string]any{}},
		{method: "POST", path: "/api/v1/me/mfa/webauthn/register", as: "user", body: map[string]any{"id": "x", "rawId": "x", "type": "public-key",
			"response": map[string]any{"clientDataJSON": "e30", "attestationObject": "oA"}}},
		{method: "GET", path: "/api/v1/me/access-context", as: "user", query: map[string]string{"nodeId": f.nodeID}},
		{method: "POST", path: "/api/v1/me/devices", as: "user", body: map[string]any{"fingerprint": fresh("fp-", ""), "publicKey": f.pubPEM, "name": "n", "platform": "android"}},
		{method: "POST", path: "/api/v1/devices/{h}/trust"},
		{method: "POST", path: "/api/v1/me/devices/{h}/bind-offline", as: "user"},
		{method: "DELETE", path: "/api/v1/me/devices/{h}", as: "user"},
		{method: "POST", path: "/api/v1/users", body: map[string]any{"tenantId": A, "email": fresh("u", "@x.org"), "firstName": "F", "lastName": "L", "password": goodPassword}},
		{method: "GET", path: "/api/v1/users", query: map[string]string{"tenantId": A, "status": "active", "after": "", "limit": "10"}},
		{method: "GET", path: "/api/v1/users/{h}"},
		{method: "POST", path: "/api/v1/users/{h}/suspend"},
		{method: "POST", path: "/api/v1/users/{h}/reactivate"},
		{method: "DELETE", path: "/api/v1/users/{h}"},
		{method: "POST", path: "/api/v1/tenants", body: map[string]any{"name": "T", "slug": fresh("t-", ""), "selfRegistration": false, "mfaRequired": false}},
		{method: "PATCH", path: "/api/v1/tenants/{h}", body: map[string]any{"selfRegistration": true}},
		{method: "PATCH", path: "/api/v1/tenants/" + C, body: map[string]any{"selfRegistration": true, "mfaRequired": false}},
		{method: "POST", path: "/api/v1/api-keys", body: map[string]any{"name": "k", "scopes": []string{"tenant:users:read"}, "tenantId": A, "expiresAt": "2099-01-01T00:00:00Z"}},
		{method: "POST", path: "/api/v1/api-keys/{h}/rotate", body: map[string]any{"overlapSeconds": 0}},
		{method: "POST", path: "/api/v1/api-keys/" + f.apiKeyID + "/rotate", body: map[string]any{"overlapSeconds": 60}},
		{method: "DELETE", path: "/api/v1/api-keys/{h}"},
		{method: "POST", path: "/api/v1/service-accounts", body: map[string]any{"name": "sa", "tenantId": A, "scopes": []string{"tenant:users:read"}}},
		{method: "GET", path: "/api/v1/service-accounts", query: map[string]string{"tenantId": A}},
		{method: "POST", path: "/api/v1/service-accounts/{h}/rotate-secret", body: map[string]any{"overlapSeconds": 0}},
		{method: "POST", path: "/api/v1/service-accounts/" + f.rotateSAID + "/rotate-secret", body: map[string]any{"overlapSeconds": 86400}},
		{method: "POST", path: "/api/v1/licensing/modules", body: map[string]any{"code": fresh("hostile.m", ""), "name": "M", "description": "d", "dependsOn": []string{}, "isAlwaysOn": false}},
		{method: "PATCH", path: "/api/v1/licensing/modules/{h}", body: map[string]any{"name": "M"}},
		{method: "PATCH", path: "/api/v1/licensing/modules/" + f.moduleCode, body: map[string]any{"code": f.moduleCode, "name": "M", "description": "d", "dependsOn": []string{}}},
		{method: "PATCH", path: "/api/v1/licensing/modules/" + f.flagModule, body: map[string]any{"isAlwaysOn": false}}, // see flagModule
		{method: "DELETE", path: "/api/v1/licensing/modules/{h}"},
		{method: "POST", path: "/api/v1/licensing/assignments", body: assign},
		{method: "PATCH", path: "/api/v1/licensing/assignments/{h}/status", body: map[string]any{"status": "suspended"}},
		{method: "PATCH", path: "/api/v1/licensing/assignments/" + f.assignmentID + "/status", body: map[string]any{"status": "active", "reason": "r"}},
		{method: "GET", path: "/api/v1/licensing/assignments/{h}/history"},
		{method: "GET", path: "/internal/identity/licensing/effective", as: "svc", query: map[string]string{"tenantId": A, "nodeId": f.nodeID, "providerId": ""}},
	}
	tokens := map[string]string{"": f.super, "user": f.tokA, "svc": f.svc}
	token := func(as string) string {
		if as == "session" { // a logout ends its own session, no other case's
			return f.s.from(t).mustLogin(t, f.loginEmails[0], goodPassword, nil).AccessToken
		}
		return tokens[as]
	}
	var cases []hostileCase
	for _, op := range ops {
		if op.check == nil {
			op.check = problemEnvelope
		}
		name := op.method + " " + op.path
		send := func(label, path string, query map[string]string, body []byte) {
			u := f.s.baseURL + path
			if len(query) > 0 {
				vals := url.Values{}
				for k, v := range query {
					vals.Set(k, v)
				}
				u += "?" + vals.Encode()
			}
			ct := ""
			if body != nil {
				ct = "application/json"
			}
			cases = append(cases, hostileCase{name: name + " " + label, check: op.check, mustReject: mustReject(op.method != "GET", append([]byte(u), body...)),
				req: request{method: op.method, url: u, contentType: ct, body: body, header: bearerHeader(token(op.as))}})
		}
		baseBody := func() []byte {
			if op.body == nil {
				return nil
			}
			b, _ := json.Marshal(resolve(op.body))
			return b
		}
		if strings.Contains(op.path, "{h}") {
			for _, seg := range hostileSegments {
				send("path "+short(seg), strings.Replace(op.path, "{h}", seg, 1), op.query, baseBody())
			}
			op.path = strings.Replace(op.path, "{h}", "x", 1)
		}
		for k := range op.query {
			for _, h := range hostileValues {
				if h.text != nil {
					q := copyMap(op.query)
					q[k] = *h.text
					send("query "+k+"="+h.name, op.path, q, baseBody())
				}
			}
		}
		if op.body != nil && op.method != "GET" {
			for _, m := range append(leaves(op.body, ""), ".") {
				for _, h := range hostileValues {
					send("body "+m+"="+h.name, op.path, op.query, body(op.body, m, h.json))
				}
			}
		}
	}
	return append(cases, f.tokenEndpointCases()...)
}

// tokenEndpointCases: /oauth2/token (form, JSON, client_secret_basic), the
// RFC 8693 exchange (form, JSON) and hostile credentials in headers.
func (f *hostileFixture) tokenEndpointCases() []hostileCase {
	var cases []hostileCase
	oauth := map[string]string{"grant_type": "client_credentials", "client_id": f.clientID, "client_secret": f.clientSecret, "scope": "tenant:licensing:read"}
	exch := map[string]string{"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": "x.y.z",
		"subject_token_type": "urn:ietf:params:oauth:token-type:access_token", "audience": "ghasi-platform"}
	// A hostile client_secret is sent for one of the bad clients, so that
	// the good client is never throttled for the other parameters' cases.
	badClient := rotating(f.badClients)
	for _, ep := range []struct {
		path  string
		base  map[string]string
		check envelope
	}{{"/oauth2/token", oauth, oauthEnvelope}, {"/api/v1/auth/keycloak/token-exchange", exch, exchangeEnvelope}} {
		for k := range ep.base {
			for _, h := range hostileValues {
				base := copyMap(ep.base)
				if k == "client_secret" {
					base["client_id"] = badClient().(string)
				}
				cases = append(cases, hostileCase{name: "POST " + ep.path + " JSON " + k + "=" + h.name, check: ep.check,
					req: request{method: "POST", url: f.s.baseURL + ep.path, contentType: "application/json", body: body(anyMap(base), k, h.json)}})
				if h.text != nil {
					cases = append(cases, hostileCase{name: "POST " + ep.path + " form " + k + "=" + h.name, check: ep.check,
						req: request{method: "POST", url: f.s.baseURL + ep.path, contentType: "application/x-www-form-urlencoded", body: formBody(base, k, *h.text)}})
				}
			}
		}
	}
	nextLogin := rotating(f.loginEmails)
	for _, h := range hostileValues {
		if h.text == nil {
			continue
		}
		v := *h.text
		form := formBody(map[string]string{"grant_type": "client_credentials"}, "scope", "")
		for label, hdr := range map[string]http.Header{
			"basic id": basicHeader(v, f.clientSecret), "basic secret": basicHeader(badClient().(string), v),
			"raw basic": {"Authorization": {"Basic " + v}},
		} {
			cases = append(cases, hostileCase{name: "POST /oauth2/token " + label + "=" + h.name, check: oauthEnvelope,
				req: request{method: "POST", url: f.s.baseURL + "/oauth2/token", contentType: "application/x-www-form-urlencoded", body: form, header: hdr}})
		}
		for label, hdr := range map[string]http.Header{"X-API-Key": {"X-API-Key": {v}}, "Bearer": {"Authorization": {"Bearer " + v}}, "X-Request-Id": {"X-Request-Id": {v}}} {
			cases = append(cases, hostileCase{name: "GET /api/v1/auth/whoami " + label + "=" + h.name, check: problemEnvelope,
				req: request{method: "GET", url: f.s.baseURL + "/api/v1/auth/whoami", header: hdr}})
		}
		// A successful login records the client address and user agent.
		login, _ := json.Marshal(map[string]any{"email": nextLogin(), "password": goodPassword})
		for _, name := range []string{"X-Forwarded-For", "User-Agent"} {
			cases = append(cases, hostileCase{name: "POST /api/v1/auth/login " + name + "=" + h.name, check: problemEnvelope,
				req: request{method: "POST", url: f.s.baseURL + "/api/v1/auth/login", contentType: "application/json", body: login, header: http.Header{name: {v}}}})
		}
		cases = append(cases, hostileCase{name: "GET /graphql query=" + h.name, check: graphqlEnvelope,
			req: request{method: "GET", url: f.s.baseURL + "/graphql?" + url.Values{"query": {v}}.Encode(), header: bearerHeader(f.super)}})
	}
	return cases
}

// gqlOp is one GraphQL operation; every leaf of vars is driven in turn.
type gqlOp struct {
	query string
	vars  map[string]any
	as    string
}

func (f *hostileFixture) graphqlCases() []hostileCase {
	A, u, m := f.tenantA.ID, f.adminA.ID, f.memberID
	ops := []gqlOp{
		{query: `query($n: ID) { accessContext(nodeId: $n) { userId } }`, vars: map[string]any{"n": f.nodeID}, as: "user"},
		{query: `query($id: ID!) { user(id: $id) { id } }`, vars: map[string]any{"id": u}},
		{query: `query($t: ID, $s: UserStatus, $f: Int, $a: String) { users(tenantId: $t, status: $s, first: $f, after: $a) { edges { cursor } } }`,
			vars: map[string]any{"t": A, "s": "ACTIVE", "f": 10, "a": ""}},
		{query: `query($t: ID!) { nodes(tenantId: $t) { id } }`, vars: map[string]any{"t": A}},
		{query: `query($t: ID) { apiKeys(tenantId: $t) { id } }`, vars: map[string]any{"t": A}},
		{query: `query($t: ID) { serviceAccounts(tenantId: $t) { id } }`, vars: map[string]any{"t": A}},
		{query: `query($t: ID, $n: ID) { assignments(tenantId: $t, nodeId: $n) { id } }`, vars: map[string]any{"t": A, "n": f.nodeID}},
		{query: `query($t: ID!, $n: ID!) { effectiveLicenses(tenantId: $t, nodeId: $n) { code } }`, vars: map[string]any{"t": A, "n": f.nodeID}},
		{query: `query($u: ID, $s: DeviceStatus, $f: Int, $a: String) { devices(userId: $u, status: $s, first: $f, after: $a) { edges { cursor } } }`,
			vars: map[string]any{"u": u, "s": "UNTRUSTED", "f": 10, "a": ""}},
		{query: `query($t: String, $s: String, $f: Int, $a: String) { events(type: $t, subject: $s, first: $f, after: $a) { edges { cursor } } }`,
			vars: map[string]any{"t": "identity.user.registered.v1", "s": u, "f": 10, "a": ""}},
		{query: `mutation($in: CreateTenantInput!) { createTenant(input: $in) { id } }`,
			vars: map[string]any{"in": map[string]any{"name": "T", "slug": fresh("g-", ""), "selfRegistration": false, "mfaRequired": false}}},
		{query: `mutation($id: ID!, $in: UpdateTenantInput!) { updateTenant(id: $id, input: $in) { id } }`,
			vars: map[string]any{"id": f.tenantC, "in": map[string]any{"selfRegistration": true, "mfaRequired": false}}},
		{query: `mutation($in: CreateNodeInput!) { createNode(input: $in) { id } }`,
			vars: map[string]any{"in": map[string]any{"tenantId": A, "parentId": f.nodeID, "name": "N", "kind": "ward"}}},
		{query: `mutation($in: MembershipInput!) { addMembership(input: $in) { userId } }`,
			vars: map[string]any{"in": map[string]any{"userId": m, "tenantId": A, "nodeId": f.nodeID, "roles": []string{"NURSE"}}}},
		{query: `mutation($u: ID!, $t: ID!, $n: ID) { removeMembership(userId: $u, tenantId: $t, nodeId: $n) }`,
			vars: map[string]any{"u": m, "t": A, "n": f.nodeID}},
		{query: `mutation($in: CreateUserInput!) { createUser(input: $in) { id } }`,
			vars: map[string]any{"in": map[string]any{"tenantId": A, "email": fresh("g", "@x.org"), "firstName": "F", "lastName": "L", "password": goodPassword}}},
		{query: `mutation($id: ID!) { suspendUser(id: $id) { id } }`, vars: map[string]any{"id": "x"}},
		{query: `mutation($id: ID!) { reactivateUser(id: $id) { id } }`, vars: map[string]any{"id": "x"}},
		{query: `mutation($id: ID!) { eraseUser(id: $id) { id } }`, vars: map[string]any{"id": "x"}},
		{query: `mutation($id: ID!) { resetMfaFactors(userId: $id) }`, vars: map[string]any{"id": "x"}},
		{query: `mutation($in: CreateApiKeyInput!) { createApiKey(input: $in) { id } }`,
			vars: map[string]any{"in": map[string]any{"name": "k", "scopes": []string{"tenant:users:read"}, "tenantId": A, "expiresAt": "2099-01-01T00:00:00Z"}}},
		{query: `mutation($id: ID!, $o: Int) { rotateApiKey(id: $id, overlapSeconds: $o) { id } }`, vars: map[string]any{"id": f.apiKeyID, "o": 60}},
		{query: `mutation($id: ID!) { revokeApiKey(id: $id) { id } }`, vars: map[string]any{"id": "x"}},
		{query: `mutation($in: CreateServiceAccountInput!) { createServiceAccount(input: $in) { id } }`,
			vars: map[string]any{"in": map[string]any{"name": "sa", "tenantId": A, "scopes": []string{"tenant:users:read"}}}},
		{query: `mutation($in: CreateModuleInput!) { createModule(input: $in) { code } }`,
			vars: map[string]any{"in": map[string]any{"code": fresh("hostile.g", ""), "name": "M", "description": "d", "dependsOn": []string{}, "isAlwaysOn": false}}},
		{query: `mutation($c: String!, $in: UpdateModuleInput!) { updateModule(code: $c, input: $in) { code } }`,
			vars: map[string]any{"c": f.moduleCode, "in": map[string]any{"code": f.moduleCode, "name": "M", "description": "d", "dependsOn": []string{}}}},
		{query: `mutation($c: String!, $in: UpdateModuleInput!) { updateModule(code: $c, input: $in) { code } }`,
			vars: map[string]any{"c": f.flagModule, "in": map[string]any{"isAlwaysOn": false}}}, // see flagModule
		{query: `mutation($in: CreateAssignmentInput!) { createAssignment(input: $in) { id } }`,
			vars: map[string]any{"in": map[string]any{"tenantId": A, "nodeId": f.nodeID, "moduleCode": f.moduleCode, "scope": "EXACT", "status": "ACTIVE",
				"effectiveFrom": "2020-01-01T00:00:00Z", "effectiveTo": "2099-01-01T00:00:00Z"}}},
		{query: `mutation($id: ID!, $s: AssignmentStatus!, $r: String) { changeAssignmentStatus(id: $id, status: $s, reason: $r) { id } }`,
			vars: map[string]any{"id": f.assignmentID, "s": "ACTIVE", "r": "r"}},
		{query: `mutation($id: ID!) { trustDevice(id: $id) { id } }`, vars: map[string]any{"id": "x"}},
		{query: `mutation($id: ID!) { revokeDevice(id: $id) { id } }`, vars: map[string]any{"id": "x"}},
		{query: `mutation($in: OidcProviderInput!) { configureOidcProvider(input: $in) { id } }`,
			vars: map[string]any{"in": map[string]any{"tenantId": A, "slug": "corp", "issuer": "https://127.0.0.1:1", "clientId": "c", "clientSecret": "s",
				"scopes": []string{"openid"}, "allowedEmailDomains": []string{"x.org"}, "returnUrls": []string{"ghasi-app://x"}}}},
	}
	tokens := map[string]string{"": f.super, "user": f.tokA}
	var cases []hostileCase
	for _, op := range ops {
		// A mutation must not store a NUL; removeMembership answers false
		// for ids that cannot exist, which is a fine answer.
		write := strings.HasPrefix(op.query, "mutation") && !strings.Contains(op.query, "removeMembership")
		field, _, _ := strings.Cut(strings.Fields(strings.SplitN(op.query, "{", 2)[1])[0], "(")
		name := "GraphQL " + field
		q, _ := json.Marshal(op.query)
		for _, m := range leaves(op.vars, "") {
			for _, h := range hostileValues {
				vars := body(op.vars, m, h.json)
				raw := []byte(`{"query":` + string(q) + `,"variables":` + string(vars) + `}`)
				cases = append(cases, hostileCase{name: name + " " + m + "=" + h.name, check: graphqlEnvelope, mustReject: mustReject(write, h.json),
					req: request{method: "POST", url: f.s.baseURL + "/graphql", contentType: "application/json", body: raw, header: bearerHeader(tokens[op.as])}})
			}
		}
	}
	return cases
}

// connectCases: every identity.v1 method, Connect JSON and binary.
func (f *hostileFixture) connectCases() []hostileCase {
	type rpcOp struct {
		path   string
		fields []string // JSON names, in proto field-number order
		base   map[string]string
	}
	ops := []rpcOp{
		{"/identity.v1.LicensingService/GetEffectiveLicenses", []string{"tenantId", "nodeId", "providerId"}, map[string]string{"tenantId": f.tenantA.ID, "nodeId": f.nodeID}},
		{"/identity.v1.LicensingService/CheckModuleAccess", []string{"tenantId", "nodeId", "moduleCode"}, map[string]string{"tenantId": f.tenantA.ID, "nodeId": f.nodeID, "moduleCode": f.moduleCode}},
		{"/identity.v1.TokenService/ExchangeToken", []string{"subjectToken", "subjectTokenType", "audience"}, map[string]string{"subjectToken": "x.y.z", "subjectTokenType": "urn:ietf:params:oauth:token-type:access_token"}},
		{"/identity.v1.TokenService/VerifyApiKey", []string{"key"}, map[string]string{"key": "ghk_x"}},
	}
	var cases []hostileCase
	for _, op := range ops {
		asAny := anyMap(op.base)
		for _, m := range append(op.fields, ".") {
			for _, h := range hostileValues {
				cases = append(cases, hostileCase{name: "Connect " + op.path + " JSON " + m + "=" + h.name, check: connectEnvelope,
					req: request{method: "POST", url: f.s.baseURL + op.path, contentType: "application/json", body: body(asAny, m, h.json), header: bearerHeader(f.svc)}})
				if h.text != nil && m != "." {
					cases = append(cases, hostileCase{name: "Connect " + op.path + " proto " + m + "=" + h.name, check: connectEnvelope,
						req: request{method: "POST", url: f.s.baseURL + op.path, contentType: "application/proto", body: protoBody(op.fields, op.base, m, *h.text), header: bearerHeader(f.svc)}})
				}
			}
		}
	}
	return cases
}

// upstreamCases: a Keycloak token correctly signed by the configured realm
// whose sub or email claim is hostile, through REST and Connect: no user is
// found or linked, so the answer is exactly 401 IDENT_INVALID_CREDENTIALS.
func (f *hostileFixture) upstreamCases(t *testing.T, realm *oidctest.Provider) []hostileCase {
	var cases []hostileCase
	now := time.Now()
	for _, claim := range []string{"sub", "email"} {
		for _, h := range hostileValues {
			claims := map[string]any{"iss": realm.Issuer(), "sub": "kc-hostile", "aud": "ghasi-broker", "azp": "ghasi-broker", "typ": "Bearer",
				"exp": now.Add(10 * time.Minute).Unix(), "iat": now.Unix(), "email": "hostile-kc@x.org", "email_verified": true}
			claims[claim] = json.RawMessage(h.json)
			tok := realm.SignJWT(t, claims)
			form := formBody(map[string]string{"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
				"subject_token_type": "urn:ietf:params:oauth:token-type:access_token"}, "subject_token", tok)
			cases = append(cases,
				hostileCase{name: "POST token-exchange upstream " + claim + "=" + h.name, check: refused(http.StatusUnauthorized, "IDENT_INVALID_CREDENTIALS"),
					req: request{method: "POST", url: f.s.baseURL + "/api/v1/auth/keycloak/token-exchange", contentType: "application/x-www-form-urlencoded", body: form}},
				hostileCase{name: "Connect ExchangeToken upstream " + claim + "=" + h.name, check: refused(http.StatusUnauthorized, "IDENT_INVALID_CREDENTIALS"),
					req: request{method: "POST", url: f.s.baseURL + "/identity.v1.TokenService/ExchangeToken", contentType: "application/json",
						body: body(map[string]any{"subjectToken": tok, "subjectTokenType": "urn:ietf:params:oauth:token-type:access_token"}, "audience", []byte(`""`))}})
		}
	}
	return cases
}

// requireHealthy: the service still answers liveness and readiness, and
// authenticated REST and GraphQL calls.
func (f *hostileFixture) requireHealthy(t *testing.T) {
	t.Helper()
	for _, p := range []string{"/healthz", "/readyz"} {
		require.Equal(t, http.StatusOK, f.s.call(t, http.MethodGet, p, "", nil).Status, p)
	}
	var who whoamiDoc
	f.s.call(t, http.MethodGet, "/api/v1/auth/whoami", f.super, nil).decode(t, http.StatusOK, &who)
	require.Equal(t, f.superID, who.ID)
	var me struct{ Me userDoc }
	f.s.graphql(t, f.super, `{ me { id } }`, nil).decode(t, &me)
	require.Equal(t, f.superID, me.Me.ID)
	f.s.from(t).mustLogin(t, adminAEmail, goodPassword, nil)
}

func short(s string) string {
	if len(s) > 40 {
		return s[:20] + "…(" + itoa(len(s)) + " chars)"
	}
	return s
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
