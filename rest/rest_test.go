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
	"unicode/utf8"

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
		{"invalid UTF-8 in a string", "application/json", "{\"email\":\"a\xffb@x.org\"}", nil, true},
		{"invalid UTF-8 in a member name", "application/json", "{\"e\xfe\":\"a\"}", nil, true},
		{"truncated UTF-8 sequence", "application/json", "{\"email\":\"caf\xc3\"}", nil, true},
		{"UTF-8 ok", "application/json", `{"email":"café@x.org"}`, nil, false},
		{"escaped NUL is for core to refuse", "application/json", `{"email":"a\u0000b"}`, nil, false},
		{"lone high surrogate", "application/json", `{"email":"a\ud800b"}`, nil, true},
		{"lone low surrogate", "application/json", `{"email":"a\uDFFFb"}`, nil, true},
		{"high surrogate, non-low escape", "application/json", `{"email":"\ud800\u0041"}`, nil, true},
		{"lone surrogate in a member name", "application/json", `{"\udc00":"a"}`, nil, true},
		{"surrogate pair ok", "application/json", `{"email":"\ud83d\ude00"}`, nil, false},
		{"escaped backslash before u ok", "application/json", `{"email":"\\ud800"}`, nil, false},
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
			if !utf8.ValidString(tc.in) || core.HasLoneSurrogateEscape([]byte(tc.in)) {
				require.Equal(t, "the body is not valid UTF-8", core.AsError(err).Msg)
			}
			if tc.wantFields != nil {
				require.Equal(t, tc.wantFields, core.AsError(err).Fields)
			}
		})
	}
}

// decodeTarget is a request body with the field types handlers use.
type decodeTarget struct {
	Email  string            `json:"email"`
	Age    int               `json:"age"`
	Tags   []string          `json:"tags"`
	Admin  *bool             `json:"admin,omitempty"`
	Nested struct{ A int }   `json:"nested"`
	Labels map[string]string `json:"labels"`
}

// FuzzDecodeJSON feeds arbitrary bodies and Content-Types to DecodeJSON,
// padded with whitespace up to and beyond the 1 MiB limit. Every failure is
// IDENT_VALIDATION with a message and only reasoned fields, an unknown field
// it names is really in the body and unknown, a body over the limit always
// fails, and padding below it changes nothing; a success had a JSON Content-
// Type (or none), one JSON value within the limit, no member the target does
// not declare, and decodes exactly as encoding/json does.
// Run with: go test -run '^$' -fuzz '^FuzzDecodeJSON$' ./rest
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []struct {
		ct, in string
		pad    uint32
	}{
		{"application/json", `{"email":"a"}`, 0},
		{"", `{"email":"a","age":3,"tags":["x"],"admin":true,"nested":{"A":1},"labels":{"k":"v"}}`, 0},
		{"application/json; charset=utf-8", `{"EMAIL":"case-insensitive"}`, 0},
		{"application/merge-patch+json", `{"age":1}`, 0},
		{"text/plain", `{"email":"a"}`, 0},
		{"application/json; charset", `{}`, 0},
		{"application/json", `{"email":"a","admin":true,"role":"TENANT_ADMIN"}`, 0}, // unknown field
		{"application/json", `{"nested":{"A":1,"B":2}}`, 0},                         // unknown nested member
		{"application/json", `{"age":"x"}`, 0},                                      // wrong types
		{"application/json", `{"tags":[1]}`, 0},
		{"application/json", `{"nested":[]}`, 0},
		{"application/json", `{"labels":{"k":1}}`, 0},
		{"application/json", `{"age":1e400}`, 0},
		{"application/json", `{"age":1.5}`, 0},
		{"application/json", `{"email":"a"} {}`, 0}, // trailing data
		{"application/json", `{"email":"a"`, 0},
		{"application/json", `{"email":"a","email":"b"}`, 0},
		{"application/json", `[1,2]`, 0},
		{"application/json", `null`, 0},
		{"application/json", `"str"`, 0},
		{"application/json", ``, 0},
		{"application/json", "\xff", 0},
		{"application/json", "{\"email\":\"\xff\"}", 0},
		{"application/json", `{"email":"\ud800"}`, 0},
		{"application/json", `{"email":"\ud83d\ude00"}`, 0},
		{"application/json", `{}`, rest.MaxBodyBytes - 2}, // exactly at the limit
		{"application/json", `{}`, rest.MaxBodyBytes - 1}, // one byte over
	} {
		f.Add(s.ct, s.in, s.pad)
	}
	decode := func(ct, body string) (decodeTarget, error) {
		req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		var b decodeTarget
		err := rest.DecodeJSON(httptest.NewRecorder(), req, &b)
		return b, err
	}
	known := map[string]bool{"email": true, "age": true, "tags": true, "admin": true, "nested": true, "labels": true}
	f.Fuzz(func(t *testing.T, ct, in string, pad uint32) {
		padding := int(pad % (rest.MaxBodyBytes + 64))
		body := in + strings.Repeat(" ", padding)
		got, err := decode(ct, body)

		if len(body) > rest.MaxBodyBytes {
			require.Error(t, err, "a body over the limit never decodes")
		}
		if err != nil {
			ce := core.AsError(err)
			require.Equal(t, core.KindInvalid, ce.Kind, "every decode failure is IDENT_VALIDATION: %v", err)
			require.Equal(t, core.CodeValidation, ce.Code)
			require.NotEmpty(t, ce.Msg)
			var members map[string]json.RawMessage
			_ = json.Unmarshal([]byte(in), &members)
			for k, reason := range ce.Fields {
				require.NotEmpty(t, reason, "fields.%s has a reason", k)
				if reason == "unknown field" {
					require.Contains(t, members, k, "an unknown field the body really has")
					require.False(t, known[strings.ToLower(k)], "%q is declared", k)
				}
			}
		} else {
			require.LessOrEqual(t, len(body), rest.MaxBodyBytes)
			require.True(t, utf8.ValidString(body), "only UTF-8 bodies decode")
			require.False(t, core.HasLoneSurrogateEscape([]byte(body)), "no body with a lone surrogate escape decodes")
			var want decodeTarget
			dec := json.NewDecoder(strings.NewReader(body))
			dec.DisallowUnknownFields()
			require.NoError(t, dec.Decode(&want), "encoding/json accepts it too")
			require.Equal(t, want, got)
			var members map[string]json.RawMessage
			if json.Unmarshal([]byte(in), &members) == nil {
				for k := range members {
					require.True(t, known[strings.ToLower(k)], "undeclared member %q accepted", k)
				}
			}
		}

		// Whitespace padding within the limit changes nothing.
		if padding > 0 && len(body) <= rest.MaxBodyBytes {
			bare, bareErr := decode(ct, in)
			require.Equal(t, err == nil, bareErr == nil, "padding changed the outcome: %v / %v", err, bareErr)
			if err == nil {
				require.Equal(t, bare, got)
			} else {
				require.Equal(t, core.AsError(bareErr).Fields, core.AsError(err).Fields)
			}
		}
	})
}
