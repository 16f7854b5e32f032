package persistence

import (
	"context"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/user"
)

// UsersByEmail returns the users whose email is email (already normalized;
// "" matches nothing), only those of tenantID when it is not empty, at most
// two ordered by id: login needs exactly one, and two already mean the
// address is ambiguous without a tenant. Errors: IDENT_UNAVAILABLE,
// IDENT_INTERNAL.
func (s *SessionStore) UsersByEmail(ctx context.Context, email, tenantID string) ([]user.User, error) {
	if email == "" || (tenantID != "" && !core.ValidID(tenantID)) {
		return nil, nil
	}
	query := `SELECT ` + userColumns + ` FROM users WHERE email = ?`
	args := []any{email}
	if tenantID != "" {
		query += ` AND tenant_id = ?`
		args = append(args, tenantID)
	}
	rows, err := s.bound(ctx).QueryContext(ctx, query+` ORDER BY id LIMIT 2`, args...)
	if err != nil {
		return nil, translate(err)
	}
	return scanUsers(rows)
}

// UserByID returns the user (with its password hash), or IDENT_NOT_FOUND.
func (s *SessionStore) UserByID(ctx context.Context, id string) (user.User, error) {
	return s.users.UserByID(ctx, id)
}

// UpdatePasswordHash stores newHash in place of oldHash in one conditional
// UPDATE (a rehash on login must not overwrite a password changed in the
// meantime) and reports whether it matched. updated_at is left alone: the
// account did not change. Errors: IDENT_UNAVAILABLE.
func (s *SessionStore) UpdatePasswordHash(ctx context.Context, id, oldHash, newHash string) (bool, error) {
	if !core.ValidID(id) || oldHash == "" || newHash == "" {
		return false, nil
	}
	return s.users.execAffected(ctx,
		`UPDATE users SET password_hash = ? WHERE id = ? AND password_hash = ?`, newHash, id, oldHash)
}
