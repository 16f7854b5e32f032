package rest_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/httpx"
	"github.com/ghasi-ehealth/identity-service/rest"
)

type staticJWKS struct{}

func (staticJWKS) JWKS() ([]byte, string) { return []byte(`{"keys":[]}`), `"abc"` }

func newServer(t *testing.T, checks ...rest.Check) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	rest.Mount(mux, rest.Deps{Logger: logger, PublicURL: "https://id.example.org/", Keys: staticJWKS{}, Checks: checks})
	mux.HandleFunc("GET /panic", func(http.ResponseWriter, *http.Request) { panic("boom: secret detail") })
	h := httpx.RequestID(rest.Recover(logger)(mux))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func decodeProblem(t *testing.T, res *http.Response) map[string]any {
	t.Helper()
	require.Equal(t, "application/problem+json", res.Header.Get("Content-Type"))
	var p map[string]any
	require.NoError(t, json.NewDecoder(res.Body).Decode(&p))
	return p
}

func TestWellKnown(t *testing.T) {
	srv := newServer(t)
	res, err := http.Get(srv.URL + "/.well-known/jwks.json")
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	require.Equal(t, "public, max-age=3600", res.Header.Get("Cache-Control"))
	require.Equal(t, `"abc"`, res.Header.Get("ETag"))
	require.NotEmpty(t, res.Header.Get(httpx.RequestIDHeader))

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/.well-known/jwks.json", nil)
	req.Header.Set("If-None-Match", `W/"zzz", "abc"`)
	res2, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	res2.Body.Close()
	require.Equal(t, http.StatusNotModified, res2.StatusCode)

	res3, err := http.Get(srv.URL + "/.well-known/openid-configuration")
	require.NoError(t, err)
	defer res3.Body.Close()
	var doc map[string]any
	require.NoError(t, json.NewDecoder(res3.Body).Decode(&doc))
	require.Equal(t, "https://id.example.org", doc["issuer"])
	require.Equal(t, "https://id.example.org/.well-known/jwks.json", doc["jwks_uri"])
	require.Equal(t, "https://id.example.org/oauth2/token", doc["token_endpoint"])
}

func TestHealth(t *testing.T) {
	down := errors.New("down")
	var fail bool
	srv := newServer(t, rest.Check{Name: "database", Ping: func(context.Context) error {
		if fail {
			return down
		}
		return nil
	}})
	for _, tc := range []struct {
		fail bool
		want int
	}{{false, 200}, {true, 503}} {
		fail = tc.fail
		res, err := http.Get(srv.URL + "/readyz")
		require.NoError(t, err)
		var body map[string]any
		require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
		res.Body.Close()
		require.Equal(t, tc.want, res.StatusCode)
		require.Contains(t, body["dependencies"], "database")
		live, err := http.Get(srv.URL + "/healthz")
		require.NoError(t, err)
		live.Body.Close()
		require.Equal(t, http.StatusOK, live.StatusCode, "liveness ignores dependencies")
	}
}

func TestProblems(t *testing.T) {
	srv := newServer(t)
	t.Run("unknown route is a 404 problem", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/nope", nil)
		req.Header.Set(httpx.RequestIDHeader, "req-42")
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		require.Equal(t, http.StatusNotFound, res.StatusCode)
		p := decodeProblem(t, res)
		require.Equal(t, core.CodeNotFound, p["code"])
		require.Equal(t, "https://errors.ghasi-ehealth.af/IDENT_NOT_FOUND", p["type"])
		require.Equal(t, "req-42", p["requestId"])
		require.EqualValues(t, 404, p["status"])
	})
	t.Run("wrong method is a 405 problem", func(t *testing.T) {
		res, err := http.Post(srv.URL+"/.well-known/jwks.json", "application/json", strings.NewReader("{}"))
		require.NoError(t, err)
		defer res.Body.Close()
		require.Equal(t, http.StatusMethodNotAllowed, res.StatusCode)
		require.Contains(t, res.Header.Get("Allow"), "GET")
		require.Equal(t, core.CodeValidation, decodeProblem(t, res)["code"])
	})
	t.Run("panic is a 500 problem without internals", func(t *testing.T) {
		res, err := http.Get(srv.URL + "/panic")
		require.NoError(t, err)
		defer res.Body.Close()
		require.Equal(t, http.StatusInternalServerError, res.StatusCode)
		body, _ := io.ReadAll(res.Body)
		require.NotContains(t, string(body), "secret detail")
		require.Contains(t, string(body), core.CodeInternal)
	})
}

