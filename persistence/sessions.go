package persistence

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/auth"
)

// SessionStore is the session and refresh-token repository (auth.Store) and
// the login's view of users (auth.Users, in auth_users.go). InTx and
// AddEvents come from the embedded DB, so a session change and its event
// commit together.
type SessionStore struct {
	*DB
	users *UserStore
}

var (
	_ auth.Store = (*SessionStore)(nil)
	_ auth.Users = (*SessionStore)(nil)
)

// NewSessionStore returns the session repository on db.
func NewSessionStore(db *DB) *SessionStore { return &SessionStore{DB: db, users: NewUserStore(db)} }

const sessionColumns = `id, user_id, tenant_id, amr, context_node_id, ip, user_agent, created_at, expires_at, last_used_at, revoked_at, revoke_reason`

// InsertSession adds s. Errors: IDENT_NOT_FOUND for an unknown user or
// tenant; KindConflict for a duplicate id; IDENT_UNAVAILABLE.
func (s *SessionStore) InsertSession(ctx context.Context, sess auth.Session) error {
	amr, err := json.Marshal(sess.AMR)
	if err != nil {
		return core.Internal(err)
	}
	_, err = s.bound(ctx).ExecContext(ctx,
		`INSERT INTO sessions (`+sessionColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		sess.ID, sess.UserID, sess.TenantID, string(amr), sess.ContextNodeID, sess.IP, sess.UserAgent,
		sess.CreatedAt.UTC(), sess.ExpiresAt.UTC(), sess.LastUsedAt.UTC(), utcPtr(sess.RevokedAt), nullString(sess.RevokeReason))
	return translate(err)
}

