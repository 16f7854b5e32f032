package tenancy

import (
	"context"
	"strconv"
	"strings"

	"github.com/ghasi-ehealth/identity-service/core"
)

// CreateNodeInput is GraphQL createNode. ParentID nil (or "") makes a root.
type CreateNodeInput struct {
	TenantID string
	ParentID *string
	Name     string
	Kind     string
}

// CreateNode adds a node to a tenant's hierarchy and emits
// identity.node.created.v1. Name and kind are trimmed; kind is a free
// string (province, district, facility, …). Errors: IDENT_UNAUTHENTICATED;
// IDENT_CROSS_TENANT / IDENT_FORBIDDEN unless SUPER_ADMIN or TENANT_ADMIN of
// the tenant; IDENT_NOT_FOUND for an unknown or malformed tenantId;
// IDENT_VALIDATION (fields name, kind, parentId — a parent that is not a
// node of the same tenant, or a hierarchy deeper than MaxDepth levels);
// IDENT_UNAVAILABLE.
func (s *Service) CreateNode(ctx context.Context, in CreateNodeInput) (Node, error) {
	if _, err := s.authz.RequireTenantAdmin(ctx, in.TenantID); err != nil {
		return Node{}, err
	}
	if !core.ValidID(in.TenantID) {
		return Node{}, core.NotFound("tenant")
	}
	fields := map[string]string{}
	name, kind := strings.TrimSpace(in.Name), strings.TrimSpace(in.Kind)
	if reason := checkText(name, MaxNodeNameLen); reason != "" {
		fields["name"] = reason
	}
	if reason := checkText(kind, MaxKindLen); reason != "" {
		fields["kind"] = reason
	}
	var parentID string
	if in.ParentID != nil {
		parentID = *in.ParentID
	}
	if parentID != "" && !core.ValidID(parentID) {
		fields["parentId"] = "must be the id of a node of the same tenant"
	}
	if len(fields) > 0 {
		return Node{}, core.Invalid("invalid node", fields)
	}
	n := Node{ID: core.NewID(), TenantID: in.TenantID, ParentID: optional(parentID), Name: name, Kind: kind}
	err := s.store.InTx(ctx, func(ctx context.Context) error {
		if _, err := s.store.TenantByID(ctx, in.TenantID); err != nil {
			return err
		}
		if parentID != "" {
			if err := s.checkParent(ctx, in.TenantID, parentID); err != nil {
				return err
			}
		}
		n.CreatedAt = s.now()
		if err := s.store.CreateNode(ctx, n); err != nil {
			return err
		}
		data := NodeCreatedData{NodeID: n.ID, TenantID: n.TenantID, ParentID: n.ParentID, Name: n.Name, Kind: n.Kind}
		return s.store.AddEvents(ctx, core.NewEvent(n.CreatedAt, EventNodeCreated, n.ID, n.TenantID, data))
	})
	if err != nil {
		return Node{}, err
	}
	return n, nil
}

// checkParent verifies that parentID is a node of tenantID whose children
// stay within MaxDepth levels.
func (s *Service) checkParent(ctx context.Context, tenantID, parentID string) error {
	badParent := core.InvalidField("parentId", "must be the id of a node of the same tenant")
	parent, err := s.store.NodeByID(ctx, parentID)
	if err != nil {
		return notFoundAs(err, badParent)
	}
	if parent.TenantID != tenantID {
		return badParent
	}
	anc, err := s.store.Ancestors(ctx, parentID)
	if err != nil {
		return err
	}
	// The new node sits len(anc)+2 levels deep (root = level 1).
	if len(anc)+2 > MaxDepth {
		return core.InvalidField("parentId", "the hierarchy may be at most "+strconv.Itoa(MaxDepth)+" levels deep")
	}
	return nil
}

// ListNodes returns the nodes of tenantID, oldest first, to a SUPER_ADMIN
// and to any principal with a membership in the tenant (TENANT_ADMINs
// included). Errors: IDENT_UNAUTHENTICATED; IDENT_CROSS_TENANT for a
// TENANT_ADMIN of other tenants only; IDENT_NOT_FOUND for an unknown or
// malformed tenant and for an ordinary user who is not a member;
// IDENT_UNAVAILABLE.
func (s *Service) ListNodes(ctx context.Context, tenantID string) ([]Node, error) {
	acc, err := s.authz.Load(ctx)
	if err != nil {
		return nil, err
	}
	if err := canRead(acc, tenantID); err != nil {
		return nil, err
	}
	if !core.ValidID(tenantID) {
		return nil, core.NotFound("tenant")
	}
	if acc.SuperAdmin {
		if _, err := s.store.TenantByID(ctx, tenantID); err != nil {
			return nil, err
		}
	}
	nodes, err := s.store.ListNodes(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	if nodes == nil {
		nodes = []Node{}
	}
	return nodes, nil
}

// Ancestors returns the ancestors of nodeID nearest first (depth 1 = the
// parent; empty for a root). It performs no authorization: it is the
// internal Hierarchy port behind licensing and the access context, never
// exposed to callers directly. Errors: IDENT_NOT_FOUND for an unknown or
// malformed id; IDENT_INTERNAL for a chain longer than MaxDepth (a cycle);
// IDENT_UNAVAILABLE.
func (s *Service) Ancestors(ctx context.Context, nodeID string) ([]Ancestor, error) {
	if !core.ValidID(nodeID) {
		return nil, core.NotFound("node")
	}
	anc, err := s.store.Ancestors(ctx, nodeID)
	if err != nil {
		return nil, notFoundAs(err, core.NotFound("node"))
	}
	return anc, nil
}
