package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/token"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

// testService is one running identityd in the test process.
type testService struct {
	main    *Main
	baseURL string
	cancel  context.CancelFunc
	done    chan error
}

const (
	testAdminEmail    = "admin@example.org"
	testAdminPassword = "correct horse battery staple"
)

// baseEnv is a fast, isolated configuration: SQLite in a temp dir, low
// argon2 cost, a bootstrap admin, port 0.
func baseEnv(t testing.TB) map[string]string {
	dir := t.TempDir()
	return map[string]string{
		"IDENTITY_HTTP_ADDR":                "127.0.0.1:0",
		"IDENTITY_DATABASE_URL":             "sqlite://" + filepath.Join(dir, "identity.db"),
		"IDENTITY_MASTER_KEY_FILE":          filepath.Join(dir, "master.key"),
		"IDENTITY_ARGON2_PARAMS":            "m=64,t=1,p=1",
		"IDENTITY_BOOTSTRAP_ADMIN_EMAIL":    testAdminEmail,
		"IDENTITY_BOOTSTRAP_ADMIN_PASSWORD": testAdminPassword,
		"IDENTITY_LOG_LEVEL":                "warn",
		// Many services share the test process: keep the runtime's own
		// memory policy instead of each service's argon2id budget.
		"GOMEMLIMIT": "off",
	}
}

// postgresEnv is baseEnv on a fresh Postgres schema.
func postgresEnv(t testing.TB) map[string]string {
	env := baseEnv(t)
	env["IDENTITY_DATABASE_URL"] = dbtest.PostgresSchemaURL(t)
	return env
}

func startService(t testing.TB, env map[string]string) *testService {
	t.Helper()
	return startServiceWith(t, env, nil)
}

// startServiceWith is startService with a hook that adjusts the loaded
// configuration (for settings no environment variable exposes).
func startServiceWith(t testing.TB, env map[string]string, adjust func(*Config)) *testService {
	t.Helper()
	return startServiceHooked(t, env, adjust, nil)
}

// startServiceClock is startService with the service's clock replaced by
// clock (Main.clock is what every service is built with in Open).
func startServiceClock(t testing.TB, env map[string]string, clock core.Clock) *testService {
	t.Helper()
	return startServiceHooked(t, env, nil, func(m *Main) { m.clock = clock })
}

// startServiceHooked starts a service from env, with adjust (when not nil)
// applied to the loaded configuration and prepare (when not nil) to the
// Main before it opens.
func startServiceHooked(t testing.TB, env map[string]string, adjust func(*Config), prepare func(*Main)) *testService {
	t.Helper()
	cfg, err := LoadConfig(envOf(env))
	require.NoError(t, err)
	if adjust != nil {
		adjust(&cfg)
	}
	m := NewMain(cfg, testLogger(t))
	if prepare != nil {
		prepare(m)
	}
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, m.Open(ctx))
	s := &testService{main: m, baseURL: "http://" + m.Addr(), cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- m.Run(ctx) }()
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop shuts the service down gracefully; it is idempotent.
func (s *testService) stop(t testing.TB) {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	select {
	case err := <-s.done:
		require.NoError(t, err)
	case <-time.After(15 * time.Second):
		t.Fatal("service did not stop within 15 s")
	}
	require.NoError(t, s.main.Close())
}

// adminToken mints an access token for the bootstrap SUPER_ADMIN.
func (s *testService) adminToken(t *testing.T) string {
	t.Helper()
	return s.tokenFor(t, testAdminEmail)
}

func (s *testService) tokenFor(t *testing.T, email string) string {
	t.Helper()
	var userID, tenantID string
	require.NoError(t, s.main.db.Bun().QueryRowContext(context.Background(),
		"SELECT id, tenant_id FROM users WHERE email = ?", email).Scan(&userID, &tenantID))
	raw, _, err := s.main.issuer.Issue(context.Background(), token.Claims{Subject: userID, TenantID: tenantID, AMR: []string{token.AMRPassword}})
	require.NoError(t, err)
	return raw
}

type gqlResponse struct {
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

// graphql posts query with an optional bearer token.
func (s *testService) graphql(t *testing.T, bearer, query string, vars map[string]any) gqlResponse {
	t.Helper()
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, s.baseURL+"/graphql", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	var out gqlResponse
	require.NoError(t, json.NewDecoder(res.Body).Decode(&out))
	return out
}

func (r gqlResponse) code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	code, _ := r.Errors[0].Extensions["code"].(string)
	return code
}

func getJSON(t *testing.T, url string, dst any) *http.Response {
	t.Helper()
	res, err := http.Get(url)
	require.NoError(t, err)
	defer res.Body.Close()
	if dst != nil {
		require.NoError(t, json.NewDecoder(res.Body).Decode(dst))
	}
	return res
}

// h2cClient speaks HTTP/2 without TLS, as gRPC clients do inside a cluster.
func h2cClient() *http.Client {
	protocols := new(http.Protocols)
	protocols.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: protocols}}
}

// testLogger writes the service's warnings and errors into the test log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// offsetClock is the system clock plus an offset that only moves forward:
// the service sees ordinary, running time, and a test steps past an expiry
// (a rotation overlap) without sleeping.
type offsetClock struct{ offset atomic.Int64 }

func (c *offsetClock) Now() time.Time {
	return time.Now().UTC().Add(time.Duration(c.offset.Load()))
}

// Advance moves the clock forward by d (d ≤ 0 does nothing).
func (c *offsetClock) Advance(d time.Duration) {
	if d > 0 {
		c.offset.Add(int64(d))
	}
}
