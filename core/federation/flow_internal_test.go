package federation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/require"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/ghasi-ehealth/identity-service/core"
)

const appReturn = "https://app.example.org/auth/done"

// --- Start -------------------------------------------------------------------

func TestStartGuards(t *testing.T) {
	f := newFixture(t)
	f.seedProvider(t, f.tenantA, "okta", f.idp.issuer(), appReturn, "ghasi-app://callback")
	f.seedProvider(t, f.tenantB, "plain", f.idp.issuer())

	cases := []struct {
		name  string
		in    StartInput
		code  string
		field string
	}{
		{"tenant id empty", StartInput{Slug: "okta"}, core.CodeValidation, "tenantId"},
		{"tenant id not a UUID", StartInput{TenantID: "clinic-a", Slug: "okta"}, core.CodeValidation, "tenantId"},
		{"unknown provider", StartInput{TenantID: f.tenantA, Slug: "nope"}, core.CodeNotFound, ""},
		{"provider of another tenant", StartInput{TenantID: f.tenantA, Slug: "plain"}, core.CodeNotFound, ""},
		{"unknown tenant", StartInput{TenantID: core.NewID(), Slug: "okta"}, core.CodeNotFound, ""},
		{"returnTo not allow-listed", StartInput{TenantID: f.tenantA, Slug: "okta", ReturnTo: "https://evil.example.org/auth/done"},
			core.CodeValidation, "returnTo"},
		{"returnTo other path", StartInput{TenantID: f.tenantA, Slug: "okta", ReturnTo: "https://app.example.org/other"},
			core.CodeValidation, "returnTo"},
		{"returnTo with fragment", StartInput{TenantID: f.tenantA, Slug: "okta", ReturnTo: appReturn + "#x"},
			core.CodeValidation, "returnTo"},
		{"returnTo for a provider without return URLs", StartInput{TenantID: f.tenantB, Slug: "plain", ReturnTo: appReturn},
			core.CodeValidation, "returnTo"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.svc.Start(context.Background(), tc.in)
			requireCode(t, tc.code, err)
			if tc.field != "" {
				requireFields(t, err, tc.field)
			}
		})
	}
	require.Zero(t, f.idp.discoveryHits.Load(), "refused starts never reach the IdP")
	require.Zero(t, f.flows.len())
}

func TestStartAuthorizationURLAndFlowRecord(t *testing.T) {
	f := newFixtureWith(t, func(c *Config) { c.FlowTTL = 3 * time.Minute })
	p := f.seedProvider(t, f.tenantA, "okta", f.idp.issuer(), appReturn)

	for _, returnTo := range []string{"", appReturn + "?tab=2"} {
		t.Run("returnTo="+returnTo, func(t *testing.T) {
			to, err := f.svc.Start(context.Background(), StartInput{TenantID: f.tenantA, Slug: "okta", ReturnTo: returnTo})
			require.NoError(t, err)
			u, err := url.Parse(to)
			require.NoError(t, err)
			require.Equal(t, f.idp.srv.URL+"/authorize", u.Scheme+"://"+u.Host+u.Path)
			q := u.Query()
			require.Equal(t, "client-okta", q.Get("client_id"))
			require.Equal(t, "https://id.example.org/api/v1/auth/oidc/okta/callback", q.Get("redirect_uri"))
			require.Equal(t, "code", q.Get("response_type"))
			require.Equal(t, "openid email profile", q.Get("scope"))
			require.Equal(t, "S256", q.Get("code_challenge_method"))
			state, nonce := q.Get("state"), q.Get("nonce")
			require.GreaterOrEqual(t, len(state), 43)
			require.GreaterOrEqual(t, len(nonce), 43)
			require.NotContains(t, to, "client-secret", "the secret never appears in the URL")

			raw, ttl, ok := f.flows.get(recordKey(statePrefix, state))
			require.True(t, ok, "the flow is stored under the state's hash")
			require.Equal(t, 3*time.Minute, ttl)
			_, _, plain := f.flows.get(state)
			require.False(t, plain, "the state itself is not a key")
			var rec flowRecord
			require.NoError(t, json.Unmarshal(raw, &rec))
			require.Equal(t, flowRecord{ProviderID: p.ID, TenantID: f.tenantA, Slug: "okta", Nonce: nonce,
				Verifier: rec.Verifier, ReturnTo: returnTo}, rec)
			require.Equal(t, oidc.NewSHACodeChallenge(rec.Verifier), q.Get("code_challenge"))
			require.NotEqual(t, nonce, rec.Verifier)
		})
	}

	// Each start is a fresh flow.
	a, err := f.svc.Start(context.Background(), StartInput{TenantID: f.tenantA, Slug: "okta"})
	require.NoError(t, err)
	b, err := f.svc.Start(context.Background(), StartInput{TenantID: f.tenantA, Slug: "okta"})
	require.NoError(t, err)
	ua, _ := url.Parse(a)
	ub, _ := url.Parse(b)
	require.NotEqual(t, ua.Query().Get("state"), ub.Query().Get("state"))
	require.NotEqual(t, ua.Query().Get("nonce"), ub.Query().Get("nonce"))
	require.NotEqual(t, ua.Query().Get("code_challenge"), ub.Query().Get("code_challenge"))
	require.Equal(t, 4, f.flows.len())
}

