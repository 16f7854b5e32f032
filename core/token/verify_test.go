package token_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/keys"
	"github.com/ghasi-ehealth/identity-service/core/token"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

func TestVerifyBuildsThePrincipal(t *testing.T) {
	f := sqliteFixture(t)
	cases := []struct {
		name   string
		claims token.Claims
		typ    core.PrincipalType
	}{
		{"user", token.Claims{Subject: userID, TenantID: tenantID, TenantIDs: []string{tenantID, otherTenant}, ID: "jti-u", AMR: []string{"pwd", "otp"}, ContextNodeID: "node-1"}, core.PrincipalUser},
		{"service account", token.Claims{Subject: "sa-1", TenantID: tenantID, ID: "jti-s", AMR: []string{"client"}}, core.PrincipalServiceAccount},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok, exp, err := f.issuer.Issue(context.Background(), tc.claims)
			require.NoError(t, err)
			p, err := f.verifier.Verify(context.Background(), tok)
			require.NoError(t, err)
			tids := tc.claims.TenantIDs
			if tids == nil {
				tids = []string{tc.claims.TenantID}
			}
			require.Equal(t, &core.Principal{
				Type: tc.typ, ID: tc.claims.Subject, TenantID: tc.claims.TenantID, TenantIDs: tids,
				AMR: tc.claims.AMR, TokenID: tc.claims.ID, ContextNodeID: tc.claims.ContextNodeID, ExpiresAt: exp,
			}, p)
		})
	}
}

