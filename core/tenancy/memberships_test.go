package tenancy_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/messaging/eventtest"
)

func TestAddAndRemoveMembership(t *testing.T) {
	eachDialect(t, func(t *testing.T, f *fixture) {
		ctx := f.as(adminA)
		target := f.user(t, f.a.ID)
		node, err := f.svc.CreateNode(ctx, tenancy.CreateNodeInput{TenantID: f.a.ID, Name: "Kabul", Kind: "province"})
		require.NoError(t, err)

		m, err := f.svc.AddMembership(ctx, tenancy.MembershipInput{UserID: target, TenantID: f.a.ID, Roles: []string{" doctor ", "doctor", "nurse"}})
		require.NoError(t, err)
		require.Equal(t, core.Membership{UserID: target, TenantID: f.a.ID, Roles: []string{"doctor", "nurse"}}, m, "trimmed and deduplicated")
		// Adding again replaces the roles instead of failing.
		m, err = f.svc.AddMembership(ctx, tenancy.MembershipInput{UserID: target, TenantID: f.a.ID, NodeID: ptr(""), Roles: []string{core.RoleTenantAdmin}})
		require.NoError(t, err)
		require.Equal(t, []string{core.RoleTenantAdmin}, f.roles(t, target, f.a.ID, ""))
		m, err = f.svc.AddMembership(ctx, tenancy.MembershipInput{UserID: target, TenantID: f.a.ID, NodeID: &node.ID})
		require.NoError(t, err)
		require.Equal(t, core.Membership{UserID: target, TenantID: f.a.ID, NodeID: node.ID, Roles: []string{}}, m, "no roles: a plain member")
		require.Equal(t, []string{}, f.roles(t, target, f.a.ID, node.ID))

		removed, err := f.svc.RemoveMembership(ctx, target, f.a.ID, &node.ID)
		require.NoError(t, err)
		require.True(t, removed)
		require.Nil(t, f.roles(t, target, f.a.ID, node.ID))
		require.Equal(t, []string{core.RoleTenantAdmin}, f.roles(t, target, f.a.ID, ""), "the tenant-wide membership stays")

		before := f.counts(t)
		for _, tc := range []struct {
			name         string
			user, tenant string
			node         *string
		}{
			{"already removed", target, f.a.ID, &node.ID},
			{"never existed", f.users[memberA], f.a.ID, &node.ID},
			{"malformed user", "u", f.a.ID, nil},
			{"malformed node", target, f.a.ID, ptr("n")},
		} {
			removed, err = f.svc.RemoveMembership(ctx, tc.user, tc.tenant, tc.node)
			require.NoError(t, err, tc.name)
			require.False(t, removed, tc.name)
		}
		for _, tenant := range []string{"t", core.NewID()} {
			_, err = f.svc.RemoveMembership(f.as(super), target, tenant, nil)
			requireCode(t, core.CodeNotFound, err)
		}
		require.Equal(t, before, f.counts(t), "nothing removed, nothing emitted")

		envs := eventtest.RequireValidStored(t, f.db, tenancy.EventMembershipChanged)
		require.Len(t, envs, 4)
		want := []tenancy.MembershipChangedData{
			{UserID: target, TenantID: f.a.ID, Roles: []string{"doctor", "nurse"}, Change: tenancy.ChangeAdded},
			{UserID: target, TenantID: f.a.ID, Roles: []string{core.RoleTenantAdmin}, Change: tenancy.ChangeUpdated},
			{UserID: target, TenantID: f.a.ID, NodeID: &node.ID, Roles: []string{}, Change: tenancy.ChangeAdded},
			{UserID: target, TenantID: f.a.ID, NodeID: &node.ID, Roles: []string{}, Change: tenancy.ChangeRemoved},
		}
		for i, env := range envs {
			var data tenancy.MembershipChangedData
			require.NoError(t, json.Unmarshal(env.Data, &data))
			want[i].ActorID = f.users[adminA]
			require.Equal(t, want[i], data)
			require.Equal(t, target, env.Subject)
			require.Equal(t, f.a.ID, env.TenantID)
		}
	})
}