// SessionByID returns the session, or IDENT_NOT_FOUND (also for a malformed
// id). Errors: IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (s *SessionStore) SessionByID(ctx context.Context, id string) (auth.Session, error) {
	if !core.ValidID(id) {
		return auth.Session{}, core.NotFound("session")
	}
	var (
		sess    auth.Session
		amr     string
		revoked sql.NullTime
		reason  sql.NullString
	)
	err := s.bound(ctx).QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE id = ?`, id).Scan(
		&sess.ID, &sess.UserID, &sess.TenantID, &amr, &sess.ContextNodeID, &sess.IP, &sess.UserAgent,
		&sess.CreatedAt, &sess.ExpiresAt, &sess.LastUsedAt, &revoked, &reason)
	if errors.Is(err, sql.ErrNoRows) {
		return auth.Session{}, core.NotFound("session")
	}
	if err != nil {
		return auth.Session{}, translate(err)
	}
	if err := json.Unmarshal([]byte(amr), &sess.AMR); err != nil {
		return auth.Session{}, core.Internal(err)
	}
	sess.CreatedAt, sess.ExpiresAt, sess.LastUsedAt = sess.CreatedAt.UTC(), sess.ExpiresAt.UTC(), sess.LastUsedAt.UTC()
	if revoked.Valid {
		at := revoked.Time.UTC()
		sess.RevokedAt = &at
	}
	sess.RevokeReason = reason.String
	return sess, nil
}

// TouchSession sets last_used_at. Errors: IDENT_UNAVAILABLE.
func (s *SessionStore) TouchSession(ctx context.Context, id string, now time.Time) error {
	if !core.ValidID(id) {
		return nil
	}
	_, err := s.bound(ctx).ExecContext(ctx, `UPDATE sessions SET last_used_at = ? WHERE id = ?`, now.UTC(), id)
	return translate(err)
}

// RevokeSession revokes id unless it already is revoked (one conditional
// UPDATE) and reports whether it changed the row. Errors: IDENT_UNAVAILABLE.
func (s *SessionStore) RevokeSession(ctx context.Context, id, reason string, now time.Time) (bool, error) {
	if !core.ValidID(id) {
		return false, nil
	}
	return s.users.execAffected(ctx,
		`UPDATE sessions SET revoked_at = ?, revoke_reason = ? WHERE id = ? AND revoked_at IS NULL`,
		now.UTC(), reason, id)
}

// RevokeUserSessions revokes every unrevoked session of userID in one UPDATE
// and returns those it revoked. Errors: IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (s *SessionStore) RevokeUserSessions(ctx context.Context, userID, reason string, now time.Time) ([]auth.RevokedSession, error) {
	if !core.ValidID(userID) {
		return nil, nil
	}
	rows, err := s.bound(ctx).QueryContext(ctx,
		`UPDATE sessions SET revoked_at = ?, revoke_reason = ? WHERE user_id = ? AND revoked_at IS NULL
		 RETURNING id, user_id, tenant_id`, now.UTC(), reason, userID)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var out []auth.RevokedSession
	for rows.Next() {
		var r auth.RevokedSession
		if err := rows.Scan(&r.ID, &r.UserID, &r.TenantID); err != nil {
			return nil, translate(err)
		}
		out = append(out, r)
	}
	return out, translate(rows.Err())
}

// ForgetSessionClients empties the IP and user agent of every session of
// userID (GDPR erasure). Errors: IDENT_UNAVAILABLE.
func (s *SessionStore) ForgetSessionClients(ctx context.Context, userID string) error {
	if !core.ValidID(userID) {
		return nil
	}
	_, err := s.bound(ctx).ExecContext(ctx,
		`UPDATE sessions SET ip = '', user_agent = '' WHERE user_id = ?`, userID)
	return translate(err)
}

// RevokedSessionsSince returns the ids of sessions revoked at or after
// since. Errors: IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (s *SessionStore) RevokedSessionsSince(ctx context.Context, since time.Time) ([]string, error) {
	rows, err := s.bound(ctx).QueryContext(ctx,
		`SELECT id FROM sessions WHERE revoked_at IS NOT NULL AND revoked_at >= ? ORDER BY revoked_at`, since.UTC())
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

// SessionRevoked reports whether session id is revoked, straight from the
// database: the revocation fallback while the shared revocation set is
// unreachable (auth.TokenRevocation.Fallback). An unknown or malformed id
// counts as revoked (fail closed: this service issued every session-bound
// token, so its session must exist). Errors: IDENT_UNAVAILABLE.
func (s *SessionStore) SessionRevoked(ctx context.Context, id string) (bool, error) {
	if !core.ValidID(id) {
		return true, nil
	}
	var revoked sql.NullTime
	err := s.bound(ctx).QueryRowContext(ctx, `SELECT revoked_at FROM sessions WHERE id = ?`, id).Scan(&revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return true, nil
	}
	if err != nil {
		return false, translate(err)
	}
	return revoked.Valid, nil
}

// InsertRefreshToken stores the hash of a new refresh token of sessionID.
// Errors: IDENT_NOT_FOUND for an unknown session; KindConflict for a
// duplicate hash; IDENT_UNAVAILABLE.
func (s *SessionStore) InsertRefreshToken(ctx context.Context, hash, sessionID string, now time.Time) error {
	_, err := s.bound(ctx).ExecContext(ctx,
		`INSERT INTO refresh_tokens (hash, session_id, created_at, used_at) VALUES (?, ?, ?, NULL)`,
		hash, sessionID, now.UTC())
	return translate(err)
}

// ConsumeRefreshToken marks the token used in one conditional UPDATE … WHERE
// used_at IS NULL RETURNING session_id: of concurrent consumers exactly one
// matches (Postgres re-evaluates the condition once the first commits;
// SQLite serialises writers). When it matches nothing it reads the token's
// session, so a used token (a replay) is told apart from an unknown one
// (IDENT_NOT_FOUND). Errors: IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (s *SessionStore) ConsumeRefreshToken(ctx context.Context, hash string, now time.Time) (string, bool, error) {
	var sid string
	err := s.bound(ctx).QueryRowContext(ctx,
		`UPDATE refresh_tokens SET used_at = ? WHERE hash = ? AND used_at IS NULL RETURNING session_id`,
		now.UTC(), hash).Scan(&sid)
	if err == nil {
		return sid, true, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return "", false, translate(err)
	}
	sid, err = s.RefreshTokenSession(ctx, hash)
	return sid, false, err
}

// RefreshTokenSession returns the session of the token with hash, or
// IDENT_NOT_FOUND. Errors: IDENT_UNAVAILABLE.
func (s *SessionStore) RefreshTokenSession(ctx context.Context, hash string) (string, error) {
	var sid string
	err := s.bound(ctx).QueryRowContext(ctx, `SELECT session_id FROM refresh_tokens WHERE hash = ?`, hash).Scan(&sid)
	if errors.Is(err, sql.ErrNoRows) {
		return "", core.NotFound("refresh token")
	}
	return sid, translate(err)
}
