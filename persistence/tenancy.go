package persistence

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/uptrace/bun"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/core/user"
)

// TenancyStore is the local tenant directory's repository (tenancy.Store):
// tenants, hierarchy nodes and memberships. It is a separate type from
// DirectoryStore (which bootstrap and users keep using) but shares its
// tenant insert and membership reader, so both write the same rows the
// same way. InTx and AddEvents come from the embedded DB.
type TenancyStore struct {
	*DB
	dir *DirectoryStore
}

var _ tenancy.Store = (*TenancyStore)(nil)

// NewTenancyStore returns the tenant directory repository on db.
func NewTenancyStore(db *DB) *TenancyStore {
	return &TenancyStore{DB: db, dir: NewDirectoryStore(db)}
}

type tenantRow struct {
	ID               string    `bun:"id"`
	Slug             string    `bun:"slug"`
	Name             string    `bun:"name"`
	SelfRegistration bool      `bun:"self_registration"`
	MFARequired      bool      `bun:"mfa_required"`
	CreatedAt        time.Time `bun:"created_at"`
	UpdatedAt        time.Time `bun:"updated_at"`
}

func (r tenantRow) tenant() tenancy.Tenant {
	return tenancy.Tenant{ID: r.ID, Slug: r.Slug, Name: r.Name, SelfRegistration: r.SelfRegistration,
		MFARequired: r.MFARequired, CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC()}
}

const tenantColumns = `id, slug, name, self_registration, mfa_required, created_at, updated_at`

// CreateTenant inserts t; a taken slug is IDENT_CONFLICT (KindConflict).
func (s *TenancyStore) CreateTenant(ctx context.Context, t tenancy.Tenant) error {
	return s.dir.CreateTenant(ctx, t)
}

// MembershipsOfUser returns every membership of userID (core.MembershipReader).
func (s *TenancyStore) MembershipsOfUser(ctx context.Context, userID string) ([]core.Membership, error) {
	return s.dir.MembershipsOfUser(ctx, userID)
}

// TenantByID returns the tenant with id, or IDENT_NOT_FOUND.
func (s *TenancyStore) TenantByID(ctx context.Context, id string) (tenancy.Tenant, error) {
	var row tenantRow
	err := s.conn(ctx).NewRaw(`SELECT `+tenantColumns+` FROM tenants WHERE id = ?`, id).Scan(ctx, &row)
	if err != nil {
		return tenancy.Tenant{}, notFound(err, "tenant")
	}
	return row.tenant(), nil
}

// ListTenants returns every tenant ordered by slug.
func (s *TenancyStore) ListTenants(ctx context.Context) ([]tenancy.Tenant, error) {
	return s.queryTenants(ctx, `SELECT `+tenantColumns+` FROM tenants ORDER BY slug`)
}

// TenantsByID returns the existing tenants among ids, ordered by slug.
func (s *TenancyStore) TenantsByID(ctx context.Context, ids []string) ([]tenancy.Tenant, error) {
	if len(ids) == 0 {
		return []tenancy.Tenant{}, nil
	}
	return s.queryTenants(ctx, `SELECT `+tenantColumns+` FROM tenants WHERE id IN (?) ORDER BY slug`, bun.In(ids))
}

func (s *TenancyStore) queryTenants(ctx context.Context, query string, args ...any) ([]tenancy.Tenant, error) {
	var rows []tenantRow
	if err := s.conn(ctx).NewRaw(query, args...).Scan(ctx, &rows); err != nil {
		return nil, translate(err)
	}
	out := make([]tenancy.Tenant, len(rows))
	for i, r := range rows {
		out[i] = r.tenant()
	}
	return out, nil
}

// UpdateTenantSettings sets the non-nil settings and updated_at in a single
// UPDATE … RETURNING, or answers IDENT_NOT_FOUND.
func (s *TenancyStore) UpdateTenantSettings(ctx context.Context, id string, selfRegistration, mfaRequired *bool, at time.Time) (tenancy.Tenant, error) {
	var row tenantRow
	err := s.conn(ctx).NewRaw(
		`UPDATE tenants SET self_registration = COALESCE(?, self_registration),
		                    mfa_required = COALESCE(?, mfa_required),
		                    updated_at = ?
		  WHERE id = ? RETURNING `+tenantColumns,
		selfRegistration, mfaRequired, at.UTC(), id).Scan(ctx, &row)
	if err != nil {
		return tenancy.Tenant{}, notFound(err, "tenant")
	}
	return row.tenant(), nil
}

type nodeRow struct {
	ID        string    `bun:"id"`
	TenantID  string    `bun:"tenant_id"`
	ParentID  *string   `bun:"parent_id"`
	Name      string    `bun:"name"`
	Kind      string    `bun:"kind"`
	CreatedAt time.Time `bun:"created_at"`
}

