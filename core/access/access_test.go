package access_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/access"
	"github.com/ghasi-ehealth/identity-service/core/licensing"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
)

func TestRolesFromNodeAndAncestors(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		u := e.user(t, e.tenantA)
		e.member(t, u, e.tenantA, e.province, "NURSE")
		e.member(t, u, e.tenantA, e.facility, "DOCTOR", "NURSE")
		ctx := as(u, e.tenantA)

		c, err := e.svc.AccessContext(ctx, e.facility)
		require.NoError(t, err)
		require.Equal(t, u, c.UserID)
		require.Equal(t, e.tenantA, c.TenantID)
		require.Equal(t, e.facility, c.NodeID)
		require.Equal(t, []string{"DOCTOR", "NURSE"}, c.Roles)
		require.Len(t, c.Memberships, 2)
		require.False(t, c.Stale)

		c, err = e.svc.AccessContext(ctx, e.district)
		require.NoError(t, err)
		require.Equal(t, []string{"NURSE"}, c.Roles)
		c, err = e.svc.AccessContext(ctx, e.province)
		require.NoError(t, err)
		require.Equal(t, []string{"NURSE"}, c.Roles)

		// Outside the memberships: another root of A, a node of B, an unknown node.
		for _, n := range []string{e.rootA, e.rootB, core.NewID()} {
			_, err = e.svc.AccessContext(ctx, n)
			requireCode(t, core.CodeForbidden, err)
		}
		_, err = e.svc.AccessContext(ctx, "not-a-uuid")
		requireCode(t, core.CodeValidation, err)
		// Tenant level with node memberships only: a node must be chosen.
		_, err = e.svc.AccessContext(ctx, "")
		requireCode(t, core.CodeValidation, err)
		// The token's context node stands in for a missing nodeId.
		c, err = e.svc.AccessContext(core.WithPrincipal(context.Background(), &core.Principal{Type: core.PrincipalUser,
			ID: u, TenantID: e.tenantA, ContextNodeID: e.facility}), "")
		require.NoError(t, err)
		require.Equal(t, e.facility, c.NodeID)

		// Not a user; no principal; a user without membership.
		_, err = e.svc.AccessContext(core.WithPrincipal(context.Background(), &core.Principal{
			Type: core.PrincipalServiceAccount, ID: core.NewID(), TenantID: e.tenantA}), e.facility)
		requireCode(t, core.CodeForbidden, err)
		_, err = e.svc.AccessContext(context.Background(), e.facility)
		requireCode(t, core.CodeUnauthenticated, err)
		_, err = e.svc.AccessContext(as(e.user(t, e.tenantA), e.tenantA), "")
		requireCode(t, core.CodeForbidden, err)
	})
}

func TestTenantWideMembership(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		u := e.user(t, e.tenantA)
		e.member(t, u, e.tenantA, "", core.RoleTenantAdmin)
		e.member(t, u, e.tenantA, e.district, "DOCTOR")
		ctx := as(u, e.tenantA)
		for node, roles := range map[string][]string{
			e.facility: {"DOCTOR", core.RoleTenantAdmin}, e.province: {core.RoleTenantAdmin},
			e.rootA: {core.RoleTenantAdmin}, "": {core.RoleTenantAdmin},
		} {
			c, err := e.svc.AccessContext(ctx, node)
			require.NoError(t, err)
			require.Equal(t, roles, c.Roles, node)
			require.Equal(t, e.tenantA, c.TenantID)
		}
		c, err := e.svc.AccessContext(ctx, "")
		require.NoError(t, err)
		require.Empty(t, c.NodeID)
		require.Equal(t, []string{"ehr.core", "platform.audit", "platform.iam"}, codes(c.EffectiveModules))
		_, err = e.svc.AccessContext(ctx, e.rootB)
		requireCode(t, core.CodeForbidden, err)
	})
}

func TestEffectiveModulesGrantedOnly(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		for _, code := range []string{"ehr.lab", "ehr.rad", "ehr.pharmacy"} {
			_, err := e.lic.CreateModule(e.root(), licensing.CreateModuleInput{Code: code, Name: code})
			require.NoError(t, err)
		}
		assign := func(node, code string, scope licensing.Scope) licensing.Assignment {
			a, err := e.lic.CreateAssignment(e.root(), licensing.CreateAssignmentInput{TenantID: e.tenantA, NodeID: node,
				ModuleCode: code, Scope: scope, Status: licensing.StatusActive})
			require.NoError(t, err)
			return a
		}
		assign(e.district, "ehr.lab", licensing.ScopeInheritDown)
		assign(e.district, "ehr.pharmacy", licensing.ScopeExact) // not at the facility
		rad := assign(e.province, "ehr.rad", licensing.ScopeInheritDown)
		_, err := e.lic.ChangeAssignmentStatus(e.root(), rad.ID, licensing.StatusSuspended, "unpaid")
		require.NoError(t, err)

		u := e.user(t, e.tenantA)
		e.member(t, u, e.tenantA, e.facility, "DOCTOR")
		c, err := e.svc.AccessContext(as(u, e.tenantA), e.facility)
		require.NoError(t, err)
		require.Equal(t, []string{"ehr.core", "ehr.lab", "platform.audit", "platform.iam"}, codes(c.EffectiveModules))
		for _, m := range c.EffectiveModules {
			require.True(t, m.Granted)
			if m.Code == "ehr.lab" {
				require.Equal(t, e.district, m.SourceNodeID)
				require.Equal(t, licensing.ScopeInheritDown, m.Scope)
				require.Equal(t, licensing.StatusActive, m.Status)
			}
		}
	})
}

