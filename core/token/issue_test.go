package token_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"
	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/keys"
	"github.com/ghasi-ehealth/identity-service/core/token"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

func TestIssueWritesTheFrozenShape(t *testing.T) {
	f := sqliteFixture(t)
	signer, err := f.keys.Signer()
	require.NoError(t, err)
	now := f.clock.Now()

	cases := []struct {
		name   string
		claims token.Claims
		want   string // payload JSON, byte for byte
	}{
		{
			name:   "user without context node",
			claims: token.Claims{Subject: userID, TenantID: tenantID, TenantIDs: []string{tenantID, otherTenant}, ID: "jti-1", AMR: []string{"pwd", "otp"}},
			want: fmt.Sprintf(`{"sub":%q,"tid":%q,"tids":[%q,%q],"jti":"jti-1","amr":["pwd","otp"],"exp":%d,"iat":%d,"iss":%q,"aud":%q}`,
				userID, tenantID, tenantID, otherTenant, now.Add(15*time.Minute).Unix(), now.Unix(), testIssuer, testAudience),
		},
		{
			name:   "with context node",
			claims: token.Claims{Subject: userID, TenantID: tenantID, TenantIDs: []string{tenantID}, ID: "jti-2", AMR: []string{"webauthn"}, ContextNodeID: "node-7"},
			want: fmt.Sprintf(`{"sub":%q,"tid":%q,"tids":[%q],"jti":"jti-2","amr":["webauthn"],"context_node_id":"node-7","exp":%d,"iat":%d,"iss":%q,"aud":%q}`,
				userID, tenantID, tenantID, now.Add(15*time.Minute).Unix(), now.Unix(), testIssuer, testAudience),
		},
		{
			name:   "defaults: tids from tid, empty amr, explicit times",
			claims: token.Claims{Subject: userID, TenantID: tenantID, ID: "jti-3", IssuedAt: now.Add(-time.Minute), ExpiresAt: now.Add(time.Minute)},
			want: fmt.Sprintf(`{"sub":%q,"tid":%q,"tids":[%q],"jti":"jti-3","amr":[],"exp":%d,"iat":%d,"iss":%q,"aud":%q}`,
				userID, tenantID, tenantID, now.Add(time.Minute).Unix(), now.Add(-time.Minute).Unix(), testIssuer, testAudience),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok, exp, err := f.issuer.Issue(context.Background(), tc.claims)
			require.NoError(t, err)
			parts := strings.Split(tok, ".")
			require.Len(t, parts, 3)
			require.Equal(t, `{"alg":"RS256","kid":"`+signer.KID()+`","typ":"at+jwt"}`, decodeSeg(t, parts[0]))
			require.Equal(t, tc.want, decodeSeg(t, parts[1]))
			require.NotContains(t, tok, "=", "unpadded base64url")
			require.Contains(t, tc.want, fmt.Sprintf(`"exp":%d`, exp.Unix()), "returned expiry is the exp claim")
			_, err = f.verifier.Verify(context.Background(), tok)
			if tc.claims.ExpiresAt.IsZero() {
				require.NoError(t, err)
			}
		})
	}

	tok := f.issue(t, token.Claims{Subject: userID, TenantID: tenantID})
	p, err := f.verifier.Verify(context.Background(), tok)
	require.NoError(t, err)
	require.True(t, core.ValidID(p.TokenID), "a missing jti becomes a UUID")

	_, _, err = f.issuer.Issue(context.Background(), token.Claims{TenantID: tenantID})
	require.Equal(t, core.KindInternal, core.KindOf(err), "no subject is a caller bug")
	require.Equal(t, token.DefaultTTL, f.issuer.TTL())
}

// TestIssuedTokenVerifiesWithAnotherLibrary checks interoperability: a
// platform service verifying with jwx and our published JWKS accepts the token.
func TestIssuedTokenVerifiesWithAnotherLibrary(t *testing.T) {
	f := sqliteFixture(t)
	issuer := token.NewIssuer(f.keys, testIssuer, testAudience, core.SystemClock{}, time.Minute)
	tok, _, err := issuer.Issue(context.Background(), userClaims())
	require.NoError(t, err)

	doc, _ := f.keys.JWKS()
	set, err := jwk.Parse(doc)
	require.NoError(t, err)
	parsed, err := jwt.ParseString(tok, jwt.WithKeySet(set), jwt.WithIssuer(testIssuer), jwt.WithAudience(testAudience), jwt.WithValidate(true))
	require.NoError(t, err)
	sub, ok := parsed.Subject()
	require.True(t, ok)
	require.Equal(t, userID, sub)
	var tids []any
	require.NoError(t, parsed.Get("tids", &tids))
	require.Equal(t, []any{tenantID, otherTenant}, tids)
}

func TestIssueBeforeInitFails(t *testing.T) {
	master, err := keys.NewMasterKey(make([]byte, keys.MasterKeySize))
	require.NoError(t, err)
	ks, err := keys.NewService(persistence.NewKeyStore(dbtest.SQLite(t)), master, nil, nil, nil, keys.Config{})
	require.NoError(t, err)
	_, _, err = token.NewIssuer(ks, testIssuer, testAudience, nil, 0).Issue(context.Background(), userClaims())
	require.Equal(t, core.KindInternal, core.KindOf(err))
}
