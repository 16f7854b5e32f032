package tenancy

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"github.com/ghasi-ehealth/identity-service/core"
)

// MembershipInput is GraphQL addMembership. NodeID nil (or "") is the
// tenant-wide membership.
type MembershipInput struct {
	UserID   string
	TenantID string
	NodeID   *string
	Roles    []string
}

// AddMembership grants roles to a user in a tenant (optionally at one of its
// nodes) and emits identity.membership.changed.v1. A membership for the same
// (user, tenant, node) is not a conflict: its roles are replaced (change
// "updated"; otherwise "added"), so the call is idempotent. Roles are
// trimmed and deduplicated, order kept; an empty list makes a plain member.
//
// A TENANT_ADMIN may add users of its own tenant and users who already hold
// a membership in it; another tenant's user is IDENT_CROSS_TENANT (only a
// SUPER_ADMIN links users across tenants). SUPER_ADMIN may be granted only
// by a SUPER_ADMIN and only in the platform tenant, and a membership that
// holds SUPER_ADMIN may be changed only by a SUPER_ADMIN.
//
// Errors: IDENT_UNAUTHENTICATED; IDENT_CROSS_TENANT / IDENT_FORBIDDEN as
// above and unless SUPER_ADMIN or TENANT_ADMIN of the tenant;
// IDENT_NOT_FOUND for an unknown or malformed tenant or user;
// IDENT_VALIDATION (fields roles, nodeId — a node of another tenant);
// IDENT_STATE_CONFLICT when dropping SUPER_ADMIN from the platform's last
// active SUPER_ADMIN; IDENT_UNAVAILABLE.
func (s *Service) AddMembership(ctx context.Context, in MembershipInput) (core.Membership, error) {
	acc, err := s.authz.RequireTenantAdmin(ctx, in.TenantID)
	if err != nil {
		return core.Membership{}, err
	}
	if !core.ValidID(in.TenantID) {
		return core.Membership{}, core.NotFound("tenant")
	}
	if !core.ValidID(in.UserID) {
		return core.Membership{}, core.NotFound("user")
	}
	nodeID := deref(in.NodeID)
	fields := map[string]string{}
	if nodeID != "" && !core.ValidID(nodeID) {
		fields["nodeId"] = "must be the id of a node of the tenant"
	}
	roles, reason := normalizeRoles(in.Roles)
	if reason != "" {
		fields["roles"] = reason
	}
	if len(fields) > 0 {
		return core.Membership{}, core.Invalid("invalid membership", fields)
	}
	grantsSuper := slices.Contains(roles, core.RoleSuperAdmin)
	if grantsSuper && !acc.SuperAdmin {
		return core.Membership{}, core.Forbidden("only a SUPER_ADMIN may grant SUPER_ADMIN")
	}
	m := core.Membership{UserID: in.UserID, TenantID: in.TenantID, NodeID: nodeID, Roles: roles}
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		tenant, err := s.store.TenantByID(ctx, in.TenantID)
		if err != nil {
			return err
		}
		if grantsSuper && tenant.Slug != core.PlatformTenantSlug {
			return core.Forbidden("SUPER_ADMIN may only be granted in the platform tenant")
		}
		if err := s.checkUserInReach(ctx, acc, in.UserID, in.TenantID); err != nil {
			return err
		}
		if nodeID != "" {
			node, err := s.store.NodeByID(ctx, nodeID)
			if err != nil && !core.IsKind(err, core.KindNotFound) {
				return err
			}
			if err != nil || node.TenantID != in.TenantID {
				return core.InvalidField("nodeId", "must be the id of a node of the tenant")
			}
		}
		old, exists, err := s.store.Membership(ctx, in.UserID, in.TenantID, nodeID)
		if err != nil {
			return err
		}
		change := ChangeAdded
		if exists {
			change = ChangeUpdated
			if err := s.checkSuperAdminChange(ctx, acc, tenant, old, roles); err != nil {
				return err
			}
		}
		if err := s.store.UpsertMembership(ctx, m, s.now()); err != nil {
			return err
		}
		return s.emitMembership(ctx, acc, m, change)
	})
	if err != nil {
		return core.Membership{}, err
	}
	s.membershipChanged(m.UserID, m.TenantID)
	return m, nil
}

