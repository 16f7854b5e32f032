// Package keys is the signing keyring: RSA keys stored in the database with
// their private parts wrapped by the master key, rotated through the states
// next → active → retired, and served as a pre-serialized JWKS document.
//
// The next key is published before it signs, so verifiers holding a cached
// JWKS already know it when it becomes active; a retired key stays published
// (and verifiable) until its publish_until, 7 days by default.
package keys

import (
	"context"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
)

// Purpose separates independent keyrings in one table.
type Purpose string

const (
	// PurposeJWT signs access tokens (RS256) and is published in JWKS.
	PurposeJWT Purpose = "jwt"
	// PurposeDeviceCA signs device binding certificates.
	PurposeDeviceCA Purpose = "device_ca"
)

// State is where a key is in its life.
type State string

const (
	// StateNext is published in JWKS but does not sign yet.
	StateNext State = "next"
	// StateActive signs; exactly one per purpose.
	StateActive State = "active"
	// StateRetired no longer signs; published until PublishUntil.
	StateRetired State = "retired"
)

// AlgRS256 is the only signing algorithm of the jwt keyring.
const AlgRS256 = "RS256"

// EventJWKSRotated is emitted in the rotation's transaction; its subject is
// the new active kid and its tenant is empty (a platform event).
const EventJWKSRotated = "identity.jwks.rotated.v1"

// RotatedData is the data of EventJWKSRotated (CONTRACT.md §8).
type RotatedData struct {
	NewKid      string `json:"newKid"`
	PreviousKid string `json:"previousKid"`
	// PreviousKeyRetiresAt is when the previous key leaves JWKS (RFC 3339).
	PreviousKeyRetiresAt string `json:"previousKeyRetiresAt"`
}

// StoredKey is one row of the keyring as the Store keeps it.
type StoredKey struct {
	KID       string
	Purpose   Purpose
	Algorithm string
	State     State
	// PublicKey is DER SubjectPublicKeyInfo.
	PublicKey []byte
	// PrivateKeyWrapped is PKCS#8 DER wrapped by the Wrapper with aad = KID.
	PrivateKeyWrapped []byte
	CreatedAt         time.Time
	ActivatedAt       *time.Time
	RetiredAt         *time.Time
	// PublishUntil is when a retired key leaves JWKS.
	PublishUntil *time.Time
}

// Store is the keyring's persistence port. Writes made with a context from
// InTx join that transaction, and so do AddEvents.
type Store interface {
	core.Transactor
	core.EventSink
	// ListKeys returns every key of purpose (any state, any order).
	ListKeys(ctx context.Context, purpose Purpose) ([]StoredKey, error)
	// InsertKey adds k. A second active or next key of one purpose, or a
	// duplicate kid, fails with a core error of KindConflict.
	InsertKey(ctx context.Context, k StoredKey) error
	// TransitionKey moves kid from state `from` to `to` only if it is still
	// in `from` (a conditional update) and reports whether it did; two
	// instances rotating at once therefore cannot both win. Moving to active
	// sets activated_at = at; moving to retired sets retired_at = at and
	// publish_until = publishUntil.
	TransitionKey(ctx context.Context, kid string, from, to State, at time.Time, publishUntil *time.Time) (bool, error)
}

// SigningKey is the public view of a key (GraphQL signingKeys).
type SigningKey struct {
	KID          string
	Algorithm    string
	State        State
	CreatedAt    time.Time
	ActivatedAt  *time.Time
	RetiredAt    *time.Time
	PublishUntil *time.Time
}

func (k StoredKey) view() SigningKey {
	return SigningKey{
		KID:          k.KID,
		Algorithm:    k.Algorithm,
		State:        k.State,
		CreatedAt:    k.CreatedAt,
		ActivatedAt:  k.ActivatedAt,
		RetiredAt:    k.RetiredAt,
		PublishUntil: k.PublishUntil,
	}
}

// Config tunes the keyring; zero fields take the defaults.
type Config struct {
	// RotationCron is a standard 5-field cron expression evaluated in UTC
	// (IDENTITY_KEY_ROTATION_CRON); default "0 0 1 */3 *" (quarterly).
	RotationCron string
	// RetiredPublishFor is how long a retired key stays in JWKS; default 7 days.
	RetiredPublishFor time.Duration
	// RefreshEvery is how often Run reloads the keyring; default 1 minute.
	// Scheduled rotations are checked at the same cadence.
	RefreshEvery time.Duration
}

// Defaults for Config.
const (
	DefaultRotationCron      = "0 0 1 */3 *"
	DefaultRetiredPublishFor = 7 * 24 * time.Hour
	DefaultRefreshEvery      = time.Minute
)

func (c Config) withDefaults() Config {
	if c.RotationCron == "" {
		c.RotationCron = DefaultRotationCron
	}
	if c.RetiredPublishFor <= 0 {
		c.RetiredPublishFor = DefaultRetiredPublishFor
	}
	if c.RefreshEvery <= 0 {
		c.RefreshEvery = DefaultRefreshEvery
	}
	return c
}
