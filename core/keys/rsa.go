package keys

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// rsaBits is the modulus size of every signing key.
const rsaBits = 2048

var (
	errNotRSA      = errors.New("keys: stored public key is not RSA")
	errKIDMismatch = errors.New("keys: stored kid is not the thumbprint of its public key")
	errKeyPair     = errors.New("keys: private key does not match the stored public key")
)

// newKey generates an RSA key and its stored form in state, wrapped under
// w with aad = kid. Generation is slow (tens of ms), so callers do it before
// opening a transaction.
func newKey(w Wrapper, purpose Purpose, state State, now time.Time) (StoredKey, error) {
	priv, err := rsa.GenerateKey(rand.Reader, rsaBits)
	if err != nil {
		return StoredKey{}, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	if err != nil {
		return StoredKey{}, err
	}
	privDER, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return StoredKey{}, err
	}
	kid := Thumbprint(&priv.PublicKey)
	wrapped, err := w.Wrap(privDER, []byte(kid))
	clear(privDER)
	if err != nil {
		return StoredKey{}, err
	}
	k := StoredKey{
		KID:               kid,
		Purpose:           purpose,
		Algorithm:         AlgRS256,
		State:             state,
		PublicKey:         pubDER,
		PrivateKeyWrapped: wrapped,
		CreatedAt:         now,
	}
	if state == StateActive {
		k.ActivatedAt = &now
	}
	return k, nil
}

// Thumbprint is the RFC 7638 JWK thumbprint of pub: base64url (no padding)
// of SHA-256 over {"e","kty","n"} in lexicographic order without spaces.
func Thumbprint(pub *rsa.PublicKey) string {
	n, e := jwkNE(pub)
	h := sha256.New()
	h.Write([]byte(`{"e":"`))
	h.Write([]byte(e))
	h.Write([]byte(`","kty":"RSA","n":"`))
	h.Write([]byte(n))
	h.Write([]byte(`"}`))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// jwkNE returns the base64url big-endian modulus and exponent (RFC 7518 §6.3.1).
func jwkNE(pub *rsa.PublicKey) (n, e string) {
	return base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes())
}

// parsePublic decodes a stored public key and checks that kid is its
// thumbprint, so a row cannot claim another key's kid.
func parsePublic(k StoredKey) (*rsa.PublicKey, error) {
	p, err := x509.ParsePKIXPublicKey(k.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("keys: parse public key %s: %w", k.KID, err)
	}
	pub, ok := p.(*rsa.PublicKey)
	if !ok {
		return nil, errNotRSA
	}
	if Thumbprint(pub) != k.KID {
		return nil, errKIDMismatch
	}
	return pub, nil
}

// unwrapPrivate decrypts and parses a stored private key and checks that it
// belongs to pub.
func unwrapPrivate(w Wrapper, k StoredKey, pub *rsa.PublicKey) (*rsa.PrivateKey, error) {
	der, err := w.Unwrap(k.PrivateKeyWrapped, []byte(k.KID))
	if err != nil {
		return nil, fmt.Errorf("keys: unwrap private key %s (is IDENTITY_MASTER_KEY the one that wrapped it?): %w", k.KID, err)
	}
	p, err := x509.ParsePKCS8PrivateKey(der)
	clear(der)
	if err != nil {
		return nil, fmt.Errorf("keys: parse private key %s: %w", k.KID, err)
	}
	priv, ok := p.(*rsa.PrivateKey)
	if !ok || !priv.PublicKey.Equal(pub) {
		return nil, errKeyPair
	}
	return priv, nil
}

// Signer signs with the active key of the moment it was taken. It is
// immutable, so a token's header kid and its signature always agree even if
// a rotation happens meanwhile. The private key never leaves it.
type Signer struct {
	kid  string
	priv *rsa.PrivateKey
}

// KID is the key id to put in the JWS header.
func (s *Signer) KID() string { return s.kid }

// SignRS256 returns the RSASSA-PKCS1-v1_5 SHA-256 signature of input.
func (s *Signer) SignRS256(input []byte) ([]byte, error) {
	sum := sha256.Sum256(input)
	return rsa.SignPKCS1v15(rand.Reader, s.priv, crypto.SHA256, sum[:])
}

// String keeps the private key out of fmt output.
func (s *Signer) String() string { return "Signer(" + s.kid + ")" }

// GoString keeps the private key out of %#v output.
func (s *Signer) GoString() string { return s.String() }