func (r nodeRow) node() tenancy.Node {
	return tenancy.Node{ID: r.ID, TenantID: r.TenantID, ParentID: r.ParentID, Name: r.Name, Kind: r.Kind, CreatedAt: r.CreatedAt.UTC()}
}

const nodeColumns = `id, tenant_id, parent_id, name, kind, created_at`

// CreateNode inserts n. The composite foreign key (tenant_id, parent_id)
// refuses a parent of another tenant: IDENT_VALIDATION (field parentId).
// Without a parent, a foreign-key failure means the tenant is missing:
// IDENT_NOT_FOUND.
func (s *TenancyStore) CreateNode(ctx context.Context, n tenancy.Node) error {
	_, err := s.conn(ctx).ExecContext(ctx,
		`INSERT INTO hierarchy_nodes (`+nodeColumns+`) VALUES (?, ?, ?, ?, ?, ?)`,
		n.ID, n.TenantID, n.ParentID, n.Name, n.Kind, n.CreatedAt.UTC())
	err = translate(err)
	if !core.IsKind(err, core.KindNotFound) {
		return err
	}
	if n.ParentID != nil {
		// No node of a missing tenant exists either, so this covers both.
		e := core.InvalidField("parentId", "must be the id of a node of the same tenant")
		e.Err = err
		return e
	}
	return core.Wrap(err, core.KindNotFound, core.CodeNotFound, "tenant not found")
}

// NodeByID returns the node with id, or IDENT_NOT_FOUND.
func (s *TenancyStore) NodeByID(ctx context.Context, id string) (tenancy.Node, error) {
	var row nodeRow
	err := s.conn(ctx).NewRaw(`SELECT `+nodeColumns+` FROM hierarchy_nodes WHERE id = ?`, id).Scan(ctx, &row)
	if err != nil {
		return tenancy.Node{}, notFound(err, "node")
	}
	return row.node(), nil
}

// ListNodes returns the nodes of tenantID, oldest first (ids are UUIDv7, so
// the id breaks ties in creation order too).
func (s *TenancyStore) ListNodes(ctx context.Context, tenantID string) ([]tenancy.Node, error) {
	var rows []nodeRow
	err := s.conn(ctx).NewRaw(
		`SELECT `+nodeColumns+` FROM hierarchy_nodes WHERE tenant_id = ? ORDER BY created_at, id`, tenantID).
		Scan(ctx, &rows)
	if err != nil {
		return nil, translate(err)
	}
	out := make([]tenancy.Node, len(rows))
	for i, r := range rows {
		out[i] = r.node()
	}
	return out, nil
}

// ancestorsQuery walks from a node up to its root in one recursive CTE, the
// same text on both dialects. Row depth 0 is the node itself (so "no rows"
// means "no such node"); the recursion stops at depth MaxDepth, which keeps
// the query finite even on a cycle.
const ancestorsQuery = `
WITH RECURSIVE chain (id, parent_id, tenant_id, depth) AS (
    SELECT id, parent_id, tenant_id, 0 FROM hierarchy_nodes WHERE id = ?
    UNION ALL
    SELECT n.id, n.parent_id, n.tenant_id, c.depth + 1
      FROM hierarchy_nodes n JOIN chain c ON n.id = c.parent_id
     WHERE c.depth < ?
)
SELECT id, parent_id, tenant_id, depth FROM chain ORDER BY depth`

type ancestorRow struct {
	ID       string  `bun:"id"`
	ParentID *string `bun:"parent_id"`
	TenantID string  `bun:"tenant_id"`
	Depth    int     `bun:"depth"`
}

// Ancestors returns the ancestors of nodeID nearest first (depth 1 = the
// parent), empty for a root; IDENT_NOT_FOUND for an unknown node;
// IDENT_INTERNAL when the chain reaches depth MaxDepth (deeper than any
// hierarchy the service creates, i.e. a cycle or a hand-edited table).
func (s *TenancyStore) Ancestors(ctx context.Context, nodeID string) ([]tenancy.Ancestor, error) {
	var rows []ancestorRow
	if err := s.conn(ctx).NewRaw(ancestorsQuery, nodeID, tenancy.MaxDepth).Scan(ctx, &rows); err != nil {
		return nil, translate(err)
	}
	if len(rows) == 0 {
		return nil, core.NotFound("node")
	}
	if last := rows[len(rows)-1]; last.Depth >= tenancy.MaxDepth {
		return nil, core.Internal(fmt.Errorf("hierarchy above node %s is deeper than %d levels or cyclic", nodeID, tenancy.MaxDepth))
	}
	out := make([]tenancy.Ancestor, 0, len(rows)-1)
	for _, r := range rows[1:] {
		out = append(out, tenancy.Ancestor{ID: r.ID, ParentID: r.ParentID, TenantID: r.TenantID, Depth: r.Depth})
	}
	return out, nil
}

