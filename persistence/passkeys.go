package persistence

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/mfa/passkey"
)

// PasskeyStore is the WebAuthn repository (passkey.Store): credentials are
// mfa_factors rows of type 'webauthn', registration ceremonies live in
// webauthn_ceremonies. InTx and AddEvents come from the embedded DB.
type PasskeyStore struct {
	*DB
}

var _ passkey.Store = (*PasskeyStore)(nil)

// NewPasskeyStore returns the WebAuthn repository on db.
func NewPasskeyStore(db *DB) *PasskeyStore { return &PasskeyStore{DB: db} }

const passkeyColumns = `id, user_id, credential_id, public_key, sign_count, aaguid, transports, attestation_type, created_at, verified_at, last_used_at, backup_eligible, backup_state`

// PasskeyAccount returns the user's id, tenant, email and names, or
// IDENT_NOT_FOUND (also for a malformed id). Errors: IDENT_UNAVAILABLE.
func (s *PasskeyStore) PasskeyAccount(ctx context.Context, userID string) (passkey.Account, error) {
	if !core.ValidID(userID) {
		return passkey.Account{}, core.NotFound("user")
	}
	var a passkey.Account
	err := s.bound(ctx).QueryRowContext(ctx,
		`SELECT id, tenant_id, email, first_name, last_name FROM users WHERE id = ?`, userID).
		Scan(&a.ID, &a.TenantID, &a.Email, &a.FirstName, &a.LastName)
	if errors.Is(err, sql.ErrNoRows) {
		return passkey.Account{}, core.NotFound("user")
	}
	return a, translate(err)
}

// PasskeyCredentials returns the user's verified WebAuthn credentials,
// oldest first. Errors: IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (s *PasskeyStore) PasskeyCredentials(ctx context.Context, userID string) ([]passkey.Credential, error) {
	if !core.ValidID(userID) {
		return nil, nil
	}
	rows, err := s.bound(ctx).QueryContext(ctx,
		`SELECT `+passkeyColumns+` FROM mfa_factors
		 WHERE user_id = ? AND type = 'webauthn' AND verified_at IS NOT NULL ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var out []passkey.Credential
	for rows.Next() {
		var (
			c          passkey.Credential
			count      int64
			transports string
			verified   sql.NullTime
			lastUsed   sql.NullTime
			eligible   sql.NullBool
		)
		if err := rows.Scan(&c.FactorID, &c.UserID, &c.CredentialID, &c.PublicKey, &count, &c.AAGUID, &transports,
			&c.AttestationType, &c.CreatedAt, &verified, &lastUsed, &eligible, &c.BackupState); err != nil {
			return nil, translate(err)
		}
		if eligible.Valid {
			c.BackupEligible = &eligible.Bool
		}
		c.SignCount = uint32(count)
		if transports != "" {
			if err := json.Unmarshal([]byte(transports), &c.Transports); err != nil {
				return nil, core.Internal(err)
			}
		}
		c.CreatedAt = c.CreatedAt.UTC()
		c.VerifiedAt = verified.Time.UTC()
		if lastUsed.Valid {
			at := lastUsed.Time.UTC()
			c.LastUsedAt = &at
		}
		out = append(out, c)
	}
	return out, translate(rows.Err())
}

// CountPasskeys counts the user's verified WebAuthn credentials.
// Errors: IDENT_UNAVAILABLE.
func (s *PasskeyStore) CountPasskeys(ctx context.Context, userID string) (int, error) {
	if !core.ValidID(userID) {
		return 0, nil
	}
	var n int
	err := s.bound(ctx).QueryRowContext(ctx,
		`SELECT COUNT(*) FROM mfa_factors WHERE user_id = ? AND type = 'webauthn' AND verified_at IS NOT NULL`,
		userID).Scan(&n)
	return n, translate(err)
}

// LockPasskeys takes a write lock on the user's row (a no-op UPDATE), so
// concurrent registrations of one user count and insert one after the
// other: Postgres holds the row lock until the transaction ends; SQLite
// serialises writers anyway. It must run inside InTx. Errors:
// IDENT_NOT_FOUND for an unknown user; IDENT_UNAVAILABLE.
func (s *PasskeyStore) LockPasskeys(ctx context.Context, userID string) error {
	if !inTx(ctx) {
		return core.Internal(errors.New("LockPasskeys outside a transaction"))
	}
	if !core.ValidID(userID) {
		return core.NotFound("user")
	}
	res, err := s.bound(ctx).ExecContext(ctx, `UPDATE users SET updated_at = updated_at WHERE id = ?`, userID)
	if err != nil {
		return translate(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return translate(err)
	}
	if n == 0 {
		return core.NotFound("user")
	}
	return nil
}

// InsertPasskey stores a verified credential. Errors: KindConflict for a
// credential id (or factor id) that exists; IDENT_NOT_FOUND for an unknown
// user; IDENT_UNAVAILABLE.
func (s *PasskeyStore) InsertPasskey(ctx context.Context, c passkey.Credential) error {
	transports := c.Transports
	if transports == nil {
		transports = []string{}
	}
	tj, err := json.Marshal(transports)
	if err != nil {
		return core.Internal(err)
	}
	_, err = s.bound(ctx).ExecContext(ctx,
		`INSERT INTO mfa_factors (id, user_id, type, credential_id, public_key, sign_count, aaguid, transports,
		 attestation_type, created_at, verified_at, last_used_at, backup_eligible, backup_state)
		 VALUES (?, ?, 'webauthn', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.FactorID, c.UserID, c.CredentialID, c.PublicKey, int64(c.SignCount), c.AAGUID, string(tj),
		c.AttestationType, c.CreatedAt.UTC(), c.VerifiedAt.UTC(), utcPtr(c.LastUsedAt), c.BackupEligible, c.BackupState)
	return translate(err)
}

