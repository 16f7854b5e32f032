// Package licensing decides which modules each facility may use: a module
// catalogue, assignments of modules at hierarchy nodes with a status
// lifecycle and an append-only history, and the effective-license resolver
// that every platform service asks (CONTRACT.md §4, §6).
package licensing

import "time"

// Scope says where an assignment applies.
type Scope string

const (
	// ScopeExact applies at the assignment's own node only.
	ScopeExact Scope = "exact"
	// ScopeInheritDown applies at its node and every descendant.
	ScopeInheritDown Scope = "inherit_down"
)

// Status is an assignment's lifecycle state; terminated is final.
type Status string

const (
	StatusTrial      Status = "trial"
	StatusActive     Status = "active"
	StatusSuspended  Status = "suspended"
	StatusTerminated Status = "terminated"
)

// AlwaysOnModules are seeded and always granted (CONTRACT.md §4).
var AlwaysOnModules = []string{"platform.iam", "platform.audit", "ehr.core"}

// Module is a catalogue entry. Code is globally unique and immutable.
type Module struct {
	Code        string
	Name        string
	Description string
	DependsOn   []string
	IsAlwaysOn  bool
	// TerminatedAt is set by DELETE: the module stays for history and takes
	// no new assignments.
	TerminatedAt *time.Time
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Assignment licenses a module at a node of a tenant.
type Assignment struct {
	ID            string
	TenantID      string
	NodeID        string
	ModuleCode    string
	Scope         Scope
	Status        Status
	EffectiveFrom time.Time
	// EffectiveTo is required for trials; nil means open-ended.
	EffectiveTo *time.Time
	CreatedBy   string
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// HistoryEntry is one append-only status change of an assignment; the
// creation is recorded with an empty FromStatus.
type HistoryEntry struct {
	AssignmentID string
	FromStatus   Status
	ToStatus     Status
	Reason       string
	ActorID      string
	At           time.Time
}

// EffectiveModule is one module of the effective set at a node.
// For an always-on module without a deeper assignment, Status is active,
// Scope is inherit_down and SourceNodeID / AssignmentID are empty.
type EffectiveModule struct {
	Code         string
	Status       Status
	Granted      bool
	Scope        Scope
	SourceNodeID string
	AssignmentID string
}
