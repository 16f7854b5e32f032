package rest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/exchange"
)

type fakeExchange struct{ got exchange.Request }

func (f *fakeExchange) Exchange(_ context.Context, req exchange.Request) (exchange.Result, error) {
	f.got = req
	switch {
	case req.GrantType != exchange.GrantType:
		return exchange.Result{}, &exchange.OAuthError{Code: exchange.ErrUnsupportedGrantType, Description: "no", Status: http.StatusBadRequest}
	case req.SubjectToken == "bad":
		return exchange.Result{}, core.E(core.KindUnauthenticated, core.CodeInvalidCredentials, "the subject token was not accepted")
	}
	return exchange.Result{AccessToken: "at", ExpiresIn: 899500 * time.Millisecond}, nil
}

func TestExchangeEndpoint(t *testing.T) {
	svc := &fakeExchange{}
	mux := http.NewServeMux()
	mountExchange(mux, Errors{}, svc)
	do := func(ct, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/api/v1/auth/keycloak/token-exchange", strings.NewReader(body))
		r.Header.Set("Content-Type", ct)
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		return w
	}
	form := url.Values{"grant_type": {exchange.GrantType}, "subject_token": {"ok"},
		"subject_token_type": {exchange.TokenTypeAccessToken}, "audience": {"ghasi-platform"}}

	w := do("application/x-www-form-urlencoded", form.Encode())
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())
	require.Equal(t, "no-store", w.Header().Get("Cache-Control"))
	require.JSONEq(t, `{"access_token":"at","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":900}`, w.Body.String())
	require.Equal(t, exchange.Request{GrantType: exchange.GrantType, SubjectToken: "ok",
		SubjectTokenType: exchange.TokenTypeAccessToken, Audience: "ghasi-platform"}, svc.got)

	js, _ := json.Marshal(map[string]string{"grant_type": exchange.GrantType, "subject_token": "ok",
		"subject_token_type": exchange.TokenTypeAccessToken})
	w = do("application/json; charset=utf-8", string(js))
	require.Equal(t, http.StatusOK, w.Code, w.Body.String())

	w = do("application/x-www-form-urlencoded", "grant_type=password&subject_token=ok")
	require.Equal(t, http.StatusBadRequest, w.Code)
	require.JSONEq(t, `{"error":"unsupported_grant_type","error_description":"no"}`, w.Body.String())

	w = do("text/plain", "x")
	require.Equal(t, http.StatusBadRequest, w.Code)
	require.Contains(t, w.Body.String(), `"error":"invalid_request"`)

	w = do("application/x-www-form-urlencoded", "grant_type=a&grant_type=b")
	require.Equal(t, http.StatusBadRequest, w.Code)
	require.Contains(t, w.Body.String(), `"error":"invalid_request"`)

	w = do("application/x-www-form-urlencoded", "grant_type="+url.QueryEscape(exchange.GrantType)+"&subject_token="+strings.Repeat("a", MaxBodyBytes))
	require.Equal(t, http.StatusBadRequest, w.Code)

	form.Set("subject_token", "bad")
	w = do("application/x-www-form-urlencoded", form.Encode())
	require.Equal(t, http.StatusUnauthorized, w.Code)
	require.Equal(t, "application/problem+json", w.Header().Get("Content-Type"))
	require.Contains(t, w.Body.String(), `"code":"IDENT_INVALID_CREDENTIALS"`)
}
