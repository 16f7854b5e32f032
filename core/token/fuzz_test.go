package token_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

// FuzzVerify feeds arbitrary strings to Verify: it must never panic, every
// failure must be IDENT_UNAUTHENTICATED, and anything accepted must carry the
// claims Verify promises. Run with: go test -fuzz FuzzVerify ./core/token
func FuzzVerify(f *testing.F) {
	fx := newFixture(f, dbtest.SQLite(f), nil)
	good := fx.issue(f, userClaims())
	parts := strings.Split(good, ".")
	hdr := fx.validHeader(f)
	claims := fx.validClaims()
	none := map[string]any{"alg": "none", "kid": hdr["kid"], "typ": "at+jwt"}
	for _, seed := range []string{
		good,
		fx.forge(f, hdr, claims),
		seg(f, none) + "." + parts[1] + ".",
		parts[0] + "." + parts[1] + "." + parts[2][:20],
		parts[0] + "." + seg(f, `{"sub":1}`) + "." + parts[2],
		parts[0] + ".." + parts[2],
		seg(f, `{"alg":"RS256","kid":"x","typ":"at+jwt","crit":["b64"]}`) + ".e30.AAAA",
		"..",
		"a.b.c",
		"",
		"eyJhbGciOiJSUzI1NiJ9.e30.",
	} {
		f.Add(seed)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := fx.verifier.Verify(ctx, raw)
		if err != nil {
			require.Nil(t, p)
			require.Equal(t, core.CodeUnauthenticated, core.CodeOf(err))
			return
		}
		require.NotEmpty(t, p.ID)
		require.NotEmpty(t, p.TenantID)
		require.NotEmpty(t, p.TokenID)
		require.False(t, p.ExpiresAt.IsZero())
	})
}
