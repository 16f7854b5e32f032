package mfa

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// recoveryCodeLen is the number of base32 characters of a recovery code
// (50 bits), shown as "XXXXX-XXXXX".
const recoveryCodeLen = 10

// newRecoveryCodes returns RecoveryCodes fresh codes and their hashes.
func (s *Service) newRecoveryCodes() (codes, hashes []string) {
	for range RecoveryCodes {
		b := make([]byte, 7)
		_, _ = rand.Read(b) // crypto/rand never fails on supported platforms
		raw := b32.EncodeToString(b)[:recoveryCodeLen]
		codes = append(codes, raw[:5]+"-"+raw[5:])
		hashes = append(hashes, s.hashRecoveryCode(raw))
	}
	return codes, hashes
}

// normalizeRecoveryCode upper-cases code and drops dashes and spaces, so
// "abcde-fghij" and "ABCDEFGHIJ" are the same code.
func normalizeRecoveryCode(code string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' {
			return -1
		}
		return r
	}, strings.ToUpper(code))
}

// hashRecoveryCode is HMAC-SHA256 (hex) of the normalized code under the
// key derived from the master key.
func (s *Service) hashRecoveryCode(code string) string {
	m := hmac.New(sha256.New, s.recoveryKey)
	m.Write([]byte(normalizeRecoveryCode(code)))
	return hex.EncodeToString(m.Sum(nil))
}
