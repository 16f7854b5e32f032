// Package oidctest runs a real OpenID Provider, built with
// github.com/zitadel/oidc/v3/pkg/op and an in-memory op.Storage, on an
// httptest.Server over plain HTTP, for integration tests of relying parties
// that use the Authorization Code flow with PKCE.
//
// The provider serves discovery (/.well-known/openid-configuration),
// /authorize, /oauth/token (client_secret_basic and client_secret_post),
// /keys (JWKS) and /userinfo, and signs ID tokens with RS256. It knows one
// confidential client (Config) whose redirect URIs must match exactly. It
// requires PKCE with S256 (a missing code_challenge or the plain method is
// answered invalid_request at the redirect URI; a wrong code_verifier is
// answered invalid_grant by the token endpoint) and codes are single-use. The
// scopes openid, email and profile are supported; ID tokens carry iss, sub,
// aud, exp, iat, auth_time, nonce, and, as granted by the scopes, email,
// email_verified, given_name, family_name and name. Refresh tokens, token
// exchange, device flow and JWT profile are not supported.
//
// There is no login UI: the authorize endpoint redirects to a login handler
// on the same server which signs in the current user (SetUser) at once. Use
// Provider.Authorize to play the browser.
package oidctest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Config configures the one client the Provider knows.
type Config struct {
	// ClientID and ClientSecret authenticate the client at the token
	// endpoint. Both are required.
	ClientID, ClientSecret string
	// RedirectURIs are the exact redirect URIs the client may use; they may
	// be changed later with SetRedirectURIs.
	RedirectURIs []string
}

// User is the end user who signs in.
type User struct {
	Subject       string
	Email         string
	EmailVerified bool
	GivenName     string
	FamilyName    string
}

// defaultUser signs in until SetUser is called.
var defaultUser = User{
	Subject:       "oidctest-user",
	Email:         "user@example.test",
	EmailVerified: true,
	GivenName:     "Test",
	FamilyName:    "User",
}

const loginPath = "/oidctest/login"

// maxHops bounds the redirects Authorize follows inside the provider.
const maxHops = 10

// Provider is a running OpenID Provider. Its methods are safe for concurrent
// use.
type Provider struct {
	srv      *httptest.Server
	op       *op.Provider
	store    *storage
	issuer   string
	handler  http.Handler
	down     atomic.Bool
	requests atomic.Int64
}

