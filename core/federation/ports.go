package federation

import (
	"context"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/auth"
	"github.com/ghasi-ehealth/identity-service/core/user"
)

// Provider is a tenant's OpenID Provider (CONTRACT.md §5 configureOidcProvider).
// Slug is the {provider} path segment and unique within the tenant.
type Provider struct {
	ID       string
	TenantID string
	Slug     string
	Issuer   string
	ClientID string
	// ClientSecret is the client secret sealed by the master key
	// (keys.MasterKey.Wrap bound to tenant id and slug as associated data); the
	// plaintext is never stored and never leaves the service.
	ClientSecret []byte
	Scopes       []string
	// AllowedEmailDomains, when not empty, restricts federated logins to IdP
	// emails in these domains (lower case, no '@').
	AllowedEmailDomains []string
	// ReturnURLs are the allow-listed returnTo targets of the login-code
	// redirect (exact scheme, host and path; the query is free).
	ReturnURLs []string
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// ExternalIdentity links a user to an account at an IdP: (Issuer, Subject)
// is unique across all tenants.
type ExternalIdentity struct {
	ID         string
	UserID     string
	TenantID   string
	ProviderID string
	Issuer     string
	Subject    string
	CreatedAt  time.Time
}

// Store is what the federation service needs from persistence. Every method
// joins the transaction carried by ctx.
type Store interface {
	core.Transactor
	core.EventSink

	// UpsertProvider stores p, keyed by (TenantID, Slug): a new row takes
	// p.ID and p.CreatedAt, an existing one keeps its ID and CreatedAt and
	// takes every other field. It returns the stored provider.
	// Errors: IDENT_NOT_FOUND when the tenant does not exist; IDENT_UNAVAILABLE.
	UpsertProvider(ctx context.Context, p Provider) (Provider, error)
	// ProviderBySlug returns the tenant's provider; IDENT_NOT_FOUND when there
	// is none (also for a tenantID that is not a UUID).
	ProviderBySlug(ctx context.Context, tenantID, slug string) (Provider, error)
	// ProviderByID returns the provider; IDENT_NOT_FOUND when there is none.
	ProviderByID(ctx context.Context, id string) (Provider, error)

	// ExternalIdentity returns the link of (issuer, subject); IDENT_NOT_FOUND
	// when there is none.
	ExternalIdentity(ctx context.Context, issuer, subject string) (ExternalIdentity, error)
	// InsertExternalIdentity adds e. Errors: IDENT_CONFLICT (KindConflict)
	// when (issuer, subject) is linked already, also when two inserts race.
	InsertExternalIdentity(ctx context.Context, e ExternalIdentity) error

	// UserByID returns the user; IDENT_NOT_FOUND when there is none.
	UserByID(ctx context.Context, id string) (user.User, error)
	// UserByEmailInTenant returns the user of tenantID with email (already
	// normalized); IDENT_NOT_FOUND when there is none.
	UserByEmailInTenant(ctx context.Context, tenantID, email string) (user.User, error)
	// InsertUser adds u (a JIT-provisioned user without password).
	// Errors: IDENT_EMAIL_DUPLICATE when the email is taken in the tenant.
	InsertUser(ctx context.Context, u user.User) error
}

// FlowStore keeps the short-lived, single-use records of the flow: the
// authorization request (keyed by state) and the login code of a returnTo
// redirect. Take returns and deletes in one step, so a record is used at
// most once even across instances (Valkey GETDEL).
type FlowStore interface {
	Put(ctx context.Context, key string, value []byte, ttl time.Duration) error
	// Take returns the value and deletes it; ok is false when the key is
	// unknown or expired.
	Take(ctx context.Context, key string) (value []byte, ok bool, err error)
}

// Sealer wraps and unwraps client secrets (*keys.MasterKey).
type Sealer interface {
	Wrap(plaintext, aad []byte) ([]byte, error)
	Unwrap(wrapped, aad []byte) ([]byte, error)
}

// SessionOpener opens a platform session with amr ["fed"] for an active user
// authenticated by an IdP (*auth.Service). It joins the transaction carried
// by ctx. Errors: IDENT_INVALID_CREDENTIALS when the user is not active.
type SessionOpener interface {
	OpenFederatedSession(ctx context.Context, userID, ip, userAgent string) (auth.TokenResponse, error)
}