// UserTenantID returns the home tenant of userID, or IDENT_NOT_FOUND.
func (s *TenancyStore) UserTenantID(ctx context.Context, userID string) (string, error) {
	var tenantID string
	err := s.conn(ctx).QueryRowContext(ctx, `SELECT tenant_id FROM users WHERE id = ?`, userID).Scan(&tenantID)
	if err != nil {
		return "", notFound(err, "user")
	}
	return tenantID, nil
}

// Membership returns the membership (userID, tenantID, nodeID) and whether
// it exists; nodeID "" is the tenant-wide one.
func (s *TenancyStore) Membership(ctx context.Context, userID, tenantID, nodeID string) (core.Membership, bool, error) {
	var roles string
	err := s.conn(ctx).QueryRowContext(ctx,
		`SELECT roles FROM memberships WHERE user_id = ? AND tenant_id = ? AND node_id = ?`,
		userID, tenantID, nodeID).Scan(&roles)
	if errors.Is(err, sql.ErrNoRows) {
		return core.Membership{}, false, nil
	}
	if err != nil {
		return core.Membership{}, false, translate(err)
	}
	m := core.Membership{UserID: userID, TenantID: tenantID, NodeID: nodeID}
	if err := json.Unmarshal([]byte(roles), &m.Roles); err != nil {
		return core.Membership{}, false, core.Internal(err)
	}
	return m, true, nil
}

// UpsertMembership inserts m or, when (user, tenant, node) exists, replaces
// its roles (INSERT … ON CONFLICT DO UPDATE, both dialects). A missing user
// or tenant is IDENT_NOT_FOUND.
func (s *TenancyStore) UpsertMembership(ctx context.Context, m core.Membership, at time.Time) error {
	roles := m.Roles
	if roles == nil {
		roles = []string{}
	}
	b, err := json.Marshal(roles)
	if err != nil {
		return core.Internal(err)
	}
	_, err = s.conn(ctx).ExecContext(ctx,
		`INSERT INTO memberships (id, user_id, tenant_id, node_id, roles, created_at) VALUES (?, ?, ?, ?, ?, ?)
		 ON CONFLICT (user_id, tenant_id, node_id) DO UPDATE SET roles = excluded.roles`,
		core.NewID(), m.UserID, m.TenantID, m.NodeID, string(b), at.UTC())
	return translate(err)
}

// DeleteMembership removes (userID, tenantID, nodeID) and reports whether a
// row went away.
func (s *TenancyStore) DeleteMembership(ctx context.Context, userID, tenantID, nodeID string) (bool, error) {
	res, err := s.conn(ctx).ExecContext(ctx,
		`DELETE FROM memberships WHERE user_id = ? AND tenant_id = ? AND node_id = ?`, userID, tenantID, nodeID)
	if err != nil {
		return false, translate(err)
	}
	n, err := res.RowsAffected()
	return n > 0, translate(err)
}

// SuperAdminMemberships returns the memberships of tenantID holding
// SUPER_ADMIN whose user is active. On Postgres the rows are locked FOR
// UPDATE until the surrounding transaction ends, so concurrent removals of
// two admins serialise and the second sees the first's result; SQLite
// transactions take the write lock up front, with the same effect.
func (s *TenancyStore) SuperAdminMemberships(ctx context.Context, tenantID string) ([]core.Membership, error) {
	// LIKE only narrows the scan (its _ matches any character); the decoded
	// roles decide.
	q := `SELECT m.user_id, m.node_id, m.roles FROM memberships m JOIN users u ON u.id = m.user_id
	       WHERE m.tenant_id = ? AND u.status = ? AND m.roles LIKE ? ORDER BY m.id`
	if s.dialect == Postgres {
		q += ` FOR UPDATE OF m`
	}
	rows, err := s.conn(ctx).QueryContext(ctx, q, tenantID, string(user.StatusActive), `%"`+core.RoleSuperAdmin+`"%`)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var out []core.Membership
	for rows.Next() {
		m := core.Membership{TenantID: tenantID}
		var roles string
		if err := rows.Scan(&m.UserID, &m.NodeID, &roles); err != nil {
			return nil, translate(err)
		}
		if err := json.Unmarshal([]byte(roles), &m.Roles); err != nil {
			return nil, core.Internal(err)
		}
		if slices.Contains(m.Roles, core.RoleSuperAdmin) {
			out = append(out, m)
		}
	}
	return out, translate(rows.Err())
}

// notFound turns "no rows" into IDENT_NOT_FOUND naming what, and translates
// anything else.
func notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return core.NotFound(what)
	}
	return translate(err)
}