func TestErrorsWrite(t *testing.T) {
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	tests := []struct {
		name   string
		err    error
		status int
		check  func(t *testing.T, p map[string]any, h http.Header)
	}{
		{"validation with fields", core.InvalidField("email", "must be a valid email address"), 400, func(t *testing.T, p map[string]any, _ http.Header) {
			require.Equal(t, map[string]any{"email": "must be a valid email address"}, p["fields"])
		}},
		{"rate limited", &core.Error{Kind: core.KindRateLimited, Code: core.CodeRateLimited, Msg: "slow down", RetryAfter: 1500 * time.Millisecond}, 429, func(t *testing.T, p map[string]any, h http.Header) {
			require.EqualValues(t, 2, p["retryAfter"])
			require.Equal(t, "2", h.Get("Retry-After"))
		}},
		{"extra members", &core.Error{Kind: core.KindUnauthenticated, Code: core.CodeMFARequired, Msg: "mfa", Extra: map[string]any{"challengeId": "c1", "code": "ignored"}}, 401, func(t *testing.T, p map[string]any, _ http.Header) {
			require.Equal(t, "c1", p["challengeId"])
			require.Equal(t, core.CodeMFARequired, p["code"], "standard members win")
		}},
		{"foreign error is internal", errors.New("pq: password=hunter2"), 500, func(t *testing.T, p map[string]any, _ http.Header) {
			require.Equal(t, "internal error", p["detail"])
		}},
		{"forbidden", core.Forbidden("no"), 403, nil},
		{"not found", core.NotFound("user"), 404, nil},
		{"conflict", core.E(core.KindConflict, core.CodeEmailDuplicate, "dup"), 409, nil},
		{"unprocessable", core.E(core.KindUnprocessable, core.CodeDeviceNotTrusted, "x"), 422, nil},
		{"unavailable", core.Unavailable(errors.New("db")), 503, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			rest.Errors{Logger: logger}.Write(rec, httptest.NewRequest(http.MethodGet, "/", nil), tc.err)
			require.Equal(t, tc.status, rec.Code)
			var p map[string]any
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &p))
			require.Equal(t, core.CodeOf(tc.err), p["code"])
			if tc.check != nil {
				tc.check(t, p, rec.Header())
			}
		})
	}
}

func TestDecodeJSON(t *testing.T) {
	type body struct {
		Email string   `json:"email"`
		Age   int      `json:"age"`
		Tags  []string `json:"tags"`
	}
	tests := []struct {
		name, ct, in string
		wantFields   map[string]string
		wantErr      bool
	}{
		{"ok", "application/json", `{"email":"a@b.c","age":3}`, nil, false},
		{"charset ok", "application/json; charset=utf-8", `{"email":"a"}`, nil, false},
		{"no content type ok", "", `{"email":"a"}`, nil, false},
		{"wrong content type", "text/plain", `{"email":"a"}`, nil, true},
		{"empty", "application/json", ``, nil, true},
		{"syntax", "application/json", `{"email":`, nil, true},
		{"not an object", "application/json", `[1,2]`, nil, true},
		{"wrong type", "application/json", `{"age":"x"}`, map[string]string{"age": "must be a number"}, true},
		{"unknown field", "application/json", `{"email":"a","admin":true}`, map[string]string{"admin": "unknown field"}, true},
		{"trailing data", "application/json", `{"email":"a"} {}`, nil, true},
		{"too large", "application/json", `{"email":"` + strings.Repeat("a", rest.MaxBodyBytes) + `"}`, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.in))
			if tc.ct != "" {
				req.Header.Set("Content-Type", tc.ct)
			}
			var b body
			err := rest.DecodeJSON(httptest.NewRecorder(), req, &b)
			if !tc.wantErr {
				require.NoError(t, err)
				return
			}
			require.Equal(t, core.CodeValidation, core.CodeOf(err))
			if tc.wantFields != nil {
				require.Equal(t, tc.wantFields, core.AsError(err).Fields)
			}
		})
	}
}

func FuzzDecodeJSON(f *testing.F) {
	for _, seed := range []string{`{"email":"a"}`, `{"age":1e400}`, `{"tags":[1]}`, `{"x":{"y":1}}`, `null`, `"str"`, "\xff"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var b struct {
			Email string   `json:"email"`
			Age   int      `json:"age"`
			Tags  []string `json:"tags"`
		}
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(in))
		err := rest.DecodeJSON(httptest.NewRecorder(), req, &b)
		if err != nil {
			require.Equal(t, core.CodeValidation, core.CodeOf(err), "every decode failure is IDENT_VALIDATION")
		}
	})
}
