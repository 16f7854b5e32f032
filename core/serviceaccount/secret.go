package serviceaccount

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"

	"github.com/ghasi-ehealth/identity-service/core"
)

const (
	clientIDPrefix = "sa_"
	clientIDChars  = 20
	base62         = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	// secretBytes is the randomness of a client secret (256 bits); its text
	// form is base64url without padding, secretLen characters.
	secretBytes = 32
	secretLen   = 43
)

// newClientID returns "sa_" + 20 uniformly random base62 characters.
func newClientID() string {
	out := make([]byte, 0, len(clientIDPrefix)+clientIDChars)
	out = append(out, clientIDPrefix...)
	var buf [32]byte
	for len(out) < cap(out) {
		if _, err := rand.Read(buf[:]); err != nil {
			panic(err) // crypto/rand never fails on supported platforms
		}
		for _, b := range buf {
			if b >= 248 { // 248 = 4*62: rejection keeps the draw uniform
				continue
			}
			out = append(out, base62[b%62])
			if len(out) == cap(out) {
				break
			}
		}
	}
	return string(out)
}

// wellFormedClientID reports whether id can be a client id at all.
func wellFormedClientID(id string) bool {
	if len(id) != len(clientIDPrefix)+clientIDChars || id[:len(clientIDPrefix)] != clientIDPrefix {
		return false
	}
	for i := len(clientIDPrefix); i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z') {
			return false
		}
	}
	return true
}

// newSecret returns a fresh client secret.
func newSecret() string { return core.RandomToken(secretBytes) }

// hashSecret is the stored form of a secret: hex HMAC-SHA256 under the key.
func (s *Service) hashSecret(secret string) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(secret))
	return hex.EncodeToString(m.Sum(nil))
}

// secretMatches compares hashes in constant time.
func secretMatches(got, stored string) bool {
	return stored != "" && hmac.Equal([]byte(got), []byte(stored))
}
