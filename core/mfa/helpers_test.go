package mfa_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/cache"
	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/audit"
	"github.com/ghasi-ehealth/identity-service/core/auth"
	"github.com/ghasi-ehealth/identity-service/core/keys/keystest"
	"github.com/ghasi-ehealth/identity-service/core/mfa"
	"github.com/ghasi-ehealth/identity-service/core/password"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/core/token"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

const (
	testIssuer   = "https://identity.test"
	testAudience = "ghasi-platform"
	goodPassword = "correct horse battery staple"
)

var testT0 = time.Date(2026, 3, 2, 8, 0, 10, 0, time.UTC)

// fakeWebAuthn is the WebAuthn port: credentials per user; an assertion
// "good" passes, anything else is IDENT_MFA_INVALID_CODE.
type fakeWebAuthn struct{ creds map[string]int }

func (f *fakeWebAuthn) CredentialCount(_ context.Context, userID string) (int, error) {
	return f.creds[userID], nil
}

func (f *fakeWebAuthn) BeginAssertion(context.Context, string) (json.RawMessage, []byte, error) {
	return json.RawMessage(`{"publicKey":{"challenge":"abc"}}`), []byte("state"), nil
}

func (f *fakeWebAuthn) FinishAssertion(_ context.Context, _ string, state []byte, assertion json.RawMessage) error {
	if string(state) == "state" && string(assertion) == `"good"` {
		return nil
	}
	return core.E(core.KindUnauthenticated, core.CodeMFAInvalidCode, "bad assertion")
}

type env struct {
	db       *persistence.DB
	users    *persistence.UserStore
	dir      *persistence.TenancyStore
	clock    *core.FixedClock
	verifier *token.Verifier
	auth     *auth.Service
	mfa      *mfa.Service
	webauthn *fakeWebAuthn
}

func newEnv(t testing.TB, open dbtest.Opener) *env {
	t.Helper()
	db := open(t)
	clock := core.NewFixedClock(testT0)
	ks, mk := keystest.New(t, db, clock)
	e := &env{db: db, users: persistence.NewUserStore(db), dir: persistence.NewTenancyStore(db), clock: clock,
		webauthn: &fakeWebAuthn{creds: map[string]int{}}}
	issuer := token.NewIssuer(ks, testIssuer, testAudience, clock, 0)
	set := cache.NewLocalRevocations(clock)
	e.verifier = token.NewVerifier(ks, testIssuer, testAudience, clock, auth.TokenRevocation{Set: set})
	e.mfa = mfa.NewService(mfa.Deps{
		Store: persistence.NewMFAStore(db), Users: e.users, Tenants: e.dir, Authorizer: core.NewAuthorizer(e.dir),
		Master: mk, Enrollment: issuer, WebAuthn: e.webauthn, Clock: clock,
	})
	sessions := persistence.NewSessionStore(db)
	e.auth = auth.NewService(auth.Deps{
		Store: sessions, Users: sessions, Directory: e.dir, Hasher: password.NewHasher(password.Params{Memory: 64, Time: 1, Threads: 1}, 4, 0),
		Issuer: issuer, Limiter: cache.NewLocalLimiter(clock), Revocations: set, Clock: clock, SecondFactor: e.mfa,
	}, auth.Config{RefreshKey: mk.DeriveSecret(auth.RefreshKeyLabel), AccountFailureLimit: 4})
	return e
}

func (e *env) tenant(t testing.TB, slug string, mfaRequired bool) string {
	t.Helper()
	tn := tenancy.Tenant{ID: core.NewID(), Slug: slug, Name: slug, MFARequired: mfaRequired, CreatedAt: testT0, UpdatedAt: testT0}
	require.NoError(t, e.dir.CreateTenant(context.Background(), tn))
	return tn.ID
}

func (e *env) user(t testing.TB, tenantID, email string, roles ...string) user.User {
	t.Helper()
	hash, err := password.NewHasher(password.Params{Memory: 64, Time: 1, Threads: 1}, 1, 0).Hash(context.Background(), goodPassword)
	require.NoError(t, err)
	u := user.User{ID: core.NewID(), TenantID: tenantID, Email: email, FirstName: "Ada", LastName: "Lovelace",
		Status: user.StatusActive, PasswordHash: hash, CreatedAt: testT0, UpdatedAt: testT0}
	require.NoError(t, e.users.InsertUser(context.Background(), u))
	if len(roles) > 0 {
		require.NoError(t, e.dir.UpsertMembership(context.Background(), core.Membership{UserID: u.ID, TenantID: tenantID, Roles: roles}, testT0))
	}
	return u
}

// as is a context authenticated by the JWT raw (verified for real).
func (e *env) as(t testing.TB, raw string) context.Context {
	t.Helper()
	p, err := e.verifier.Verify(context.Background(), raw)
	require.NoError(t, err)
	return core.WithPrincipal(core.WithClientIP(context.Background(), "198.51.100.1"), p)
}

func (e *env) login(email string) (auth.TokenResponse, error) {
	return e.auth.Login(core.WithClientIP(context.Background(), "198.51.100.1"), auth.LoginInput{Email: email, Password: goodPassword})
}

// loginToken logs in without MFA and returns an access token.
func (e *env) loginToken(t testing.TB, email string) string {
	t.Helper()
	resp, err := e.login(email)
	require.NoError(t, err)
	return resp.AccessToken
}

// challenge logs in expecting IDENT_MFA_REQUIRED and returns its members.
func (e *env) challenge(t testing.TB, email string) map[string]any {
	t.Helper()
	_, err := e.login(email)
	ce := requireCode(t, err, core.CodeMFARequired)
	require.Equal(t, core.KindUnauthenticated, ce.Kind)
	return ce.Extra
}

// code is the TOTP code of uri's secret for the time step of at + steps.
func code(t testing.TB, uri string, at time.Time, steps int) string {
	t.Helper()
	key, err := otp.NewKeyFromURL(uri)
	require.NoError(t, err)
	c, err := totp.GenerateCodeCustom(key.Secret(), at.Add(time.Duration(steps)*30*time.Second),
		totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	require.NoError(t, err)
	return c
}

// enrolled enrols and confirms TOTP for the caller of ctx (code of step -1)
// and returns the otpauth URI and the recovery codes.
func (e *env) enrolled(t testing.TB, ctx context.Context) (string, []string) {
	t.Helper()
	en, err := e.mfa.EnrollTOTP(ctx)
	require.NoError(t, err)
	c, err := e.mfa.ConfirmTOTP(ctx, code(t, en.OTPAuthURI, e.clock.Now(), -1))
	require.NoError(t, err)
	return en.OTPAuthURI, c.RecoveryCodes
}

func requireCode(t testing.TB, err error, code string) *core.Error {
	t.Helper()
	require.Error(t, err)
	var ce *core.Error
	require.ErrorAs(t, err, &ce)
	require.Equal(t, code, ce.Code, "error: %v", err)
	return ce
}

func (e *env) events(t testing.TB, typ string) int {
	t.Helper()
	stored, err := e.db.ListStoredEvents(context.Background(), audit.Query{Type: typ, AllTenants: true})
	require.NoError(t, err)
	return len(stored)
}
