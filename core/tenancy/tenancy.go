// Package tenancy holds the tenant directory's domain types: tenants with the
// identity-owned settings, and (in later issues) hierarchy nodes.
package tenancy

import (
	"regexp"
	"time"
)

// Tenant is an organisation using the platform. SelfRegistration and
// MFARequired are the settings identity-service owns.
type Tenant struct {
	ID               string
	Slug             string
	Name             string
	SelfRegistration bool
	MFARequired      bool
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

var slugPattern = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidSlug reports whether s is a lower-case DNS-label-like slug.
func ValidSlug(s string) bool { return slugPattern.MatchString(s) }
