package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/internal/oidctest"
)

// TestFederatedLoginSQLite runs IDENT-US-010 end to end against a real
// OpenID Provider (zitadel/oidc op) on the embedded default.
func TestFederatedLoginSQLite(t *testing.T) {
	testFederatedLogin(t, baseEnv(t))
}

// TestFederatedLoginPostgresValkey: the same on Postgres with the flow
// records in Valkey.
func TestFederatedLoginPostgresValkey(t *testing.T) {
	testFederatedLogin(t, postgresValkeyEnv(t))
}

func testFederatedLogin(t *testing.T, env map[string]string) {
	f := newFedWorld(t, env, 0)
	s := f.s

	t.Run("JIT provisioning, then the same user again", func(t *testing.T) {
		f.idp.SetUser(oidctest.User{Subject: "jit-1", Email: "Nurse.Jit@Corp.example", EmailVerified: true, GivenName: "Nurse", FamilyName: "Jit"})
		tok := requireTokenResponse(t, f.login(t))
		require.Equal(t, "nurse.jit@corp.example", tok.User.Email)
		require.Equal(t, "active", tok.User.Status)
		require.Equal(t, f.tenantA.ID, tok.User.TenantID)
		require.Equal(t, []string{"fed"}, s.decodeJWT(t, tok.AccessToken).strs("amr"))
		s.from(t).requireAccepted(t, tok.AccessToken, tok.User.ID)
		ev := s.eventFor(t, "identity.external_identity.linked.v1", tok.User.ID)
		var data map[string]string
		require.NoError(t, json.Unmarshal(ev.Data, &data))
		require.Equal(t, map[string]string{"userId": tok.User.ID, "tenantId": f.tenantA.ID,
			"issuer": f.idp.Issuer(), "subject": "jit-1", "provider": fedSlug}, data)

		again := requireTokenResponse(t, f.login(t))
		require.Equal(t, tok.User.ID, again.User.ID)
		require.Equal(t, 1, f.linkedEvents(t, tok.User.ID), "linked once")
		// The refresh token of a federated session rotates like any other.
		require.Equal(t, http.StatusOK, s.from(t).refresh(t, again.RefreshToken).Status)
	})

	t.Run("a verified IdP email links the existing account", func(t *testing.T) {
		u := s.createUserREST(t, f.tokA, map[string]any{"tenantId": f.tenantA.ID, "email": "doctor@corp.example", "firstName": "Doc", "lastName": "Tor"})
		s.verifyEmail(t, u.ID, goodPassword)
		f.idp.SetUser(oidctest.User{Subject: "doc-1", Email: "doctor@corp.example", EmailVerified: true})
		tok := requireTokenResponse(t, f.login(t))
		require.Equal(t, u.ID, tok.User.ID)
		require.Equal(t, "Doc", tok.User.FirstName)
		require.Equal(t, 1, f.linkedEvents(t, u.ID))
	})

	t.Run("an unverified IdP email never links", func(t *testing.T) {
		u := s.createUserREST(t, f.tokA, map[string]any{"tenantId": f.tenantA.ID, "email": "victim@corp.example", "firstName": "Vic", "lastName": "Tim"})
		f.idp.SetUser(oidctest.User{Subject: "attacker-1", Email: "victim@corp.example", EmailVerified: false})
		requireProblem(t, f.login(t), http.StatusConflict, "IDENT_EMAIL_DUPLICATE")
		require.Zero(t, s.count(t, "SELECT COUNT(*) FROM external_identities WHERE user_id = ?", u.ID))
	})

	t.Run("tampered, replayed and unknown state", func(t *testing.T) {
		f.idp.SetUser(oidctest.User{Subject: "state-1", Email: "state@corp.example", EmailVerified: true})
		cb := f.authorize(t, "")
		requireProblem(t, getRaw(t, withQuery(cb, "state", cb.Query().Get("state")+"x")), http.StatusUnauthorized, "IDENT_INVALID_CREDENTIALS")
		requireTokenResponse(t, getRaw(t, cb.String())) // the genuine state was not consumed by the forgery
		requireProblem(t, getRaw(t, cb.String()), http.StatusUnauthorized, "IDENT_INVALID_CREDENTIALS")
		requireProblem(t, getRaw(t, s.baseURL+"/api/v1/auth/oidc/corp/callback?code=abc"), http.StatusBadRequest, "IDENT_VALIDATION")
	})

	t.Run("wrong nonce in the ID token", func(t *testing.T) {
		f.idp.SetUser(oidctest.User{Subject: "nonce-1", Email: "nonce@corp.example", EmailVerified: true})
		f.idp.SetNonceOverride("not-the-nonce-we-sent")
		defer f.idp.SetNonceOverride("")
		requireProblem(t, f.login(t), http.StatusUnauthorized, "IDENT_INVALID_CREDENTIALS")
		require.Zero(t, s.count(t, "SELECT COUNT(*) FROM external_identities WHERE subject = ?", "nonce-1"))
	})

	t.Run("wrong PKCE verifier", func(t *testing.T) {
		// The code of login 1 presented with the state (so the verifier) of
		// login 2; the IdP puts login 2's nonce into the ID token, so only
		// the PKCE check can refuse it.
		f.idp.SetUser(oidctest.User{Subject: "pkce-1", Email: "pkce@corp.example", EmailVerified: true})
		first := f.authorize(t, "")
		nonce2, second := f.authorizeNonce(t, "")
		f.idp.SetNonceOverride(nonce2)
		defer f.idp.SetNonceOverride("")
		mixed := withQuery(second, "code", first.Query().Get("code"))
		requireProblem(t, getRaw(t, mixed), http.StatusUnauthorized, "IDENT_INVALID_CREDENTIALS")
		require.Zero(t, s.count(t, "SELECT COUNT(*) FROM external_identities WHERE subject = ?", "pkce-1"))
		// Control: the same override with login 3's own code and state succeeds.
		nonce3, third := f.authorizeNonce(t, "")
		f.idp.SetNonceOverride(nonce3)
		requireTokenResponse(t, getRaw(t, third.String()))
	})

	t.Run("hostile ID token claims are refused or cleaned, never a 500", func(t *testing.T) {
		for name, sub := range map[string]string{
			"NUL in subject":     "evil\x00sub",
			"subject over 255 B": strings.Repeat("s", 256),
			"control in subject": "line\nbreak",
		} {
			t.Run(name, func(t *testing.T) {
				f.idp.SetUser(oidctest.User{Subject: sub, Email: "hostile@corp.example", EmailVerified: true})
				requireProblem(t, f.login(t), http.StatusUnauthorized, "IDENT_INVALID_CREDENTIALS")
			})
		}
		require.Zero(t, s.count(t, "SELECT COUNT(*) FROM users WHERE email = ?", "hostile@corp.example"))
		// Names the user directory cannot hold fall back instead of failing the login.
		f.idp.SetUser(oidctest.User{Subject: "names-1", Email: "names@corp.example", EmailVerified: true,
			GivenName: "Nul\x00Name", FamilyName: strings.Repeat("x", 500)})
		requireTokenResponse(t, f.login(t))
	})

	t.Run("the IdP refuses", func(t *testing.T) {
		cb := f.authorize(t, "")
		q := url.Values{"state": {cb.Query().Get("state")}, "error": {"access_denied"}}
		requireProblem(t, getRaw(t, s.baseURL+"/api/v1/auth/oidc/corp/callback?"+q.Encode()), http.StatusUnauthorized, "IDENT_INVALID_CREDENTIALS")
		requireProblem(t, getRaw(t, cb.String()), http.StatusUnauthorized, "IDENT_INVALID_CREDENTIALS") // flow consumed
	})

	t.Run("an IdP account linked in another tenant", func(t *testing.T) {
		f.configure(t, f.tokB, f.tenantB.ID, "corp-b")
		f.idp.SetRedirectURIs(s.baseURL+"/api/v1/auth/oidc/corp/callback", s.baseURL+"/api/v1/auth/oidc/corp-b/callback")
		f.idp.SetUser(oidctest.User{Subject: "jit-1", Email: "nurse.jit@corp.example", EmailVerified: true})
		res := f.start(t, "corp-b", f.tenantB.ID, "")
		require.Equal(t, http.StatusFound, res.Status)
		cb, err := f.idp.Authorize(t.Context(), res.Header.Get("Location"))
		require.NoError(t, err)
		requireProblem(t, getRaw(t, cb.String()), http.StatusConflict, "IDENT_EXT_IDENTITY_MISMATCH")
	})

	t.Run("returnTo gets a one-time login code", func(t *testing.T) {
		f.idp.SetUser(oidctest.User{Subject: "app-1", Email: "app@corp.example", EmailVerified: true})
		cb := f.authorize(t, fedReturnURL+"?tab=home")
		res := getRaw(t, cb.String())
		require.Equal(t, http.StatusFound, res.Status, string(res.Body))
		loc, err := url.Parse(res.Header.Get("Location"))
		require.NoError(t, err)
		require.Equal(t, "ghasi-app", loc.Scheme)
		require.Equal(t, "home", loc.Query().Get("tab"))
		code := loc.Query().Get("code")
		require.NotEmpty(t, code)
		tok := requireTokenResponse(t, s.call(t, http.MethodPost, "/api/v1/auth/oidc/token", "", map[string]string{"code": code}))
		require.Equal(t, "app@corp.example", tok.User.Email)
		require.Equal(t, []string{"fed"}, s.decodeJWT(t, tok.AccessToken).strs("amr"))
		requireProblem(t, s.call(t, http.MethodPost, "/api/v1/auth/oidc/token", "", map[string]string{"code": code}), http.StatusUnauthorized, "IDENT_INVALID_CREDENTIALS")

		requireProblem(t, f.start(t, fedSlug, f.tenantA.ID, "https://evil.example/steal"), http.StatusBadRequest, "IDENT_VALIDATION")
	})

	t.Run("bad start requests", func(t *testing.T) {
		requireProblem(t, f.start(t, "nope", f.tenantA.ID, ""), http.StatusNotFound, "IDENT_NOT_FOUND")
		requireProblem(t, f.start(t, fedSlug, "", ""), http.StatusBadRequest, "IDENT_VALIDATION")
		requireProblem(t, f.start(t, fedSlug, f.tenantB.ID, ""), http.StatusNotFound, "IDENT_NOT_FOUND")
	})

	t.Run("erasure drops the IdP link", func(t *testing.T) {
		f.idp.SetUser(oidctest.User{Subject: "erase-1", Email: "erase@corp.example", EmailVerified: true})
		tok := requireTokenResponse(t, f.login(t))
		res := s.graphql(t, f.tokA, `mutation($id: ID!) { eraseUser(id: $id) { status } }`, map[string]any{"id": tok.User.ID})
		require.Empty(t, res.Errors)
		require.Zero(t, s.count(t, "SELECT COUNT(*) FROM external_identities WHERE user_id = ?", tok.User.ID))
		again := requireTokenResponse(t, f.login(t))
		require.NotEqual(t, tok.User.ID, again.User.ID, "a new account, not the erased one")
	})
}