func TestVerifyRejects(t *testing.T) {
	f := sqliteFixture(t)
	ctx := context.Background()
	good := f.issue(t, userClaims())
	parts := strings.Split(good, ".")
	hdr := f.validHeader(t)
	kid := hdr["kid"].(string)

	with := func(m map[string]any, kv ...any) map[string]any {
		c := make(map[string]any, len(m))
		for k, v := range m {
			c[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(c, kv[i].(string))
			} else {
				c[kv[i].(string)] = kv[i+1]
			}
		}
		return c
	}
	claims := f.validClaims()
	now := f.clock.Now().Unix()

	// Keys an attacker might use: our public key as an HMAC secret, and keys
	// that are simply not ours.
	signer, err := f.keys.Signer()
	require.NoError(t, err)
	pub, ok := f.keys.PublicKey(signer.KID())
	require.True(t, ok)
	spki, err := x509.MarshalPKIXPublicKey(pub)
	require.NoError(t, err)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})
	foreignRSA, err := rsa.GenerateKey(rand.Reader, 2048)
	require.NoError(t, err)
	foreignEC, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)

	jwxSign := func(alg jwa.SignatureAlgorithm, key any, kid string) string {
		h := jws.NewHeaders()
		require.NoError(t, h.Set(jws.KeyIDKey, kid))
		require.NoError(t, h.Set(jws.TypeKey, "at+jwt"))
		payload, err := json.Marshal(claims)
		require.NoError(t, err)
		out, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(h)))
		require.NoError(t, err)
		return string(out)
	}
	flipLast := func(s string) string {
		b := []byte(s)
		if b[len(b)-1] == 'A' {
			b[len(b)-1] = 'Q'
		} else {
			b[len(b)-1] = 'A'
		}
		return string(b)
	}
	tamperedClaims := seg(t, with(claims, "sub", "someone-else"))

	cases := []struct {
		name  string
		token string
		cause error
	}{
		{"alg none", seg(t, with(hdr, "alg", "none")) + "." + seg(t, claims) + ".", token.ErrAlgorithm},
		{"alg none with a signature", seg(t, with(hdr, "alg", "none")) + "." + parts[1] + "." + parts[2], token.ErrAlgorithm},
		{"alg NONE", seg(t, with(hdr, "alg", "NONE")) + "." + seg(t, claims) + ".", token.ErrAlgorithm},
		{"alg missing", f.forge(t, with(hdr, "alg", nil), claims), token.ErrAlgorithm},
		{"alg rs256 lower case", f.forge(t, with(hdr, "alg", "rs256"), claims), token.ErrAlgorithm},
		{"HS256 keyed with our public key (DER)", jwxSign(jwa.HS256(), spki, kid), token.ErrAlgorithm},
		{"HS256 keyed with our public key (PEM)", jwxSign(jwa.HS256(), pemKey, kid), token.ErrAlgorithm},
		{"HS512", jwxSign(jwa.HS512(), []byte("secret"), kid), token.ErrAlgorithm},
		{"ES256", jwxSign(jwa.ES256(), foreignEC, kid), token.ErrAlgorithm},
		{"PS256 with our kid", jwxSign(jwa.PS256(), foreignRSA, kid), token.ErrAlgorithm},
		{"RS384", jwxSign(jwa.RS384(), foreignRSA, kid), token.ErrAlgorithm},
		{"unknown kid", jwxSign(jwa.RS256(), foreignRSA, keys.Thumbprint(&foreignRSA.PublicKey)), token.ErrUnknownKey},
		{"missing kid", f.forge(t, with(hdr, "kid", nil), claims), token.ErrUnknownKey},
		{"our kid, foreign signature", jwxSign(jwa.RS256(), foreignRSA, kid), token.ErrSignature},
		{"typ JWT", f.forge(t, with(hdr, "typ", "JWT"), claims), token.ErrType},
		{"typ missing", f.forge(t, with(hdr, "typ", nil), claims), token.ErrType},
		{"typ of an ID token", f.forge(t, with(hdr, "typ", "id_token+jwt"), claims), token.ErrType},
		{"crit header", f.forge(t, with(hdr, "crit", []string{"exp"}), claims), token.ErrCritical},
		{"wrong iss", f.forge(t, hdr, with(claims, "iss", "https://evil.test")), token.ErrIssuer},
		{"iss differs by a slash", f.forge(t, hdr, with(claims, "iss", testIssuer+"/")), token.ErrIssuer},
		{"missing iss", f.forge(t, hdr, with(claims, "iss", nil)), token.ErrIssuer},
		{"wrong aud", f.forge(t, hdr, with(claims, "aud", "other-platform")), token.ErrAudience},
		{"aud list without ours", f.forge(t, hdr, with(claims, "aud", []string{"a", "b"})), token.ErrAudience},
		{"missing aud", f.forge(t, hdr, with(claims, "aud", nil)), token.ErrAudience},
		{"expired beyond leeway", f.forge(t, hdr, with(claims, "exp", now-31)), token.ErrExpired},
		{"expired exactly at leeway", f.forge(t, hdr, with(claims, "exp", now-30)), token.ErrExpired},
		{"missing exp", f.forge(t, hdr, with(claims, "exp", nil)), token.ErrMissingClaim},
		{"missing iat", f.forge(t, hdr, with(claims, "iat", nil)), token.ErrMissingClaim},
		{"iat in the future", f.forge(t, hdr, with(claims, "iat", now+31)), token.ErrIssuedInFuture},
		{"nbf in the future", f.forge(t, hdr, with(claims, "nbf", now+31)), token.ErrNotYetValid},
		{"missing sub", f.forge(t, hdr, with(claims, "sub", nil)), token.ErrMissingClaim},
		{"empty sub", f.forge(t, hdr, with(claims, "sub", "")), token.ErrMissingClaim},
		{"missing tid", f.forge(t, hdr, with(claims, "tid", nil)), token.ErrMissingClaim},
		{"missing jti", f.forge(t, hdr, with(claims, "jti", nil)), token.ErrMissingClaim},
		{"exp as a string", f.forge(t, hdr, with(claims, "exp", "9999999999")), token.ErrMalformed},
		{"negative exp", f.forge(t, hdr, with(claims, "exp", -1)), token.ErrMalformed},
		{"tids not a list", f.forge(t, hdr, with(claims, "tids", tenantID)), token.ErrMalformed},
		{"claims not an object", f.forge(t, hdr, `[1,2]`), token.ErrMalformed},
		{"claims not JSON", f.forge(t, hdr, `{"sub":`), token.ErrMalformed},
		{"tampered payload", parts[0] + "." + tamperedClaims + "." + parts[2], token.ErrSignature},
		{"tampered signature", parts[0] + "." + parts[1] + "." + flipLast(parts[2]), token.ErrSignature},
		{"truncated signature", parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-2], token.ErrSignature},
		{"signature swapped from another token", parts[0] + "." + parts[1] + "." + strings.Split(f.issue(t, userClaims()), ".")[2], token.ErrSignature},
		{"empty", "", token.ErrMalformed},
		{"one segment", "abc", token.ErrMalformed},
		{"two segments", parts[0] + "." + parts[1], token.ErrMalformed},
		{"four segments", good + ".x", token.ErrMalformed},
		{"empty signature", parts[0] + "." + parts[1] + ".", token.ErrMalformed},
		{"empty payload", parts[0] + ".." + parts[2], token.ErrSignature},
		{"padded header", parts[0] + "==." + parts[1] + "." + parts[2], token.ErrMalformed},
		{"newline in payload", parts[0] + "." + parts[1][:10] + "\n" + parts[1][10:] + "." + parts[2], token.ErrSignature},
		{"newline in signature", parts[0] + "." + parts[1] + "." + parts[2][:10] + "\r\n" + parts[2][10:], token.ErrMalformed},
		{"standard base64 alphabet", parts[0] + "." + parts[1] + "." + strings.NewReplacer("-", "+", "_", "/").Replace(parts[2]) + "+", token.ErrMalformed},
		{"header not base64", "!!!." + parts[1] + "." + parts[2], token.ErrMalformed},
		{"header not JSON", seg(t, "not json") + "." + parts[1] + "." + parts[2], token.ErrMalformed},
		{"header JSON array", seg(t, `["RS256"]`) + "." + parts[1] + "." + parts[2], token.ErrMalformed},
		{"bearer prefix left on", "Bearer " + good, token.ErrMalformed},
		{"oversized", parts[0] + "." + strings.Repeat("A", 9000) + "." + parts[2], token.ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, err := f.verifier.Verify(ctx, tc.token)
			require.Nil(t, p)
			require.Error(t, err)
			require.Equal(t, core.KindUnauthenticated, core.KindOf(err))
			require.Equal(t, core.CodeUnauthenticated, core.CodeOf(err))
			require.ErrorIs(t, err, tc.cause)
		})
	}

	// Control: the untouched token, an aud list containing ours, and the
	// application/ form of typ are accepted.
	for _, tok := range []string{
		good,
		f.forge(t, hdr, with(claims, "aud", []string{"other", testAudience})),
		f.forge(t, with(hdr, "typ", "application/at+jwt"), claims),
		f.forge(t, hdr, with(claims, "exp", now-29, "iat", now+29)),
	} {
		_, err := f.verifier.Verify(ctx, tok)
		require.NoError(t, err)
	}
}

