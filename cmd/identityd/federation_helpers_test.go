package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/internal/oidctest"
)

const (
	fedClientID     = "ghasi-identity"
	fedClientSecret = "idp-client-secret-0123456789"
	fedSlug         = "corp"
	fedReturnURL    = "ghasi-app://oidc/done"
)

// freeAddr reserves a loopback port for a service whose public URL (the
// OIDC redirect URI) must be known before it starts.
func freeAddr(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// fedEnv is env with a fixed port and private IdP addresses allowed (the
// test IdP listens on loopback).
func fedEnv(t testing.TB, env map[string]string) map[string]string {
	env["IDENTITY_HTTP_ADDR"] = freeAddr(t)
	env["IDENTITY_FEDERATION_ALLOW_PRIVATE"] = "true"
	return env
}

// fedWorld is a running service, its tenants and an IdP configured as
// provider "corp" of tenant A.
type fedWorld struct {
	*world
	s   *testService
	idp *oidctest.Provider
}

func newFedWorld(t *testing.T, env map[string]string, openTimeout time.Duration) *fedWorld {
	t.Helper()
	idp := oidctest.New(t, oidctest.Config{ClientID: fedClientID, ClientSecret: fedClientSecret})
	s := startServiceWith(t, fedEnv(t, env), func(c *Config) { c.FederationOpenTimeout = openTimeout })
	idp.SetRedirectURIs(s.baseURL + "/api/v1/auth/oidc/" + fedSlug + "/callback")
	f := &fedWorld{world: newWorld(t, s), s: s, idp: idp}
	doc := f.configure(t, f.tokA, f.tenantA.ID, fedSlug)
	require.Equal(t, s.baseURL+"/api/v1/auth/oidc/"+fedSlug+"/callback", doc["redirectUri"])
	return f
}

const configureOidcMutation = `mutation($in: OidcProviderInput!) { configureOidcProvider(input: $in) {
  id tenantId slug issuer clientId scopes allowedEmailDomains returnUrls redirectUri createdAt updatedAt } }`

// configure makes the test IdP provider slug of tenantID and returns the
// GraphQL answer.
func (f *fedWorld) configure(t *testing.T, bearer, tenantID, slug string) map[string]any {
	t.Helper()
	res := f.s.graphql(t, bearer, configureOidcMutation, map[string]any{"in": map[string]any{
		"tenantId": tenantID, "slug": slug, "issuer": f.idp.Issuer(), "clientId": fedClientID,
		"clientSecret": fedClientSecret, "returnUrls": []string{fedReturnURL},
	}})
	require.Empty(t, res.Errors)
	var out struct{ ConfigureOidcProvider map[string]any }
	res.decode(t, &out)
	return out.ConfigureOidcProvider
}

// noRedirects is a client that shows redirects instead of following them.
var noRedirects = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func getRaw(t *testing.T, rawURL string) apiResponse {
	t.Helper()
	res, err := noRedirects.Get(rawURL)
	require.NoError(t, err)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return apiResponse{Status: res.StatusCode, Header: res.Header, Body: body}
}

// start calls the start endpoint and returns the answer.
func (f *fedWorld) start(t *testing.T, slug, tenantID, returnTo string) apiResponse {
	t.Helper()
	q := url.Values{"tenantId": {tenantID}}
	if returnTo != "" {
		q.Set("returnTo", returnTo)
	}
	return getRaw(t, f.s.baseURL+"/api/v1/auth/oidc/"+slug+"/start?"+q.Encode())
}

// authorize starts a login at tenant A's provider and signs in at the IdP,
// returning the callback URL the IdP redirects the browser to.
func (f *fedWorld) authorize(t *testing.T, returnTo string) *url.URL {
	t.Helper()
	_, cb := f.authorizeNonce(t, returnTo)
	return cb
}

// authorizeNonce is authorize that also returns the nonce sent to the IdP.
func (f *fedWorld) authorizeNonce(t *testing.T, returnTo string) (string, *url.URL) {
	t.Helper()
	res := f.start(t, fedSlug, f.tenantA.ID, returnTo)
	require.Equal(t, http.StatusFound, res.Status, string(res.Body))
	loc, err := url.Parse(res.Header.Get("Location"))
	require.NoError(t, err)
	q := loc.Query()
	require.Equal(t, "S256", q.Get("code_challenge_method"))
	for _, p := range []string{"code_challenge", "state", "nonce", "client_id", "redirect_uri"} {
		require.NotEmpty(t, q.Get(p), p)
	}
	cb, err := f.idp.Authorize(context.Background(), loc.String())
	require.NoError(t, err)
	require.NotEmpty(t, cb.Query().Get("code"), cb.String())
	return q.Get("nonce"), cb
}

// login runs a whole federated login as the IdP's current user.
func (f *fedWorld) login(t *testing.T) apiResponse {
	t.Helper()
	return getRaw(t, f.authorize(t, "").String())
}

func withQuery(u *url.URL, key, value string) string {
	c := *u
	q := c.Query()
	q.Set(key, value)
	c.RawQuery = q.Encode()
	return c.String()
}

// linkedEvents counts the identity.external_identity.linked.v1 events about userID.
func (f *fedWorld) linkedEvents(t *testing.T, userID string) int {
	t.Helper()
	return len(f.s.eventsFor(t, "identity.external_identity.linked.v1", userID))
}

func itoa(n int) string { return strconv.Itoa(n) }