// TestFederationCircuitBreaker: an IdP that goes down opens the provider's
// circuit after 5 failures; while open, start answers 503 without calling
// the IdP and password login is unaffected; after the open timeout a
// half-open call closes it again.
func TestFederationCircuitBreaker(t *testing.T) {
	const openTimeout = 300 * time.Millisecond
	f := newFedWorld(t, baseEnv(t), openTimeout)
	s := f.s
	f.idp.SetUser(oidctest.User{Subject: "cb-1", Email: "cb@corp.example", EmailVerified: true})
	cb := f.authorize(t, "") // a login in flight when the IdP goes down

	f.idp.SetDown(true)
	requireProblem(t, getRaw(t, cb.String()), http.StatusServiceUnavailable, "IDENT_FEDERATION_UNAVAILABLE")
	for i := 1; i < 5; i++ {
		requireProblem(t, f.start(t, fedSlug, f.tenantA.ID, ""), http.StatusServiceUnavailable, "IDENT_FEDERATION_UNAVAILABLE")
	}
	before := f.idp.Requests()
	for i := 0; i < 3; i++ {
		requireProblem(t, f.start(t, fedSlug, f.tenantA.ID, ""), http.StatusServiceUnavailable, "IDENT_FEDERATION_UNAVAILABLE")
	}
	require.Equal(t, before, f.idp.Requests(), "an open circuit does not call the IdP")
	requireTokenResponse(t, s.from(t).login(t, adminAEmail, goodPassword, nil))

	f.idp.SetDown(false)
	require.Eventually(t, func() bool {
		return f.start(t, fedSlug, f.tenantA.ID, "").Status == http.StatusFound
	}, 5*time.Second, openTimeout/3, "half-open retry after the open timeout closes the circuit")
	requireTokenResponse(t, f.login(t))
}

