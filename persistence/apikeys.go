package persistence

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/apikey"
)

// APIKeyStore is the API key repository (apikey.Store). InTx and AddEvents
// come from the embedded DB, so a key change and its event commit together.
// Statements are driver-bound (bound), since lookups by prefix sit on the
// verification path.
type APIKeyStore struct {
	*DB
}

var _ apikey.Store = (*APIKeyStore)(nil)

// NewAPIKeyStore returns the API key repository on db.
func NewAPIKeyStore(db *DB) *APIKeyStore { return &APIKeyStore{DB: db} }

const apiKeyColumns = `id, tenant_id, name, prefix, secret_hash, previous_secret_hash, previous_expires_at, scopes, expires_at, created_by, created_at, revoked_at`

// InsertAPIKey adds k. Errors: IDENT_NOT_FOUND for an unknown tenant;
// KindConflict for a duplicate id or prefix; IDENT_UNAVAILABLE.
func (s *APIKeyStore) InsertAPIKey(ctx context.Context, k apikey.Key) error {
	scopes, err := json.Marshal(apiKeyScopes(k.Scopes))
	if err != nil {
		return core.Internal(err)
	}
	_, err = s.bound(ctx).ExecContext(ctx,
		`INSERT INTO api_keys (`+apiKeyColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		k.ID, k.TenantID, k.Name, k.Prefix, k.SecretHash, nullString(k.PreviousSecretHash), utcPtr(k.PreviousExpiresAt),
		string(scopes), utcPtr(k.ExpiresAt), k.CreatedBy, k.CreatedAt.UTC(), utcPtr(k.RevokedAt))
	return translate(err)
}

// APIKeyByID returns the key, or IDENT_NOT_FOUND (also for a malformed id).
// Errors: IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (s *APIKeyStore) APIKeyByID(ctx context.Context, id string) (apikey.Key, error) {
	if !core.ValidID(id) {
		return apikey.Key{}, core.NotFound("API key")
	}
	return s.one(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE id = ?`, id)
}

// APIKeyByPrefix returns the key with prefix, or IDENT_NOT_FOUND.
// Errors: IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (s *APIKeyStore) APIKeyByPrefix(ctx context.Context, prefix string) (apikey.Key, error) {
	return s.one(ctx, `SELECT `+apiKeyColumns+` FROM api_keys WHERE prefix = ?`, prefix)
}

// ListAPIKeys returns the keys of tenantID, newest first (none for a
// malformed id). Errors: IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (s *APIKeyStore) ListAPIKeys(ctx context.Context, tenantID string) ([]apikey.Key, error) {
	if !core.ValidID(tenantID) {
		return nil, nil
	}
	rows, err := s.bound(ctx).QueryContext(ctx,
		`SELECT `+apiKeyColumns+` FROM api_keys WHERE tenant_id = ? ORDER BY created_at DESC, id DESC`, tenantID)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var out []apikey.Key
	for rows.Next() {
		k, err := scanAPIKey(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, translate(rows.Err())
}

// RotateAPIKey moves secret_hash to previous_secret_hash (valid until
// previousExpiresAt) and stores newHash, in one conditional UPDATE of an
// unrevoked key (both dialects read the old secret_hash on the right-hand
// side). It reports whether the row matched. Errors: IDENT_UNAVAILABLE.
func (s *APIKeyStore) RotateAPIKey(ctx context.Context, id, newHash string, previousExpiresAt time.Time) (bool, error) {
	if !core.ValidID(id) {
		return false, nil
	}
	res, err := s.bound(ctx).ExecContext(ctx,
		`UPDATE api_keys SET previous_secret_hash = secret_hash, previous_expires_at = ?, secret_hash = ?
		 WHERE id = ? AND revoked_at IS NULL`, previousExpiresAt.UTC(), newHash, id)
	return apiKeyAffected(res, err)
}

// RevokeAPIKey stamps revoked_at = now unless the key already is revoked
// and reports whether it changed the row. Errors: IDENT_UNAVAILABLE.
func (s *APIKeyStore) RevokeAPIKey(ctx context.Context, id string, now time.Time) (bool, error) {
	if !core.ValidID(id) {
		return false, nil
	}
	res, err := s.bound(ctx).ExecContext(ctx,
		`UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`, now.UTC(), id)
	return apiKeyAffected(res, err)
}

// TenantIDBySlug returns the id of the tenant with slug, or IDENT_NOT_FOUND.
// Errors: IDENT_UNAVAILABLE.
func (s *APIKeyStore) TenantIDBySlug(ctx context.Context, slug string) (string, error) {
	var id string
	err := s.bound(ctx).QueryRowContext(ctx, `SELECT id FROM tenants WHERE slug = ?`, slug).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", core.NotFound("tenant")
	}
	return id, translate(err)
}

func (s *APIKeyStore) one(ctx context.Context, query string, arg any) (apikey.Key, error) {
	rows, err := s.bound(ctx).QueryContext(ctx, query, arg)
	if err != nil {
		return apikey.Key{}, translate(err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return apikey.Key{}, translate(err)
		}
		return apikey.Key{}, core.NotFound("API key")
	}
	return scanAPIKey(rows)
}

func scanAPIKey(rows *sql.Rows) (apikey.Key, error) {
	var (
		k                        apikey.Key
		prevHash                 sql.NullString
		prevExp, expires, revoke sql.NullTime
		scopes                   string
	)
	if err := rows.Scan(&k.ID, &k.TenantID, &k.Name, &k.Prefix, &k.SecretHash, &prevHash, &prevExp,
		&scopes, &expires, &k.CreatedBy, &k.CreatedAt, &revoke); err != nil {
		return apikey.Key{}, translate(err)
	}
	if err := json.Unmarshal([]byte(scopes), &k.Scopes); err != nil {
		return apikey.Key{}, core.Internal(err)
	}
	k.PreviousSecretHash = prevHash.String
	k.CreatedAt = k.CreatedAt.UTC()
	k.PreviousExpiresAt, k.ExpiresAt, k.RevokedAt = apiKeyTime(prevExp), apiKeyTime(expires), apiKeyTime(revoke)
	return k, nil
}

func apiKeyTime(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}

func apiKeyAffected(res sql.Result, err error) (bool, error) {
	if err != nil {
		return false, translate(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, translate(err)
	}
	return n > 0, nil
}

func apiKeyScopes(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
