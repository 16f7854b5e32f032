package persistence

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/core/user"
)

// DirectoryStore keeps tenants, users and memberships: the local tenant
// directory (the embedded default of the tenancy port).
type DirectoryStore struct {
	*DB
}

// NewDirectoryStore returns the directory store over db.
func NewDirectoryStore(db *DB) *DirectoryStore { return &DirectoryStore{DB: db} }

// SuperAdminExists reports whether any membership grants SUPER_ADMIN.
func (s *DirectoryStore) SuperAdminExists(ctx context.Context) (bool, error) {
	// roles is a JSON array of role names; a quoted match is exact once the
	// LIKE wildcard "_" inside SUPER_ADMIN is escaped.
	var n int
	err := s.conn(ctx).QueryRowContext(ctx,
		`SELECT count(*) FROM memberships WHERE roles LIKE ? ESCAPE '!'`,
		`%"`+strings.ReplaceAll(core.RoleSuperAdmin, "_", "!_")+`"%`).Scan(&n)
	return n > 0, translate(err)
}

// TenantBySlug returns the tenant with slug, or IDENT_NOT_FOUND.
func (s *DirectoryStore) TenantBySlug(ctx context.Context, slug string) (tenancy.Tenant, error) {
	var t tenancy.Tenant
	err := s.conn(ctx).QueryRowContext(ctx,
		`SELECT id, slug, name, self_registration, mfa_required, created_at, updated_at FROM tenants WHERE slug = ?`, slug).
		Scan(&t.ID, &t.Slug, &t.Name, &t.SelfRegistration, &t.MFARequired, &t.CreatedAt, &t.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return t, core.NotFound("tenant")
	}
	return t, translate(err)
}

// CreateTenant inserts t; a taken slug is IDENT_CONFLICT.
func (s *DirectoryStore) CreateTenant(ctx context.Context, t tenancy.Tenant) error {
	_, err := s.conn(ctx).ExecContext(ctx,
		`INSERT INTO tenants (id, slug, name, self_registration, mfa_required, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		t.ID, t.Slug, t.Name, t.SelfRegistration, t.MFARequired, t.CreatedAt.UTC(), t.UpdatedAt.UTC())
	if err = translate(err); IsUniqueViolation(err) {
		return core.Wrap(err, core.KindConflict, core.CodeConflict, "a tenant with this slug already exists")
	}
	return err
}

// CreateUser inserts u; an email taken in the tenant is IDENT_EMAIL_DUPLICATE.
func (s *DirectoryStore) CreateUser(ctx context.Context, u user.User) error {
	var hash any
	if u.PasswordHash != "" {
		hash = u.PasswordHash
	}
	_, err := s.conn(ctx).ExecContext(ctx,
		`INSERT INTO users (id, tenant_id, email, first_name, last_name, status, password_hash, created_at, updated_at)
		 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.TenantID, u.Email, u.FirstName, u.LastName, string(u.Status), hash, u.CreatedAt.UTC(), u.UpdatedAt.UTC())
	if err = translate(err); IsUniqueViolation(err) {
		return core.Wrap(err, core.KindConflict, core.CodeEmailDuplicate, "a user with this email already exists in the tenant")
	}
	return err
}

// AddMembership inserts m (tenant-wide when NodeID is empty).
func (s *DirectoryStore) AddMembership(ctx context.Context, m core.Membership) error {
	roles, err := json.Marshal(m.Roles)
	if err != nil {
		return core.Internal(err)
	}
	_, err = s.conn(ctx).ExecContext(ctx,
		`INSERT INTO memberships (id, user_id, tenant_id, node_id, roles, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
		core.NewID(), m.UserID, m.TenantID, m.NodeID, string(roles), time.Now().UTC())
	if err = translate(err); IsUniqueViolation(err) {
		return core.Wrap(err, core.KindConflict, core.CodeConflict, "the membership already exists")
	}
	return err
}

// MembershipsOfUser returns every membership of userID (core.MembershipReader).
func (s *DirectoryStore) MembershipsOfUser(ctx context.Context, userID string) ([]core.Membership, error) {
	if !core.ValidID(userID) {
		return nil, nil
	}
	rows, err := s.bound(ctx).QueryContext(ctx,
		`SELECT tenant_id, node_id, roles FROM memberships WHERE user_id = ? ORDER BY created_at, id`, userID)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var out []core.Membership
	for rows.Next() {
		m := core.Membership{UserID: userID}
		var roles string
		if err := rows.Scan(&m.TenantID, &m.NodeID, &roles); err != nil {
			return nil, translate(err)
		}
		if err := json.Unmarshal([]byte(roles), &m.Roles); err != nil {
			return nil, core.Internal(err)
		}
		out = append(out, m)
	}
	return out, translate(rows.Err())
}