func TestVerifyExpiryUsesLeeway(t *testing.T) {
	f := sqliteFixture(t)
	tok := f.issue(t, userClaims())
	f.clock.Advance(token.DefaultTTL + token.Leeway - time.Second)
	_, err := f.verifier.Verify(context.Background(), tok)
	require.NoError(t, err)
	f.clock.Advance(time.Second)
	_, err = f.verifier.Verify(context.Background(), tok)
	require.ErrorIs(t, err, token.ErrExpired)
}

type revocations struct {
	revoked map[string]bool
	err     error
}

func (r revocations) IsRevoked(_ context.Context, id string) (bool, error) {
	return r.revoked[id], r.err
}

func TestVerifyChecksRevocation(t *testing.T) {
	rev := revocations{revoked: map[string]bool{"jti-revoked": true}}
	f := newFixture(t, dbtest.SQLite(t), rev)
	ok := userClaims()
	ok.ID = "jti-fine"
	_, err := f.verifier.Verify(context.Background(), f.issue(t, ok))
	require.NoError(t, err)

	bad := userClaims()
	bad.ID = "jti-revoked"
	_, err = f.verifier.Verify(context.Background(), f.issue(t, bad))
	require.Equal(t, core.CodeUnauthenticated, core.CodeOf(err))
	require.ErrorIs(t, err, token.ErrRevoked)

	// A revocation store that cannot answer fails closed, as unavailable.
	down := token.NewVerifier(f.keys, testIssuer, testAudience, f.clock, revocations{err: errors.New("valkey down")})
	_, err = down.Verify(context.Background(), f.issue(t, ok))
	require.Equal(t, core.KindUnavailable, core.KindOf(err))
}

func TestTokensAcrossRotation(t *testing.T) {
	for name, open := range dbtest.Dialects() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, open(t), nil)
			before := f.issue(t, userClaims())

			_, err := f.keys.Rotate(ctx)
			require.NoError(t, err)
			after := f.issue(t, userClaims())
			require.NotEqual(t, kidOf(t, before), kidOf(t, after), "the promoted key signs now")
			for _, tok := range []string{before, after} {
				_, err := f.verifier.Verify(ctx, tok)
				require.NoError(t, err, "signed before and after rotation")
			}

			// Once the retired key leaves JWKS, its tokens no longer verify.
			f.clock.Advance(7*24*time.Hour + time.Second)
			require.NoError(t, f.keys.Refresh(ctx))
			_, err = f.verifier.Verify(ctx, before)
			require.ErrorIs(t, err, token.ErrUnknownKey)
		})
	}
}

// TestTokenFromAnotherInstanceAfterItsRotation: instance b rotates; a has
// not refreshed yet, but already publishes b's new signing key (it was a's
// next key), and b still accepts what a signs with the key b just retired.
func TestTokenFromAnotherInstanceAfterItsRotation(t *testing.T) {
	ctx := context.Background()
	db := dbtest.SQLite(t)
	master := newMaster(t)
	a := fixtureOn(t, db, master, nil)
	b := fixtureOn(t, db, master, nil)

	_, err := b.keys.Rotate(ctx)
	require.NoError(t, err)
	fromB := b.issue(t, userClaims())
	fromA := a.issue(t, userClaims())
	require.NotEqual(t, kidOf(t, fromA), kidOf(t, fromB))
	for _, v := range []*token.Verifier{a.verifier, b.verifier} {
		for _, tok := range []string{fromA, fromB} {
			_, err := v.Verify(ctx, tok)
			require.NoError(t, err)
		}
	}
}

func TestVerifyAndIssueWhileDatabaseIsDown(t *testing.T) {
	ctx := context.Background()
	for name, open := range dbtest.Dialects() {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			f := newFixture(t, db, nil)
			tok := f.issue(t, userClaims())
			require.NoError(t, db.Close())
			require.Error(t, f.keys.Refresh(ctx))
			_, err := f.verifier.Verify(ctx, tok)
			require.NoError(t, err)
			again := f.issue(t, userClaims())
			_, err = f.verifier.Verify(ctx, again)
			require.NoError(t, err)
		})
	}
}

func kidOf(t *testing.T, tok string) string {
	t.Helper()
	var h struct {
		Kid string `json:"kid"`
	}
	require.NoError(t, json.Unmarshal([]byte(decodeSeg(t, strings.Split(tok, ".")[0])), &h))
	return h.Kid
}
