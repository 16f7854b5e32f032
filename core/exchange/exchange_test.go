package exchange_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/exchange"
	"github.com/ghasi-ehealth/identity-service/core/keys/keystest"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/core/token"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

const (
	platformIssuer   = "https://identity.test"
	platformAudience = "ghasi-platform"
	upstreamAudience = "ghasi-app"
	tenantSlug       = "clinic"
)

// fakeKeycloak is an OIDC issuer serving discovery and a JWKS whose keys
// can be rotated; it counts JWKS fetches.
type fakeKeycloak struct {
	srv        *httptest.Server
	mu         sync.Mutex
	keys       []jwk.Key // private keys; the JWKS publishes their public halves
	jwksHits   atomic.Int32
	discovered atomic.Int32
}

func newFakeKeycloak(t *testing.T) *fakeKeycloak {
	t.Helper()
	kc := &fakeKeycloak{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /realms/ghasi/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		kc.discovered.Add(1)
		_ = json.NewEncoder(w).Encode(map[string]string{"issuer": kc.issuer(), "jwks_uri": kc.srv.URL + "/realms/ghasi/certs"})
	})
	mux.HandleFunc("GET /realms/ghasi/certs", func(w http.ResponseWriter, r *http.Request) {
		kc.jwksHits.Add(1)
		kc.mu.Lock()
		defer kc.mu.Unlock()
		set := jwk.NewSet()
		for _, k := range kc.keys {
			pub, err := k.PublicKey()
			if err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			_ = set.AddKey(pub)
		}
		_ = json.NewEncoder(w).Encode(set)
	})
	kc.srv = httptest.NewServer(mux)
	t.Cleanup(kc.srv.Close)
	return kc
}

func (kc *fakeKeycloak) issuer() string { return kc.srv.URL + "/realms/ghasi" }

// addKey generates a key with kid, publishes it and returns it.
func (kc *fakeKeycloak) addKey(t *testing.T, kid string, ec bool) jwk.Key {
	t.Helper()
	k := newKey(t, kid, ec)
	kc.mu.Lock()
	kc.keys = append(kc.keys, k)
	kc.mu.Unlock()
	return k
}

