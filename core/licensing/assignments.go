package licensing

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/scope"
)

// CreateAssignmentInput licenses ModuleCode at node NodeID of TenantID.
// Status is active or trial; EffectiveFrom defaults to now.
type CreateAssignmentInput struct {
	TenantID      string
	NodeID        string
	ModuleCode    string
	Scope         Scope
	Status        Status
	EffectiveFrom *time.Time
	EffectiveTo   *time.Time
}

// CreateAssignment creates an assignment, appends its first history row
// (from "") and emits identity.license.assignment.created.v1, all in one
// transaction.
//
// Authorization: SUPER_ADMIN.
// Errors: IDENT_UNAUTHENTICATED; IDENT_FORBIDDEN; IDENT_VALIDATION with
// fields scope, status (active|trial only), effectiveTo (not after
// effectiveFrom), nodeId (not a UUID, or a node of another tenant) or
// moduleCode (not a module code, or the module is terminated); IDENT_LIC_TRIAL_REQUIRES_END; IDENT_NOT_FOUND (tenant, node
// or module); IDENT_LIC_DEPENDENCY_NOT_LICENSED; IDENT_UNAVAILABLE.
func (s *Service) CreateAssignment(ctx context.Context, in CreateAssignmentInput) (Assignment, error) {
	acc, err := s.authz.RequireSuperAdmin(ctx)
	if err != nil {
		return Assignment{}, err
	}
	now := s.now()
	a := Assignment{ID: core.NewID(), TenantID: in.TenantID, NodeID: in.NodeID, ModuleCode: strings.TrimSpace(in.ModuleCode),
		Scope: in.Scope, Status: in.Status, EffectiveFrom: now, CreatedBy: acc.Principal.ID, CreatedAt: now, UpdatedAt: now}
	if in.EffectiveFrom != nil {
		a.EffectiveFrom = in.EffectiveFrom.UTC().Truncate(time.Microsecond)
	}
	if in.EffectiveTo != nil {
		to := in.EffectiveTo.UTC().Truncate(time.Microsecond)
		a.EffectiveTo = &to
	}
	fields := map[string]string{}
	if a.Scope != ScopeExact && a.Scope != ScopeInheritDown {
		fields["scope"] = "must be exact or inherit_down"
	}
	if a.Status != StatusActive && a.Status != StatusTrial {
		fields["status"] = "must be active or trial"
	}
	if a.EffectiveTo != nil && !a.EffectiveTo.After(a.EffectiveFrom) {
		fields["effectiveTo"] = "must be after effectiveFrom"
	}
	if !core.ValidID(a.NodeID) {
		fields["nodeId"] = "must be a UUID"
	}
	if !ValidCode(a.ModuleCode) {
		fields["moduleCode"] = codeRule
	}
	if len(fields) > 0 {
		return Assignment{}, core.Invalid("invalid assignment", fields)
	}
	if a.Status == StatusTrial && a.EffectiveTo == nil {
		return Assignment{}, errTrialRequiresEnd()
	}
	if !core.ValidID(a.TenantID) {
		return Assignment{}, core.NotFound("tenant")
	}
	nodes, err := s.nodeChain(ctx, a.TenantID, a.NodeID)
	if err != nil {
		return Assignment{}, err
	}
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		m, err := s.store.ModuleByCode(ctx, a.ModuleCode)
		if core.IsKind(err, core.KindNotFound) {
			return core.NotFound("module")
		}
		if err != nil {
			return err
		}
		if m.TerminatedAt != nil {
			return core.InvalidField("moduleCode", "the module is terminated")
		}
		if err := s.checkDependencies(ctx, a.TenantID, nodes, m, now); err != nil {
			return err
		}
		if err := s.store.InsertAssignment(ctx, a); err != nil {
			if core.IsKind(err, core.KindNotFound) {
				return core.NotFound("tenant")
			}
			return err
		}
		if err := s.store.AppendHistory(ctx, HistoryEntry{AssignmentID: a.ID, ToStatus: a.Status, ActorID: acc.Principal.ID, At: now}); err != nil {
			return err
		}
		return s.store.AddEvents(ctx, assignmentEvent(now, EventAssignmentCreated, a, nil, ""))
	})
	if err != nil {
		return Assignment{}, err
	}
	s.changed(a.TenantID)
	return a, nil
}

