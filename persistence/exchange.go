package persistence

import (
	"context"
	"database/sql"
	"errors"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/user"
)

// ExchangeStore is the repository of the Keycloak token exchange
// (exchange.Store and exchange.TenantLookup): users by their linked upstream
// subject (users.keycloak_user_id) or by email within a tenant, and the link
// itself.
type ExchangeStore struct {
	*DB
}

// NewExchangeStore returns the token-exchange repository on db.
func NewExchangeStore(db *DB) *ExchangeStore { return &ExchangeStore{DB: db} }

// UserByKeycloakID returns the one user (any tenant) linked to the upstream
// subject sub, or IDENT_NOT_FOUND (also when sub is empty or, against the
// rules, linked to several users). Errors: IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (s *ExchangeStore) UserByKeycloakID(ctx context.Context, sub string) (user.User, error) {
	if sub == "" {
		return user.User{}, core.NotFound("user")
	}
	return s.oneUser(ctx, `SELECT `+userColumns+` FROM users WHERE keycloak_user_id = ? ORDER BY id LIMIT 2`, sub)
}

// UserByEmailInTenant returns the user of tenantID with email (already
// normalized), or IDENT_NOT_FOUND. Errors: IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (s *ExchangeStore) UserByEmailInTenant(ctx context.Context, email, tenantID string) (user.User, error) {
	if email == "" || !core.ValidID(tenantID) {
		return user.User{}, core.NotFound("user")
	}
	return s.oneUser(ctx, `SELECT `+userColumns+` FROM users WHERE email = ? AND tenant_id = ? ORDER BY id LIMIT 2`,
		email, tenantID)
}

// SetKeycloakUserID links userID to the upstream subject sub in one
// conditional UPDATE (only while the user is unlinked or already linked to
// sub) and reports whether the link holds. Errors: IDENT_UNAVAILABLE.
func (s *ExchangeStore) SetKeycloakUserID(ctx context.Context, userID, sub string) (bool, error) {
	if !core.ValidID(userID) || sub == "" {
		return false, nil
	}
	res, err := s.bound(ctx).ExecContext(ctx,
		`UPDATE users SET keycloak_user_id = ? WHERE id = ? AND (keycloak_user_id IS NULL OR keycloak_user_id = ?)`,
		sub, userID, sub)
	if err != nil {
		return false, translate(err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, translate(err)
	}
	return n > 0, nil
}

// TenantIDByRef resolves ref, a tenant id (UUID) or slug, to the tenant's
// id, or IDENT_NOT_FOUND. Errors: IDENT_UNAVAILABLE.
func (s *ExchangeStore) TenantIDByRef(ctx context.Context, ref string) (string, error) {
	if ref == "" {
		return "", core.NotFound("tenant")
	}
	query := `SELECT id FROM tenants WHERE slug = ?`
	if core.ValidID(ref) {
		query = `SELECT id FROM tenants WHERE id = ?`
	}
	var id string
	err := s.bound(ctx).QueryRowContext(ctx, query, ref).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", core.NotFound("tenant")
	}
	if err != nil {
		return "", translate(err)
	}
	return id, nil
}

func (s *ExchangeStore) oneUser(ctx context.Context, query string, args ...any) (user.User, error) {
	rows, err := s.bound(ctx).QueryContext(ctx, query, args...)
	if err != nil {
		return user.User{}, translate(err)
	}
	users, err := scanUsers(rows)
	if err != nil {
		return user.User{}, err
	}
	if len(users) != 1 {
		return user.User{}, core.NotFound("user")
	}
	return users[0], nil
}
