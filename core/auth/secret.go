package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"strings"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/user"
)

// refreshTokenBytes is the randomness of a refresh token (256 bits); its
// text form is base64url without padding, refreshTokenLen characters.
const (
	refreshTokenBytes = 32
	refreshTokenLen   = 43
)

// newRefreshToken returns a fresh refresh token.
func newRefreshToken() string { return core.RandomToken(refreshTokenBytes) }

// wellFormedRefreshToken reports whether raw can be a refresh token at all,
// so garbage is refused without touching the database.
func wellFormedRefreshToken(raw string) bool {
	if len(raw) != refreshTokenLen {
		return false
	}
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// hashRefreshToken is the stored form of a refresh token: hex HMAC-SHA256
// under the refresh key.
func (s *Service) hashRefreshToken(raw string) string {
	m := hmac.New(sha256.New, s.refreshKey)
	m.Write([]byte(raw))
	return hex.EncodeToString(m.Sum(nil))
}

// newTokenID returns the jti of an access token of sessionID:
// "<sessionId>.<random>" (the random part is base64url, so it has no '.').
func newTokenID(sessionID string) string { return sessionID + "." + core.RandomToken(12) }

// SessionIDOf returns the session an access token's jti belongs to: the part
// before the first '.'. ok is false for a jti without '.', which is not bound
// to a session (service-account tokens).
func SessionIDOf(tokenID string) (sessionID string, ok bool) {
	sid, _, found := strings.Cut(tokenID, ".")
	if !found || sid == "" {
		return "", false
	}
	return sid, true
}

// accountKey and ipKey are the rate-limiter keys of a login attempt. The
// account key hashes the normalized email — whatever tenantId the attempt
// names, so choosing a tenant buys an attacker no extra guesses — and no
// address is stored in the limiter's backend.
func accountKey(email string) string {
	sum := sha256.Sum256([]byte(user.NormalizeEmail(email)))
	return "login:acct:" + hex.EncodeToString(sum[:16])
}

func ipKey(ip string) string {
	if ip == "" {
		ip = "unknown"
	}
	return "login:ip:" + ip
}

// eventIP is ip as events carry it: a bare IPv4/IPv6 address, or "" when
// unknown or not an address.
func eventIP(ip string) string {
	if parsed := net.ParseIP(ip); parsed != nil {
		return parsed.String()
	}
	return ""
}