func newKey(t *testing.T, kid string, ec bool) jwk.Key {
	t.Helper()
	var raw any
	var err error
	alg := jwa.RS256()
	if ec {
		raw, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		alg = jwa.ES256()
	} else {
		raw, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	require.NoError(t, err)
	k, err := jwk.Import(raw)
	require.NoError(t, err)
	require.NoError(t, k.Set(jwk.KeyIDKey, kid))
	require.NoError(t, k.Set(jwk.AlgorithmKey, alg))
	return k
}

// sign signs claims with k (its alg, its kid) using jwx.
func sign(t *testing.T, k jwk.Key, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	require.NoError(t, err)
	kid, _ := k.KeyID()
	ka, _ := k.Algorithm()
	alg, ok := jwa.LookupSignatureAlgorithm(ka.String())
	require.True(t, ok)
	hdrs := jws.NewHeaders()
	require.NoError(t, hdrs.Set(jws.KeyIDKey, kid))
	require.NoError(t, hdrs.Set(jws.TypeKey, "JWT"))
	out, err := jws.Sign(payload, jws.WithKey(alg, k, jws.WithProtectedHeaders(hdrs)))
	require.NoError(t, err)
	return string(out)
}

type fixture struct {
	kc       *fakeKeycloak
	key      jwk.Key
	clock    *core.FixedClock
	db       *persistence.DB
	svc      *exchange.Service
	verifier *token.Verifier
	tenantID string
	otherID  string
	user     user.User
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{kc: newFakeKeycloak(t), db: dbtest.SQLite(t)}
	f.key = f.kc.addKey(t, "k1", false)
	f.clock = core.NewFixedClock(time.Now().Truncate(time.Second))

	ks, _ := keystest.New(t, f.db, f.clock)
	issuer := token.NewIssuer(ks, platformIssuer, platformAudience, f.clock, 0)
	f.verifier = token.NewVerifier(ks, platformIssuer, platformAudience, f.clock, nil)

	dir := persistence.NewDirectoryStore(f.db)
	f.tenantID, f.otherID = core.NewID(), core.NewID()
	for id, slug := range map[string]string{f.tenantID: tenantSlug, f.otherID: "other"} {
		require.NoError(t, dir.CreateTenant(ctx, tenancy.Tenant{ID: id, Slug: slug, Name: slug, CreatedAt: f.clock.Now(), UpdatedAt: f.clock.Now()}))
	}
	f.user = f.addUser(t, "ada@example.org", user.StatusActive)
	require.NoError(t, dir.AddMembership(ctx, core.Membership{UserID: f.user.ID, TenantID: f.tenantID, Roles: []string{"CLINICIAN"}}))
	require.NoError(t, dir.AddMembership(ctx, core.Membership{UserID: f.user.ID, TenantID: f.otherID, Roles: []string{"CLINICIAN"}}))

	up, err := exchange.NewOIDCVerifier(exchange.UpstreamConfig{Issuer: f.kc.issuer(), Audience: upstreamAudience, Clock: f.clock})
	require.NoError(t, err)
	st := persistence.NewExchangeStore(f.db)
	f.svc = exchange.NewService(st, st, issuer, dir, up, exchange.Config{TenantRef: tenantSlug, Audience: platformAudience, Clock: f.clock})
	return f
}

func (f *fixture) addUser(t *testing.T, email string, status user.Status) user.User {
	t.Helper()
	u := user.User{ID: core.NewID(), TenantID: f.tenantID, Email: email, FirstName: "Ada", LastName: "Lovelace",
		Status: status, CreatedAt: f.clock.Now(), UpdatedAt: f.clock.Now()}
	require.NoError(t, persistence.NewDirectoryStore(f.db).CreateUser(context.Background(), u))
	return u
}

func (f *fixture) claims(sub, email string) map[string]any {
	now := f.clock.Now().Unix()
	return map[string]any{
		"iss": f.kc.issuer(), "sub": sub, "aud": []string{upstreamAudience, "account"}, "azp": "other-client",
		"exp": now + 300, "iat": now, "typ": "Bearer", "email": email, "email_verified": true,
	}
}

func req(tok string) exchange.Request {
	return exchange.Request{GrantType: exchange.GrantType, SubjectToken: tok, SubjectTokenType: exchange.TokenTypeAccessToken}
}

func requireInvalid(t *testing.T, err error, msg string) {
	t.Helper()
	require.Error(t, err, msg)
	require.Equal(t, core.CodeInvalidCredentials, core.CodeOf(err), msg)
	require.Equal(t, core.KindUnauthenticated, core.AsError(err).Kind, msg)
}

func TestExchangeMatchesByEmailThenBySub(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	st := persistence.NewExchangeStore(f.db)
	sub := "kc-" + core.NewID()

	_, err := st.UserByKeycloakID(ctx, sub)
	require.Equal(t, core.CodeNotFound, core.CodeOf(err))

	res, err := f.svc.Exchange(ctx, req(sign(t, f.key, f.claims(sub, "  Ada@Example.org "))))
	require.NoError(t, err)
	require.Equal(t, token.DefaultTTL, res.ExpiresIn)

	p, err := f.verifier.Verify(ctx, res.AccessToken)
	require.NoError(t, err)
	require.Equal(t, f.user.ID, p.ID)
	require.Equal(t, f.tenantID, p.TenantID)
	require.Equal(t, []string{f.tenantID, f.otherID}, p.TenantIDs)
	require.Equal(t, []string{token.AMRExchange}, p.AMR)
	require.NotContains(t, p.TokenID, ".", "not session-bound")

	linked, err := st.UserByKeycloakID(ctx, sub)
	require.NoError(t, err, "keycloak_user_id backfilled")
	require.Equal(t, f.user.ID, linked.ID)

	// The second exchange finds the user by sub, whatever the email says.
	c := f.claims(sub, "someone-else@example.org")
	c["email_verified"] = false
	res, err = f.svc.Exchange(ctx, req(sign(t, f.key, c)))
	require.NoError(t, err)
	p, err = f.verifier.Verify(ctx, res.AccessToken)
	require.NoError(t, err)
	require.Equal(t, f.user.ID, p.ID)

	// Another upstream account with the same verified email cannot take the
	// linked user over.
	_, err = f.svc.Exchange(ctx, req(sign(t, f.key, f.claims("kc-intruder", "ada@example.org"))))
	requireInvalid(t, err, "already linked to another sub")
	require.ErrorIs(t, err, exchange.ErrLinked)
}

func TestExchangeTenantByID(t *testing.T) {
	f := newFixture(t)
	st := persistence.NewExchangeStore(f.db)
	id, err := st.TenantIDByRef(context.Background(), f.tenantID)
	require.NoError(t, err)
	require.Equal(t, f.tenantID, id)
	id, err = st.TenantIDByRef(context.Background(), tenantSlug)
	require.NoError(t, err)
	require.Equal(t, f.tenantID, id)
	_, err = st.TenantIDByRef(context.Background(), "nope")
	require.Equal(t, core.CodeNotFound, core.CodeOf(err))
}

func TestExchangeRejects(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	f.addUser(t, "suspended@example.org", user.StatusSuspended)
	other := newKey(t, "k1", false) // same kid, not published
	now := f.clock.Now().Unix()

	cases := map[string]func() string{
		"unverified email": func() string {
			c := f.claims("kc-1", "ada@example.org")
			c["email_verified"] = false
			return sign(t, f.key, c)
		},
		"unknown email": func() string { return sign(t, f.key, f.claims("kc-2", "nobody@example.org")) },
		"inactive user": func() string { return sign(t, f.key, f.claims("kc-3", "suspended@example.org")) },
		"expired": func() string {
			c := f.claims("kc-4", "ada@example.org")
			c["exp"] = now - 31
			return sign(t, f.key, c)
		},
		"not yet valid": func() string {
			c := f.claims("kc-5", "ada@example.org")
			c["nbf"] = now + 60
			return sign(t, f.key, c)
		},
		"wrong issuer": func() string {
			c := f.claims("kc-6", "ada@example.org")
			c["iss"] = "https://evil.example/realms/ghasi"
			return sign(t, f.key, c)
		},
		"wrong audience": func() string {
			c := f.claims("kc-7", "ada@example.org")
			c["aud"] = "account"
			return sign(t, f.key, c)
		},
		"no exp": func() string {
			c := f.claims("kc-8", "ada@example.org")
			delete(c, "exp")
			return sign(t, f.key, c)
		},
		"refresh token typ": func() string {
			c := f.claims("kc-9", "ada@example.org")
			c["typ"] = "Refresh"
			return sign(t, f.key, c)
		},
		"forged (other key)": func() string { return sign(t, other, f.claims("kc-10", "ada@example.org")) },
		"alg none": func() string {
			h, _ := json.Marshal(map[string]string{"alg": "none", "kid": "k1", "typ": "JWT"})
			p, _ := json.Marshal(f.claims("kc-11", "ada@example.org"))
			return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p) + "."
		},
		"HS256 with the public key": func() string {
			h, _ := json.Marshal(map[string]string{"alg": "HS256", "kid": "k1"})
			p, _ := json.Marshal(f.claims("kc-12", "ada@example.org"))
			return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p) + ".AAAA"
		},
		"garbage": func() string { return "not.a.jwt" },
	}
	for name, mk := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := f.svc.Exchange(ctx, req(mk()))
			requireInvalid(t, err, name)
		})
	}
	_, err := persistence.NewExchangeStore(f.db).UserByKeycloakID(ctx, "kc-1")
	require.Equal(t, core.CodeNotFound, core.CodeOf(err), "nothing linked by a rejected exchange")

	// Within the leeway, and azp instead of aud, are accepted.
	c := f.claims("kc-ok", "ada@example.org")
	c["exp"] = now - 20
	c["aud"] = "account"
	c["azp"] = upstreamAudience
	_, err = f.svc.Exchange(ctx, req(sign(t, f.key, c)))
	require.NoError(t, err)
}

