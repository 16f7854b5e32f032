package oidctest_test

import (
	"context"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"github.com/zitadel/oidc/v3/pkg/client"
	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"golang.org/x/oauth2"

	"github.com/ghasi-ehealth/identity-service/internal/oidctest"
)

const (
	clientID     = "identity-service"
	clientSecret = "s3cret"
	redirectURI  = "http://127.0.0.1:1/oidc/callback" // never requested
)

var scopes = []string{oidc.ScopeOpenID, oidc.ScopeEmail, oidc.ScopeProfile}

func newProvider(t *testing.T) *oidctest.Provider {
	t.Helper()
	return oidctest.New(t, oidctest.Config{ClientID: clientID, ClientSecret: clientSecret, RedirectURIs: []string{redirectURI}})
}

// newRP builds a relying party (discovery included) that expects nonce in ID tokens.
func newRP(t *testing.T, p *oidctest.Provider, nonce string, style oauth2.AuthStyle) rp.RelyingParty {
	t.Helper()
	relying, err := rp.NewRelyingPartyOIDC(t.Context(), p.Issuer(), clientID, clientSecret, redirectURI, scopes,
		rp.WithAuthStyle(style),
		rp.WithVerifierOpts(rp.WithNonce(func(context.Context) string { return nonce })))
	require.NoError(t, err)
	return relying
}

// authorize runs the front channel and returns the redirect back to the client.
func authorize(t *testing.T, p *oidctest.Provider, relying rp.RelyingParty, state, nonce, verifier string) url.Values {
	t.Helper()
	authURL := rp.AuthURL(state, relying,
		rp.WithCodeChallenge(oidc.NewSHACodeChallenge(verifier)),
		// rp.WithURLParam returns a URLParamOpt; AuthURL takes AuthURLOpt (same underlying type).
		rp.AuthURLOpt(rp.WithURLParam("nonce", nonce)))
	loc, err := p.Authorize(t.Context(), authURL)
	require.NoError(t, err)
	require.Equal(t, redirectURI, loc.Scheme+"://"+loc.Host+loc.Path)
	return loc.Query()
}

// code runs the front channel and returns the authorization code.
func code(t *testing.T, p *oidctest.Provider, relying rp.RelyingParty, nonce, verifier string) string {
	t.Helper()
	q := authorize(t, p, relying, "state-1", nonce, verifier)
	require.Empty(t, q.Get("error"), q.Get("error_description"))
	require.Equal(t, "state-1", q.Get("state"))
	require.NotEmpty(t, q.Get("code"))
	return q.Get("code")
}

func exchange(t *testing.T, relying rp.RelyingParty, code, verifier string) (*oidc.Tokens[*oidc.IDTokenClaims], error) {
	t.Helper()
	return rp.CodeExchange[*oidc.IDTokenClaims](t.Context(), code, relying, rp.WithCodeVerifier(verifier))
}

func requireOAuthError(t *testing.T, err error, code string) {
	t.Helper()
	var re *oauth2.RetrieveError
	require.ErrorAs(t, err, &re)
	require.Equal(t, code, re.ErrorCode, "%v", err)
}

func TestCodeFlow(t *testing.T) {
	unverified := oidctest.User{Subject: "u-42", Email: "amina@example.test", GivenName: "Amina", FamilyName: "Rahimi"}
	tests := []struct {
		name  string
		style oauth2.AuthStyle
		user  *oidctest.User // nil: default user
	}{
		{name: "client_secret_basic, default user", style: oauth2.AuthStyleInHeader},
		{name: "client_secret_post, unverified email", style: oauth2.AuthStyleInParams, user: &unverified},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProvider(t)
			want := oidctest.User{Subject: "oidctest-user", Email: "user@example.test", EmailVerified: true, GivenName: "Test", FamilyName: "User"}
			if tt.user != nil {
				want = *tt.user
				p.SetUser(want)
			}
			const nonce, verifier = "nonce-abc", "verifier-0123456789-0123456789-0123456789-xyz"
			relying := newRP(t, p, nonce, tt.style)

			tokens, err := exchange(t, relying, code(t, p, relying, nonce, verifier), verifier)
			require.NoError(t, err)
			require.NotEmpty(t, tokens.AccessToken)
			require.Equal(t, "Bearer", tokens.TokenType)
			require.NotEmpty(t, tokens.IDToken)

			c := tokens.IDTokenClaims
			require.Equal(t, p.Issuer(), c.Issuer)
			require.Equal(t, []string{clientID}, []string(c.Audience))
			require.Equal(t, want.Subject, c.Subject)
			require.Equal(t, nonce, c.Nonce)
			require.Equal(t, want.Email, c.Email)
			require.Equal(t, want.EmailVerified, bool(c.EmailVerified))
			require.Equal(t, want.GivenName, c.GivenName)
			require.Equal(t, want.FamilyName, c.FamilyName)
			require.WithinDuration(t, time.Now(), c.IssuedAt.AsTime(), time.Minute)
			require.True(t, c.Expiration.AsTime().After(time.Now()))
			ev, ok := c.Claims["email_verified"]
			require.True(t, ok, "email_verified is sent explicitly")
			require.Equal(t, want.EmailVerified, ev)

			info, err := rp.Userinfo[*oidc.UserInfo](t.Context(), tokens.AccessToken, tokens.TokenType, want.Subject, relying)
			require.NoError(t, err)
			require.Equal(t, want.Email, info.Email)
			require.Equal(t, want.FamilyName, info.FamilyName)
		})
	}
}