func TestStartFailures(t *testing.T) {
	t.Run("flow store down", func(t *testing.T) {
		f := newFixture(t)
		f.seedProvider(t, f.tenantA, "okta", f.idp.issuer())
		f.flows.err = core.Unavailable(errors.New("valkey down"))
		_, err := f.svc.Start(context.Background(), StartInput{TenantID: f.tenantA, Slug: "okta"})
		requireCode(t, core.CodeUnavailable, err)
	})
	t.Run("secret sealed for another provider", func(t *testing.T) {
		f := newFixture(t)
		p := f.seedProvider(t, f.tenantA, "okta", f.idp.issuer())
		other, err := f.sealer.Wrap([]byte("s"), secretAAD(f.tenantB, "okta"))
		require.NoError(t, err)
		p.ClientSecret = other
		f.store.providers[p.ID] = p
		_, err = f.svc.Start(context.Background(), StartInput{TenantID: f.tenantA, Slug: "okta"})
		requireCode(t, core.CodeInternal, err)
		require.Zero(t, f.idp.discoveryHits.Load())
	})
}

func TestProviderAllowedReturnTo(t *testing.T) {
	p := Provider{ReturnURLs: []string{appReturn, "ghasi-app://callback", "http://localhost:5173/cb"}}
	cases := []struct {
		raw  string
		want bool
	}{
		{appReturn, true},
		{appReturn + "?tab=2&x=y", true},
		{appReturn + "?", false},
		{"ghasi-app://callback", true},
		{"ghasi-app://callback?x=1", true},
		{"http://localhost:5173/cb?next=/home", true},
		{"https://app.example.org/auth/other", false},
		{"https://app.example.org/auth/done/", false},
		{"https://app.example.org/auth", false},
		{"https://app.example.org/auth/done/../done", false},
		{"https://evil.example.org/auth/done", false},
		{"https://app.example.org.evil.org/auth/done", false},
		{"https://app.example.org:8443/auth/done", false},
		{"http://app.example.org/auth/done", false},
		{appReturn + "#frag", false},
		{appReturn + "?x=1#frag", false},
		{"https://u:p@app.example.org/auth/done", false},
		{"https://u@app.example.org/auth/done", false},
		{"//app.example.org/auth/done", false},
		{"/auth/done", false},
		{"", false},
		{"https://app.example.org/%zz", false},
		{"ghasi-app://other", false},
	}
	for _, tc := range cases {
		require.Equal(t, tc.want, p.allowedReturnTo(tc.raw), tc.raw)
	}
	require.False(t, Provider{}.allowedReturnTo(appReturn), "no return URLs: nothing allowed")
}

// --- Callback ------------------------------------------------------------------

func (f *fixture) flowFor(p Provider, returnTo string) flowRecord {
	return flowRecord{ProviderID: p.ID, TenantID: p.TenantID, Slug: p.Slug, Nonce: "nonce-" + p.Slug,
		Verifier: "verifier-" + p.Slug, ReturnTo: returnTo}
}

