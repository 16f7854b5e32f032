package main

// Helpers for the end-to-end tests of API keys, service accounts and the
// client_credentials grant (IDENT-US-007).

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core/apikey"
	"github.com/ghasi-ehealth/identity-service/core/serviceaccount"
)

// apiKeyDoc is the 201 body of POST /api-keys.
type apiKeyDoc struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Prefix    string    `json:"prefix"`
	Secret    string    `json:"secret"`
	Scopes    []string  `json:"scopes"`
	TenantID  string    `json:"tenantId"`
	CreatedAt time.Time `json:"createdAt"`
}

// rotatedKeyDoc is the 200 body of POST /api-keys/{id}/rotate.
type rotatedKeyDoc struct {
	ID                      string    `json:"id"`
	Secret                  string    `json:"secret"`
	PreviousSecretExpiresAt time.Time `json:"previousSecretExpiresAt"`
}

// serviceAccountDoc is the 201 body of POST /service-accounts.
type serviceAccountDoc struct {
	ID           string   `json:"id"`
	ClientID     string   `json:"clientId"`
	ClientSecret string   `json:"clientSecret"`
	Scopes       []string `json:"scopes"`
	TenantID     string   `json:"tenantId"`
}

// oauthTokenDoc is the RFC 6749 §5.1 body of POST /oauth2/token.
type oauthTokenDoc struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
}

// keyPattern is the documented key string "ghk_<12 base62>_<43 base64url>".
const keyPattern = `^ghk_[0-9A-Za-z]{12}_[A-Za-z0-9_-]{43}$`

// createAPIKey creates a key through POST /api-keys as bearer.
func (s *testService) createAPIKey(t *testing.T, bearer string, body map[string]any) apiKeyDoc {
	t.Helper()
	var k apiKeyDoc
	s.call(t, http.MethodPost, "/api/v1/api-keys", bearer, body).decode(t, http.StatusCreated, &k)
	return k
}

// withKey sends a REST request authenticated by X-API-Key.
func (s *testService) withKey(t *testing.T, method, path, key string) apiResponse {
	t.Helper()
	return s.callWith(t, method, path, "", nil, http.Header{"X-API-Key": {key}})
}

// whoamiKey requires that key authenticates and returns GET /auth/whoami.
func (s *testService) whoamiKey(t *testing.T, key string) whoamiDoc {
	t.Helper()
	var who whoamiDoc
	s.withKey(t, http.MethodGet, "/api/v1/auth/whoami", key).decode(t, http.StatusOK, &who)
	return who
}

// keyStatus is the status of GET /auth/whoami with X-API-Key key; it does
// not fail the test (for require.Eventually).
func (s *testService) keyStatus(key string) int {
	req, err := http.NewRequest(http.MethodGet, s.baseURL+"/api/v1/auth/whoami", nil)
	if err != nil {
		return 0
	}
	req.Header.Set("X-API-Key", key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, res.Body)
	return res.StatusCode
}

