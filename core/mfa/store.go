package mfa

import (
	"context"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/core/user"
)

// Factor types (mfa_factors.type).
const (
	TypeTOTP     = "totp"
	TypeWebAuthn = "webauthn"
)

// Factor is one second factor. SecretWrapped and LastUsedStep are TOTP
// only and never leave core.
type Factor struct {
	ID            string
	UserID        string
	Type          string
	Name          string
	SecretWrapped []byte
	LastUsedStep  int64
	CreatedAt     time.Time
	// VerifiedAt is nil while a TOTP enrolment awaits its first code.
	VerifiedAt *time.Time
	LastUsedAt *time.Time
}

// Challenge is a login waiting for its second factor (IDENT_MFA_REQUIRED).
type Challenge struct {
	ID            string
	UserID        string
	TenantID      string
	ContextNodeID string
	IP            string
	UserAgent     string
	// WebAuthnState is the assertion ceremony offered with the challenge.
	WebAuthnState []byte
	Failures      int
	CreatedAt     time.Time
	ExpiresAt     time.Time
	ConsumedAt    *time.Time
}

// Store is the repository of factors, recovery codes and challenges
// (persistence.MFAStore). Every method joins the transaction of ctx.
type Store interface {
	core.Transactor
	core.EventSink

	// InsertFactor adds f. Errors: IDENT_NOT_FOUND for an unknown user.
	InsertFactor(ctx context.Context, f Factor) error
	// FactorsOfUser returns every factor of userID (both types), oldest first.
	FactorsOfUser(ctx context.Context, userID string) ([]Factor, error)
	// DeleteUnverifiedTOTP deletes the TOTP factors of userID that await
	// confirmation, except keepID (may be empty).
	DeleteUnverifiedTOTP(ctx context.Context, userID, keepID string) error
	// AdvanceTOTPStep sets last_used_step = step and last_used_at = now in
	// ONE conditional UPDATE (… AND last_used_step < step) and reports
	// whether it did: a TOTP code is accepted once, also under concurrency.
	AdvanceTOTPStep(ctx context.Context, factorID string, step int64, now time.Time) (bool, error)
	// MarkFactorVerified sets verified_at = now unless it is set.
	MarkFactorVerified(ctx context.Context, factorID string, now time.Time) (bool, error)
	// DeleteFactorsOfUser deletes every factor of userID and returns how many.
	DeleteFactorsOfUser(ctx context.Context, userID string) (int64, error)

	// ReplaceRecoveryCodes deletes the recovery codes of userID and stores
	// hashes (HMAC-SHA256 hex) as its new ones.
	ReplaceRecoveryCodes(ctx context.Context, userID string, hashes []string, now time.Time) error
	// UseRecoveryCode marks the unused code of userID with hash used (ONE
	// conditional UPDATE, used_at IS NULL) and reports whether it did.
	UseRecoveryCode(ctx context.Context, userID, hash string, now time.Time) (bool, error)
	// UnusedRecoveryCodes counts the unused recovery codes of userID.
	UnusedRecoveryCodes(ctx context.Context, userID string) (int, error)
	// DeleteRecoveryCodes deletes every recovery code of userID.
	DeleteRecoveryCodes(ctx context.Context, userID string) error

	// InsertChallenge adds c.
	InsertChallenge(ctx context.Context, c Challenge) error
	// ChallengeByID returns the challenge or IDENT_NOT_FOUND (also for a
	// malformed id).
	ChallengeByID(ctx context.Context, id string) (Challenge, error)
	// RecordChallengeFailure adds one failure to the open (unconsumed,
	// unexpired at now) challenge id and burns it (consumed_at = now) when
	// the count reaches limit, in ONE conditional UPDATE. ok is false when
	// the challenge was not open.
	RecordChallengeFailure(ctx context.Context, id string, limit int, now time.Time) (failures int, ok bool, err error)
	// ConsumeChallenge sets consumed_at = now on the open challenge id (ONE
	// conditional UPDATE) and reports whether it did.
	ConsumeChallenge(ctx context.Context, id string, now time.Time) (bool, error)
	// BurnChallengesOfUser consumes every open challenge of userID.
	BurnChallengesOfUser(ctx context.Context, userID string, now time.Time) error
}

// Users reads the accounts (persistence.UserStore).
type Users interface {
	// UserByID returns the user or IDENT_NOT_FOUND.
	UserByID(ctx context.Context, id string) (user.User, error)
}

// Tenants reads tenant settings (persistence.TenancyStore).
type Tenants interface {
	// TenantByID returns the tenant or IDENT_NOT_FOUND.
	TenantByID(ctx context.Context, id string) (tenancy.Tenant, error)
}