// New starts a Provider for cfg; tb.Cleanup closes it. A fresh 2048-bit RSA
// signing key is generated for each Provider. Until SetUser is called, the
// user who signs in has the subject "oidctest-user", the verified email
// "user@example.test", and the name "Test User".
func New(tb testing.TB, cfg Config) *Provider {
	tb.Helper()
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		tb.Fatal("oidctest: Config.ClientID and Config.ClientSecret are required")
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatalf("oidctest: generate signing key: %v", err)
	}
	var cryptoKey [32]byte
	if _, err := rand.Read(cryptoKey[:]); err != nil {
		tb.Fatalf("oidctest: generate crypto key: %v", err)
	}

	p := &Provider{}
	p.srv = httptest.NewUnstartedServer(http.HandlerFunc(p.serveHTTP))
	p.issuer = "http://" + p.srv.Listener.Addr().String()
	p.store = newStorage(cfg, p.issuer+loginPath, key)
	p.op, err = op.NewProvider(&op.Config{
		CryptoKey:       cryptoKey,
		CodeMethodS256:  true,
		AuthMethodPost:  true,
		SupportedScopes: []string{oidc.ScopeOpenID, oidc.ScopeEmail, oidc.ScopeProfile},
	}, p.store, op.StaticIssuer(p.issuer), op.WithAllowInsecure())
	if err != nil {
		p.srv.Close()
		tb.Fatalf("oidctest: create provider: %v", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc(loginPath, p.login)
	mux.Handle("/", p.op)
	p.handler = mux
	p.srv.Start()
	tb.Cleanup(p.srv.Close)
	return p
}

// Issuer returns the issuer URL, e.g. http://127.0.0.1:PORT (no trailing
// slash); discovery is at Issuer()+"/.well-known/openid-configuration".
func (p *Provider) Issuer() string { return p.issuer }

// SetRedirectURIs replaces the client's registered redirect URIs. It affects
// later authorize requests; a code is bound to the redirect_uri of its own
// authorize request.
func (p *Provider) SetRedirectURIs(uris ...string) {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	p.store.redirectURIs = slices.Clone(uris)
}

// SetUser sets the user who signs in at later authorize requests (the login
// is approved at once, without UI). Codes already issued keep their user.
func (p *Provider) SetUser(u User) {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	p.store.user = u
}

// SetDown makes the provider fail (down=true) or serve again (down=false).
// While down, every request, to any path (discovery, authorize, login, token,
// JWKS, userinfo...), is answered 503 Service Unavailable with the JSON body
// {"error":"temporarily_unavailable",...} and does not reach the provider, so
// no state changes (a code sent to the token endpoint while down stays
// valid). Connections are not dropped.
func (p *Provider) SetDown(down bool) { p.down.Store(down) }

// SetNonceOverride makes ID tokens issued from now on carry nonce instead of
// the nonce of their authorize request, to test the relying party's nonce
// check. The empty string turns the override off.
func (p *Provider) SetNonceOverride(nonce string) {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	p.store.nonceOverride = nonce
}

// Requests returns the number of HTTP requests the server has received,
// including those failed while down and the internal redirects followed by
// Authorize (one Authorize is usually 3 requests: authorize, login,
// callback).
func (p *Provider) Requests() int { return int(p.requests.Load()) }

func (p *Provider) serveHTTP(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	if p.down.Load() {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"error":"temporarily_unavailable","error_description":"oidctest: provider is down"}`)
		return
	}
	p.handler.ServeHTTP(w, r)
}

// login stands in for the login UI: it signs the current user in for the
// auth request and sends the browser back to the op's callback.
func (p *Provider) login(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("authRequestID")
	if err := p.store.completeLogin(id); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	ctx := op.ContextWithIssuer(r.Context(), p.issuer)
	http.Redirect(w, r, op.AuthCallbackURL(p.op)(ctx, id), http.StatusFound)
}

// Authorize plays the user's browser: it GETs authURL (the provider's
// authorize URL with client_id, redirect_uri, scope, state, nonce,
// code_challenge...), follows the provider's own redirects (login, callback)
// and returns the final redirect Location, which points at the client's
// redirect_uri and carries code and state, or error, error_description and
// state. That Location is not requested.
//
// Authorize fails if authURL is not on the provider, or if the provider
// answers with something other than a redirect, e.g. 400 with an error page
// for an unknown client or an unregistered redirect_uri (the op does not
// redirect errors to an unverified redirect_uri), or 503 while down.
func (p *Provider) Authorize(ctx context.Context, authURL string) (*url.URL, error) {
	cur, err := url.Parse(authURL)
	if err != nil {
		return nil, fmt.Errorf("oidctest: parse auth URL: %w", err)
	}
	if !p.onProvider(cur) {
		return nil, fmt.Errorf("oidctest: auth URL %s is not on the provider %s", cur.Redacted(), p.issuer)
	}
	target, _ := url.Parse(cur.Query().Get("redirect_uri"))
	client := &http.Client{
		Transport: p.srv.Client().Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	for range maxHops {
		loc, err := p.hop(ctx, client, cur)
		if err != nil {
			return nil, err
		}
		if !p.onProvider(loc) || sameEndpoint(loc, target) {
			return loc, nil
		}
		cur = loc
	}
	return nil, errors.New("oidctest: too many redirects inside the provider")
}

// hop requests u and returns the Location of its redirect.
func (p *Provider) hop(ctx context.Context, client *http.Client, u *url.URL) (*url.URL, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("oidctest: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("oidctest: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch resp.StatusCode {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
	default:
		return nil, fmt.Errorf("oidctest: GET %s: %s: %s", u.Path, resp.Status, strings.TrimSpace(string(body)))
	}
	loc, err := resp.Location()
	if err != nil {
		return nil, fmt.Errorf("oidctest: GET %s: redirect: %w", u.Path, err)
	}
	return loc, nil
}

func (p *Provider) onProvider(u *url.URL) bool {
	return u.Scheme == "http" && u.Host == p.srv.Listener.Addr().String()
}

// sameEndpoint reports whether u is target, ignoring query and fragment.
func sameEndpoint(u, target *url.URL) bool {
	return target != nil && u.Scheme == target.Scheme && u.Host == target.Host && u.Path == target.Path
}
