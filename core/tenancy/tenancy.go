// Package tenancy is the tenant directory: tenants with the settings
// identity-service owns, hierarchy nodes (province → district → facility …)
// and memberships of users in tenants and nodes. Service is the local
// directory (the embedded default of the tenancy port, CONTRACT.md §1
// IDENTITY_TENANT_SERVICE_URL empty); Store is its persistence port.
package tenancy

import (
	"context"
	"regexp"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
)

// Tenant is an organisation using the platform. SelfRegistration and
// MFARequired are the settings identity-service owns.
type Tenant struct {
	ID               string
	Slug             string
	Name             string
	SelfRegistration bool
	MFARequired      bool
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

var slugPattern = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)

// ValidSlug reports whether s is a lower-case DNS-label-like slug.
func ValidSlug(s string) bool { return slugPattern.MatchString(s) }

// MaxDepth is the deepest a hierarchy may be, in levels: a root node plus at
// most MaxDepth-1 levels below it, so a node has at most MaxDepth-1
// ancestors. It bounds the ancestors query, which also makes that query
// terminate on a (never expected) cycle.
const MaxDepth = 64

// Node is one node of a tenant's hierarchy (GraphQL HierarchyNode). ParentID
// is nil for a root; a parent always belongs to the same tenant.
type Node struct {
	ID        string
	TenantID  string
	ParentID  *string
	Name      string
	Kind      string
	CreatedAt time.Time
}

// Ancestor is one ancestor of a node (CONTRACT.md §7 shape): Depth 1 is the
// parent, 2 the grandparent, and so on. ParentID is nil for the root.
type Ancestor struct {
	ID       string
	ParentID *string
	TenantID string
	Depth    int
}

// Hierarchy answers the ancestors of a node. The local Service and the
// tenant-service client both implement it; licensing and the access
// context depend on this interface only.
type Hierarchy interface {
	// Ancestors returns the ancestors of nodeID nearest first (empty for a
	// root), or IDENT_NOT_FOUND when there is no such node.
	Ancestors(ctx context.Context, nodeID string) ([]Ancestor, error)
}

// Store is the local directory's persistence port. Calls made with a
// context from InTx join that transaction, and so does AddEvents. Ids
// handed to it are canonical UUIDs (the Service validates them first).
type Store interface {
	core.Transactor
	core.EventSink
	core.MembershipReader

	// CreateTenant inserts t; a taken slug is a core error of KindConflict.
	CreateTenant(ctx context.Context, t Tenant) error
	// TenantByID returns the tenant or IDENT_NOT_FOUND.
	TenantByID(ctx context.Context, id string) (Tenant, error)
	// ListTenants returns every tenant ordered by slug.
	ListTenants(ctx context.Context) ([]Tenant, error)
	// TenantsByID returns the tenants among ids that exist, ordered by slug.
	TenantsByID(ctx context.Context, ids []string) ([]Tenant, error)
	// UpdateTenantSettings sets the non-nil settings and updated_at = at in
	// one UPDATE and returns the tenant as stored afterwards, or
	// IDENT_NOT_FOUND.
	UpdateTenantSettings(ctx context.Context, id string, selfRegistration, mfaRequired *bool, at time.Time) (Tenant, error)

	// CreateNode inserts n. A parent that is not a node of n's tenant is
	// IDENT_VALIDATION (field parentId); a missing tenant IDENT_NOT_FOUND.
	CreateNode(ctx context.Context, n Node) error
	// NodeByID returns the node or IDENT_NOT_FOUND.
	NodeByID(ctx context.Context, id string) (Node, error)
	// ListNodes returns the nodes of tenantID, oldest first (parents before
	// their children).
	ListNodes(ctx context.Context, tenantID string) ([]Node, error)
	// Ancestors returns the ancestors of nodeID nearest first (one recursive
	// query), an empty slice for a root, IDENT_NOT_FOUND for an unknown node
	// and IDENT_INTERNAL when the chain is longer than MaxDepth-1 (a cycle).
	Ancestors(ctx context.Context, nodeID string) ([]Ancestor, error)

	// UserTenantID returns the home tenant of userID or IDENT_NOT_FOUND.
	UserTenantID(ctx context.Context, userID string) (string, error)
	// Membership returns the membership (userID, tenantID, nodeID) and
	// whether it exists; nodeID "" is the tenant-wide membership.
	Membership(ctx context.Context, userID, tenantID, nodeID string) (core.Membership, bool, error)
	// UpsertMembership inserts m, or replaces the roles of the existing
	// membership with the same (user, tenant, node).
	UpsertMembership(ctx context.Context, m core.Membership, at time.Time) error
	// DeleteMembership removes (userID, tenantID, nodeID) and reports
	// whether there was one.
	DeleteMembership(ctx context.Context, userID, tenantID, nodeID string) (bool, error)
	// SuperAdminMemberships returns the memberships of tenantID that hold
	// SUPER_ADMIN and belong to active users. Inside a transaction the rows
	// stay locked until it ends (Postgres; SQLite serialises writers), so
	// two concurrent removals cannot both take away "the other" admin.
	SuperAdminMemberships(ctx context.Context, tenantID string) ([]core.Membership, error)
}