// RemoveMembership removes the membership (userID, tenantID, nodeID) and
// emits identity.membership.changed.v1 (change "removed", with the roles it
// held). It reports false, without an event, when there was none (also for
// a malformed user or node id). Errors: IDENT_UNAUTHENTICATED;
// IDENT_CROSS_TENANT / IDENT_FORBIDDEN unless SUPER_ADMIN or TENANT_ADMIN of
// the tenant; IDENT_FORBIDDEN for a membership holding SUPER_ADMIN unless the
// caller is SUPER_ADMIN; IDENT_NOT_FOUND for an unknown or malformed tenant;
// IDENT_STATE_CONFLICT for the platform's last active SUPER_ADMIN
// membership; IDENT_UNAVAILABLE.
func (s *Service) RemoveMembership(ctx context.Context, userID, tenantID string, nodeID *string) (bool, error) {
	acc, err := s.authz.RequireTenantAdmin(ctx, tenantID)
	if err != nil {
		return false, err
	}
	if !core.ValidID(tenantID) {
		return false, core.NotFound("tenant")
	}
	node := deref(nodeID)
	if !core.ValidID(userID) || (node != "" && !core.ValidID(node)) {
		if _, err := s.store.TenantByID(ctx, tenantID); err != nil {
			return false, err
		}
		return false, nil
	}
	removed := false
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		tenant, err := s.store.TenantByID(ctx, tenantID)
		if err != nil {
			return err
		}
		old, exists, err := s.store.Membership(ctx, userID, tenantID, node)
		if err != nil || !exists {
			return err
		}
		if err := s.checkSuperAdminChange(ctx, acc, tenant, old, nil); err != nil {
			return err
		}
		if removed, err = s.store.DeleteMembership(ctx, userID, tenantID, node); err != nil || !removed {
			return err
		}
		return s.emitMembership(ctx, acc, old, ChangeRemoved)
	})
	if err != nil {
		return false, err
	}
	if removed {
		s.membershipChanged(userID, tenantID)
	}
	return removed, nil
}

// membershipChanged calls OnMembershipChange, if set.
func (s *Service) membershipChanged(userID, tenantID string) {
	if s.OnMembershipChange != nil {
		s.OnMembershipChange(userID, tenantID)
	}
}

// checkUserInReach makes sure userID exists and, for a caller who is not
// SUPER_ADMIN, belongs to tenantID or already holds a membership in it.
func (s *Service) checkUserInReach(ctx context.Context, acc *core.Access, userID, tenantID string) error {
	home, err := s.store.UserTenantID(ctx, userID)
	if err != nil {
		return notFoundAs(err, core.NotFound("user"))
	}
	if acc.SuperAdmin || home == tenantID {
		return nil
	}
	ms, err := s.store.MembershipsOfUser(ctx, userID)
	if err != nil {
		return err
	}
	if slices.ContainsFunc(ms, func(m core.Membership) bool { return m.TenantID == tenantID }) {
		return nil
	}
	return core.E(core.KindForbidden, core.CodeCrossTenant, "the user belongs to another tenant")
}

// checkSuperAdminChange guards a change of membership old to newRoles (nil
// when removed): only a SUPER_ADMIN may change a SUPER_ADMIN membership, and
// the platform tenant never loses its last active SUPER_ADMIN.
func (s *Service) checkSuperAdminChange(ctx context.Context, acc *core.Access, tenant Tenant, old core.Membership, newRoles []string) error {
	if !slices.Contains(old.Roles, core.RoleSuperAdmin) || slices.Contains(newRoles, core.RoleSuperAdmin) {
		return nil
	}
	if !acc.SuperAdmin {
		return core.Forbidden("only a SUPER_ADMIN may change a SUPER_ADMIN membership")
	}
	if tenant.Slug != core.PlatformTenantSlug {
		return nil
	}
	admins, err := s.store.SuperAdminMemberships(ctx, tenant.ID)
	if err != nil {
		return err
	}
	for _, m := range admins {
		if m.UserID != old.UserID || m.NodeID != old.NodeID {
			return nil // another active SUPER_ADMIN membership remains
		}
	}
	return core.E(core.KindConflict, core.CodeStateConflict, "the platform's last SUPER_ADMIN cannot lose the role")
}

func (s *Service) emitMembership(ctx context.Context, acc *core.Access, m core.Membership, change string) error {
	roles := m.Roles
	if roles == nil {
		roles = []string{}
	}
	data := MembershipChangedData{
		UserID: m.UserID, TenantID: m.TenantID, NodeID: optional(m.NodeID),
		Roles: roles, Change: change, ActorID: acc.Principal.ID,
	}
	return s.store.AddEvents(ctx, core.NewEvent(s.now(), EventMembershipChanged, m.UserID, m.TenantID, data))
}

// normalizeRoles trims and deduplicates roles (first occurrence wins) and
// returns why they are invalid ("" when they are not).
func normalizeRoles(in []string) ([]string, string) {
	out := make([]string, 0, len(in))
	for _, r := range in {
		r = strings.TrimSpace(r)
		switch {
		case r == "":
			return nil, "each role must be a non-empty string"
		case len([]rune(r)) > MaxRoleLen:
			return nil, "each role must be at most " + strconv.Itoa(MaxRoleLen) + " characters"
		case strings.ContainsFunc(r, unicode.IsControl):
			return nil, "roles must not contain control characters"
		}
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	if len(out) > MaxRoles {
		return nil, "at most " + strconv.Itoa(MaxRoles) + " roles"
	}
	return out, ""
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