func TestCallbackGuards(t *testing.T) {
	f := newFixture(t)
	p := f.seedProvider(t, f.tenantA, "okta", f.idp.issuer())
	ctx := context.Background()

	t.Run("missing state", func(t *testing.T) {
		_, err := f.svc.Callback(ctx, CallbackInput{Slug: "okta", Code: "c"})
		requireFields(t, err, "state")
	})
	t.Run("missing code and error", func(t *testing.T) {
		f.flows.putFlow(t, "s-nocode", f.flowFor(p, ""))
		_, err := f.svc.Callback(ctx, CallbackInput{Slug: "okta", State: "s-nocode"})
		requireFields(t, err, "code")
		_, _, ok := f.flows.get(recordKey(statePrefix, "s-nocode"))
		require.True(t, ok, "a malformed callback does not burn the flow")
	})
	t.Run("unknown state", func(t *testing.T) {
		_, err := f.svc.Callback(ctx, CallbackInput{Slug: "okta", State: "never-issued", Code: "c"})
		requireCode(t, core.CodeInvalidCredentials, err)
		require.ErrorIs(t, err, ErrUnknownState)
		require.Equal(t, core.KindUnauthenticated, core.KindOf(err))
		require.Equal(t, "the federated login was not accepted", core.AsError(err).Msg, "the cause is not shown")
	})
	t.Run("corrupt flow record", func(t *testing.T) {
		require.NoError(t, f.flows.Put(ctx, recordKey(statePrefix, "s-corrupt"), []byte("{not json"), time.Minute))
		_, err := f.svc.Callback(ctx, CallbackInput{Slug: "okta", State: "s-corrupt", Code: "c"})
		requireCode(t, core.CodeInvalidCredentials, err)
		require.ErrorIs(t, err, ErrUnknownState)
	})
	t.Run("IdP error consumes the flow; the state is single-use", func(t *testing.T) {
		f.flows.putFlow(t, "s-denied", f.flowFor(p, ""))
		_, err := f.svc.Callback(ctx, CallbackInput{Slug: "okta", State: "s-denied", Error: "access_denied",
			ErrorDescription: "the user cancelled"})
		requireCode(t, core.CodeInvalidCredentials, err)
		require.ErrorIs(t, err, ErrIdPRefused)
		require.ErrorContains(t, err, "access_denied")
		_, _, ok := f.flows.get(recordKey(statePrefix, "s-denied"))
		require.False(t, ok, "the flow is consumed")

		_, err = f.svc.Callback(ctx, CallbackInput{Slug: "okta", State: "s-denied", Code: "c"})
		requireCode(t, core.CodeInvalidCredentials, err)
		require.ErrorIs(t, err, ErrUnknownState)
	})
	t.Run("state of another provider", func(t *testing.T) {
		f.flows.putFlow(t, "s-other", f.flowFor(p, ""))
		_, err := f.svc.Callback(ctx, CallbackInput{Slug: "azure", State: "s-other", Code: "c"})
		requireCode(t, core.CodeInvalidCredentials, err)
		require.ErrorIs(t, err, ErrProviderChanged)
		// Consumed: not even the right slug can use it afterwards.
		_, err = f.svc.Callback(ctx, CallbackInput{Slug: "okta", State: "s-other", Code: "c"})
		require.ErrorIs(t, err, ErrUnknownState)
	})
	t.Run("provider deleted since Start", func(t *testing.T) {
		gone := p
		gone.ID = core.NewID()
		f.flows.putFlow(t, "s-gone", f.flowFor(gone, ""))
		_, err := f.svc.Callback(ctx, CallbackInput{Slug: "okta", State: "s-gone", Code: "c"})
		requireCode(t, core.CodeInvalidCredentials, err)
		require.ErrorIs(t, err, ErrProviderChanged)
	})
	t.Run("a login code is not a state", func(t *testing.T) {
		require.NoError(t, f.flows.Put(ctx, recordKey(codePrefix, "login-code"), []byte(`{"userId":"u"}`), time.Minute))
		_, err := f.svc.Callback(ctx, CallbackInput{Slug: "okta", State: "login-code", Code: "c"})
		require.ErrorIs(t, err, ErrUnknownState)
		_, _, ok := f.flows.get(recordKey(codePrefix, "login-code"))
		require.True(t, ok)
	})
	t.Run("flow store down", func(t *testing.T) {
		f := newFixture(t)
		f.flows.err = core.Unavailable(errors.New("valkey down"))
		_, err := f.svc.Callback(ctx, CallbackInput{Slug: "okta", State: "s", Code: "c"})
		requireCode(t, core.CodeUnavailable, err)
	})

	require.Zero(t, f.idp.discoveryHits.Load(), "no guard reaches the IdP")
	require.Zero(t, f.idp.tokenHits.Load())
	require.Empty(t, f.sessions.callsSoFar())
	exts, users, events := f.store.snapshot()
	require.Empty(t, exts)
	require.Empty(t, users)
	require.Empty(t, events)
}