func TestDiscovery(t *testing.T) {
	p := newProvider(t)
	cfg, err := client.Discover(t.Context(), p.Issuer(), http.DefaultClient)
	require.NoError(t, err)
	require.Equal(t, p.Issuer(), cfg.Issuer)
	require.Subset(t, cfg.TokenEndpointAuthMethodsSupported, []oidc.AuthMethod{oidc.AuthMethodBasic, oidc.AuthMethodPost})
	require.Contains(t, cfg.CodeChallengeMethodsSupported, oidc.CodeChallengeMethodS256)
	require.Equal(t, []string{"RS256"}, cfg.IDTokenSigningAlgValuesSupported)
	require.ElementsMatch(t, scopes, cfg.ScopesSupported)
}

func TestTokenEndpointRejects(t *testing.T) {
	const nonce, verifier = "n", "verifier-0123456789-0123456789-0123456789-xyz"
	tests := []struct {
		name     string
		verifier string
		want     string
	}{
		{name: "wrong code_verifier", verifier: verifier + "-wrong", want: "invalid_grant"},
		{name: "missing code_verifier", verifier: "", want: "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProvider(t)
			relying := newRP(t, p, nonce, oauth2.AuthStyleInHeader)
			_, err := exchange(t, relying, code(t, p, relying, nonce, verifier), tt.verifier)
			requireOAuthError(t, err, tt.want)
		})
	}
}

func TestCodeIsSingleUse(t *testing.T) {
	const nonce, verifier = "n", "verifier-0123456789-0123456789-0123456789-xyz"
	p := newProvider(t)
	relying := newRP(t, p, nonce, oauth2.AuthStyleInHeader)
	c := code(t, p, relying, nonce, verifier)

	_, err := exchange(t, relying, c, verifier)
	require.NoError(t, err)
	_, err = exchange(t, relying, c, verifier)
	requireOAuthError(t, err, "invalid_grant")

	// A code that failed once (wrong verifier) is burnt too.
	c = code(t, p, relying, nonce, verifier)
	_, err = exchange(t, relying, c, "wrong-verifier-0123456789-0123456789-0123456789")
	requireOAuthError(t, err, "invalid_grant")
	_, err = exchange(t, relying, c, verifier)
	requireOAuthError(t, err, "invalid_grant")
}

func TestNonceOverride(t *testing.T) {
	const nonce, verifier = "expected-nonce", "verifier-0123456789-0123456789-0123456789-xyz"
	p := newProvider(t)
	relying := newRP(t, p, nonce, oauth2.AuthStyleInHeader)

	p.SetNonceOverride("attacker-nonce")
	_, err := exchange(t, relying, code(t, p, relying, nonce, verifier), verifier)
	require.ErrorIs(t, err, oidc.ErrNonceInvalid)

	p.SetNonceOverride("")
	tokens, err := exchange(t, relying, code(t, p, relying, nonce, verifier), verifier)
	require.NoError(t, err)
	require.Equal(t, nonce, tokens.IDTokenClaims.Nonce)
}

func TestAuthorizeErrors(t *testing.T) {
	p := newProvider(t)
	relying := newRP(t, p, "n", oauth2.AuthStyleInHeader)
	base := rp.AuthURL("st", relying, rp.AuthURLOpt(rp.WithURLParam("nonce", "n")))

	tests := []struct {
		name  string
		query url.Values // set on top of base
		want  string     // error at the redirect URI
	}{
		{name: "no code_challenge", want: "invalid_request"},
		{name: "plain code_challenge", query: url.Values{"code_challenge": {"abc"}, "code_challenge_method": {"plain"}}, want: "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := url.Parse(base)
			require.NoError(t, err)
			q := u.Query()
			for k, v := range tt.query {
				q[k] = v
			}
			u.RawQuery = q.Encode()
			loc, err := p.Authorize(t.Context(), u.String())
			require.NoError(t, err)
			require.Equal(t, tt.want, loc.Query().Get("error"))
			require.Equal(t, "st", loc.Query().Get("state"))
			require.Empty(t, loc.Query().Get("code"))
		})
	}
}

func TestRedirectURIs(t *testing.T) {
	const nonce, verifier = "n", "verifier-0123456789-0123456789-0123456789-xyz"
	p := newProvider(t)
	relying := newRP(t, p, nonce, oauth2.AuthStyleInHeader)

	p.SetRedirectURIs("http://127.0.0.1:1/other")
	authURL := rp.AuthURL("st", relying, rp.WithCodeChallenge(oidc.NewSHACodeChallenge(verifier)))
	_, err := p.Authorize(t.Context(), authURL)
	require.ErrorContains(t, err, "400")

	p.SetRedirectURIs(redirectURI)
	_, err = exchange(t, relying, code(t, p, relying, nonce, verifier), verifier)
	require.NoError(t, err)
}

func TestDown(t *testing.T) {
	const nonce, verifier = "n", "verifier-0123456789-0123456789-0123456789-xyz"
	p := newProvider(t)
	relying := newRP(t, p, nonce, oauth2.AuthStyleInHeader)
	c := code(t, p, relying, nonce, verifier)

	p.SetDown(true)
	before := p.Requests()
	_, err := rp.NewRelyingPartyOIDC(t.Context(), p.Issuer(), clientID, clientSecret, redirectURI, scopes)
	require.Error(t, err)
	_, err = exchange(t, relying, c, verifier)
	requireOAuthError(t, err, "temporarily_unavailable")
	_, err = p.Authorize(t.Context(), rp.AuthURL("st", relying))
	require.ErrorContains(t, err, "503")
	require.Greater(t, p.Requests(), before)

	p.SetDown(false)
	relying = newRP(t, p, nonce, oauth2.AuthStyleInHeader)
	tokens, err := exchange(t, relying, c, verifier) // the code never reached the provider while down
	require.NoError(t, err)
	require.Equal(t, nonce, tokens.IDTokenClaims.Nonce)
}
