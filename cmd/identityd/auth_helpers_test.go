package main

// Helpers for the end-to-end tests of password login, sessions, refresh
// rotation, logout and throttling (IDENT-US-001/002), on one instance and on
// two instances sharing Postgres and Valkey.
//
// Valkey keys are global (identity:rl:login:ip:…, identity:rl:login:acct:…),
// shared by every test run and every package that uses the server, so these
// tests never reuse an email or a client IP: emails carry a random tag and
// every client sends its own random X-Forwarded-For address (the services
// trust 127.0.0.1 as a proxy).

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/cache"
	"github.com/ghasi-ehealth/identity-service/core/audit"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

// authDialects are the two deployments every main flow runs on: SQLite with
// the in-process limiter and revocation set, and Postgres with Valkey.
var authDialects = map[string]func(testing.TB) map[string]string{
	"sqlite+inprocess": func(t testing.TB) map[string]string { return withTrustedProxy(baseEnv(t)) },
	"postgres+valkey":  postgresValkeyEnv,
}

// withTrustedProxy makes the service believe X-Forwarded-For from the test
// client (127.0.0.1), so each test chooses its client IPs.
func withTrustedProxy(env map[string]string) map[string]string {
	env["IDENTITY_TRUSTED_PROXIES"] = "127.0.0.1"
	return env
}

// postgresValkeyEnv is postgresEnv with the shared Valkey (skipped when a
// server is unreachable, failed under CI=true).
func postgresValkeyEnv(t testing.TB) map[string]string {
	env := withTrustedProxy(postgresEnv(t))
	env["IDENTITY_VALKEY_URL"] = testValkeyURL(t)
	return env
}

// testValkeyURL returns IDENTITY_TEST_VALKEY_URL or the local server after
// checking that it answers.
func testValkeyURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("IDENTITY_TEST_VALKEY_URL")
	if u == "" {
		u = "redis://127.0.0.1:6379/0"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := cache.Open(ctx, u, nil)
	if err == nil {
		err = v.Ping(ctx)
		v.Close()
	}
	dbtest.NeedServer(t, "Valkey", err)
	return u
}

// randomTag is a short random string that makes emails unique per run.
func randomTag(t testing.TB) string {
	t.Helper()
	b := make([]byte, 5)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return hex.EncodeToString(b)
}

// randomIP is a random client address in 10.0.0.0/8 for X-Forwarded-For.
func randomIP(t testing.TB) string {
	t.Helper()
	b := make([]byte, 3)
	_, err := rand.Read(b)
	require.NoError(t, err)
	return fmt.Sprintf("10.%d.%d.%d", b[0], b[1], b[2]|1) // never .0
}

// client is one caller of a service, identified by its client IP.
type client struct {
	s  *testService
	ip string
}

// from returns a client of s with a fresh random IP.
func (s *testService) from(t testing.TB) client {
	return client{s: s, ip: randomIP(t)}
}

// at returns a client of s with the given IP (the same caller on another
// instance).
func (s *testService) at(ip string) client { return client{s: s, ip: ip} }

func (c client) do(t *testing.T, method, path, bearer string, body any) apiResponse {
	t.Helper()
	return c.s.callWith(t, method, path, bearer, body, http.Header{"X-Forwarded-For": {c.ip}})
}

// login posts POST /auth/login with email and password plus extra members.
func (c client) login(t *testing.T, email, password string, extra map[string]any) apiResponse {
	t.Helper()
	body := map[string]any{"email": email, "password": password}
	for k, v := range extra {
		body[k] = v
	}
	return c.do(t, http.MethodPost, "/api/v1/auth/login", "", body)
}

// mustLogin logs in and requires a token response.
func (c client) mustLogin(t *testing.T, email, password string, extra map[string]any) tokenResponseDoc {
	t.Helper()
	var tr tokenResponseDoc
	c.login(t, email, password, extra).decode(t, http.StatusOK, &tr)
	return tr
}

func (c client) refresh(t *testing.T, refreshToken string) apiResponse {
	t.Helper()
	return c.do(t, http.MethodPost, "/api/v1/auth/refresh", "", map[string]any{"refreshToken": refreshToken})
}

func (c client) whoami(t *testing.T, bearer string) apiResponse {
	t.Helper()
	return c.do(t, http.MethodGet, "/api/v1/auth/whoami", bearer, nil)
}