// A code the IdP rejects (4xx) is the user's problem: IDENT_INVALID_CREDENTIALS
// and the breaker stays closed. A token endpoint answering 5xx is the IdP's:
// IDENT_FEDERATION_UNAVAILABLE, and five of them open the breaker.
func TestCallbackCodeExchangeFailures(t *testing.T) {
	f := newFixture(t)
	p := f.seedProvider(t, f.tenantA, "okta", f.idp.issuer())
	ctx := context.Background()
	n := 0
	callback := func() error {
		n++
		state := fmt.Sprintf("s-%d", n)
		f.flows.putFlow(t, state, f.flowFor(p, ""))
		_, err := f.svc.Callback(ctx, CallbackInput{Slug: "okta", State: state, Code: "bad-code"})
		_, _, ok := f.flows.get(recordKey(statePrefix, state))
		require.False(t, ok, "the flow is consumed")
		return err
	}

	for range 2 * DefaultFailureThreshold {
		err := callback()
		requireCode(t, core.CodeInvalidCredentials, err)
		require.ErrorIs(t, err, ErrCodeRejected)
	}
	require.Equal(t, gobreaker.StateClosed, f.breakerState(p))
	require.Equal(t, int32(1), f.idp.discoveryHits.Load(), "the relying party is discovered once and cached")
	require.Positive(t, f.idp.tokenHits.Load())

	f.idp.tokenStatus.Store(http.StatusServiceUnavailable)
	for range DefaultFailureThreshold {
		err := callback()
		requireCode(t, core.CodeFederationUnavailable, err)
		require.ErrorIs(t, err, errIdPDown)
	}
	require.Equal(t, gobreaker.StateOpen, f.breakerState(p))
	hits := f.idp.tokenHits.Load()
	err := callback()
	requireCode(t, core.CodeFederationUnavailable, err)
	require.ErrorIs(t, err, ErrCircuitOpen)
	require.Equal(t, hits, f.idp.tokenHits.Load(), "an open breaker does not call the IdP")

	require.Empty(t, f.sessions.callsSoFar())
	exts, users, _ := f.store.snapshot()
	require.Empty(t, exts)
	require.Empty(t, users)
}

// A changed provider configuration is discovered again at the callback.
func TestCallbackRediscoversChangedProvider(t *testing.T) {
	f := newFixture(t)
	p := f.seedProvider(t, f.tenantA, "okta", f.idp.issuer())
	f.flows.putFlow(t, "s1", f.flowFor(p, ""))
	_, err := f.svc.Callback(context.Background(), CallbackInput{Slug: "okta", State: "s1", Code: "x"})
	require.ErrorIs(t, err, ErrCodeRejected)
	require.Equal(t, int32(1), f.idp.discoveryHits.Load())

	p.UpdatedAt = p.UpdatedAt.Add(time.Second)
	f.store.providers[p.ID] = p
	f.flows.putFlow(t, "s2", f.flowFor(p, ""))
	_, err = f.svc.Callback(context.Background(), CallbackInput{Slug: "okta", State: "s2", Code: "x"})
	require.ErrorIs(t, err, ErrCodeRejected)
	require.Equal(t, int32(2), f.idp.discoveryHits.Load())
}

// --- login code and RedeemCode -------------------------------------------------

func TestLoginCodeAndRedeem(t *testing.T) {
	f := newFixtureWith(t, func(c *Config) { c.CodeTTL = 30 * time.Second })
	p := f.seedProvider(t, f.tenantA, "okta", f.idp.issuer(), appReturn)
	ctx := context.Background()

	res, err := f.svc.loginCode(ctx, p, aliceClaims(), appReturn+"?tab=2&code=forged")
	require.NoError(t, err)
	require.Nil(t, res.Tokens)
	u, err := url.Parse(res.Redirect)
	require.NoError(t, err)
	require.Equal(t, appReturn, u.Scheme+"://"+u.Host+u.Path)
	require.Equal(t, "2", u.Query().Get("tab"))
	require.Len(t, u.Query()["code"], 1, "the issued code replaces any code in returnTo")
	code := u.Query().Get("code")
	require.NotEqual(t, "forged", code)
	require.GreaterOrEqual(t, len(code), 43)

	_, ttl, ok := f.flows.get(recordKey(codePrefix, code))
	require.True(t, ok)
	require.Equal(t, 30*time.Second, ttl)

	// The user was provisioned and linked before the code was handed out.
	exts, users, events := f.store.snapshot()
	require.Len(t, exts, 1)
	require.Len(t, users, 1)
	require.Len(t, events, 1)
	userID := users[0].ID
	require.Empty(t, f.sessions.callsSoFar(), "no session until the code is redeemed")

	tokens, err := f.svc.RedeemCode(ctx, "  "+code+"\n", "203.0.113.7", "app/1.0")
	require.NoError(t, err)
	require.Equal(t, "access-"+userID, tokens.AccessToken)
	require.Equal(t, []sessionCall{{UserID: userID, IP: "203.0.113.7", UserAgent: "app/1.0", InTx: true}}, f.sessions.callsSoFar())

	_, err = f.svc.RedeemCode(ctx, code, "203.0.113.7", "app/1.0")
	requireCode(t, core.CodeInvalidCredentials, err)
	require.ErrorIs(t, err, ErrUnknownCode)
	require.Len(t, f.sessions.callsSoFar(), 1)
}