func TestAddMembershipRules(t *testing.T) {
	eachDialect(t, func(t *testing.T, f *fixture) {
		target := f.user(t, f.a.ID)
		userOfB := f.user(t, f.b.ID)
		nodeB, err := f.svc.CreateNode(f.as(adminB), tenancy.CreateNodeInput{TenantID: f.b.ID, Name: "Balkh", Kind: "province"})
		require.NoError(t, err)
		in := func(user, tenant string, node *string, roles ...string) tenancy.MembershipInput {
			return tenancy.MembershipInput{UserID: user, TenantID: tenant, NodeID: node, Roles: roles}
		}
		tests := []struct {
			name  string
			by    actor
			in    tenancy.MembershipInput
			code  string
			field string
		}{
			{"unknown user", adminA, in(core.NewID(), f.a.ID, nil, "x"), core.CodeNotFound, ""},
			{"malformed user", adminA, in("u", f.a.ID, nil, "x"), core.CodeNotFound, ""},
			{"unknown tenant", super, in(target, core.NewID(), nil, "x"), core.CodeNotFound, ""},
			{"malformed tenant", super, in(target, "t", nil, "x"), core.CodeNotFound, ""},
			{"node of another tenant", adminA, in(target, f.a.ID, &nodeB.ID, "x"), core.CodeValidation, "nodeId"},
			{"unknown node", adminA, in(target, f.a.ID, ptr(core.NewID()), "x"), core.CodeValidation, "nodeId"},
			{"malformed node", adminA, in(target, f.a.ID, ptr("n"), "x"), core.CodeValidation, "nodeId"},
			{"empty role", adminA, in(target, f.a.ID, nil, "x", " "), core.CodeValidation, "roles"},
			{"long role", adminA, in(target, f.a.ID, nil, strings.Repeat("r", 65)), core.CodeValidation, "roles"},
			{"control character in a role", adminA, in(target, f.a.ID, nil, "a\tb"), core.CodeValidation, "roles"},
			{"too many roles", adminA, tenancy.MembershipInput{UserID: target, TenantID: f.a.ID, Roles: manyRoles(33)}, core.CodeValidation, "roles"},
			{"another tenant's user, by a TENANT_ADMIN", adminA, in(userOfB, f.a.ID, nil, "x"), core.CodeCrossTenant, ""},
			{"SUPER_ADMIN granted by a TENANT_ADMIN", adminA, in(target, f.a.ID, nil, core.RoleSuperAdmin), core.CodeForbidden, ""},
			{"SUPER_ADMIN outside the platform", super, in(target, f.a.ID, nil, core.RoleSuperAdmin), core.CodeForbidden, ""},
		}
		before := f.counts(t)
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				_, err := f.svc.AddMembership(f.as(tc.by), tc.in)
				requireCode(t, tc.code, err)
				if tc.field != "" {
					require.Contains(t, core.AsError(err).Fields, tc.field)
				}
				require.Equal(t, before, f.counts(t))
			})
		}

		_, err = f.svc.AddMembership(f.as(adminA), in(target, f.a.ID, nil, strings.Repeat("r", 64)))
		require.NoError(t, err, "64-character roles are fine")
		_, err = f.svc.AddMembership(f.as(adminA), tenancy.MembershipInput{UserID: target, TenantID: f.a.ID, Roles: manyRoles(32)})
		require.NoError(t, err, "32 roles are fine")

		// A SUPER_ADMIN links another tenant's user; from then on tenant A's
		// admin manages that user's memberships in A.
		_, err = f.svc.AddMembership(f.as(super), in(userOfB, f.a.ID, nil, "visiting-doctor"))
		require.NoError(t, err)
		_, err = f.svc.AddMembership(f.as(adminA), in(userOfB, f.a.ID, nil, "doctor"))
		require.NoError(t, err)
		removed, err := f.svc.RemoveMembership(f.as(adminA), userOfB, f.a.ID, nil)
		require.NoError(t, err)
		require.True(t, removed)

		// SUPER_ADMIN in the platform tenant, granted by a SUPER_ADMIN.
		platformUser := f.user(t, f.platform.ID)
		_, err = f.svc.AddMembership(f.as(super), in(platformUser, f.platform.ID, nil, core.RoleSuperAdmin))
		require.NoError(t, err)
		tenants, err := f.svc.ListTenants(asUser(platformUser))
		require.NoError(t, err)
		require.Len(t, tenants, 3, "the new SUPER_ADMIN sees every tenant")
	})
}

func manyRoles(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = "role-" + core.NewID()
	}
	return out
}