// requireRejected requires that the access token no longer authenticates:
// GET /auth/whoami answers 401 IDENT_UNAUTHENTICATED.
func (c client) requireRejected(t *testing.T, access string) {
	t.Helper()
	requireProblem(t, c.whoami(t, access), http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")
}

// requireAccepted requires that the access token authenticates as userID.
func (c client) requireAccepted(t *testing.T, access, userID string) {
	t.Helper()
	var who whoamiDoc
	c.whoami(t, access).decode(t, http.StatusOK, &who)
	require.Equal(t, userID, who.ID)
}

// outcome is one concurrent request: status, problem code, token response.
type outcome struct {
	Status int
	Code   string
	Tokens tokenResponseDoc // on 200
	Err    error
}

// postAsync posts body to path without failing the test (safe in
// goroutines); a 200 body is read as a token response.
func (c client) postAsync(path string, body any) outcome {
	raw, err := json.Marshal(body)
	if err != nil {
		return outcome{Err: err}
	}
	req, err := http.NewRequest(http.MethodPost, c.s.baseURL+path, bytes.NewReader(raw))
	if err != nil {
		return outcome{Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", c.ip)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return outcome{Err: err}
	}
	defer res.Body.Close()
	got, err := io.ReadAll(res.Body)
	if err != nil {
		return outcome{Err: err}
	}
	out := outcome{Status: res.StatusCode}
	if res.StatusCode == http.StatusOK {
		out.Err = json.Unmarshal(got, &out.Tokens)
	} else {
		var p problemDoc
		if err := json.Unmarshal(got, &p); err != nil {
			out.Err = fmt.Errorf("status %d, body %s: %w", res.StatusCode, got, err)
		}
		out.Code = p.Code
	}
	return out
}

// concurrently runs do(i) for i in [0, n) at once and returns the outcomes,
// failing on transport errors.
func concurrently(t *testing.T, n int, do func(i int) outcome) []outcome {
	t.Helper()
	outcomes := make([]outcome, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			outcomes[i] = do(i)
		})
	}
	close(start)
	wg.Wait()
	for _, o := range outcomes {
		require.NoError(t, o.Err)
	}
	return outcomes
}

// tally counts outcomes by "status code" (e.g. "401 IDENT_REFRESH_REPLAY",
// "200 ").
// requireBurstBounded checks the outcomes of n concurrent failed logins at
// one account from one address: between the IP limit (6) and the account
// limit (10) reach the password check, every other one is refused.
func requireBurstBounded(t *testing.T, got map[string]int, n int) {
	t.Helper()
	invalid := got["401 IDENT_INVALID_CREDENTIALS"]
	require.GreaterOrEqual(t, invalid, 6, "%v", got)
	require.LessOrEqual(t, invalid, 10, "%v", got)
	require.Equal(t, n-invalid, got["429 IDENT_RATE_LIMITED"], "%v", got)
}

func tally(outcomes []outcome) map[string]int {
	m := map[string]int{}
	for _, o := range outcomes {
		m[strconv.Itoa(o.Status)+" "+o.Code]++
	}
	return m
}

// tokenResponseDoc is the token response of CONTRACT.md §3.
type tokenResponseDoc struct {
	AccessToken      string `json:"accessToken"`
	RefreshToken     string `json:"refreshToken"`
	TokenType        string `json:"tokenType"`
	ExpiresIn        int    `json:"expiresIn"`
	RefreshExpiresIn int    `json:"refreshExpiresIn"`
	User             struct {
		ID        string `json:"id"`
		TenantID  string `json:"tenantId"`
		Email     string `json:"email"`
		FirstName string `json:"firstName"`
		LastName  string `json:"lastName"`
		Status    string `json:"status"`
	} `json:"user"`
}

// whoamiDoc is GET /auth/whoami.
type whoamiDoc struct {
	Type      string   `json:"type"`
	ID        string   `json:"id"`
	TenantID  string   `json:"tenantId"`
	TenantIDs []string `json:"tenantIds"`
	Scopes    []string `json:"scopes"`
	AMR       []string `json:"amr"`
}

