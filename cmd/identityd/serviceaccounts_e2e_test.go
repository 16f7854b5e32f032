package main

// End-to-end tests of service accounts and the client_credentials grant
// (IDENT-US-007). Secrets hygiene in logs and events: secrets_e2e_test.go.

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core/serviceaccount"
)

func TestServiceAccountClientCredentialsEndToEnd(t *testing.T) {
	t.Parallel()
	clock := &offsetClock{}
	s := startServiceClock(t, baseEnv(t), clock)
	w := newWorld(t, s)

	// Create as SUPER_ADMIN: 201 with the secret, once.
	res := s.call(t, http.MethodPost, "/api/v1/service-accounts", w.super,
		map[string]any{"name": "lab system", "tenantId": w.tenantA.ID, "scopes": []string{"tenant:users:read"}})
	var sa serviceAccountDoc
	res.decode(t, http.StatusCreated, &sa)
	require.Subset(t, res.members(t), []string{"id", "clientId", "clientSecret", "scopes", "tenantId"})
	require.Equal(t, w.tenantA.ID, sa.TenantID)
	require.Equal(t, []string{"tenant:users:read"}, sa.Scopes)
	require.Regexp(t, `^sa_[0-9A-Za-z]{20}$`, sa.ClientID)
	require.GreaterOrEqual(t, len(sa.ClientSecret), 43, "256-bit secret")
	d := s.saEventData(t, sa.ID)
	require.Equal(t, map[string]any{"serviceAccountId": sa.ID, "clientId": sa.ClientID, "tenantId": w.tenantA.ID}, d)

	other := s.createServiceAccount(t, w.super, w.tenantA.ID, "tenant:users:read")
	require.NotEqual(t, sa.ClientID, other.ClientID, "client ids are unique")
	require.NotEqual(t, sa.ID, other.ID)

	// Only SUPER_ADMIN creates; validation.
	events := s.eventCount(t)
	requireProblem(t, s.call(t, http.MethodPost, "/api/v1/service-accounts", w.tokA,
		map[string]any{"name": "x", "tenantId": w.tenantA.ID, "scopes": []string{"tenant:users:read"}}), http.StatusForbidden, "IDENT_FORBIDDEN")
	requireProblem(t, s.call(t, http.MethodPost, "/api/v1/service-accounts", "",
		map[string]any{"name": "x", "tenantId": w.tenantA.ID, "scopes": []string{"tenant:users:read"}}), http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")
	p := requireProblem(t, s.call(t, http.MethodPost, "/api/v1/service-accounts", w.super,
		map[string]any{"name": "x", "tenantId": w.tenantA.ID, "scopes": []string{"tenant:nope:read"}}), http.StatusBadRequest, "IDENT_VALIDATION")
	require.Contains(t, p.Fields, "scopes")
	require.Equal(t, events, s.eventCount(t))

	// client_secret_post (form).
	post := map[string]string{"grant_type": "client_credentials", "client_id": sa.ClientID, "client_secret": sa.ClientSecret}
	res = s.tokenRequest(t, "", post, nil)
	var tok oauthTokenDoc
	res.decode(t, http.StatusOK, &tok)
	require.Subset(t, res.members(t), []string{"access_token", "token_type", "expires_in"})
	require.Equal(t, "Bearer", tok.TokenType)
	require.Equal(t, 900, tok.ExpiresIn)
	require.Equal(t, "no-store", res.Header.Get("Cache-Control"))

	// The frozen claim shape, amr ["client"], no session in the jti.
	j := s.decodeJWT(t, tok.AccessToken)
	require.Equal(t, "at+jwt", j.Header["typ"])
	require.ElementsMatch(t, []string{"sub", "tid", "tids", "jti", "amr", "exp", "iat", "iss", "aud"}, j.Members)
	require.Equal(t, sa.ID, j.str("sub"))
	require.Equal(t, w.tenantA.ID, j.str("tid"))
	require.Equal(t, []string{w.tenantA.ID}, j.strs("tids"))
	require.Equal(t, []string{"client"}, j.strs("amr"))
	require.NotEmpty(t, j.str("jti"))
	require.NotContains(t, j.str("jti"), ".")
	require.Equal(t, s.main.cfg.PublicURL, j.str("iss"))
	require.Equal(t, "ghasi-platform", j.str("aud"))
	require.InDelta(t, 900, j.num("exp")-j.num("iat"), 1)

	// whoami: a service account with its scopes.
	var who whoamiDoc
	s.call(t, http.MethodGet, "/api/v1/auth/whoami", tok.AccessToken, nil).decode(t, http.StatusOK, &who)
	require.Equal(t, "service_account", who.Type)
	require.Equal(t, sa.ID, who.ID)
	require.Equal(t, w.tenantA.ID, who.TenantID)
	require.Equal(t, []string{w.tenantA.ID}, who.TenantIDs)
	require.Equal(t, []string{"tenant:users:read"}, who.Scopes)

	// client_secret_basic and a JSON body.
	var basicTok, jsonTok oauthTokenDoc
	s.tokenRequest(t, "", map[string]string{"grant_type": "client_credentials"}, []string{sa.ClientID, sa.ClientSecret}).
		decode(t, http.StatusOK, &basicTok)
	require.Equal(t, 900, basicTok.ExpiresIn)
	s.tokenRequest(t, "application/json", post, nil).decode(t, http.StatusOK, &jsonTok)
	require.Equal(t, "Bearer", jsonTok.TokenType)
	require.NotEqual(t, tok.AccessToken, jsonTok.AccessToken)
	require.NotEqual(t, s.decodeJWT(t, basicTok.AccessToken).str("jti"), j.str("jti"))

	// RFC 6749 errors.
	bad := map[string]string{"grant_type": "client_credentials", "client_id": sa.ClientID, "client_secret": "wrong-" + sa.ClientSecret}
	requireOAuthError(t, s.tokenRequest(t, "", bad, nil), http.StatusUnauthorized, "invalid_client")
	requireOAuthError(t, s.tokenRequest(t, "", map[string]string{"grant_type": "client_credentials"}, []string{sa.ClientID, "nope"}),
		http.StatusUnauthorized, "invalid_client")
	requireOAuthError(t, s.tokenRequest(t, "", map[string]string{"grant_type": "client_credentials", "client_id": "sa_unknown", "client_secret": "x"}, nil),
		http.StatusUnauthorized, "invalid_client")
	requireOAuthError(t, s.tokenRequest(t, "", map[string]string{"grant_type": "password", "client_id": sa.ClientID, "client_secret": sa.ClientSecret}, nil),
		http.StatusBadRequest, "unsupported_grant_type")
	requireOAuthError(t, s.tokenRequest(t, "", map[string]string{"client_id": sa.ClientID, "client_secret": sa.ClientSecret}, nil),
		http.StatusBadRequest, "invalid_request")
	requireOAuthError(t, s.tokenRequest(t, "", post, []string{sa.ClientID, sa.ClientSecret}),
		http.StatusBadRequest, "invalid_request") // both methods at once
	requireOAuthError(t, s.tokenRequest(t, "", map[string]string{"grant_type": "client_credentials", "client_id": sa.ClientID,
		"client_secret": sa.ClientSecret, "scope": "tenant:users:write"}, nil), http.StatusBadRequest, "invalid_scope")

	// Secret rotation with an overlap long enough that no slow machine ends
	// it during the checks inside it; the service's clock then steps to
	// its end.
	requireProblem(t, s.call(t, http.MethodPost, "/api/v1/service-accounts/"+sa.ID+"/rotate-secret", w.tokA,
		map[string]any{"overlapSeconds": 30}), http.StatusForbidden, "IDENT_FORBIDDEN")
	var rot struct {
		ID                      string    `json:"id"`
		ClientSecret            string    `json:"clientSecret"`
		PreviousSecretExpiresAt time.Time `json:"previousSecretExpiresAt"`
	}
	const overlap = 30 * time.Second
	rotStart := clock.Now()
	s.call(t, http.MethodPost, "/api/v1/service-accounts/"+sa.ID+"/rotate-secret", w.super,
		map[string]any{"overlapSeconds": 30}).decode(t, http.StatusOK, &rot)
	rotEnd := clock.Now()
	require.Equal(t, sa.ID, rot.ID)
	require.NotEqual(t, sa.ClientSecret, rot.ClientSecret)
	require.WithinRange(t, rot.PreviousSecretExpiresAt, rotStart.Add(overlap).Truncate(time.Microsecond), rotEnd.Add(overlap),
		"the rotation's time plus the overlap asked for")
	s.clientToken(t, sa.ClientID, sa.ClientSecret) // old, inside the overlap
	s.clientToken(t, sa.ClientID, rot.ClientSecret)
	clock.Advance(rot.PreviousSecretExpiresAt.Sub(clock.Now()) - 5*time.Second)
	s.clientToken(t, sa.ClientID, sa.ClientSecret) // old, near the end of the overlap
	clock.Advance(5*time.Second + 100*time.Millisecond)
	requireOAuthError(t, s.tokenRequest(t, "", post, nil), http.StatusUnauthorized, "invalid_client")
	newTok := s.clientToken(t, sa.ClientID, rot.ClientSecret)
	s.call(t, http.MethodGet, "/api/v1/auth/whoami", newTok, nil).decode(t, http.StatusOK, &who)
	require.Equal(t, sa.ID, who.ID)
	requireProblem(t, s.call(t, http.MethodPost, "/api/v1/service-accounts/"+sa.ID+"/rotate-secret", w.super,
		map[string]any{"overlapSeconds": -5}), http.StatusBadRequest, "IDENT_VALIDATION")

	// A service-account token is no admin: it cannot issue API keys.
	res = s.call(t, http.MethodPost, "/api/v1/api-keys", newTok, map[string]any{"name": "x", "scopes": []string{"tenant:users:read"}})
	require.Equal(t, http.StatusForbidden, res.Status, "body: %s", res.Body)

	// GraphQL createServiceAccount and serviceAccounts.
	var created struct {
		CreateServiceAccount serviceAccountDoc `json:"createServiceAccount"`
	}
	s.graphql(t, w.super, `mutation($in: CreateServiceAccountInput!) { createServiceAccount(input: $in) { id clientId clientSecret scopes tenantId } }`,
		map[string]any{"in": map[string]any{"name": "gql sa", "tenantId": w.tenantB.ID, "scopes": []string{"tenant:licensing:read"}}}).decode(t, &created)
	g := created.CreateServiceAccount
	require.Equal(t, w.tenantB.ID, g.TenantID)
	require.NotEmpty(t, g.ClientSecret)
	require.Len(t, s.eventsFor(t, serviceaccount.EventCreated, g.ID), 1)
	gTok := s.clientToken(t, g.ClientID, g.ClientSecret)
	require.Equal(t, g.ID, s.decodeJWT(t, gTok).str("sub"))
	require.Equal(t, "IDENT_FORBIDDEN", s.graphql(t, w.tokA, `mutation($in: CreateServiceAccountInput!) { createServiceAccount(input: $in) { id } }`,
		map[string]any{"in": map[string]any{"name": "x", "tenantId": w.tenantA.ID, "scopes": []string{"tenant:users:read"}}}).code())

	type listed struct {
		ServiceAccounts []struct {
			ID, Name, ClientID, TenantID string
			Scopes                       []string
		} `json:"serviceAccounts"`
	}
	var all listed
	allRes := s.graphql(t, w.super, `{ serviceAccounts { id name clientId scopes tenantId createdAt } }`, nil)
	allRes.decode(t, &all)
	require.Len(t, all.ServiceAccounts, 3)
	require.NotContains(t, string(allRes.Data), rot.ClientSecret)
	require.Equal(t, "IDENT_VALIDATION", s.graphql(t, w.super, `{ serviceAccounts { clientSecret } }`, nil).code())
	var mine listed
	s.graphql(t, w.tokA, `{ serviceAccounts { id clientId tenantId } }`, nil).decode(t, &mine)
	require.Len(t, mine.ServiceAccounts, 2, "TENANT_ADMIN of A sees A's accounts")
	for _, a := range mine.ServiceAccounts {
		require.Equal(t, w.tenantA.ID, a.TenantID)
	}
	require.Equal(t, "IDENT_CROSS_TENANT", s.graphql(t, w.tokA, `query($t: ID) { serviceAccounts(tenantId: $t) { id } }`,
		map[string]any{"t": w.tenantB.ID}).code())
}