// AdvancePasskeyCounter moves sign_count forward to count (and sets
// last_used_at, backup_state, and backup_eligible while it is unknown) in
// one conditional UPDATE that matches only while the stored count is lower,
// or both are 0 (an authenticator without a counter); it reports whether it
// matched. Errors: IDENT_UNAVAILABLE.
func (s *PasskeyStore) AdvancePasskeyCounter(ctx context.Context, factorID string, count uint32, flags passkey.Flags, now time.Time) (bool, error) {
	if !core.ValidID(factorID) {
		return false, nil
	}
	n := int64(count)
	res, err := s.bound(ctx).ExecContext(ctx,
		`UPDATE mfa_factors SET sign_count = ?, last_used_at = ?, backup_state = ?,
		 backup_eligible = COALESCE(backup_eligible, ?)
		 WHERE id = ? AND type = 'webauthn' AND (sign_count < ? OR (sign_count = 0 AND ? = 0))`,
		n, now.UTC(), flags.BackupState, flags.BackupEligible, factorID, n, n)
	if err != nil {
		return false, translate(err)
	}
	affected, err := res.RowsAffected()
	if err != nil {
		return false, translate(err)
	}
	return affected > 0, nil
}

// InsertPasskeyCeremony stores a registration ceremony. Errors:
// KindConflict for a duplicate id; IDENT_NOT_FOUND for an unknown user;
// IDENT_UNAVAILABLE.
func (s *PasskeyStore) InsertPasskeyCeremony(ctx context.Context, c passkey.Ceremony) error {
	_, err := s.bound(ctx).ExecContext(ctx,
		`INSERT INTO webauthn_ceremonies (id, user_id, state, created_at, expires_at, used_at) VALUES (?, ?, ?, ?, ?, NULL)`,
		c.ID, c.UserID, c.State, c.CreatedAt.UTC(), c.ExpiresAt.UTC())
	return translate(err)
}

// ConsumePasskeyCeremony marks ceremony id of userID used in one conditional
// UPDATE … WHERE used_at IS NULL AND expires_at > now RETURNING state: of
// concurrent consumers exactly one matches. Unknown, someone else's, used or
// expired → IDENT_NOT_FOUND. Errors: IDENT_UNAVAILABLE.
func (s *PasskeyStore) ConsumePasskeyCeremony(ctx context.Context, id, userID string, now time.Time) ([]byte, error) {
	if !core.ValidID(id) || !core.ValidID(userID) {
		return nil, core.NotFound("registration ceremony")
	}
	var state []byte
	err := s.bound(ctx).QueryRowContext(ctx,
		`UPDATE webauthn_ceremonies SET used_at = ?
		 WHERE id = ? AND user_id = ? AND used_at IS NULL AND expires_at > ? RETURNING state`,
		now.UTC(), id, userID, now.UTC()).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, core.NotFound("registration ceremony")
	}
	if err != nil {
		return nil, translate(err)
	}
	return state, nil
}