func TestSuperAdminProtection(t *testing.T) {
	eachDialect(t, func(t *testing.T, f *fixture) {
		super1 := f.users[super]
		platformAdmin := f.user(t, f.platform.ID, core.RoleTenantAdmin)
		f.userWithStatus(t, f.platform.ID, "suspended", core.RoleSuperAdmin) // does not count

		before := f.counts(t)
		_, err := f.svc.RemoveMembership(asUser(super1), super1, f.platform.ID, nil)
		requireCode(t, core.CodeStateConflict, err)
		_, err = f.svc.AddMembership(asUser(super1), tenancy.MembershipInput{UserID: super1, TenantID: f.platform.ID, Roles: []string{core.RoleTenantAdmin}})
		requireCode(t, core.CodeStateConflict, err)
		_, err = f.svc.RemoveMembership(asUser(platformAdmin), super1, f.platform.ID, nil)
		requireCode(t, core.CodeForbidden, err)
		_, err = f.svc.AddMembership(asUser(platformAdmin), tenancy.MembershipInput{UserID: super1, TenantID: f.platform.ID, Roles: []string{"x"}})
		requireCode(t, core.CodeForbidden, err)
		require.Equal(t, before, f.counts(t))
		require.Equal(t, []string{core.RoleSuperAdmin}, f.roles(t, super1, f.platform.ID, ""))

		// Keeping SUPER_ADMIN while adding roles is fine.
		_, err = f.svc.AddMembership(asUser(super1), tenancy.MembershipInput{UserID: super1, TenantID: f.platform.ID, Roles: []string{core.RoleSuperAdmin, "auditor"}})
		require.NoError(t, err)

		// With a second active SUPER_ADMIN the first may step down; then
		// the second is the last one.
		super2 := f.user(t, f.platform.ID)
		_, err = f.svc.AddMembership(asUser(super1), tenancy.MembershipInput{UserID: super2, TenantID: f.platform.ID, Roles: []string{core.RoleSuperAdmin}})
		require.NoError(t, err)
		removed, err := f.svc.RemoveMembership(asUser(super1), super1, f.platform.ID, nil)
		require.NoError(t, err)
		require.True(t, removed)
		_, err = f.svc.RemoveMembership(asUser(super2), super2, f.platform.ID, nil)
		requireCode(t, core.CodeStateConflict, err)

		// A second SUPER_ADMIN membership of the same user (at a node) keeps
		// the platform administered, so the tenant-wide one may go.
		node, err := f.svc.CreateNode(asUser(super2), tenancy.CreateNodeInput{TenantID: f.platform.ID, Name: "ops", Kind: "team"})
		require.NoError(t, err)
		_, err = f.svc.AddMembership(asUser(super2), tenancy.MembershipInput{UserID: super2, TenantID: f.platform.ID, NodeID: &node.ID, Roles: []string{core.RoleSuperAdmin}})
		require.NoError(t, err)
		removed, err = f.svc.RemoveMembership(asUser(super2), super2, f.platform.ID, nil)
		require.NoError(t, err)
		require.True(t, removed)
		_, err = f.svc.RemoveMembership(asUser(super2), super2, f.platform.ID, &node.ID)
		requireCode(t, core.CodeStateConflict, err)
		eventtest.RequireValidStored(t, f.db, tenancy.EventMembershipChanged)
	})
}

// TestLastSuperAdminRace: two SUPER_ADMINs step down at once; exactly one
// may succeed.
func TestLastSuperAdminRace(t *testing.T) {
	eachDialect(t, func(t *testing.T, f *fixture) {
		last := f.users[super]
		for round := range 5 {
			admins := []string{last, f.user(t, f.platform.ID, core.RoleSuperAdmin)}
			errs := make(chan error, len(admins))
			start := make(chan struct{})
			for _, id := range admins {
				go func() {
					<-start
					_, err := f.svc.RemoveMembership(asUser(id), id, f.platform.ID, nil)
					errs <- err
				}()
			}
			close(start)
			var codes []string
			for range admins {
				codes = append(codes, core.CodeOf(<-errs))
			}
			require.ElementsMatch(t, []string{"", core.CodeStateConflict}, codes, "round %d", round)
			left, err := f.store.SuperAdminMemberships(context.Background(), f.platform.ID)
			require.NoError(t, err)
			require.Len(t, left, 1)
			last = left[0].UserID
		}
	})
}