// ChangeAssignmentStatus moves assignment id to status to, appends a history
// row (from, to, reason, actor, time) and emits
// identity.license.assignment.status_changed.v1 in one transaction. The
// UPDATE is conditional on the status read, so of two concurrent changes
// exactly one wins; the other gets IDENT_STATE_CONFLICT (or
// IDENT_LIC_TERMINATED when the winner terminated it). Changing to the
// current status (other than terminated) is a no-op: no row, no event.
//
// Authorization: SUPER_ADMIN.
// Errors: IDENT_UNAUTHENTICATED; IDENT_FORBIDDEN; IDENT_VALIDATION (fields
// status, reason: at most 1000 bytes of valid UTF-8, no control characters
// but tab and line breaks); IDENT_NOT_FOUND (also for a malformed id); IDENT_LIC_TERMINATED (any change of a
// terminated assignment, terminated → terminated included);
// IDENT_LIC_TRIAL_REQUIRES_END (to trial without effectiveTo);
// IDENT_LIC_DEPENDENCY_NOT_LICENSED (to active or trial);
// IDENT_STATE_CONFLICT; IDENT_UNAVAILABLE.
func (s *Service) ChangeAssignmentStatus(ctx context.Context, id string, to Status, reason string) (Assignment, error) {
	acc, err := s.authz.RequireSuperAdmin(ctx)
	if err != nil {
		return Assignment{}, err
	}
	reason = strings.TrimSpace(reason)
	switch {
	case !slices.Contains([]Status{StatusActive, StatusTrial, StatusSuspended, StatusTerminated}, to):
		return Assignment{}, core.InvalidField("status", "must be active, trial, suspended or terminated")
	case len(reason) > MaxReasonLen:
		return Assignment{}, core.InvalidField("reason", "at most 1000 bytes")
	case core.TextProblem(reason, true) != "":
		return Assignment{}, core.InvalidField("reason", core.TextProblem(reason, true))
	case !core.ValidID(id):
		return Assignment{}, core.NotFound("assignment")
	}
	a, err := s.store.AssignmentByID(ctx, id)
	if err != nil {
		return Assignment{}, notFound(err, "assignment")
	}
	if a.Status == StatusTerminated {
		return Assignment{}, errTerminated()
	}
	if a.Status == to {
		return a, nil
	}
	if to == StatusTrial && a.EffectiveTo == nil {
		return Assignment{}, errTrialRequiresEnd()
	}
	var nodes []string
	if to == StatusActive || to == StatusTrial {
		if nodes, err = s.nodeChain(ctx, a.TenantID, a.NodeID); err != nil {
			return Assignment{}, err
		}
	}
	now := s.now()
	from := a.Status
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		if nodes != nil {
			m, err := s.store.ModuleByCode(ctx, a.ModuleCode)
			if err != nil {
				return err
			}
			if err := s.checkDependencies(ctx, a.TenantID, nodes, m, now); err != nil {
				return err
			}
		}
		ok, err := s.store.SetAssignmentStatus(ctx, a.ID, from, to, now)
		if err != nil {
			return err
		}
		if !ok {
			cur, err := s.store.AssignmentByID(ctx, a.ID)
			if err == nil && cur.Status == StatusTerminated {
				return errTerminated()
			}
			return core.E(core.KindConflict, core.CodeStateConflict, "the assignment was changed concurrently; retry")
		}
		a.Status, a.UpdatedAt = to, now
		h := HistoryEntry{AssignmentID: a.ID, FromStatus: from, ToStatus: to, Reason: reason, ActorID: acc.Principal.ID, At: now}
		if err := s.store.AppendHistory(ctx, h); err != nil {
			return err
		}
		return s.store.AddEvents(ctx, assignmentEvent(now, EventAssignmentStatusChanged, a, &from, reason))
	})
	if err != nil {
		return Assignment{}, err
	}
	s.changed(a.TenantID)
	return a, nil
}

// GetAssignment returns assignment id.
//
// Authorization: see ListAssignments, on the assignment's tenant.
// Errors: IDENT_UNAUTHENTICATED; IDENT_NOT_FOUND; IDENT_CROSS_TENANT;
// IDENT_FORBIDDEN; IDENT_UNAVAILABLE.
func (s *Service) GetAssignment(ctx context.Context, id string) (Assignment, error) {
	if _, err := core.RequirePrincipal(ctx); err != nil {
		return Assignment{}, err
	}
	if !core.ValidID(id) {
		return Assignment{}, core.NotFound("assignment")
	}
	a, err := s.store.AssignmentByID(ctx, id)
	if err != nil {
		return Assignment{}, notFound(err, "assignment")
	}
	if err := s.canRead(ctx, a.TenantID); err != nil {
		return Assignment{}, err
	}
	return a, nil
}