// TestExchangeRefusesHostileClaims: an upstream token correctly signed by
// the realm whose sub or email no database can hold (NUL, invalid UTF-8,
// control characters, an over-long sub) is IDENT_INVALID_CREDENTIALS before
// any lookup; nothing is linked. (Invalid UTF-8 cannot come out of the
// verifier: JSON decoding replaces it with U+FFFD.)
func TestExchangeRefusesHostileClaims(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	for name, tc := range map[string]struct {
		sub, email string
		cause      error
	}{
		"NUL in sub":         {"kc\x00evil", "ada@example.org", exchange.ErrSubject},
		"DEL in sub":         {"kc\x7fevil", "ada@example.org", exchange.ErrSubject},
		"line break in sub":  {"kc\r\nevil", "ada@example.org", exchange.ErrSubject},
		"sub over 255 bytes": {strings.Repeat("s", core.MaxSubjectLen+1), "ada@example.org", exchange.ErrSubject},
		"NUL in email":       {"kc-nul-email", "ada\x00@example.org", exchange.ErrUnknownUser},
		"not an address":     {"kc-bad-email", "ada lovelace", exchange.ErrUnknownUser},
		"control in email":   {"kc-bel-email", "ada\a@example.org", exchange.ErrUnknownUser},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := f.svc.Exchange(ctx, req(sign(t, f.key, f.claims(tc.sub, tc.email))))
			requireInvalid(t, err, name)
			require.ErrorIs(t, err, tc.cause)
		})
	}
	var linked int
	require.NoError(t, f.db.Bun().QueryRowContext(ctx, `SELECT count(*) FROM users WHERE keycloak_user_id IS NOT NULL`).Scan(&linked))
	require.Zero(t, linked, "nothing linked")

	// The longest sub OpenID Connect allows still links.
	_, err := f.svc.Exchange(ctx, req(sign(t, f.key, f.claims(strings.Repeat("s", core.MaxSubjectLen), "ada@example.org"))))
	require.NoError(t, err)
}

