package persistence

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/user"
)

// UserStore is the user lifecycle repository (user.Store): users,
// email-verification tokens and the redaction of erased users' personal
// data from stored events. InTx and AddEvents come from the embedded DB, so
// a change and its event commit together.
type UserStore struct {
	*DB
}

var _ user.Store = (*UserStore)(nil)

// NewUserStore returns the user repository on db.
func NewUserStore(db *DB) *UserStore { return &UserStore{DB: db} }

const userColumns = `id, tenant_id, email, first_name, last_name, status, password_hash, created_at, updated_at, deactivated_at`

// TenantSettings returns the tenant's self-registration setting, or
// IDENT_NOT_FOUND. Errors: IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (s *UserStore) TenantSettings(ctx context.Context, tenantID string) (user.TenantSettings, error) {
	if !core.ValidID(tenantID) {
		return user.TenantSettings{}, core.NotFound("tenant")
	}
	var t user.TenantSettings
	err := s.conn(ctx).QueryRowContext(ctx,
		`SELECT id, self_registration FROM tenants WHERE id = ?`, tenantID).Scan(&t.ID, &t.SelfRegistration)
	if errors.Is(err, sql.ErrNoRows) {
		return t, core.NotFound("tenant")
	}
	return t, translate(err)
}

// InsertUser adds u. Errors: IDENT_EMAIL_DUPLICATE (KindConflict) when the
// tenant already has a user with the email (the partial unique index
// users_tenant_email_key decides, so racing inserts cannot both succeed);
// IDENT_NOT_FOUND for an unknown tenant; IDENT_UNAVAILABLE.
func (s *UserStore) InsertUser(ctx context.Context, u user.User) error {
	_, err := s.conn(ctx).ExecContext(ctx,
		`INSERT INTO users (id, tenant_id, email, first_name, last_name, status, password_hash, created_at, updated_at, deactivated_at)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.TenantID, u.Email, u.FirstName, u.LastName, string(u.Status), nullString(u.PasswordHash),
		u.CreatedAt.UTC(), u.UpdatedAt.UTC(), utcPtr(u.DeactivatedAt))
	if err = translate(err); IsUniqueViolation(err) {
		return core.Wrap(err, core.KindConflict, core.CodeEmailDuplicate, "a user with this email already exists in the tenant")
	}
	return err
}

// EmailTaken reports whether a user of tenantID has email.
// Errors: IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (s *UserStore) EmailTaken(ctx context.Context, tenantID, email string) (bool, error) {
	if !core.ValidID(tenantID) || email == "" {
		return false, nil
	}
	var n int
	err := s.conn(ctx).QueryRowContext(ctx,
		`SELECT count(*) FROM users WHERE tenant_id = ? AND email = ?`, tenantID, email).Scan(&n)
	return n > 0, translate(err)
}

// UserByID returns the user, or IDENT_NOT_FOUND (also for a malformed id).
// Errors: IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (s *UserStore) UserByID(ctx context.Context, id string) (user.User, error) {
	if !core.ValidID(id) {
		return user.User{}, core.NotFound("user")
	}
	rows, err := s.conn(ctx).QueryContext(ctx, `SELECT `+userColumns+` FROM users WHERE id = ?`, id)
	if err != nil {
		return user.User{}, translate(err)
	}
	users, err := scanUsers(rows)
	if err != nil {
		return user.User{}, err
	}
	if len(users) == 0 {
		return user.User{}, core.NotFound("user")
	}
	return users[0], nil
}

// ListUsers returns up to q.Limit users of q.TenantID (of q.Status when set)
// whose id sorts after q.AfterID, ordered by id. Errors: IDENT_UNAVAILABLE,
// IDENT_INTERNAL.
func (s *UserStore) ListUsers(ctx context.Context, q user.ListQuery) ([]user.User, error) {
	if !core.ValidID(q.TenantID) || (q.AfterID != "" && !core.ValidID(q.AfterID)) {
		return nil, nil
	}
	query := `SELECT ` + userColumns + ` FROM users WHERE tenant_id = ?`
	args := []any{q.TenantID}
	if q.Status != "" {
		query += ` AND status = ?`
		args = append(args, string(q.Status))
	}
	if q.AfterID != "" {
		query += ` AND id > ?`
		args = append(args, q.AfterID)
	}
	query += ` ORDER BY id`
	if q.Limit > 0 {
		query += ` LIMIT ?`
		args = append(args, q.Limit)
	}
	rows, err := s.conn(ctx).QueryContext(ctx, query, args...)
	if err != nil {
		return nil, translate(err)
	}
	return scanUsers(rows)
}

// TransitionUser moves id from `from` to `to` in one conditional UPDATE and
// reports whether it matched. On Postgres a concurrent transition of the row
// waits for the first to commit and then matches nothing; SQLite serialises
// writers. Errors: IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (s *UserStore) TransitionUser(ctx context.Context, id string, from, to user.Status, now time.Time) (bool, error) {
	if !core.ValidID(id) {
		return false, nil
	}
	return s.execAffected(ctx,
		`UPDATE users SET status = ?, updated_at = ? WHERE id = ? AND status = ?`,
		string(to), now.UTC(), id, string(from))
}

// ActivateUser moves a pending_verification user to active: with a non-empty
// passwordHash only while the user has no password (which it then sets),
// otherwise only while the user has one. Errors: IDENT_UNAVAILABLE,
// IDENT_INTERNAL.
func (s *UserStore) ActivateUser(ctx context.Context, id, passwordHash string, now time.Time) (bool, error) {
	if !core.ValidID(id) {
		return false, nil
	}
	if passwordHash != "" {
		return s.execAffected(ctx,
			`UPDATE users SET status = ?, password_hash = ?, updated_at = ?
			  WHERE id = ? AND status = ? AND password_hash IS NULL`,
			string(user.StatusActive), passwordHash, now.UTC(), id, string(user.StatusPendingVerification))
	}
	return s.execAffected(ctx,
		`UPDATE users SET status = ?, updated_at = ?
		  WHERE id = ? AND status = ? AND password_hash IS NOT NULL`,
		string(user.StatusActive), now.UTC(), id, string(user.StatusPendingVerification))
}

// EraseUser deactivates id and empties its personal data (email, names,
// password hash, upstream Keycloak id) unless it already is deactivated, and
// reports whether it changed the row. Whether or not the row changed, it
// also deletes the user's external identities (IdP issuer and subject),
// second factors, recovery codes and pending MFA challenges, and empties the
// names and platforms of the user's devices; all statements run in one
// transaction (the one carried by ctx, or their own). Errors: IDENT_UNAVAILABLE,
// IDENT_INTERNAL.
func (s *UserStore) EraseUser(ctx context.Context, id string, now time.Time) (bool, error) {
	if !core.ValidID(id) {
		return false, nil
	}
	var changed bool
	err := s.InTx(ctx, func(ctx context.Context) error {
		var err error
		changed, err = s.execAffected(ctx,
			`UPDATE users SET status = ?, email = '', first_name = '', last_name = '', password_hash = NULL,
			        keycloak_user_id = NULL, deactivated_at = ?, updated_at = ?
			  WHERE id = ? AND status <> ?`,
			string(user.StatusDeactivated), now.UTC(), now.UTC(), id, string(user.StatusDeactivated))
		if err != nil {
			return err
		}
		// Personal data held elsewhere: IdP links, second factors (a TOTP
		// seed or passkey is tied to the person), pending challenges and
		// device labels (often the owner's name).
		for _, stmt := range []string{
			`DELETE FROM external_identities WHERE user_id = ?`,
			`DELETE FROM mfa_challenges WHERE user_id = ?`,
			`DELETE FROM webauthn_ceremonies WHERE user_id = ?`,
			`DELETE FROM mfa_recovery_codes WHERE user_id = ?`,
			`DELETE FROM mfa_factors WHERE user_id = ?`,
			`UPDATE devices SET name = '', platform = '' WHERE user_id = ?`,
		} {
			if _, err := s.conn(ctx).ExecContext(ctx, stmt, id); err != nil {
				return translate(err)
			}
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	return changed, nil
}

// InsertVerificationToken stores t. Errors: KindConflict for a duplicate
// hash, IDENT_NOT_FOUND for an unknown user, IDENT_UNAVAILABLE.
func (s *UserStore) InsertVerificationToken(ctx context.Context, t user.VerificationToken) error {
	_, err := s.conn(ctx).ExecContext(ctx,
		`INSERT INTO verification_tokens (id, user_id, token_hash, expires_at, used_at, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		t.ID, t.UserID, t.TokenHash, t.ExpiresAt.UTC(), utcPtr(t.UsedAt), t.CreatedAt.UTC())
	return translate(err)
}

// VerificationTokenByHash returns the token with tokenHash, or
// IDENT_NOT_FOUND. Errors: IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (s *UserStore) VerificationTokenByHash(ctx context.Context, tokenHash string) (user.VerificationToken, error) {
	var t user.VerificationToken
	var used sql.NullTime
	err := s.conn(ctx).QueryRowContext(ctx,
		`SELECT id, user_id, token_hash, expires_at, used_at, created_at FROM verification_tokens WHERE token_hash = ?`, tokenHash).
		Scan(&t.ID, &t.UserID, &t.TokenHash, &t.ExpiresAt, &used, &t.CreatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return t, core.NotFound("verification token")
	}
	if err != nil {
		return t, translate(err)
	}
	t.ExpiresAt, t.CreatedAt = t.ExpiresAt.UTC(), t.CreatedAt.UTC()
	if used.Valid {
		at := used.Time.UTC()
		t.UsedAt = &at
	}
	return t, nil
}