// requireTokenResponse checks the members of a token response body exactly.
func requireTokenResponse(t *testing.T, res apiResponse) tokenResponseDoc {
	t.Helper()
	var tr tokenResponseDoc
	res.decode(t, http.StatusOK, &tr)
	require.ElementsMatch(t, []string{"accessToken", "refreshToken", "tokenType", "expiresIn", "refreshExpiresIn", "user"}, res.members(t))
	var raw struct {
		User map[string]json.RawMessage `json:"user"`
	}
	require.NoError(t, json.Unmarshal(res.Body, &raw))
	userMembers := make([]string, 0, len(raw.User))
	for k := range raw.User {
		userMembers = append(userMembers, k)
	}
	require.ElementsMatch(t, []string{"id", "tenantId", "email", "firstName", "lastName", "status"}, userMembers)
	require.Equal(t, "Bearer", tr.TokenType)
	require.Equal(t, 900, tr.ExpiresIn)
	require.NotEmpty(t, tr.AccessToken)
	// Opaque, at least 256 bits of randomness: 43+ base64url characters.
	require.Regexp(t, `^[A-Za-z0-9_-]{43,}$`, tr.RefreshToken)
	require.Equal(t, "active", tr.User.Status)
	return tr
}

// jwtParts is a decoded access token.
type jwtParts struct {
	Header  map[string]any
	Claims  map[string]any
	Members []string // claim names
}

func (j jwtParts) str(name string) string { s, _ := j.Claims[name].(string); return s }

func (j jwtParts) strs(name string) []string {
	var out []string
	list, _ := j.Claims[name].([]any)
	for _, v := range list {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}

func (j jwtParts) num(name string) int64 {
	f, _ := j.Claims[name].(float64)
	return int64(f)
}

// sessionID is the session an access token belongs to: its jti up to the '.'.
func (j jwtParts) sessionID() string {
	sid, _, _ := strings.Cut(j.str("jti"), ".")
	return sid
}

// decodeJWT decodes an access token and verifies its RS256 signature with
// the JWKS key its kid names.
func (s *testService) decodeJWT(t *testing.T, raw string) jwtParts {
	t.Helper()
	segs := strings.Split(raw, ".")
	require.Len(t, segs, 3, "JWS compact serialization")
	var j jwtParts
	hdr, err := base64.RawURLEncoding.DecodeString(segs[0])
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(hdr, &j.Header))
	payload, err := base64.RawURLEncoding.DecodeString(segs[1])
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(payload, &j.Claims))
	for k := range j.Claims {
		j.Members = append(j.Members, k)
	}
	sig, err := base64.RawURLEncoding.DecodeString(segs[2])
	require.NoError(t, err)

	var doc jwksDoc
	require.Equal(t, http.StatusOK, getJSON(t, s.baseURL+"/.well-known/jwks.json", &doc).StatusCode)
	kid, _ := j.Header["kid"].(string)
	require.Contains(t, kidsOf(doc), kid, "the token's kid is in the JWKS")
	for _, k := range doc.Keys {
		if k.Kid != kid {
			continue
		}
		n, err := base64.RawURLEncoding.DecodeString(k.N)
		require.NoError(t, err)
		e, err := base64.RawURLEncoding.DecodeString(k.E)
		require.NoError(t, err)
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		digest := sha256.Sum256([]byte(segs[0] + "." + segs[1]))
		require.NoError(t, rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig), "RS256 signature verifies with the JWKS key")
	}
	return j
}

