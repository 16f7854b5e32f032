package persistence

import (
	"context"
	"database/sql"
	"encoding/json"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/licensing"
)

// LicensingResolverStore is the effective-license resolver's read port
// (licensing.ResolverStore) on the 0008 tables. Statements go through
// bound(ctx): every uncached resolution runs both.
type LicensingResolverStore struct {
	*DB
}

var _ licensing.ResolverStore = (*LicensingResolverStore)(nil)

// NewLicensingResolverStore returns the resolver's store on db.
func NewLicensingResolverStore(db *DB) *LicensingResolverStore {
	return &LicensingResolverStore{DB: db}
}

const resolverAssignmentColumns = `id, tenant_id, node_id, module_code, scope, status, effective_from, effective_to, created_by, created_at, updated_at`

// AssignmentsAt returns the assignments of tenantID at any of nodeIDs, in
// any status, in no particular order. A malformed tenant id has none.
// Errors: IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (s *LicensingResolverStore) AssignmentsAt(ctx context.Context, tenantID string, nodeIDs []string) ([]licensing.Assignment, error) {
	if !core.ValidID(tenantID) || len(nodeIDs) == 0 {
		return []licensing.Assignment{}, nil
	}
	args := make([]any, 0, len(nodeIDs)+1)
	args = append(args, tenantID)
	for _, n := range nodeIDs {
		args = append(args, n)
	}
	rows, err := s.bound(ctx).QueryContext(ctx, `SELECT `+resolverAssignmentColumns+
		` FROM license_assignments WHERE tenant_id = ? AND node_id IN (`+eventPlaceholders(len(nodeIDs))+`)`, args...)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	out := []licensing.Assignment{}
	for rows.Next() {
		var (
			a      licensing.Assignment
			scope  string
			status string
			to     sql.NullTime
		)
		if err := rows.Scan(&a.ID, &a.TenantID, &a.NodeID, &a.ModuleCode, &scope, &status,
			&a.EffectiveFrom, &to, &a.CreatedBy, &a.CreatedAt, &a.UpdatedAt); err != nil {
			return nil, translate(err)
		}
		a.Scope, a.Status = licensing.Scope(scope), licensing.Status(status)
		a.EffectiveFrom, a.CreatedAt, a.UpdatedAt = a.EffectiveFrom.UTC(), a.CreatedAt.UTC(), a.UpdatedAt.UTC()
		if to.Valid {
			t := to.Time.UTC()
			a.EffectiveTo = &t
		}
		out = append(out, a)
	}
	return out, translate(rows.Err())
}

// Modules returns the whole catalogue, terminated modules included, ordered
// by code. Errors: IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (s *LicensingResolverStore) Modules(ctx context.Context) ([]licensing.Module, error) {
	rows, err := s.bound(ctx).QueryContext(ctx,
		`SELECT code, name, description, depends_on, is_always_on, terminated_at, created_at, updated_at FROM license_modules ORDER BY code`)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	out := []licensing.Module{}
	for rows.Next() {
		var (
			m          licensing.Module
			dependsOn  string
			terminated sql.NullTime
		)
		if err := rows.Scan(&m.Code, &m.Name, &m.Description, &dependsOn, &m.IsAlwaysOn, &terminated,
			&m.CreatedAt, &m.UpdatedAt); err != nil {
			return nil, translate(err)
		}
		if err := json.Unmarshal([]byte(dependsOn), &m.DependsOn); err != nil {
			return nil, core.Internal(err)
		}
		m.CreatedAt, m.UpdatedAt = m.CreatedAt.UTC(), m.UpdatedAt.UTC()
		if terminated.Valid {
			t := terminated.Time.UTC()
			m.TerminatedAt = &t
		}
		out = append(out, m)
	}
	return out, translate(rows.Err())
}