// RedeemVerificationToken marks the token used if it is unused and not
// expired at now, in one conditional UPDATE, and reports whether this call
// did it: of concurrent redemptions exactly one matches (Postgres re-checks
// the condition after the first commit; SQLite serialises writers).
// Errors: IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (s *UserStore) RedeemVerificationToken(ctx context.Context, tokenHash string, now time.Time) (bool, error) {
	return s.execAffected(ctx,
		`UPDATE verification_tokens SET used_at = ? WHERE token_hash = ? AND used_at IS NULL AND expires_at > ?`,
		now.UTC(), tokenHash, now.UTC())
}

// DeleteVerificationTokens removes every verification token of userID.
// Errors: IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (s *UserStore) DeleteVerificationTokens(ctx context.Context, userID string) error {
	if !core.ValidID(userID) {
		return nil
	}
	_, err := s.conn(ctx).ExecContext(ctx, `DELETE FROM verification_tokens WHERE user_id = ?`, userID)
	return translate(err)
}

func (s *UserStore) execAffected(ctx context.Context, query string, args ...any) (bool, error) {
	res, err := s.conn(ctx).ExecContext(ctx, query, args...)
	if err != nil {
		return false, translate(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, translate(err)
	}
	return n > 0, nil
}

func scanUsers(rows *sql.Rows) ([]user.User, error) {
	defer rows.Close()
	var out []user.User
	for rows.Next() {
		var u user.User
		var status string
		var hash sql.NullString
		var deactivated sql.NullTime
		if err := rows.Scan(&u.ID, &u.TenantID, &u.Email, &u.FirstName, &u.LastName, &status, &hash,
			&u.CreatedAt, &u.UpdatedAt, &deactivated); err != nil {
			return nil, translate(err)
		}
		u.Status = user.Status(status)
		u.PasswordHash = hash.String
		u.CreatedAt, u.UpdatedAt = u.CreatedAt.UTC(), u.UpdatedAt.UTC()
		if deactivated.Valid {
			at := deactivated.Time.UTC()
			u.DeactivatedAt = &at
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err)
	}
	return out, nil
}

// nullString maps "" to SQL NULL.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// RedactEvents removes e's personal data from stored event payloads (see
// user.Erasure) and returns how many events it rewrote. Candidates are the
// events about the user (subject or data.userId) and those whose JSON text
// contains e.SearchTerm(); the exact decision and the rewrite happen in Go
// over the decoded JSON, so it works the same on jsonb (Postgres) and TEXT
// (SQLite) and always writes back valid JSON. e.Keep is filled here with the
// other users that still hold the address. Run it inside InTx.
// Errors: IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (s *UserStore) RedactEvents(ctx context.Context, e user.Erasure) (int, error) {
	if !core.ValidID(e.UserID) {
		return 0, nil
	}
	e.Email = user.NormalizeEmail(e.Email)
	keep, err := s.otherHolders(ctx, e.UserID, e.Email)
	if err != nil {
		return 0, err
	}
	e.Keep = keep
	candidates, err := s.redactionCandidates(ctx, e)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range candidates {
		out, changed, err := e.RedactEvent(c.subject, c.data)
		if err != nil {
			return n, core.Internal(err)
		}
		if !changed {
			continue
		}
		if _, err := s.conn(ctx).ExecContext(ctx, `UPDATE events SET data = ? WHERE seq = ?`, string(out), c.seq); err != nil {
			return n, translate(err)
		}
		n++
	}
	return n, nil
}

