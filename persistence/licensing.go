package persistence

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/licensing"
)

// LicensingStore is the licensing repository (licensing.Store). InTx and
// AddEvents come from the embedded DB. The history table is append-only:
// this file holds no UPDATE or DELETE of it.
type LicensingStore struct {
	*DB
}

var _ licensing.Store = (*LicensingStore)(nil)

// NewLicensingStore returns the licensing repository on db.
func NewLicensingStore(db *DB) *LicensingStore { return &LicensingStore{DB: db} }

const (
	moduleColumns     = `code, name, description, depends_on, is_always_on, terminated_at, created_at, updated_at`
	assignmentColumns = `id, tenant_id, node_id, module_code, scope, status, effective_from, effective_to, created_by, created_at, updated_at`
)

// InsertModule adds m. Errors: KindConflict for a taken code; IDENT_UNAVAILABLE.
func (s *LicensingStore) InsertModule(ctx context.Context, m licensing.Module) error {
	deps, err := json.Marshal(nonNil(m.DependsOn))
	if err != nil {
		return core.Internal(err)
	}
	_, err = s.bound(ctx).ExecContext(ctx, `INSERT INTO license_modules (`+moduleColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		m.Code, m.Name, m.Description, string(deps), m.IsAlwaysOn, utcPtr(m.TerminatedAt), m.CreatedAt.UTC(), m.UpdatedAt.UTC())
	return translate(err)
}

// ModuleByCode returns the module or IDENT_NOT_FOUND.
func (s *LicensingStore) ModuleByCode(ctx context.Context, code string) (licensing.Module, error) {
	ms, err := s.modules(ctx, `SELECT `+moduleColumns+` FROM license_modules WHERE code = ?`, code)
	if err != nil {
		return licensing.Module{}, err
	}
	if len(ms) == 0 {
		return licensing.Module{}, core.NotFound("module")
	}
	return ms[0], nil
}

// ListModules returns every module ordered by code.
func (s *LicensingStore) ListModules(ctx context.Context) ([]licensing.Module, error) {
	return s.modules(ctx, `SELECT `+moduleColumns+` FROM license_modules ORDER BY code`)
}

// UpdateModule stores the mutable fields of m.Code, or IDENT_NOT_FOUND.
func (s *LicensingStore) UpdateModule(ctx context.Context, m licensing.Module) error {
	deps, err := json.Marshal(nonNil(m.DependsOn))
	if err != nil {
		return core.Internal(err)
	}
	res, err := s.bound(ctx).ExecContext(ctx,
		`UPDATE license_modules SET name = ?, description = ?, depends_on = ?, is_always_on = ?, updated_at = ? WHERE code = ?`,
		m.Name, m.Description, string(deps), m.IsAlwaysOn, m.UpdatedAt.UTC(), m.Code)
	ok, err := apiKeyAffected(res, err)
	if err == nil && !ok {
		return core.NotFound("module")
	}
	return err
}

// TerminateModule stamps terminated_at unless set; reports whether it did.
func (s *LicensingStore) TerminateModule(ctx context.Context, code string, at time.Time) (bool, error) {
	res, err := s.bound(ctx).ExecContext(ctx,
		`UPDATE license_modules SET terminated_at = ?, updated_at = ? WHERE code = ? AND terminated_at IS NULL`, at.UTC(), at.UTC(), code)
	return apiKeyAffected(res, err)
}

// NodeTenantID returns the tenant of a hierarchy node or IDENT_NOT_FOUND.
func (s *LicensingStore) NodeTenantID(ctx context.Context, nodeID string) (string, error) {
	if !core.ValidID(nodeID) {
		return "", core.NotFound("node")
	}
	var id string
	err := s.bound(ctx).QueryRowContext(ctx, `SELECT tenant_id FROM hierarchy_nodes WHERE id = ?`, nodeID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", core.NotFound("node")
	}
	return id, translate(err)
}

// TenantIDBySlug returns the id of the tenant with slug or IDENT_NOT_FOUND.
func (s *LicensingStore) TenantIDBySlug(ctx context.Context, slug string) (string, error) {
	return NewAPIKeyStore(s.DB).TenantIDBySlug(ctx, slug)
}

// InsertAssignment adds a. Errors: IDENT_NOT_FOUND for an unknown tenant or
// module; IDENT_UNAVAILABLE.
func (s *LicensingStore) InsertAssignment(ctx context.Context, a licensing.Assignment) error {
	_, err := s.bound(ctx).ExecContext(ctx, `INSERT INTO license_assignments (`+assignmentColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.ID, a.TenantID, a.NodeID, a.ModuleCode, string(a.Scope), string(a.Status), a.EffectiveFrom.UTC(), utcPtr(a.EffectiveTo),
		a.CreatedBy, a.CreatedAt.UTC(), a.UpdatedAt.UTC())
	return translate(err)
}

// AssignmentByID returns the assignment or IDENT_NOT_FOUND.
func (s *LicensingStore) AssignmentByID(ctx context.Context, id string) (licensing.Assignment, error) {
	if !core.ValidID(id) {
		return licensing.Assignment{}, core.NotFound("assignment")
	}
	as, err := s.assignments(ctx, `SELECT `+assignmentColumns+` FROM license_assignments WHERE id = ?`, id)
	if err != nil {
		return licensing.Assignment{}, err
	}
	if len(as) == 0 {
		return licensing.Assignment{}, core.NotFound("assignment")
	}
	return as[0], nil
}