func TestWarmHitAndInvalidation(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		u := e.user(t, e.tenantA)
		e.member(t, u, e.tenantA, e.district, "NURSE")
		ctx := as(u, e.tenantA)
		get := func() access.Context {
			t.Helper()
			c, err := e.svc.AccessContext(ctx, e.facility)
			require.NoError(t, err)
			return c
		}
		first := get()
		require.False(t, e.lastHit(t))
		calls := e.count.calls.Load()
		require.Equal(t, first, get())
		require.True(t, e.lastHit(t))
		require.Equal(t, calls, e.count.calls.Load(), "a hit calls no directory")

		// Cached values are copies.
		c := get()
		c.Roles[0] = "MUTATED"
		require.Equal(t, []string{"NURSE"}, get().Roles)

		miss := func(invalidate func() error) {
			t.Helper()
			require.NoError(t, invalidate())
			get()
			require.False(t, e.lastHit(t))
			get()
			require.True(t, e.lastHit(t))
		}
		bg := context.Background()
		miss(func() error { return e.svc.InvalidateUser(bg, u) })
		miss(func() error { return e.svc.InvalidateTenant(bg, e.tenantA) })
		miss(func() error { return e.svc.InvalidateAll(bg) })
		miss(func() error {
			return e.svc.HandleTenantEvent(bg, access.EventTenantRoleChanged, json.RawMessage(`{"userId":"`+u+`"}`))
		})
		miss(func() error {
			return e.svc.HandleTenantEvent(bg, access.EventTenantMembershipChanged, json.RawMessage(`{"tenantId":"`+e.tenantA+`"}`))
		})
		// Another user's or tenant's invalidation keeps the entry.
		require.NoError(t, e.svc.InvalidateUser(bg, core.NewID()))
		require.NoError(t, e.svc.InvalidateTenant(bg, e.tenantB))
		require.NoError(t, e.svc.HandleTenantEvent(bg, "tenant.node.created.v1", json.RawMessage(`{"userId":"`+u+`"}`)))
		get()
		require.True(t, e.lastHit(t))
		requireCode(t, core.CodeValidation, e.svc.HandleTenantEvent(bg, access.EventTenantRoleChanged, json.RawMessage(`[`)))

		// TTL.
		e.clock.Advance(access.ContextTTL)
		get()
		require.False(t, e.lastHit(t))

		// A membership change through the local directory invalidates via the hook.
		node := e.facility
		_, err := e.tsvc.AddMembership(e.root(), tenancy.MembershipInput{UserID: u, TenantID: e.tenantA, NodeID: &node,
			Roles: []string{"DOCTOR"}})
		require.NoError(t, err)
		require.Contains(t, e.hooked, u+"@"+e.tenantA)
		require.Equal(t, []string{"DOCTOR", "NURSE"}, get().Roles)
		require.False(t, e.lastHit(t))
		removed, err := e.tsvc.RemoveMembership(e.root(), u, e.tenantA, &node)
		require.NoError(t, err)
		require.True(t, removed)
		require.Equal(t, []string{"NURSE"}, get().Roles)
	})
}

func TestStaleServing(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		u := e.user(t, e.tenantA)
		e.member(t, u, e.tenantA, e.district, "NURSE")
		ctx := as(u, e.tenantA)
		fresh, err := e.svc.AccessContext(ctx, e.facility)
		require.NoError(t, err)

		e.count.down.Store(true)
		// Fresh entries are served as usual.
		c, err := e.svc.AccessContext(ctx, e.facility)
		require.NoError(t, err)
		require.False(t, c.Stale)
		// Expired within the grace: served, marked stale.
		e.clock.Advance(access.ContextTTL + access.StaleGrace/2)
		c, err = e.svc.AccessContext(ctx, e.facility)
		require.NoError(t, err)
		require.True(t, c.Stale)
		require.Equal(t, fresh.Roles, c.Roles)
		// Cold: unavailable.
		_, err = e.svc.AccessContext(ctx, e.district)
		requireCode(t, core.CodeUnavailable, err)
		// An invalidated entry is never served stale.
		require.NoError(t, e.svc.InvalidateUser(context.Background(), u))
		_, err = e.svc.AccessContext(ctx, e.facility)
		requireCode(t, core.CodeUnavailable, err)

		// Back up: recomputed and fresh again; past the grace: unavailable.
		e.count.down.Store(false)
		c, err = e.svc.AccessContext(ctx, e.facility)
		require.NoError(t, err)
		require.False(t, c.Stale)
		e.count.down.Store(true)
		e.clock.Advance(access.ContextTTL + access.StaleGrace)
		_, err = e.svc.AccessContext(ctx, e.facility)
		requireCode(t, core.CodeUnavailable, err)
	})
}

func TestRootNodeTenant(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		u := e.user(t, e.tenantA)
		e.member(t, u, e.tenantA, e.rootA, "CLERK")
		w := e.user(t, e.tenantA)
		e.member(t, w, e.tenantA, "", "AUDITOR")
		e.count.noTenant.Store(true)
		c, err := e.svc.AccessContext(as(u, e.tenantA), e.rootA)
		require.NoError(t, err)
		require.Equal(t, e.tenantA, c.TenantID)
		require.Equal(t, []string{"CLERK"}, c.Roles)
		_, err = e.svc.AccessContext(as(w, e.tenantA), e.rootA)
		requireCode(t, core.CodeInternal, err)
		e.count.noTenant.Store(false)
		c, err = e.svc.AccessContext(as(w, e.tenantA), e.rootA)
		require.NoError(t, err)
		require.Equal(t, []string{"AUDITOR"}, c.Roles)
	})
}
