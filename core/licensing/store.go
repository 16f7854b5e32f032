package licensing

import (
	"context"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
)

// Store is the licensing persistence port. Calls made with a context from
// InTx join that transaction, and so does AddEvents. Ids handed to it are
// canonical UUIDs or are answered as not found.
type Store interface {
	core.Transactor
	core.EventSink

	// InsertModule adds m; a taken code is a core error of KindConflict.
	InsertModule(ctx context.Context, m Module) error
	// ModuleByCode returns the module (terminated ones included) or
	// IDENT_NOT_FOUND.
	ModuleByCode(ctx context.Context, code string) (Module, error)
	// ListModules returns the whole catalogue ordered by code.
	ListModules(ctx context.Context) ([]Module, error)
	// UpdateModule stores name, description, dependsOn, isAlwaysOn and
	// updatedAt of m.Code, or returns IDENT_NOT_FOUND.
	UpdateModule(ctx context.Context, m Module) error
	// TerminateModule sets terminated_at = at unless already set and reports
	// whether it changed the row.
	TerminateModule(ctx context.Context, code string, at time.Time) (bool, error)

	// NodeTenantID returns the tenant of hierarchy node nodeID, or
	// IDENT_NOT_FOUND.
	NodeTenantID(ctx context.Context, nodeID string) (string, error)
	// TenantIDBySlug returns the id of the tenant with slug or IDENT_NOT_FOUND.
	TenantIDBySlug(ctx context.Context, slug string) (string, error)

	// InsertAssignment adds a; an unknown tenant or module is IDENT_NOT_FOUND.
	InsertAssignment(ctx context.Context, a Assignment) error
	// AssignmentByID returns the assignment or IDENT_NOT_FOUND.
	AssignmentByID(ctx context.Context, id string) (Assignment, error)
	// ListAssignments returns the assignments of tenantID, of node nodeID
	// only when it is not "", oldest first.
	ListAssignments(ctx context.Context, tenantID, nodeID string) ([]Assignment, error)
	// AssignmentsOfModules returns the assignments of tenantID at any of
	// nodeIDs whose module is one of codes.
	AssignmentsOfModules(ctx context.Context, tenantID string, nodeIDs, codes []string) ([]Assignment, error)
	// SetAssignmentStatus sets status = to and updated_at = at in one
	// conditional UPDATE of the row whose status still is from, and reports
	// whether it matched (false: a concurrent change won).
	SetAssignmentStatus(ctx context.Context, id string, from, to Status, at time.Time) (bool, error)
	// AppendHistory inserts h as a new history row (never updates one).
	AppendHistory(ctx context.Context, h HistoryEntry) error
	// History returns the history of assignmentID oldest first.
	History(ctx context.Context, assignmentID string) ([]HistoryEntry, error)
}