// ListAssignments returns the assignments of tenantID (at nodeID when not
// ""), oldest first.
func (s *LicensingStore) ListAssignments(ctx context.Context, tenantID, nodeID string) ([]licensing.Assignment, error) {
	if !core.ValidID(tenantID) {
		return nil, nil
	}
	q := `SELECT ` + assignmentColumns + ` FROM license_assignments WHERE tenant_id = ?`
	args := []any{tenantID}
	if nodeID != "" {
		q += ` AND node_id = ?`
		args = append(args, nodeID)
	}
	return s.assignments(ctx, q+` ORDER BY created_at, id`, args...)
}

// AssignmentsOfModules returns the assignments of tenantID at nodeIDs whose
// module is one of codes.
func (s *LicensingStore) AssignmentsOfModules(ctx context.Context, tenantID string, nodeIDs, codes []string) ([]licensing.Assignment, error) {
	if !core.ValidID(tenantID) || len(nodeIDs) == 0 || len(codes) == 0 {
		return nil, nil
	}
	args := []any{tenantID}
	for _, n := range nodeIDs {
		args = append(args, n)
	}
	for _, c := range codes {
		args = append(args, c)
	}
	q := `SELECT ` + assignmentColumns + ` FROM license_assignments WHERE tenant_id = ? AND node_id IN (` +
		placeholders(len(nodeIDs)) + `) AND module_code IN (` + placeholders(len(codes)) + `) ORDER BY created_at, id`
	return s.assignments(ctx, q, args...)
}

// SetAssignmentStatus changes status from → to conditionally; reports
// whether the row matched.
func (s *LicensingStore) SetAssignmentStatus(ctx context.Context, id string, from, to licensing.Status, at time.Time) (bool, error) {
	if !core.ValidID(id) {
		return false, nil
	}
	res, err := s.bound(ctx).ExecContext(ctx,
		`UPDATE license_assignments SET status = ?, updated_at = ? WHERE id = ? AND status = ?`, string(to), at.UTC(), id, string(from))
	return apiKeyAffected(res, err)
}

// AppendHistory inserts h with a fresh id.
func (s *LicensingStore) AppendHistory(ctx context.Context, h licensing.HistoryEntry) error {
	_, err := s.bound(ctx).ExecContext(ctx,
		`INSERT INTO license_assignment_history (id, assignment_id, from_status, to_status, reason, actor_id, at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		core.NewID(), h.AssignmentID, string(h.FromStatus), string(h.ToStatus), h.Reason, h.ActorID, h.At.UTC())
	return translate(err)
}

// History returns the history rows of assignmentID, oldest first.
func (s *LicensingStore) History(ctx context.Context, assignmentID string) ([]licensing.HistoryEntry, error) {
	if !core.ValidID(assignmentID) {
		return []licensing.HistoryEntry{}, nil
	}
	rows, err := s.bound(ctx).QueryContext(ctx,
		`SELECT assignment_id, from_status, to_status, reason, actor_id, at FROM license_assignment_history
		 WHERE assignment_id = ? ORDER BY at, id`, assignmentID)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	out := []licensing.HistoryEntry{}
	for rows.Next() {
		var h licensing.HistoryEntry
		var from, to string
		if err := rows.Scan(&h.AssignmentID, &from, &to, &h.Reason, &h.ActorID, &h.At); err != nil {
			return nil, translate(err)
		}
		h.FromStatus, h.ToStatus, h.At = licensing.Status(from), licensing.Status(to), h.At.UTC()
		out = append(out, h)
	}
	return out, translate(rows.Err())
}

func (s *LicensingStore) modules(ctx context.Context, query string, args ...any) ([]licensing.Module, error) {
	rows, err := s.bound(ctx).QueryContext(ctx, query, args...)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var out []licensing.Module
	for rows.Next() {
		var (
			m    licensing.Module
			deps string
			term sql.NullTime
		)
		if err := rows.Scan(&m.Code, &m.Name, &m.Description, &deps, &m.IsAlwaysOn, &term, &m.CreatedAt, &m.UpdatedAt); err != nil {
			return nil, translate(err)
		}
		if err := json.Unmarshal([]byte(deps), &m.DependsOn); err != nil {
			return nil, core.Internal(err)
		}
		m.DependsOn = nonNil(m.DependsOn)
		m.TerminatedAt, m.CreatedAt, m.UpdatedAt = apiKeyTime(term), m.CreatedAt.UTC(), m.UpdatedAt.UTC()
		out = append(out, m)
	}
	return out, translate(rows.Err())
}

func (s *LicensingStore) assignments(ctx context.Context, query string, args ...any) ([]licensing.Assignment, error) {
	rows, err := s.bound(ctx).QueryContext(ctx, query, args...)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var out []licensing.Assignment
	for rows.Next() {
		var (
			a             licensing.Assignment
			scope, status string
			to            sql.NullTime
		)
		if err := rows.Scan(&a.ID, &a.TenantID, &a.NodeID, &a.ModuleCode, &scope, &status, &a.EffectiveFrom, &to,
			&a.CreatedBy, &a.CreatedAt, &a.UpdatedAt); err != nil {
			return nil, translate(err)
		}
		a.Scope, a.Status, a.EffectiveTo = licensing.Scope(scope), licensing.Status(status), apiKeyTime(to)
		a.EffectiveFrom, a.CreatedAt, a.UpdatedAt = a.EffectiveFrom.UTC(), a.CreatedAt.UTC(), a.UpdatedAt.UTC()
		out = append(out, a)
	}
	return out, translate(rows.Err())
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
