package apikey

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// Key string layout: KeyPrefix + lookup id + "_" + secret.
const (
	KeyPrefix   = "ghk_"
	LookupIDLen = 12
	SecretLen   = 43 // base64url, no padding, of 32 random bytes
	KeyLen      = len(KeyPrefix) + LookupIDLen + 1 + SecretLen
	base62      = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// ParseAPIKey splits a key string into its prefix ("ghk_" + lookup id, the
// row's lookup value) and its secret; ok is false for anything that is not a
// key string. It is strict: exact length, base62 lookup id, canonical
// unpadded base64url secret of 32 bytes.
func ParseAPIKey(raw string) (prefix, secret string, ok bool) {
	if len(raw) != KeyLen || !strings.HasPrefix(raw, KeyPrefix) {
		return "", "", false
	}
	end := len(KeyPrefix) + LookupIDLen
	for i := len(KeyPrefix); i < end; i++ {
		if !isBase62(raw[i]) {
			return "", "", false
		}
	}
	if raw[end] != '_' {
		return "", "", false
	}
	secret = raw[end+1:]
	b, err := base64.RawURLEncoding.Strict().DecodeString(secret)
	if err != nil || len(b) != 32 {
		return "", "", false
	}
	return raw[:end], secret, true
}

func isBase62(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')
}

// newKeyString returns a fresh key string and its prefix.
func newKeyString() (raw, prefix string, err error) {
	id, err := randomBase62(LookupIDLen)
	if err != nil {
		return "", "", err
	}
	prefix = KeyPrefix + id
	return prefix + "_" + newSecret(), prefix, nil
}

// newSecret returns 256 random bits, base64url without padding.
func newSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

// randomBase62 returns n uniformly random base62 characters (rejection
// sampling, so no modulo bias).
func randomBase62(n int) (string, error) {
	out := make([]byte, 0, n)
	buf := make([]byte, n*2)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		for _, b := range buf {
			if b < 248 { // 248 = 4*62
				out = append(out, base62[b%62])
				if len(out) == n {
					break
				}
			}
		}
	}
	return string(out), nil
}

// hashSecret is the stored form of a secret: hex HMAC-SHA256 under key.
func hashSecret(key []byte, secret string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(secret))
	return hex.EncodeToString(m.Sum(nil))
}

// equalHash compares two hex hashes in constant time (for equal lengths).
func equalHash(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}
