package user

import (
	"context"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
)

// Store is what the user service needs from persistence. Every method joins
// the transaction carried by ctx (core.Transactor), so a state change, its
// verification token, its session revocations and its event commit together.
type Store interface {
	core.Transactor
	core.EventSink

	// TenantSettings returns the identity settings of tenantID; IDENT_NOT_FOUND
	// when there is no such tenant (or tenantID is not a UUID).
	TenantSettings(ctx context.Context, tenantID string) (TenantSettings, error)

	// InsertUser adds u. Errors: IDENT_EMAIL_DUPLICATE (Kind Conflict) when a
	// user of the tenant already has the email — also when two inserts race,
	// since the check is the unique index; IDENT_NOT_FOUND for an unknown tenant.
	InsertUser(ctx context.Context, u User) error
	// EmailTaken reports whether a user of tenantID has email (a cheap
	// pre-check; the unique index is what makes duplicates impossible).
	EmailTaken(ctx context.Context, tenantID, email string) (bool, error)
	// UserByID returns the user; IDENT_NOT_FOUND when there is none.
	UserByID(ctx context.Context, id string) (User, error)
	// ListUsers returns up to q.Limit users of q.TenantID ordered by id.
	ListUsers(ctx context.Context, q ListQuery) ([]User, error)

	// TransitionUser moves user id from status `from` to `to` in one
	// conditional UPDATE and reports whether it was still in `from`; of
	// concurrent transitions at most one succeeds.
	TransitionUser(ctx context.Context, id string, from, to Status, now time.Time) (bool, error)
	// ActivateUser moves a pending_verification user to active. With a
	// non-empty passwordHash it sets the first password and succeeds only
	// while the user has none; with an empty one it succeeds only while the
	// user has one. It reports whether the row matched.
	ActivateUser(ctx context.Context, id, passwordHash string, now time.Time) (bool, error)
	// EraseUser sets status deactivated, empties email and names, drops the
	// password hash and the Keycloak link and stamps deactivated_at = now,
	// unless the user already is deactivated; it reports whether it changed
	// the row. It also deletes the user's IdP links, second factors,
	// recovery codes and pending MFA challenges and empties the names of the
	// user's devices.
	EraseUser(ctx context.Context, id string, now time.Time) (bool, error)

	// InsertVerificationToken stores t (its hash only, never the token).
	InsertVerificationToken(ctx context.Context, t VerificationToken) error
	// VerificationTokenByHash returns the token with tokenHash; IDENT_NOT_FOUND
	// when there is none.
	VerificationTokenByHash(ctx context.Context, tokenHash string) (VerificationToken, error)
	// RedeemVerificationToken marks the token used in one conditional UPDATE
	// (unused and expires_at > now) and reports whether this call did it; of
	// concurrent redemptions exactly one wins.
	RedeemVerificationToken(ctx context.Context, tokenHash string, now time.Time) (bool, error)
	// DeleteVerificationTokens removes every verification token of userID.
	DeleteVerificationTokens(ctx context.Context, userID string) error

	// RedactEvents removes e's personal data from the payloads of stored
	// events (see Erasure) and returns how many events it rewrote.
	RedactEvents(ctx context.Context, e Erasure) (int, error)
}

// TenantSettings is what the user service reads of a tenant.
type TenantSettings struct {
	ID               string
	SelfRegistration bool
}

// VerificationToken is a stored email-verification token. TokenHash is the
// hex HMAC-SHA256 of the token under Config.TokenKey; the token itself is
// never stored.
type VerificationToken struct {
	ID        string
	UserID    string
	TokenHash string
	ExpiresAt time.Time
	UsedAt    *time.Time
	CreatedAt time.Time
}

// ListQuery selects a page of users for Store.ListUsers.
type ListQuery struct {
	TenantID string
	// Status filters exactly when not empty.
	Status Status
	// AfterID, when not empty, keeps only users whose id sorts after it.
	AfterID string
	Limit   int
}

// PasswordHasher hashes a new password (argon2id PHC string); password.Hasher
// implements it. It may fail with IDENT_OVERLOADED.
type PasswordHasher interface {
	Hash(ctx context.Context, plain string) (string, error)
}

// PasswordPolicy decides whether a new password is acceptable. Check returns
// a *core.Error IDENT_VALIDATION with Fields["password"] when it is not.
type PasswordPolicy interface {
	Check(plain string) error
}

// ContextPasswordPolicy is a PasswordPolicy that can also refuse a password
// equal to something an attacker would try first for this account
// (password.Policy implements it). When the policy has it, the service calls
// CheckFor with the user's email, first and last name.
type ContextPasswordPolicy interface {
	PasswordPolicy
	CheckFor(plain string, context ...string) error
}

// SessionRevoker ends every session of a user. The service calls it inside
// the transaction of the suspension or erasure (reason "suspended" or
// "erased"), so an implementation that joins the transaction of ctx commits
// the revocation together with the status change.
type SessionRevoker interface {
	RevokeAllForUser(ctx context.Context, userID, reason string) error
}

// Session revocation reasons passed to SessionRevoker (CONTRACT.md §8).
const (
	RevokeReasonSuspended = "suspended"
	RevokeReasonErased    = "erased"
)

// NoSessions is a SessionRevoker that does nothing, for wiring until the
// session store exists.
type NoSessions struct{}

// RevokeAllForUser does nothing and returns nil.
func (NoSessions) RevokeAllForUser(context.Context, string, string) error { return nil }
