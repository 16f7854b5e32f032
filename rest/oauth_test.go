package rest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/scope"
	"github.com/ghasi-ehealth/identity-service/core/serviceaccount"
	"github.com/ghasi-ehealth/identity-service/core/serviceaccount/satest"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

type oauthEnv struct {
	*satest.Env
	mux *http.ServeMux
}

func newOAuthEnv(t *testing.T) *oauthEnv {
	t.Helper()
	e := satest.New(t, dbtest.SQLite)
	mux := http.NewServeMux()
	mountOAuth(mux, Errors{}, e.Svc)
	mountServiceAccounts(mux, Errors{}, e.Svc)
	return &oauthEnv{Env: e, mux: mux}
}

// token posts to /oauth2/token with contentType and body; basic, when not
// empty, is "id:secret" sent as client_secret_basic (each part URL-encoded).
func (e *oauthEnv) token(t *testing.T, contentType, body string, basic ...string) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	if len(basic) == 2 {
		raw := url.QueryEscape(basic[0]) + ":" + url.QueryEscape(basic[1])
		r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(raw)))
	}
	w := httptest.NewRecorder()
	e.mux.ServeHTTP(w, r)
	var out map[string]any
	require.NoError(t, json.Unmarshal(w.Body.Bytes(), &out), w.Body.String())
	require.Equal(t, "no-store", w.Header().Get("Cache-Control"))
	require.Equal(t, "no-cache", w.Header().Get("Pragma"))
	return w, out
}

const formType = "application/x-www-form-urlencoded"

func form(kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v.Encode()
}

func TestOAuthTokenEndpoint(t *testing.T) {
	e := newOAuthEnv(t)
	c := e.Create(t, e.Tenant(t, "lab"), scope.LicensingRead)
	id, secret := c.Account.ClientID, c.ClientSecret
	jsonBody, _ := json.Marshal(map[string]string{"grant_type": "client_credentials", "client_id": id, "client_secret": secret})

	for name, tc := range map[string]struct {
		contentType, body string
		basic             []string
	}{
		"client_secret_post form": {formType, form("grant_type", "client_credentials", "client_id", id, "client_secret", secret), nil},
		"client_secret_basic":     {formType, form("grant_type", "client_credentials"), []string{id, secret}},
		"basic with same body id": {formType + "; charset=utf-8", form("grant_type", "client_credentials", "client_id", id), []string{id, secret}},
		"JSON body":               {"application/json", string(jsonBody), nil},
	} {
		t.Run(name, func(t *testing.T) {
			w, out := e.token(t, tc.contentType, tc.body, tc.basic...)
			require.Equal(t, http.StatusOK, w.Code, out)
			require.Equal(t, "Bearer", out["token_type"])
			require.EqualValues(t, 900, out["expires_in"])
			require.Equal(t, scope.LicensingRead, out["scope"])
			e.RequireServiceToken(t, out["access_token"].(string), c.Account)
		})
	}

	for name, tc := range map[string]struct {
		contentType, body string
		basic             []string
		status            int
		code              string
	}{
		"wrong secret (post)":   {formType, form("grant_type", "client_credentials", "client_id", id, "client_secret", satest.WrongSecret(secret)), nil, 401, "invalid_client"},
		"wrong secret (basic)":  {formType, form("grant_type", "client_credentials"), []string{id, satest.WrongSecret(secret)}, 401, "invalid_client"},
		"unknown client":        {formType, form("grant_type", "client_credentials", "client_id", "sa_AAAAAAAAAAAAAAAAAAAA", "client_secret", secret), nil, 401, "invalid_client"},
		"no client credentials": {formType, form("grant_type", "client_credentials"), nil, 401, "invalid_client"},
		"unsupported grant":     {formType, form("grant_type", "password", "client_id", id, "client_secret", secret), nil, 400, "unsupported_grant_type"},
		"missing grant":         {formType, form("client_id", id, "client_secret", secret), nil, 400, "invalid_request"},
		"both methods":          {formType, form("grant_type", "client_credentials", "client_secret", secret), []string{id, secret}, 400, "invalid_request"},
		"different body id":     {formType, form("grant_type", "client_credentials", "client_id", "sa_BBBBBBBBBBBBBBBBBBBB"), []string{id, secret}, 400, "invalid_request"},
		"repeated parameter":    {formType, "grant_type=client_credentials&grant_type=client_credentials", nil, 400, "invalid_request"},
		"wrong content type":    {"text/plain", "grant_type=client_credentials", nil, 400, "invalid_request"},
		"bad JSON":              {"application/json", `{"grant_type":1}`, nil, 400, "invalid_request"},
		"scope not granted":     {formType, form("grant_type", "client_credentials", "scope", scope.UsersWrite), []string{id, secret}, 400, "invalid_scope"},
	} {
		t.Run(name, func(t *testing.T) {
			w, out := e.token(t, tc.contentType, tc.body, tc.basic...)
			require.Equal(t, tc.status, w.Code, out)
			require.Equal(t, tc.code, out["error"])
			require.NotEmpty(t, out["error_description"])
			require.NotContains(t, out, "code", "not problem+json")
			if tc.status == 401 {
				require.Equal(t, `Basic realm="identity"`, w.Header().Get("WWW-Authenticate"))
			}
		})
	}

	t.Run("bearer is not client authentication", func(t *testing.T) {
		r := httptest.NewRequest(http.MethodPost, "/oauth2/token", strings.NewReader(form("grant_type", "client_credentials")))
		r.Header.Set("Content-Type", formType)
		r.Header.Set("Authorization", "Bearer abc")
		w := httptest.NewRecorder()
		e.mux.ServeHTTP(w, r)
		require.Equal(t, 401, w.Code)
		require.Contains(t, w.Body.String(), `"invalid_client"`)
	})
	t.Run("body over 1 MiB", func(t *testing.T) {
		w, out := e.token(t, formType, "grant_type=client_credentials&pad="+strings.Repeat("a", MaxBodyBytes))
		require.Equal(t, 400, w.Code)
		require.Equal(t, "invalid_request", out["error"])
	})
}

