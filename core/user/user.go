// Package user holds the user domain: identity data, lifecycle states and
// the rules for emails.
package user

import (
	"net/mail"
	"strings"
	"time"
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
