package oidctest

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
)

// SignJWT returns a compact RS256 JWT over claims, signed by the provider's
// own key (its kid, so the published JWKS verifies it), with header typ
// "JWT" as Keycloak access tokens have. It stands in for tokens a realm
// issues outside the code flow, e.g. for RFC 8693 token exchange tests.
func (p *Provider) SignJWT(tb testing.TB, claims map[string]any) string {
	tb.Helper()
	return signJWT(tb, p.store.signing.key, p.store.signing.id, claims)
}

// ForgeJWT is SignJWT with a fresh key the provider never published, under
// the provider's kid: a forged token that must be rejected.
func (p *Provider) ForgeJWT(tb testing.TB, claims map[string]any) string {
	tb.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatalf("oidctest: generate forging key: %v", err)
	}
	return signJWT(tb, key, p.store.signing.id, claims)
}

func signJWT(tb testing.TB, key *rsa.PrivateKey, kid string, claims map[string]any) string {
	payload, err := json.Marshal(claims)
	if err != nil {
		tb.Fatalf("oidctest: marshal claims: %v", err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), kid))
	if err != nil {
		tb.Fatalf("oidctest: signer: %v", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		tb.Fatalf("oidctest: sign: %v", err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		tb.Fatalf("oidctest: serialize: %v", err)
	}
	return out
}
