package passkey_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/audit"
	"github.com/ghasi-ehealth/identity-service/core/mfa/passkey"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

const (
	testRPID   = "localhost"
	testOrigin = "http://localhost:8080"
)

func testT0() time.Time { return time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC) }

// goodRP mirrors the service's relying party configuration.
func goodRP() virtualwebauthn.RelyingParty {
	return virtualwebauthn.RelyingParty{ID: testRPID, Name: passkey.DefaultRPDisplayName, Origin: testOrigin}
}

type fixture struct {
	db    *persistence.DB
	svc   *passkey.Service
	clock *core.FixedClock
	user  user.User
	ctx   context.Context // the user's principal
}

// forEachDialect runs fn against SQLite and Postgres.
func forEachDialect(t *testing.T, fn func(t *testing.T, f *fixture)) {
	for name, open := range dbtest.Dialects() {
		t.Run(name, func(t *testing.T) { fn(t, newFixture(t, open(t))) })
	}
}

func newFixture(t *testing.T, db *persistence.DB) *fixture {
	t.Helper()
	clock := core.NewFixedClock(testT0())
	svc, err := passkey.NewService(persistence.NewPasskeyStore(db), clock,
		passkey.Config{RPID: testRPID, RPOrigins: []string{testOrigin}})
	require.NoError(t, err)
	u := newUser(t, db, "clinic")
	return &fixture{db: db, svc: svc, clock: clock, user: u, ctx: principalCtx(u, false)}
}

// newUser stores a tenant with slug and an active user of it.
func newUser(t *testing.T, db *persistence.DB, slug string) user.User {
	t.Helper()
	ctx := context.Background()
	dir := persistence.NewDirectoryStore(db)
	tn := tenancy.Tenant{ID: core.NewID(), Slug: slug, Name: slug, CreatedAt: testT0(), UpdatedAt: testT0()}
	require.NoError(t, dir.CreateTenant(ctx, tn))
	u := user.User{ID: core.NewID(), TenantID: tn.ID, Email: slug + "@example.org", FirstName: "Ada", LastName: "Lovelace",
		Status: user.StatusActive, CreatedAt: testT0(), UpdatedAt: testT0()}
	require.NoError(t, dir.CreateUser(ctx, u))
	return u
}

func principalCtx(u user.User, restricted bool) context.Context {
	ctx := core.WithClientIP(context.Background(), "203.0.113.7")
	return core.WithPrincipal(ctx, &core.Principal{Type: core.PrincipalUser, ID: u.ID, TenantID: u.TenantID,
		TenantIDs: []string{u.TenantID}, AMR: []string{"pwd"}, Restricted: restricted})
}

// attest answers registration options as a browser at rp would.
func attest(t *testing.T, options json.RawMessage, rp virtualwebauthn.RelyingParty, auth virtualwebauthn.Authenticator,
	cred virtualwebauthn.Credential) json.RawMessage {
	t.Helper()
	parsed, err := virtualwebauthn.ParseAttestationOptions(string(options))
	require.NoError(t, err)
	return json.RawMessage(virtualwebauthn.CreateAttestationResponse(rp, auth, cred, *parsed))
}

// assert answers assertion options as a browser at rp would.
func assert(t *testing.T, options json.RawMessage, rp virtualwebauthn.RelyingParty, auth virtualwebauthn.Authenticator,
	cred virtualwebauthn.Credential) json.RawMessage {
	t.Helper()
	parsed, err := virtualwebauthn.ParseAssertionOptions(string(options))
	require.NoError(t, err)
	require.True(t, cred.IsAllowedForAssertion(*parsed), "the credential must be in allowCredentials")
	return json.RawMessage(virtualwebauthn.CreateAssertionResponse(rp, auth, cred, *parsed))
}

// register runs options → virtual authenticator → Register.
func (f *fixture) register(t *testing.T, ctx context.Context, auth virtualwebauthn.Authenticator,
	cred virtualwebauthn.Credential) (passkey.Factor, error) {
	t.Helper()
	opts, err := f.svc.RegisterOptions(ctx)
	if err != nil {
		return passkey.Factor{}, err
	}
	return f.svc.Register(ctx, attest(t, opts, goodRP(), auth, cred))
}

// mustRegister registers a new EC2 credential and returns it.
func (f *fixture) mustRegister(t *testing.T, auth virtualwebauthn.Authenticator) virtualwebauthn.Credential {
	t.Helper()
	cred := newCredential(t)
	_, err := f.register(t, f.ctx, auth, cred)
	require.NoError(t, err)
	return cred
}

// login runs BeginAssertion → virtual authenticator at rp → FinishAssertion.
func (f *fixture) login(t *testing.T, rp virtualwebauthn.RelyingParty, auth virtualwebauthn.Authenticator,
	cred virtualwebauthn.Credential) error {
	t.Helper()
	opts, state, err := f.svc.BeginAssertion(context.Background(), f.user.ID)
	require.NoError(t, err)
	return f.svc.FinishAssertion(core.WithClientIP(context.Background(), "198.51.100.4"), f.user.ID, state,
		assert(t, opts, rp, auth, cred))
}

func requireCode(t *testing.T, err error, code string, kind core.Kind) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, code, core.CodeOf(err), "%v", err)
	require.Equal(t, kind, core.KindOf(err), "%v", err)
}

func auditQuery(eventType string) audit.Query {
	return audit.Query{Type: eventType, AllTenants: true, Limit: 100}
}

// newCredential returns a virtual EC2 credential. virtualwebauthn encodes
// the public key's coordinates with big.Int.Bytes, which drops leading zero
// bytes (about one key in 128), and go-webauthn rightly refuses such COSE
// keys; those keys are skipped so the tests are deterministic.
func newCredential(t *testing.T) virtualwebauthn.Credential {
	t.Helper()
	for {
		cred := virtualwebauthn.NewCredential(virtualwebauthn.KeyTypeEC2)
		k, err := x509.ParsePKCS8PrivateKey(cred.Key.Data)
		require.NoError(t, err)
		ec := k.(*ecdsa.PrivateKey)
		if len(ec.X.Bytes()) == 32 && len(ec.Y.Bytes()) == 32 {
			return cred
		}
	}
}