// ListAssignments returns the assignments of tenantID (only those at node
// nodeID when it is not ""), oldest first; none for an unknown tenant.
//
// Authorization: SUPER_ADMIN; TENANT_ADMIN of the tenant; a service
// credential (service account or API key) carrying tenant:licensing:read,
// of the tenant itself or of the platform tenant.
// Errors: IDENT_UNAUTHENTICATED; IDENT_CROSS_TENANT; IDENT_FORBIDDEN;
// IDENT_VALIDATION (field nodeId, not a UUID); IDENT_UNAVAILABLE.
func (s *Service) ListAssignments(ctx context.Context, tenantID, nodeID string) ([]Assignment, error) {
	if err := s.canRead(ctx, tenantID); err != nil {
		return nil, err
	}
	if nodeID != "" && !core.ValidID(nodeID) {
		return nil, core.InvalidField("nodeId", "must be a UUID")
	}
	if !core.ValidID(tenantID) {
		return []Assignment{}, nil
	}
	out, err := s.store.ListAssignments(ctx, tenantID, nodeID)
	if out == nil && err == nil {
		out = []Assignment{}
	}
	return out, err
}

// History returns the status history of assignment id, oldest first (the
// creation has an empty FromStatus).
//
// Authorization and errors as for GetAssignment.
func (s *Service) History(ctx context.Context, id string) ([]HistoryEntry, error) {
	a, err := s.GetAssignment(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.store.History(ctx, a.ID)
}

// canRead applies the read rule of ListAssignments to tenantID.
func (s *Service) canRead(ctx context.Context, tenantID string) error {
	acc, err := s.authz.Load(ctx)
	if err != nil {
		return err
	}
	p := acc.Principal
	if p.Type == core.PrincipalUser {
		return acc.CanAdminister(tenantID)
	}
	if !p.HasScope(scope.LicensingRead) {
		return core.Forbidden("requires scope " + scope.LicensingRead)
	}
	if p.TenantID == tenantID {
		return nil
	}
	platform, err := s.store.TenantIDBySlug(ctx, core.PlatformTenantSlug)
	if err != nil && !core.IsKind(err, core.KindNotFound) {
		return err
	}
	if err == nil && platform == p.TenantID {
		return nil
	}
	return core.E(core.KindForbidden, core.CodeCrossTenant, "the resource belongs to another tenant")
}

// nodeChain returns nodeID followed by its ancestors nearest first, after
// checking that nodeID is a node of tenantID.
func (s *Service) nodeChain(ctx context.Context, tenantID, nodeID string) ([]string, error) {
	anc, err := s.hierarchy.Ancestors(ctx, nodeID)
	if err != nil {
		return nil, notFound(err, "node")
	}
	owner, err := s.store.NodeTenantID(ctx, nodeID)
	if err != nil {
		return nil, notFound(err, "node")
	}
	if owner != tenantID {
		return nil, core.InvalidField("nodeId", "not a node of the tenant")
	}
	chain := []string{nodeID}
	for _, x := range anc {
		chain = append(chain, x.ID)
	}
	return chain, nil
}

// checkDependencies requires each dependency of m to be always-on or
// licensed at chain[0]: a granted assignment (active or trial, inside its
// effective window at now) that is exact at chain[0] itself or
// inherit_down at chain[0] or one of its ancestors.
func (s *Service) checkDependencies(ctx context.Context, tenantID string, chain []string, m Module, now time.Time) error {
	var need []string
	for _, d := range m.DependsOn {
		dep, err := s.store.ModuleByCode(ctx, d)
		if err != nil && !core.IsKind(err, core.KindNotFound) {
			return err
		}
		if err != nil || !dep.IsAlwaysOn {
			need = append(need, d)
		}
	}
	if len(need) == 0 {
		return nil
	}
	as, err := s.store.AssignmentsOfModules(ctx, tenantID, chain, need)
	if err != nil {
		return err
	}
	for _, d := range need {
		if !slices.ContainsFunc(as, func(a Assignment) bool { return a.ModuleCode == d && licensedAt(a, chain[0], now) }) {
			return &core.Error{Kind: core.KindUnprocessable, Code: core.CodeLicDependencyNotLicensed,
				Msg: "dependency " + d + " is not licensed at the node or an ancestor"}
		}
	}
	return nil
}

// licensedAt reports whether a (at the node or one of its ancestors)
// grants its module at node at now.
func licensedAt(a Assignment, node string, now time.Time) bool {
	if a.Status != StatusActive && a.Status != StatusTrial {
		return false
	}
	if now.Before(a.EffectiveFrom) || (a.EffectiveTo != nil && !now.Before(*a.EffectiveTo)) {
		return false
	}
	return a.Scope == ScopeInheritDown || a.NodeID == node
}

func errTerminated() error {
	return core.E(core.KindUnprocessable, core.CodeLicTerminated, "a terminated assignment cannot change")
}

func errTrialRequiresEnd() error {
	return core.E(core.KindUnprocessable, core.CodeLicTrialRequiresEnd, "a trial needs effectiveTo")
}

func notFound(err error, what string) error {
	if core.IsKind(err, core.KindNotFound) {
		return core.NotFound(what)
	}
	return err
}