func TestExchangeUnknownKidRefreshesOnce(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	_, err := f.svc.Exchange(ctx, req(sign(t, f.key, f.claims("kc-a", "ada@example.org"))))
	require.NoError(t, err)
	require.EqualValues(t, 1, f.kc.jwksHits.Load())
	require.EqualValues(t, 1, f.kc.discovered.Load())

	// Rotate: publish an EC key k2. Right after a fetch, the unknown kid is
	// refused without a new fetch.
	k2 := f.kc.addKey(t, "k2", true)
	tok := sign(t, k2, f.claims("kc-a", "ada@example.org"))
	_, err = f.svc.Exchange(ctx, req(tok))
	requireInvalid(t, err, "rate-limited refresh")
	require.ErrorIs(t, err, exchange.ErrUpstreamKey)
	require.EqualValues(t, 1, f.kc.jwksHits.Load())

	f.clock.Advance(exchange.MinRefreshInterval)
	_, err = f.svc.Exchange(ctx, req(tok))
	require.NoError(t, err, "one refresh finds k2")
	require.EqualValues(t, 2, f.kc.jwksHits.Load())
	_, err = f.svc.Exchange(ctx, req(tok))
	require.NoError(t, err)
	require.EqualValues(t, 2, f.kc.jwksHits.Load(), "cached")

	_, err = f.svc.Exchange(ctx, req(sign(t, newKey(t, "k3", false), f.claims("kc-a", "ada@example.org"))))
	requireInvalid(t, err, "unknown kid")
	require.EqualValues(t, 2, f.kc.jwksHits.Load(), "at most one refresh a minute")
	require.EqualValues(t, 1, f.kc.discovered.Load(), "discovery once")
}

func TestExchangeRequestShape(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tok := sign(t, f.key, f.claims("kc-x", "ada@example.org"))
	oauth := func(err error) *exchange.OAuthError {
		t.Helper()
		oe, ok := err.(*exchange.OAuthError)
		require.True(t, ok, "%v", err)
		require.Equal(t, http.StatusBadRequest, oe.Status)
		return oe
	}
	r := req(tok)
	r.GrantType = "client_credentials"
	_, err := f.svc.Exchange(ctx, r)
	require.Equal(t, exchange.ErrUnsupportedGrantType, oauth(err).Code)

	r = req(tok)
	r.GrantType = ""
	_, err = f.svc.Exchange(ctx, r)
	require.Equal(t, exchange.ErrInvalidRequest, oauth(err).Code)

	r = req(tok)
	r.SubjectTokenType = "urn:ietf:params:oauth:token-type:id_token"
	_, err = f.svc.Exchange(ctx, r)
	require.Equal(t, exchange.ErrInvalidRequest, oauth(err).Code)

	r = req("")
	_, err = f.svc.Exchange(ctx, r)
	require.Equal(t, exchange.ErrInvalidRequest, oauth(err).Code)

	r = req(tok)
	r.Audience = "elsewhere"
	_, err = f.svc.Exchange(ctx, r)
	require.Equal(t, exchange.ErrInvalidTarget, oauth(err).Code)

	disabled := exchange.NewService(nil, nil, nil, nil, nil, exchange.Config{})
	_, err = disabled.Exchange(ctx, req(tok))
	oe := oauth(err)
	require.Equal(t, exchange.ErrUnsupportedGrantType, oe.Code)
	require.True(t, strings.Contains(oe.Description, "not enabled"))
	require.EqualValues(t, 0, f.kc.jwksHits.Load(), "no upstream call for a bad request")
}

func TestExchangeUpstreamDown(t *testing.T) {
	f := newFixture(t)
	f.kc.srv.Close()
	_, err := f.svc.Exchange(context.Background(), req(sign(t, f.key, f.claims("kc-d", "ada@example.org"))))
	require.Equal(t, core.CodeUnavailable, core.CodeOf(err))
}

func TestNewOIDCVerifierChecksURL(t *testing.T) {
	for _, iss := range []string{"", "ftp://kc.example/realms/x", "file:///etc/passwd", "kc.example"} {
		_, err := exchange.NewOIDCVerifier(exchange.UpstreamConfig{Issuer: iss, Audience: "a"})
		require.Error(t, err, iss)
	}
	_, err := exchange.NewOIDCVerifier(exchange.UpstreamConfig{Issuer: "https://kc.example/realms/x"})
	require.Error(t, err, "audience required")
}