func TestLoginCodeLinkFailureIssuesNoCode(t *testing.T) {
	f := newFixture(t)
	p := f.seedProvider(t, f.tenantA, "okta", f.idp.issuer(), appReturn)
	f.store.addUser(f.tenantA, "alice@a.example.org")
	c := aliceClaims()
	c.EmailVerified = false
	_, err := f.svc.loginCode(context.Background(), p, c, appReturn)
	requireCode(t, core.CodeEmailDuplicate, err)
	require.Zero(t, f.flows.len())
}

func TestRedeemCode(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	put := func(code, userID string) {
		b, err := json.Marshal(codeRecord{UserID: userID})
		require.NoError(t, err)
		require.NoError(t, f.flows.Put(ctx, recordKey(codePrefix, code), b, time.Minute))
	}

	for _, code := range []string{"", "   ", "\t\n"} {
		_, err := f.svc.RedeemCode(ctx, code, "", "")
		requireFields(t, err, "code")
	}

	_, err := f.svc.RedeemCode(ctx, "never-issued", "", "")
	requireCode(t, core.CodeInvalidCredentials, err)
	require.ErrorIs(t, err, ErrUnknownCode)

	// A flow state is not a login code (and survives the attempt).
	f.flows.putFlow(t, "a-state", flowRecord{ProviderID: core.NewID(), Slug: "okta"})
	_, err = f.svc.RedeemCode(ctx, "a-state", "", "")
	require.ErrorIs(t, err, ErrUnknownCode)
	_, _, ok := f.flows.get(recordKey(statePrefix, "a-state"))
	require.True(t, ok)

	require.NoError(t, f.flows.Put(ctx, recordKey(codePrefix, "corrupt"), []byte("nope"), time.Minute))
	_, err = f.svc.RedeemCode(ctx, "corrupt", "", "")
	require.ErrorIs(t, err, ErrUnknownCode)

	userID := core.NewID()
	put("good", userID)
	tokens, err := f.svc.RedeemCode(ctx, "good", "198.51.100.1", "ua")
	require.NoError(t, err)
	require.Equal(t, "access-"+userID, tokens.AccessToken)
	require.Equal(t, userID, tokens.User.ID)
	_, err = f.svc.RedeemCode(ctx, "good", "198.51.100.1", "ua")
	requireCode(t, core.CodeInvalidCredentials, err)
	require.Len(t, f.sessions.callsSoFar(), 1)

	// The session opener's refusal (inactive user) is passed on, and the
	// code is spent all the same.
	f.sessions.err = core.Wrap(errors.New("suspended"), core.KindUnauthenticated, core.CodeInvalidCredentials, "invalid credentials")
	put("inactive", userID)
	_, err = f.svc.RedeemCode(ctx, "inactive", "", "")
	requireCode(t, core.CodeInvalidCredentials, err)
	_, _, ok = f.flows.get(recordKey(codePrefix, "inactive"))
	require.False(t, ok)

	f.flows.err = core.Unavailable(errors.New("valkey down"))
	_, err = f.svc.RedeemCode(ctx, "whatever", "", "")
	requireCode(t, core.CodeUnavailable, err)
}

func TestRecordKey(t *testing.T) {
	k := recordKey(statePrefix, "secret")
	require.Equal(t, k, recordKey(statePrefix, "secret"))
	require.NotEqual(t, k, recordKey(codePrefix, "secret"))
	require.NotEqual(t, k, recordKey(statePrefix, "secret2"))
	require.NotContains(t, k, "secret")
	require.Len(t, k, len(statePrefix)+64)
}
