// Package apikey issues, rotates, revokes and verifies tenant API keys
// (CONTRACT.md §4, §5, §6; story IDENT-US-007).
//
// A key string is "ghk_<lookup id>_<secret>": the lookup id (12 base62
// characters) finds the row, the secret (43 base64url characters, 256 bits)
// proves possession. Only HMAC-SHA256(secret) under the service's HMAC key
// (IDENTITY_APIKEY_HMAC_SECRET, or keys.MasterKey.DeriveSecret(HMACKeyLabel)
// when unset) is stored; the key string appears only in the Create and Rotate
// results. Events never carry it.
package apikey

import (
	"context"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
)

// HMACKeyLabel is the label the composition root passes to
// keys.MasterKey.DeriveSecret when IDENTITY_APIKEY_HMAC_SECRET is unset.
const HMACKeyLabel = "api-key-hmac"

// MinHMACKeyLen is the shortest accepted HMAC key (256 bits).
const MinHMACKeyLen = 32

// Rotation overlap: how long the previous secret keeps working after Rotate.
const (
	DefaultOverlap = 24 * time.Hour
	MaxOverlap     = 30 * 24 * time.Hour
)

// CacheTTL bounds how long a verified key row is reused without reading the
// database. It is the cross-instance revocation bound: a key revoked on one
// instance fails on every other instance within CacheTTL.
const CacheTTL = 2 * time.Second

// MaxNameLen is the longest key name, in bytes.
const MaxNameLen = 200

// Event types of the API key lifecycle (CONTRACT.md §8).
const (
	EventIssued  = "identity.api_key.issued.v1"
	EventRotated = "identity.api_key.rotated.v1"
	EventRevoked = "identity.api_key.revoked.v1"
)

// Key is a stored API key. SecretHash and PreviousSecretHash are hex
// HMAC-SHA256 values; Service methods never return them filled.
type Key struct {
	ID       string
	TenantID string
	Name     string
	// Prefix is "ghk_" + lookup id: the non-secret, unique leading part of
	// the key string, shown in lists.
	Prefix             string
	SecretHash         string
	PreviousSecretHash string
	// PreviousExpiresAt ends the previous secret's validity (after Rotate).
	PreviousExpiresAt *time.Time
	Scopes            []string
	ExpiresAt         *time.Time
	CreatedBy         string
	CreatedAt         time.Time
	RevokedAt         *time.Time
}

// Store is what the API key service needs from persistence. Writes join the
// transaction carried by ctx, so a change and its event commit together.
type Store interface {
	core.Transactor
	core.EventSink

	// InsertAPIKey adds k. Errors: IDENT_NOT_FOUND for an unknown tenant;
	// KindConflict for a duplicate id or prefix; IDENT_UNAVAILABLE.
	InsertAPIKey(ctx context.Context, k Key) error
	// APIKeyByID returns the key; IDENT_NOT_FOUND when there is none (also
	// for a malformed id).
	APIKeyByID(ctx context.Context, id string) (Key, error)
	// APIKeyByPrefix returns the key with prefix; IDENT_NOT_FOUND when there
	// is none. It is on the verification hot path.
	APIKeyByPrefix(ctx context.Context, prefix string) (Key, error)
	// ListAPIKeys returns the keys of tenantID, newest first.
	ListAPIKeys(ctx context.Context, tenantID string) ([]Key, error)
	// RotateAPIKey, in one conditional UPDATE of an unrevoked key, moves the
	// current hash to previous (valid until previousExpiresAt) and stores
	// newHash; it reports whether the row matched.
	RotateAPIKey(ctx context.Context, id, newHash string, previousExpiresAt time.Time) (bool, error)
	// RevokeAPIKey stamps revoked_at = now unless the key already is revoked
	// and reports whether it changed the row.
	RevokeAPIKey(ctx context.Context, id string, now time.Time) (bool, error)
	// TenantIDBySlug returns the id of the tenant with slug; IDENT_NOT_FOUND
	// when there is none.
	TenantIDBySlug(ctx context.Context, slug string) (string, error)
}

// CreateInput is what Create needs. TenantID "" means the caller's tenant.
type CreateInput struct {
	Name      string
	Scopes    []string
	TenantID  string
	ExpiresAt *time.Time
}

// Created is a new key with its key string (shown once).
type Created struct {
	Key Key
	// Secret is the whole key string, "ghk_<lookup id>_<secret>".
	Secret string
}

// Rotated is the result of Rotate.
type Rotated struct {
	ID string
	// Secret is the whole new key string (shown once).
	Secret                  string
	PreviousSecretExpiresAt time.Time
	// Key is the key after the rotation, without hashes (for GraphQL's
	// CreatedApiKey).
	Key Key
}

// Verification is the verdict of VerifyAPIKey; only a valid key fills the
// other fields. Its fields match rpc.APIKeyVerification, so the rpc adapter
// converts with rpc.APIKeyVerification(v).
type Verification struct {
	Valid    bool
	KeyID    string
	TenantID string
	Scopes   []string
}

// EventData is the payload of identity.api_key.issued.v1, rotated.v1 and
// revoked.v1. It never carries the secret.
type EventData struct {
	APIKeyID string   `json:"apiKeyId"`
	TenantID string   `json:"tenantId"`
	Scopes   []string `json:"scopes"`
}

func keyEvent(now time.Time, eventType string, k Key) core.Event {
	scopes := append([]string{}, k.Scopes...)
	return core.NewEvent(now, eventType, k.ID, k.TenantID, EventData{APIKeyID: k.ID, TenantID: k.TenantID, Scopes: scopes})
}

// public strips what must not leave core.
func public(k Key) Key {
	k.SecretHash, k.PreviousSecretHash = "", ""
	return k
}
