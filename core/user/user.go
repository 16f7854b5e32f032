// Package user holds the user domain: identity data, lifecycle states and
// the rules for emails.
package user

import (
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Status is a user's lifecycle state.
type Status string

const (
	StatusPendingVerification Status = "pending_verification"
	StatusActive              Status = "active"
	StatusSuspended           Status = "suspended"
	StatusDeactivated         Status = "deactivated"
)

// User is a person who signs in. PasswordHash is an argon2id PHC string and
// never leaves core.
type User struct {
	ID            string
	TenantID      string
	Email         string
	FirstName     string
	LastName      string
	Status        Status
	PasswordHash  string
	CreatedAt     time.Time
	UpdatedAt     time.Time
	DeactivatedAt *time.Time
}

// NormalizeEmail trims and lower-cases an email address (CONTRACT.md §2).
func NormalizeEmail(email string) string {
	return strings.ToLower(strings.TrimSpace(email))
}

// ValidEmail reports whether email (already normalised) is a plain address.
func ValidEmail(email string) bool {
	if email == "" || len(email) > 254 {
		return false
	}
	addr, err := mail.ParseAddress(email)
	return err == nil && addr.Address == email && addr.Name == ""
}

// Valid reports whether s is one of the four lifecycle states.
func (s Status) Valid() bool {
	switch s {
	case StatusPendingVerification, StatusActive, StatusSuspended, StatusDeactivated:
		return true
	}
	return false
}

// Name length bounds for first and last names, in code points after trimming.
const (
	MinNameLen = 1
	MaxNameLen = 100
)

// NormalizeName trims surrounding white space from a first or last name.
func NormalizeName(name string) string { return strings.TrimSpace(name) }

// ValidName reports whether name (already normalised) has 1 to 100 code
// points and no control characters.
func ValidName(name string) bool {
	n := utf8.RuneCountInString(name)
	if n < MinNameLen || n > MaxNameLen || !utf8.ValidString(name) {
		return false
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}