func TestOAuthThrottleAndOutage(t *testing.T) {
	e := newOAuthEnv(t)
	c := e.Create(t, e.Tenant(t, "thr"), scope.LicensingRead)
	for range serviceaccount.FailureLimit {
		w, _ := e.token(t, formType, form("grant_type", "client_credentials"), c.Account.ClientID, "wrong")
		require.Equal(t, 401, w.Code)
	}
	w, out := e.token(t, formType, form("grant_type", "client_credentials"), c.Account.ClientID, c.ClientSecret)
	require.Equal(t, 401, w.Code)
	require.Equal(t, "invalid_client", out["error"])
	require.Equal(t, "300", w.Header().Get("Retry-After"))

	down := http.NewServeMux()
	mountOAuth(down, Errors{}, outage{})
	e.mux = down
	w, out = e.token(t, formType, form("grant_type", "client_credentials"), c.Account.ClientID, c.ClientSecret)
	require.Equal(t, http.StatusServiceUnavailable, w.Code, out)
	require.Equal(t, "temporarily_unavailable", out["error"])
}

type outage struct{}

func (outage) ClientCredentials(context.Context, serviceaccount.ClientCredentialsInput) (serviceaccount.TokenGrant, error) {
	return serviceaccount.TokenGrant{}, core.Unavailable(context.DeadlineExceeded)
}

func TestServiceAccountRoutes(t *testing.T) {
	e := newOAuthEnv(t)
	tenant := e.Tenant(t, "clinic")
	do := func(ctx context.Context, method, path, body string) (int, map[string]any) {
		r := httptest.NewRequest(method, path, strings.NewReader(body))
		if body != "" {
			r.Header.Set("Content-Type", "application/json")
		}
		w := httptest.NewRecorder()
		e.mux.ServeHTTP(w, r.WithContext(ctx))
		var out map[string]any
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &out), w.Body.String())
		return w.Code, out
	}
	body := `{"name":"lab sync","tenantId":"` + tenant + `","scopes":["tenant:licensing:read"]}`
	status, out := do(context.Background(), "POST", "/api/v1/service-accounts", body)
	require.Equal(t, 401, status)
	require.Equal(t, core.CodeUnauthenticated, out["code"])
	status, out = do(e.Member(t, tenant, core.RoleTenantAdmin), "POST", "/api/v1/service-accounts", body)
	require.Equal(t, 403, status)
	require.Equal(t, core.CodeForbidden, out["code"])
	status, out = do(e.SuperAdmin, "POST", "/api/v1/service-accounts", `{"name":"x","tenantId":"`+tenant+`","scopes":["tenant:nope:x"],"extra":1}`)
	require.Equal(t, 400, status)
	require.Equal(t, core.CodeValidation, out["code"])

	status, out = do(e.SuperAdmin, "POST", "/api/v1/service-accounts", body)
	require.Equal(t, 201, status, out)
	require.Equal(t, tenant, out["tenantId"])
	require.Equal(t, []any{scope.LicensingRead}, out["scopes"])
	id, clientID, secret := out["id"].(string), out["clientId"].(string), out["clientSecret"].(string)
	require.Regexp(t, `^sa_[0-9A-Za-z]{20}$`, clientID)

	status, out = do(e.SuperAdmin, "GET", "/api/v1/service-accounts?tenantId="+tenant, "")
	require.Equal(t, 200, status)
	items := out["items"].([]any)
	require.Len(t, items, 1)
	require.NotContains(t, items[0], "clientSecret", "the secret is shown once")
	require.Nil(t, out["nextCursor"])

	status, out = do(e.SuperAdmin, "POST", "/api/v1/service-accounts/"+id+"/rotate-secret", `{"overlapSeconds":60}`)
	require.Equal(t, 200, status, out)
	require.Equal(t, satest.T0.Add(time.Minute).Format(time.RFC3339), out["previousSecretExpiresAt"])
	newSecret := out["clientSecret"].(string)
	status, out = do(e.SuperAdmin, "POST", "/api/v1/service-accounts/"+id+"/rotate-secret", "")
	require.Equal(t, 200, status, out)
	require.Equal(t, satest.T0.Add(24*time.Hour).Format(time.RFC3339), out["previousSecretExpiresAt"])
	status, out = do(e.SuperAdmin, "POST", "/api/v1/service-accounts/"+id+"/rotate-secret", `{"overlapSeconds":-5}`)
	require.Equal(t, 400, status, out)

	// The first secret expired with the second rotation; the second is in its overlap.
	w, _ := e.token(t, formType, form("grant_type", "client_credentials"), clientID, secret)
	require.Equal(t, 401, w.Code)
	w, _ = e.token(t, formType, form("grant_type", "client_credentials"), clientID, newSecret)
	require.Equal(t, 200, w.Code)
}
