package persistence

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/mfa"
)

// MFAStore is the repository of second factors, recovery codes and login
// challenges (mfa.Store). InTx and AddEvents come from the embedded DB.
// Statements are bound (bound(ctx)): challenges are on the login path.
type MFAStore struct {
	*DB
}

var _ mfa.Store = (*MFAStore)(nil)

// NewMFAStore returns the MFA repository on db.
func NewMFAStore(db *DB) *MFAStore { return &MFAStore{DB: db} }

const factorColumns = `id, user_id, type, name, secret_wrapped, last_used_step, created_at, verified_at, last_used_at`

// InsertFactor adds f. Errors: IDENT_NOT_FOUND (unknown user), KindConflict
// (duplicate id), IDENT_UNAVAILABLE.
func (s *MFAStore) InsertFactor(ctx context.Context, f mfa.Factor) error {
	_, err := s.bound(ctx).ExecContext(ctx,
		`INSERT INTO mfa_factors (`+factorColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		f.ID, f.UserID, f.Type, f.Name, f.SecretWrapped, f.LastUsedStep, f.CreatedAt.UTC(), utcPtr(f.VerifiedAt), utcPtr(f.LastUsedAt))
	return translate(err)
}

// FactorsOfUser returns every factor of userID, oldest first.
func (s *MFAStore) FactorsOfUser(ctx context.Context, userID string) ([]mfa.Factor, error) {
	if !core.ValidID(userID) {
		return nil, nil
	}
	rows, err := s.bound(ctx).QueryContext(ctx,
		`SELECT `+factorColumns+` FROM mfa_factors WHERE user_id = ? ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var out []mfa.Factor
	for rows.Next() {
		var (
			f                  mfa.Factor
			verified, lastUsed sql.NullTime
		)
		if err := rows.Scan(&f.ID, &f.UserID, &f.Type, &f.Name, &f.SecretWrapped, &f.LastUsedStep,
			&f.CreatedAt, &verified, &lastUsed); err != nil {
			return nil, translate(err)
		}
		f.CreatedAt = f.CreatedAt.UTC()
		f.VerifiedAt, f.LastUsedAt = mfaTimePtr(verified), mfaTimePtr(lastUsed)
		out = append(out, f)
	}
	return out, translate(rows.Err())
}

// DeleteUnverifiedTOTP deletes the unconfirmed TOTP factors of userID but keepID.
func (s *MFAStore) DeleteUnverifiedTOTP(ctx context.Context, userID, keepID string) error {
	if !core.ValidID(keepID) {
		_, err := s.bound(ctx).ExecContext(ctx,
			`DELETE FROM mfa_factors WHERE user_id = ? AND type = ? AND verified_at IS NULL`, userID, mfa.TypeTOTP)
		return translate(err)
	}
	_, err := s.bound(ctx).ExecContext(ctx,
		`DELETE FROM mfa_factors WHERE user_id = ? AND type = ? AND verified_at IS NULL AND id <> ?`,
		userID, mfa.TypeTOTP, keepID)
	return translate(err)
}

// AdvanceTOTPStep moves last_used_step forward to step (ONE conditional UPDATE).
func (s *MFAStore) AdvanceTOTPStep(ctx context.Context, factorID string, step int64, now time.Time) (bool, error) {
	return s.affected(ctx,
		`UPDATE mfa_factors SET last_used_step = ?, last_used_at = ? WHERE id = ? AND last_used_step < ?`,
		step, now.UTC(), factorID, step)
}

// MarkFactorVerified sets verified_at unless it is set.
func (s *MFAStore) MarkFactorVerified(ctx context.Context, factorID string, now time.Time) (bool, error) {
	return s.affected(ctx,
		`UPDATE mfa_factors SET verified_at = ? WHERE id = ? AND verified_at IS NULL`, now.UTC(), factorID)
}

// DeleteFactorsOfUser deletes every factor of userID.
func (s *MFAStore) DeleteFactorsOfUser(ctx context.Context, userID string) (int64, error) {
	res, err := s.bound(ctx).ExecContext(ctx, `DELETE FROM mfa_factors WHERE user_id = ?`, userID)
	if err != nil {
		return 0, translate(err)
	}
	n, err := res.RowsAffected()
	return n, translate(err)
}

// ReplaceRecoveryCodes swaps the recovery codes of userID for hashes.
func (s *MFAStore) ReplaceRecoveryCodes(ctx context.Context, userID string, hashes []string, now time.Time) error {
	return s.InTx(ctx, func(ctx context.Context) error {
		if err := s.DeleteRecoveryCodes(ctx, userID); err != nil {
			return err
		}
		for _, h := range hashes {
			if _, err := s.bound(ctx).ExecContext(ctx,
				`INSERT INTO mfa_recovery_codes (hash, user_id, created_at) VALUES (?, ?, ?)`, h, userID, now.UTC()); err != nil {
				return translate(err)
			}
		}
		return nil
	})
}

// UseRecoveryCode consumes the unused code hash of userID (ONE conditional UPDATE).
func (s *MFAStore) UseRecoveryCode(ctx context.Context, userID, hash string, now time.Time) (bool, error) {
	return s.affected(ctx,
		`UPDATE mfa_recovery_codes SET used_at = ? WHERE hash = ? AND user_id = ? AND used_at IS NULL`,
		now.UTC(), hash, userID)
}

// UnusedRecoveryCodes counts the unused codes of userID.
func (s *MFAStore) UnusedRecoveryCodes(ctx context.Context, userID string) (int, error) {
	var n int
	err := s.bound(ctx).QueryRowContext(ctx,
		`SELECT COUNT(*) FROM mfa_recovery_codes WHERE user_id = ? AND used_at IS NULL`, userID).Scan(&n)
	return n, translate(err)
}

// DeleteRecoveryCodes deletes every recovery code of userID.
func (s *MFAStore) DeleteRecoveryCodes(ctx context.Context, userID string) error {
	_, err := s.bound(ctx).ExecContext(ctx, `DELETE FROM mfa_recovery_codes WHERE user_id = ?`, userID)
	return translate(err)
}

const challengeColumns = `id, user_id, tenant_id, context_node_id, ip, user_agent, webauthn_state, failures, created_at, expires_at, consumed_at`

// InsertChallenge adds c. Errors: IDENT_NOT_FOUND (unknown user or tenant).
func (s *MFAStore) InsertChallenge(ctx context.Context, c mfa.Challenge) error {
	_, err := s.bound(ctx).ExecContext(ctx,
		`INSERT INTO mfa_challenges (`+challengeColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.UserID, c.TenantID, c.ContextNodeID, c.IP, c.UserAgent, c.WebAuthnState, c.Failures,
		c.CreatedAt.UTC(), c.ExpiresAt.UTC(), utcPtr(c.ConsumedAt))
	return translate(err)
}

// ChallengeByID returns the challenge, or IDENT_NOT_FOUND.
func (s *MFAStore) ChallengeByID(ctx context.Context, id string) (mfa.Challenge, error) {
	if !core.ValidID(id) {
		return mfa.Challenge{}, core.NotFound("challenge")
	}
	var (
		c        mfa.Challenge
		consumed sql.NullTime
	)
	err := s.bound(ctx).QueryRowContext(ctx, `SELECT `+challengeColumns+` FROM mfa_challenges WHERE id = ?`, id).Scan(
		&c.ID, &c.UserID, &c.TenantID, &c.ContextNodeID, &c.IP, &c.UserAgent, &c.WebAuthnState, &c.Failures,
		&c.CreatedAt, &c.ExpiresAt, &consumed)
	if errors.Is(err, sql.ErrNoRows) {
		return mfa.Challenge{}, core.NotFound("challenge")
	}
	if err != nil {
		return mfa.Challenge{}, translate(err)
	}
	c.CreatedAt, c.ExpiresAt, c.ConsumedAt = c.CreatedAt.UTC(), c.ExpiresAt.UTC(), mfaTimePtr(consumed)
	return c, nil
}

// RecordChallengeFailure counts a failure and burns the challenge at limit
// (ONE conditional UPDATE … RETURNING).
func (s *MFAStore) RecordChallengeFailure(ctx context.Context, id string, limit int, now time.Time) (int, bool, error) {
	var n int
	err := s.bound(ctx).QueryRowContext(ctx,
		`UPDATE mfa_challenges SET failures = failures + 1,
		        consumed_at = CASE WHEN failures + 1 >= ? THEN ? ELSE consumed_at END
		  WHERE id = ? AND consumed_at IS NULL AND expires_at > ?
		  RETURNING failures`, limit, now.UTC(), id, now.UTC()).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, translate(err)
	}
	return n, true, nil
}

// ConsumeChallenge uses the open challenge id (ONE conditional UPDATE).
func (s *MFAStore) ConsumeChallenge(ctx context.Context, id string, now time.Time) (bool, error) {
	if !core.ValidID(id) {
		return false, nil
	}
	return s.affected(ctx,
		`UPDATE mfa_challenges SET consumed_at = ? WHERE id = ? AND consumed_at IS NULL AND expires_at > ?`,
		now.UTC(), id, now.UTC())
}

// BurnChallengesOfUser consumes every open challenge of userID.
func (s *MFAStore) BurnChallengesOfUser(ctx context.Context, userID string, now time.Time) error {
	_, err := s.bound(ctx).ExecContext(ctx,
		`UPDATE mfa_challenges SET consumed_at = ? WHERE user_id = ? AND consumed_at IS NULL`, now.UTC(), userID)
	return translate(err)
}

func (s *MFAStore) affected(ctx context.Context, query string, args ...any) (bool, error) {
	res, err := s.bound(ctx).ExecContext(ctx, query, args...)
	if err != nil {
		return false, translate(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, translate(err)
	}
	return n > 0, nil
}

func mfaTimePtr(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	u := t.Time.UTC()
	return &u
}
