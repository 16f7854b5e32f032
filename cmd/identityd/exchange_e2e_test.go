package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

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