// requireKeyRejected requires 401 IDENT_UNAUTHENTICATED for key.
func (s *testService) requireKeyRejected(t *testing.T, key string) {
	t.Helper()
	requireProblem(t, s.withKey(t, http.MethodGet, "/api/v1/auth/whoami", key), http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")
}

// keyEventData validates every stored event of eventType and returns the
// data of those about key id.
func (s *testService) keyEventData(t *testing.T, eventType, id string) []apikey.EventData {
	t.Helper()
	var out []apikey.EventData
	for _, env := range s.eventsFor(t, eventType, id) {
		var d apikey.EventData
		require.NoError(t, json.Unmarshal(env.Data, &d))
		require.Equal(t, env.TenantID, d.TenantID)
		out = append(out, d)
	}
	return out
}

// createServiceAccount creates an account through POST /service-accounts.
func (s *testService) createServiceAccount(t *testing.T, super, tenantID string, scopes ...string) serviceAccountDoc {
	t.Helper()
	var a serviceAccountDoc
	s.call(t, http.MethodPost, "/api/v1/service-accounts", super,
		map[string]any{"name": "integration " + randomTag(t), "tenantId": tenantID, "scopes": scopes}).decode(t, http.StatusCreated, &a)
	return a
}

// tokenRequest posts POST /oauth2/token. contentType "application/json"
// sends params as a JSON object, anything else as a form; basic non-nil
// adds client_secret_basic credentials {id, secret}.
func (s *testService) tokenRequest(t *testing.T, contentType string, params map[string]string, basic []string) apiResponse {
	t.Helper()
	var body []byte
	if contentType == "application/json" {
		raw, err := json.Marshal(params)
		require.NoError(t, err)
		body = raw
	} else {
		form := url.Values{}
		for k, v := range params {
			form.Set(k, v)
		}
		body = []byte(form.Encode())
		contentType = "application/x-www-form-urlencoded"
	}
	req, err := http.NewRequest(http.MethodPost, s.baseURL+"/oauth2/token", bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", contentType)
	if basic != nil {
		req.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString(
			[]byte(url.QueryEscape(basic[0])+":"+url.QueryEscape(basic[1]))))
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return apiResponse{Status: res.StatusCode, Header: res.Header, Body: raw}
}

// clientToken runs client_credentials with client_secret_post and requires
// a token.
func (s *testService) clientToken(t *testing.T, clientID, secret string) string {
	t.Helper()
	var tok oauthTokenDoc
	s.tokenRequest(t, "", map[string]string{"grant_type": "client_credentials", "client_id": clientID, "client_secret": secret}, nil).
		decode(t, http.StatusOK, &tok)
	require.NotEmpty(t, tok.AccessToken)
	return tok.AccessToken
}

// requireOAuthError checks an RFC 6749 §5.2 error body.
func requireOAuthError(t *testing.T, r apiResponse, status int, code string) {
	t.Helper()
	require.Equal(t, status, r.Status, "body: %s", r.Body)
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	require.NoError(t, json.Unmarshal(r.Body, &e), "body: %s", r.Body)
	require.Equal(t, code, e.Error, "body: %s", r.Body)
	require.Equal(t, "no-store", r.Header.Get("Cache-Control"))
	if status == http.StatusUnauthorized {
		require.NotEmpty(t, r.Header.Get("WWW-Authenticate"))
	}
}

// saEventData validates every identity.service_account.created.v1 and
// returns the data of the one about account id.
func (s *testService) saEventData(t *testing.T, id string) map[string]any {
	t.Helper()
	env := s.eventFor(t, serviceaccount.EventCreated, id)
	var d map[string]any
	require.NoError(t, json.Unmarshal(env.Data, &d))
	return d
}

// logBuffer collects a service's log output; safe for concurrent writes.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startCapturingService is startService with the service's logger writing
// JSON at debug level into the returned buffer (and warnings to the test log).
func startCapturingService(t testing.TB, env map[string]string) (*testService, *logBuffer) {
	t.Helper()
	cfg, err := LoadConfig(envOf(env))
	require.NoError(t, err)
	logs := &logBuffer{}
	handler := slog.NewJSONHandler(io.MultiWriter(logs, warnOnly{tWriter{t}}), &slog.HandlerOptions{Level: slog.LevelDebug})
	m := NewMain(cfg, slog.New(handler))
	ctx, cancel := context.WithCancel(context.Background())
	require.NoError(t, m.Open(ctx))
	s := &testService{main: m, baseURL: "http://" + m.Addr(), cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- m.Run(ctx) }()
	t.Cleanup(func() { s.stop(t) })
	return s, logs
}

// warnOnly forwards JSON log lines of level WARN or ERROR.
type warnOnly struct{ w io.Writer }

func (w warnOnly) Write(p []byte) (int, error) {
	if strings.Contains(string(p), `"level":"WARN"`) || strings.Contains(string(p), `"level":"ERROR"`) {
		return w.w.Write(p)
	}
	return len(p), nil
}
