package core

import (
	"context"
	"slices"
)

// Membership places a user in a tenant, optionally at a hierarchy node, with
// roles. SUPER_ADMIN is only ever granted in the platform tenant.
type Membership struct {
	UserID   string
	TenantID string
	NodeID   string
	Roles    []string
}

// MembershipReader is the part of the tenant directory that authorization needs.
type MembershipReader interface {
	// MembershipsOfUser returns every membership of userID (none is not an error).
	MembershipsOfUser(ctx context.Context, userID string) ([]Membership, error)
}

// Authorizer decides what a principal may do. Every transport reaches it
// through core services, so REST, GraphQL and Connect cannot disagree.
type Authorizer struct {
	memberships MembershipReader
}

// NewAuthorizer returns an Authorizer reading roles from memberships.
func NewAuthorizer(memberships MembershipReader) *Authorizer {
	return &Authorizer{memberships: memberships}
}

// Access is what a principal holds: its memberships and derived admin rights.
type Access struct {
	Principal   *Principal
	Memberships []Membership
	SuperAdmin  bool
	// AdminOf lists tenants where the principal is TENANT_ADMIN.
	AdminOf []string
}

// Load resolves the caller's access; it fails with IDENT_UNAUTHENTICATED when
// there is no valid credential.
func (a *Authorizer) Load(ctx context.Context) (*Access, error) {
	p, err := RequirePrincipal(ctx)
	if err != nil {
		return nil, err
	}
	acc := &Access{Principal: p}
	if p.Type != PrincipalUser {
		return acc, nil
	}
	ms, err := a.memberships.MembershipsOfUser(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	acc.Memberships = ms
	for _, m := range ms {
		if slices.Contains(m.Roles, RoleSuperAdmin) {
			acc.SuperAdmin = true
		}
		if slices.Contains(m.Roles, RoleTenantAdmin) && !slices.Contains(acc.AdminOf, m.TenantID) {
			acc.AdminOf = append(acc.AdminOf, m.TenantID)
		}
	}
	return acc, nil
}

// RequireSuperAdmin returns the caller's access if it is a SUPER_ADMIN, else
// IDENT_UNAUTHENTICATED or IDENT_FORBIDDEN.
func (a *Authorizer) RequireSuperAdmin(ctx context.Context) (*Access, error) {
	acc, err := a.Load(ctx)
	if err != nil {
		return nil, err
	}
	if !acc.SuperAdmin {
		return nil, Forbidden("requires SUPER_ADMIN")
	}
	return acc, nil
}

// RequireTenantAdmin returns the caller's access if it may administer tenant.
// A tenant admin of another tenant gets IDENT_CROSS_TENANT; anyone else
// IDENT_FORBIDDEN.
func (a *Authorizer) RequireTenantAdmin(ctx context.Context, tenantID string) (*Access, error) {
	acc, err := a.Load(ctx)
	if err != nil {
		return nil, err
	}
	if err := acc.CanAdminister(tenantID); err != nil {
		return nil, err
	}
	return acc, nil
}

// CanAdminister is the one check behind "may this principal act on a resource
// of tenant T" (CONTRACT.md §2, IDENT_CROSS_TENANT).
func (acc *Access) CanAdminister(tenantID string) error {
	if acc.SuperAdmin || slices.Contains(acc.AdminOf, tenantID) {
		return nil
	}
	if len(acc.AdminOf) > 0 {
		return E(KindForbidden, CodeCrossTenant, "the resource belongs to another tenant")
	}
	return Forbidden("requires TENANT_ADMIN of the resource's tenant")
}

// TenantIDs is the tids claim: home followed by every other tenant of ms,
// deduplicated, in membership order. Login, refresh, MFA and token exchange
// all use it, so a principal's tids never depend on how it signed in.
func TenantIDs(home string, ms []Membership) []string {
	out := []string{home}
	for _, m := range ms {
		if !slices.Contains(out, m.TenantID) {
			out = append(out, m.TenantID)
		}
	}
	return out
}