// TestConfigureOidcProviderRules: authorization, validation and discovery
// checks of configureOidcProvider.
func TestConfigureOidcProviderRules(t *testing.T) {
	f := newFedWorld(t, baseEnv(t), 0)
	s := f.s
	in := func(mut func(map[string]any)) map[string]any {
		m := map[string]any{"tenantId": f.tenantA.ID, "slug": "other", "issuer": f.idp.Issuer(),
			"clientId": fedClientID, "clientSecret": "x"}
		mut(m)
		return map[string]any{"in": m}
	}
	for _, tc := range []struct {
		name, bearer, code string
		mut                func(map[string]any)
	}{
		{"anonymous", "", "IDENT_UNAUTHENTICATED", func(map[string]any) {}},
		{"admin of another tenant", f.tokB, "IDENT_CROSS_TENANT", func(map[string]any) {}},
		{"bad slug", f.tokA, "IDENT_VALIDATION", func(m map[string]any) { m["slug"] = "Not A Slug" }},
		{"issuer without discovery", f.tokA, "IDENT_VALIDATION", func(m map[string]any) { m["issuer"] = s.baseURL + "/nowhere" }},
		{"missing secret", f.tokA, "IDENT_VALIDATION", func(m map[string]any) { m["clientSecret"] = "" }},
		{"bad return URL", f.tokA, "IDENT_VALIDATION", func(m map[string]any) { m["returnUrls"] = []string{"/relative"} }},
		{"unknown tenant", f.super, "IDENT_NOT_FOUND", func(m map[string]any) { m["tenantId"] = "0190f0c0-0000-7000-8000-000000000000" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := s.graphql(t, tc.bearer, configureOidcMutation, in(tc.mut))
			require.Equal(t, tc.code, res.code(), "%+v", res.Errors)
		})
	}
	// Reconfiguring keeps the id; the secret is never stored in clear.
	first := f.configure(t, f.tokA, f.tenantA.ID, fedSlug)
	second := f.configure(t, f.super, f.tenantA.ID, fedSlug)
	require.Equal(t, first["id"], second["id"])
	require.Zero(t, s.count(t, "SELECT COUNT(*) FROM oidc_providers WHERE client_secret = ?", []byte(fedClientSecret)))
}
