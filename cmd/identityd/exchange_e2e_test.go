package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/internal/oidctest"
	identityv1 "github.com/ghasi-ehealth/identity-service/rpc/gen/identity/v1"
	"github.com/ghasi-ehealth/identity-service/rpc/gen/identity/v1/identityv1connect"
)

// TestTokenExchangeMountedAndDisabledByDefault: without
// IDENTITY_KEYCLOAK_ISSUER the RFC 8693 endpoint and Connect ExchangeToken
// are served but refuse the grant clearly (the flow itself is tested in
// core/exchange and rest against a fake Keycloak).
func TestTokenExchangeMountedAndDisabledByDefault(t *testing.T) {
	s := startService(t, baseEnv(t))
	form := url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {"x.y.z"},
		"subject_token_type": {"urn:ietf:params:oauth:token-type:access_token"},
	}
	res, err := http.Post(s.baseURL+"/api/v1/auth/keycloak/token-exchange", "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusBadRequest, res.StatusCode)
	var body map[string]string
	require.NoError(t, json.NewDecoder(res.Body).Decode(&body))
	require.Equal(t, "unsupported_grant_type", body["error"])

	client := identityv1connect.NewTokenServiceClient(h2cClient(), s.baseURL, connect.WithGRPC())
	_, err = client.ExchangeToken(context.Background(), connect.NewRequest(&identityv1.ExchangeTokenRequest{
		SubjectToken: "x.y.z", SubjectTokenType: "urn:ietf:params:oauth:token-type:access_token"}))
	require.Equal(t, connect.CodeInvalidArgument, connect.CodeOf(err))
}

// TestKeycloakTokenExchangeAgainstRealIssuer: the exchange verifies
// upstream tokens against the JWKS discovered from a real OpenID Provider
// standing in for the Keycloak realm; a token signed by the realm is
// exchanged (and keycloak_user_id backfilled), a forged or expired one is
// refused with 401 IDENT_INVALID_CREDENTIALS.
func TestKeycloakTokenExchangeAgainstRealIssuer(t *testing.T) {
	realm := oidctest.New(t, oidctest.Config{ClientID: "ghasi-broker", ClientSecret: "broker-secret"})
	env := baseEnv(t)
	env["IDENTITY_KEYCLOAK_ISSUER"] = realm.Issuer()
	env["IDENTITY_KEYCLOAK_AUDIENCE"] = "ghasi-broker"
	env["IDENTITY_KEYCLOAK_TENANT_ID"] = "clinic-a"
	s := startService(t, env)
	w := newWorld(t, s)
	now := time.Now()
	claims := func(exp time.Time) map[string]any {
		return map[string]any{"iss": realm.Issuer(), "sub": "kc-user-1", "aud": []string{"account"}, "azp": "ghasi-broker",
			"typ": "Bearer", "exp": exp.Unix(), "iat": now.Unix(), "email": adminAEmail, "email_verified": true}
	}
	exchange := func(subjectToken string) apiResponse {
		return s.call(t, http.MethodPost, "/api/v1/auth/keycloak/token-exchange", "", map[string]string{
			"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange", "subject_token": subjectToken,
			"subject_token_type": "urn:ietf:params:oauth:token-type:access_token"})
	}

	requireProblem(t, exchange(realm.ForgeJWT(t, claims(now.Add(5*time.Minute)))), http.StatusUnauthorized, "IDENT_INVALID_CREDENTIALS")
	requireProblem(t, exchange(realm.SignJWT(t, claims(now.Add(-5*time.Minute)))), http.StatusUnauthorized, "IDENT_INVALID_CREDENTIALS")
	require.Zero(t, s.count(t, "SELECT COUNT(*) FROM users WHERE keycloak_user_id = ?", "kc-user-1"))

	res := exchange(realm.SignJWT(t, claims(now.Add(5*time.Minute))))
	require.Equal(t, http.StatusOK, res.Status, string(res.Body))
	var out struct {
		AccessToken     string `json:"access_token"`
		IssuedTokenType string `json:"issued_token_type"`
		TokenType       string `json:"token_type"`
		ExpiresIn       int    `json:"expires_in"`
	}
	res.decode(t, http.StatusOK, &out)
	require.Equal(t, "Bearer", out.TokenType)
	require.Equal(t, "urn:ietf:params:oauth:token-type:access_token", out.IssuedTokenType)
	require.Equal(t, 900, out.ExpiresIn)
	at := s.decodeJWT(t, out.AccessToken)
	require.Equal(t, w.adminA.ID, at.str("sub"))
	require.Equal(t, w.tenantA.ID, at.str("tid"))
	require.Equal(t, []string{"exch"}, at.strs("amr"))
	require.Equal(t, 1, s.count(t, "SELECT COUNT(*) FROM users WHERE id = ? AND keycloak_user_id = ?", w.adminA.ID, "kc-user-1"))
}
