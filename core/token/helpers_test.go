package token_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/keys"
	"github.com/ghasi-ehealth/identity-service/core/token"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

const (
	testIssuer   = "https://identity.test"
	testAudience = "ghasi-platform"
	userID       = "0190a000-0000-7000-8000-0000000000aa"
	tenantID     = "0190a000-0000-7000-8000-0000000000bb"
	otherTenant  = "0190a000-0000-7000-8000-0000000000cc"
)

// fixture is a keyring on a real database with an issuer and a verifier.
type fixture struct {
	db       *persistence.DB
	keys     *keys.Service
	clock    *core.FixedClock
	issuer   *token.Issuer
	verifier *token.Verifier
}

func newMaster(t testing.TB) *keys.MasterKey {
	t.Helper()
	b := make([]byte, keys.MasterKeySize)
	_, _ = rand.Read(b)
	master, err := keys.NewMasterKey(b)
	require.NoError(t, err)
	return master
}

func newFixture(t testing.TB, db *persistence.DB, revoked token.RevocationChecker) *fixture {
	t.Helper()
	return fixtureOn(t, db, newMaster(t), revoked)
}

// fixtureOn is one service instance on db; instances sharing db must share master.
func fixtureOn(t testing.TB, db *persistence.DB, master *keys.MasterKey, revoked token.RevocationChecker) *fixture {
	t.Helper()
	clock := core.NewFixedClock(time.Date(2026, 2, 3, 10, 0, 0, 0, time.UTC))
	ks, err := keys.NewService(persistence.NewKeyStore(db), master, clock, nil, nil, keys.Config{})
	require.NoError(t, err)
	require.NoError(t, ks.Init(context.Background()))
	return &fixture{
		db:       db,
		keys:     ks,
		clock:    clock,
		issuer:   token.NewIssuer(ks, testIssuer, testAudience, clock, 0),
		verifier: token.NewVerifier(ks, testIssuer, testAudience, clock, revoked),
	}
}

func userClaims() token.Claims {
	return token.Claims{
		Subject:   userID,
		TenantID:  tenantID,
		TenantIDs: []string{tenantID, otherTenant},
		AMR:       []string{token.AMRPassword, token.AMROTP},
	}
}

func (f *fixture) issue(t testing.TB, c token.Claims) string {
	t.Helper()
	tok, _, err := f.issuer.Issue(context.Background(), c)
	require.NoError(t, err)
	return tok
}

// forge signs an arbitrary header and claim set with the active key, for
// tokens our Issuer would never produce.
func (f *fixture) forge(t testing.TB, hdr, claims any) string {
	t.Helper()
	signer, err := f.keys.Signer()
	require.NoError(t, err)
	in := seg(t, hdr) + "." + seg(t, claims)
	sig, err := signer.SignRS256([]byte(in))
	require.NoError(t, err)
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// validHeader and validClaims are what Issue would write now.
func (f *fixture) validHeader(t testing.TB) map[string]any {
	signer, err := f.keys.Signer()
	require.NoError(t, err)
	return map[string]any{"alg": "RS256", "kid": signer.KID(), "typ": "at+jwt"}
}

func (f *fixture) validClaims() map[string]any {
	now := f.clock.Now().Unix()
	return map[string]any{
		"sub": userID, "tid": tenantID, "tids": []string{tenantID}, "jti": core.NewID(),
		"amr": []string{"pwd"}, "exp": now + 900, "iat": now, "iss": testIssuer, "aud": testAudience,
	}
}

func seg(t testing.TB, v any) string {
	t.Helper()
	if s, ok := v.(string); ok {
		return base64.RawURLEncoding.EncodeToString([]byte(s))
	}
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeSeg(t testing.TB, s string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	require.NoError(t, err)
	return string(b)
}

func sqliteFixture(t testing.TB) *fixture {
	return newFixture(t, dbtest.SQLite(t), nil)
}