// requireAccessToken checks the frozen F01 shape of an access token for
// userID in tenantID and returns it decoded. contextNode "" means the claim
// must be absent.
func (s *testService) requireAccessToken(t *testing.T, raw, userID, tenantID string, tids []string, contextNode string) jwtParts {
	t.Helper()
	j := s.decodeJWT(t, raw)
	require.Len(t, j.Header, 3, "header %v", j.Header)
	require.Equal(t, "RS256", j.Header["alg"])
	require.Equal(t, "at+jwt", j.Header["typ"])
	want := []string{"sub", "tid", "tids", "jti", "amr", "exp", "iat", "iss", "aud"}
	if contextNode != "" {
		want = append(want, "context_node_id")
		require.Equal(t, contextNode, j.str("context_node_id"))
	}
	require.ElementsMatch(t, want, j.Members, "claims exactly %v", want)
	require.Equal(t, userID, j.str("sub"))
	require.Equal(t, tenantID, j.str("tid"))
	require.ElementsMatch(t, tids, j.strs("tids"))
	require.Equal(t, []string{"pwd"}, j.strs("amr"))
	require.Equal(t, s.main.cfg.PublicURL, j.str("iss"))
	require.Equal(t, "ghasi-platform", j.str("aud"))
	require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.[A-Za-z0-9_-]+$`, j.str("jti"),
		`jti = "<sessionId>.<random>"`)
	iat, exp := j.num("iat"), j.num("exp")
	require.InDelta(t, time.Now().Unix(), iat, 60)
	require.InDelta(t, 900, exp-iat, 1, "15 min lifetime")
	return j
}

// problemMembers is a problem body without requestId (which differs per
// request), for comparing two failures byte for byte otherwise.
func problemMembers(t *testing.T, r apiResponse) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(r.Body, &m), "body: %s", r.Body)
	delete(m, "requestId")
	return m
}

// requireRateLimited checks a 429 IDENT_RATE_LIMITED with a Retry-After
// header equal to the retryAfter member, at most maxWait.
func requireRateLimited(t *testing.T, res apiResponse, maxWait time.Duration) int {
	t.Helper()
	requireProblem(t, res, http.StatusTooManyRequests, "IDENT_RATE_LIMITED")
	header, err := strconv.Atoi(res.Header.Get("Retry-After"))
	require.NoError(t, err, "Retry-After is whole seconds: %q", res.Header.Get("Retry-After"))
	require.GreaterOrEqual(t, header, 1)
	require.LessOrEqual(t, header, int(maxWait.Seconds()))
	var body struct {
		RetryAfter *int `json:"retryAfter"`
	}
	require.NoError(t, json.Unmarshal(res.Body, &body))
	require.NotNil(t, body.RetryAfter, "retryAfter member: %s", res.Body)
	require.Equal(t, header, *body.RetryAfter)
	return header
}

// sessionEvent is the data of identity.session.created.v1 / revoked.v1.
type sessionEvent struct {
	SessionID string `json:"sessionId"`
	UserID    string `json:"userId"`
	TenantID  string `json:"tenantId"`
	Reason    string `json:"reason"`
}

// sessionEvents validates every stored event of eventType and returns the
// data of those about session sid.
func (s *testService) sessionEvents(t *testing.T, eventType, sid string) []sessionEvent {
	t.Helper()
	var out []sessionEvent
	for _, env := range s.eventsFor(t, eventType, sid) {
		var d sessionEvent
		require.NoError(t, json.Unmarshal(env.Data, &d))
		require.Equal(t, env.TenantID, d.TenantID)
		out = append(out, d)
	}
	return out
}

// requireRevokedEvent requires exactly one identity.session.revoked.v1 for
// sid, with reason, user and tenant.
func (s *testService) requireRevokedEvent(t *testing.T, sid, userID, tenantID, reason string) {
	t.Helper()
	evs := s.sessionEvents(t, "identity.session.revoked.v1", sid)
	require.Equal(t, []sessionEvent{{SessionID: sid, UserID: userID, TenantID: tenantID, Reason: reason}}, evs)
}

// noRevokedEvent requires that session sid has no identity.session.revoked.v1.
func (s *testService) noRevokedEvent(t *testing.T, sid string) {
	t.Helper()
	stored, err := s.main.db.ListStoredEvents(context.Background(),
		audit.Query{Type: "identity.session.revoked.v1", Subject: sid, AllTenants: true})
	require.NoError(t, err)
	require.Empty(t, stored, "session %s has a revoked event", sid)
}

// authFixture is two customer tenants and helpers to add active users with
// passwords, all through the public surfaces as the bootstrap SUPER_ADMIN.
type authFixture struct {
	s                *testService
	tag              string
	super            string
	tenantA, tenantB tenantDoc
}

const (
	passwordA = "violet kettle marching upstream"
	passwordB = "amber lantern drifting seaward"
)

func newAuthFixture(t *testing.T, s *testService) *authFixture {
	t.Helper()
	f := &authFixture{s: s, tag: randomTag(t), super: s.adminToken(t)}
	f.tenantA = s.createTenantREST(t, f.super, "Auth Clinic A", "auth-a-"+f.tag, false)
	f.tenantB = s.createTenantREST(t, f.super, "Auth Clinic B", "auth-b-"+f.tag, false)
	return f
}

// email is a unique address for local.
func (f *authFixture) email(local string) string {
	return fmt.Sprintf("%s-%s@auth.example.org", local, f.tag)
}

// pendingUser creates a pending_verification user with a password.
func (f *authFixture) pendingUser(t *testing.T, tenantID, email, password string) userDoc {
	t.Helper()
	return f.s.createUserREST(t, f.super, map[string]any{"tenantId": tenantID, "email": email,
		"firstName": "Pat", "lastName": "Login", "password": password})
}

// activeUser creates an active user with a password.
func (f *authFixture) activeUser(t *testing.T, tenantID, email, password string) userDoc {
	t.Helper()
	u := f.pendingUser(t, tenantID, email, password)
	return f.s.verifyEmail(t, u.ID, "")
}
