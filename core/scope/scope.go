// Package scope is the platform's scope vocabulary for API keys and service
// accounts: `tenant:{resource}:{action}`, lower case, `_` inside words.
// Unknown scopes are rejected, so a typo cannot mint a useless (or
// accidentally powerful) credential.
package scope

import (
	"slices"
	"sort"
	"strings"

	"github.com/ghasi-ehealth/identity-service/core"
)

// Scopes with meaning inside identity-service.
const (
	UsersRead           = "tenant:users:read"
	UsersWrite          = "tenant:users:write"
	DevicesRead         = "tenant:devices:read"
	DevicesWrite        = "tenant:devices:write"
	LicensingRead       = "tenant:licensing:read"
	LicensingWrite      = "tenant:licensing:write"
	APIKeysVerify       = "tenant:api_keys:verify"
	AccessContextRead   = "tenant:access_context:read"
	EventsRead          = "tenant:events:read"
	TokensExchange      = "tenant:tokens:exchange"
	PatientsRead        = "tenant:patients:read"
	PatientsWrite       = "tenant:patients:write"
	EncountersRead      = "tenant:encounters:read"
	EncountersWrite     = "tenant:encounters:write"
	DocumentsRead       = "tenant:documents:read"
	DocumentsWrite      = "tenant:documents:write"
	AppointmentsRead    = "tenant:appointments:read"
	AppointmentsWrite   = "tenant:appointments:write"
	NotificationsSend   = "tenant:notifications:send"
	AuditRead           = "tenant:audit:read"
	HierarchyRead       = "tenant:hierarchy:read"
	ServiceAccountsRead = "tenant:service_accounts:read"
)

// vocabulary is every scope a credential may carry: identity-service's own
// and those of the platform services that check them.
var vocabulary = []string{
	UsersRead, UsersWrite, DevicesRead, DevicesWrite, LicensingRead, LicensingWrite,
	APIKeysVerify, AccessContextRead, EventsRead, TokensExchange,
	PatientsRead, PatientsWrite, EncountersRead, EncountersWrite, DocumentsRead, DocumentsWrite,
	AppointmentsRead, AppointmentsWrite, NotificationsSend, AuditRead, HierarchyRead, ServiceAccountsRead,
}

// Vocabulary returns every known scope, sorted.
func Vocabulary() []string {
	out := slices.Clone(vocabulary)
	sort.Strings(out)
	return out
}

// Known reports whether s is in the vocabulary.
func Known(s string) bool { return slices.Contains(vocabulary, s) }

// Normalize trims, de-duplicates and sorts scopes and rejects unknown ones
// with IDENT_VALIDATION naming the field (e.g. "scopes") and the offenders.
// At least one scope is required.
func Normalize(field string, scopes []string) ([]string, error) {
	seen := map[string]bool{}
	var out, unknown []string
	for _, s := range scopes {
		s = strings.TrimSpace(s)
		if seen[s] {
			continue
		}
		seen[s] = true
		if !Known(s) {
			unknown = append(unknown, s)
			continue
		}
		out = append(out, s)
	}
	if len(unknown) > 0 {
		return nil, core.InvalidField(field, "unknown scope(s): "+strings.Join(unknown, ", "))
	}
	if len(out) == 0 {
		return nil, core.InvalidField(field, "at least one scope is required")
	}
	sort.Strings(out)
	return out, nil
}