type redactionCandidate struct {
	seq     int64
	subject string
	data    json.RawMessage
}

// otherHolders lists users other than userID whose email is email.
func (s *UserStore) otherHolders(ctx context.Context, userID, email string) ([]string, error) {
	if email == "" {
		return nil, nil
	}
	rows, err := s.conn(ctx).QueryContext(ctx, `SELECT id FROM users WHERE email = ? AND id <> ?`, email, userID)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, translate(err)
		}
		ids = append(ids, id)
	}
	return ids, translate(rows.Err())
}

// redactionCandidates loads (all at once, so the rows are closed before the
// updates run on the same connection) the events that may hold e's data.
func (s *UserStore) redactionCandidates(ctx context.Context, e user.Erasure) ([]redactionCandidate, error) {
	var query string
	args := []any{e.UserID, e.UserID}
	if s.dialect == Postgres {
		query = `SELECT seq, subject, data FROM events WHERE subject = ? OR data->>'userId' = ?`
	} else {
		query = `SELECT seq, subject, data FROM events WHERE subject = ? OR json_extract(data, '$.userId') = ?`
	}
	if term := e.SearchTerm(); term != "" {
		if s.dialect == Postgres {
			query += ` OR position(? in lower(data::text)) > 0`
		} else {
			query += ` OR instr(lower(data), ?) > 0`
		}
		args = append(args, term)
	}
	rows, err := s.conn(ctx).QueryContext(ctx, query+` ORDER BY seq`, args...)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var out []redactionCandidate
	for rows.Next() {
		var c redactionCandidate
		var data []byte
		if err := rows.Scan(&c.seq, &c.subject, &data); err != nil {
			return nil, translate(err)
		}
		c.data = data
		out = append(out, c)
	}
	return out, translate(rows.Err())
}
