package keys

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
)

// Wrapper encrypts key material at rest. The local MasterKey implements it;
// a cloud KMS can implement it later without touching the keyring. aad binds
// a wrapped blob to its owner (for signing keys, the kid), so a blob copied
// into another row fails to unwrap.
type Wrapper interface {
	Wrap(plaintext, aad []byte) ([]byte, error)
	Unwrap(wrapped, aad []byte) ([]byte, error)
}

// MasterKeySize is the length of IDENTITY_MASTER_KEY after base64 decoding.
const MasterKeySize = 32

// wrapVersion is the first byte of every wrapped blob, so the format (or the
// key that wrapped it) can change later without guessing.
const wrapVersion byte = 1

// HKDF info strings. The wrapping key and every derived secret come from the
// master key through HKDF with distinct labels, so the raw master key is never
// used directly by two different primitives.
const (
	wrapKeyInfo       = "identity-service/v1/aes-256-gcm-wrap"
	derivedInfoPrefix = "identity-service/v1/secret/"
)

var (
	errWrappedTooShort = errors.New("keys: wrapped blob too short")
	errWrappedVersion  = errors.New("keys: unknown wrapped blob version")
	errUnwrap          = errors.New("keys: unwrap failed (wrong master key, wrong aad or tampered blob)")
)

// MasterKey is the local key-encryption key (IDENTITY_MASTER_KEY). It wraps
// private signing keys and TOTP seeds with AES-256-GCM and derives server
// HMAC secrets. Its String and LogValue never reveal the key.
type MasterKey struct {
	aead cipher.AEAD
	ikm  []byte
}

var _ Wrapper = (*MasterKey)(nil)

// NewMasterKey builds a master key from exactly 32 bytes; b is copied.
func NewMasterKey(b []byte) (*MasterKey, error) {
	if len(b) != MasterKeySize {
		return nil, fmt.Errorf("master key must be %d bytes, got %d", MasterKeySize, len(b))
	}
	ikm := make([]byte, len(b))
	copy(ikm, b)
	wk, err := hkdf.Key(sha256.New, ikm, nil, wrapKeyInfo, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(wk)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &MasterKey{aead: aead, ikm: ikm}, nil
}

// Wrap encrypts plaintext bound to aad. The result is
// version (1 byte) || nonce (12 bytes) || ciphertext+tag.
func (m *MasterKey) Wrap(plaintext, aad []byte) ([]byte, error) {
	ns := m.aead.NonceSize()
	out := make([]byte, 1+ns, 1+ns+len(plaintext)+m.aead.Overhead())
	out[0] = wrapVersion
	// A random 96-bit nonce is safe here: the number of wraps under one
	// master key stays many orders of magnitude below the 2^32 GCM bound.
	if _, err := rand.Read(out[1 : 1+ns]); err != nil {
		return nil, err
	}
	return m.aead.Seal(out, out[1:1+ns], plaintext, aad), nil
}

// Unwrap reverses Wrap. It fails when the blob was tampered with, was wrapped
// under another master key, or aad differs from the one used to wrap.
func (m *MasterKey) Unwrap(wrapped, aad []byte) ([]byte, error) {
	ns := m.aead.NonceSize()
	if len(wrapped) < 1+ns+m.aead.Overhead() {
		return nil, errWrappedTooShort
	}
	if wrapped[0] != wrapVersion {
		return nil, errWrappedVersion
	}
	pt, err := m.aead.Open(nil, wrapped[1:1+ns], wrapped[1+ns:], aad)
	if err != nil {
		return nil, errUnwrap
	}
	return pt, nil
}

// DeriveSecret returns a 32-byte secret for label (HKDF-SHA256 of the master
// key), e.g. the HMAC keys for refresh tokens and API keys. The same master
// key and label always give the same secret; different labels are independent.
func (m *MasterKey) DeriveSecret(label string) []byte {
	k, err := hkdf.Key(sha256.New, m.ikm, nil, derivedInfoPrefix+label, 32)
	if err != nil {
		// hkdf.Key only fails for lengths beyond 255*32 bytes.
		panic(err)
	}
	return k
}

// String keeps the key out of fmt output.
func (m *MasterKey) String() string { return "MasterKey(redacted)" }

// GoString keeps the key out of %#v output.
func (m *MasterKey) GoString() string { return m.String() }

// LogValue keeps the key out of slog output.
func (m *MasterKey) LogValue() slog.Value { return slog.StringValue("redacted") }
