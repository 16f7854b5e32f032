package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

func testTenancy(t *testing.T, open dbtest.Opener) {
	t.Run("tenants", func(t *testing.T) { testTenancyTenants(t, open(t)) })
	t.Run("nodes", func(t *testing.T) { testTenancyNodes(t, open(t)) })
	t.Run("memberships", func(t *testing.T) { testTenancyMemberships(t, open(t)) })
}

func newTenant(t *testing.T, s *persistence.TenancyStore, slug string) tenancy.Tenant {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	tn := tenancy.Tenant{ID: core.NewID(), Slug: slug, Name: "Tenant " + slug, CreatedAt: now, UpdatedAt: now}
	require.NoError(t, s.CreateTenant(context.Background(), tn))
	return tn
}

func testTenancyTenants(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewTenancyStore(db)
	b := newTenant(t, s, "b-clinic")
	a := newTenant(t, s, "a-clinic")
	require.Equal(t, core.KindConflict, core.KindOf(s.CreateTenant(ctx, tenancy.Tenant{ID: core.NewID(), Slug: "a-clinic", Name: "dup", CreatedAt: a.CreatedAt, UpdatedAt: a.UpdatedAt})))

	got, err := s.TenantByID(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, a, got)
	_, err = s.TenantByID(ctx, core.NewID())
	require.Equal(t, core.CodeNotFound, core.CodeOf(err))

	all, err := s.ListTenants(ctx)
	require.NoError(t, err)
	require.Equal(t, []tenancy.Tenant{a, b}, all, "ordered by slug")
	some, err := s.TenantsByID(ctx, []string{b.ID, core.NewID()})
	require.NoError(t, err)
	require.Equal(t, []tenancy.Tenant{b}, some)
	none, err := s.TenantsByID(ctx, nil)
	require.NoError(t, err)
	require.Empty(t, none)

	yes, later := true, a.UpdatedAt.Add(time.Minute)
	upd, err := s.UpdateTenantSettings(ctx, a.ID, nil, &yes, later)
	require.NoError(t, err)
	require.True(t, upd.MFARequired)
	require.False(t, upd.SelfRegistration, "a nil setting is kept")
	require.Equal(t, later, upd.UpdatedAt)
	require.Equal(t, a.CreatedAt, upd.CreatedAt)
	upd, err = s.UpdateTenantSettings(ctx, a.ID, &yes, nil, later)
	require.NoError(t, err)
	require.True(t, upd.SelfRegistration)
	require.True(t, upd.MFARequired, "a nil setting is kept")
	got, err = s.TenantByID(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, upd, got)
	_, err = s.UpdateTenantSettings(ctx, core.NewID(), &yes, &yes, later)
	require.Equal(t, core.CodeNotFound, core.CodeOf(err))
}

func testTenancyNodes(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewTenancyStore(db)
	a, b := newTenant(t, s, "tenant-a"), newTenant(t, s, "tenant-b")
	now := time.Now().UTC().Truncate(time.Microsecond)

	// A chain root → n1 → … → n8: the deepest node has 8 ancestors.
	chain := make([]tenancy.Node, 9)
	for i := range chain {
		n := tenancy.Node{ID: core.NewID(), TenantID: a.ID, Name: "level", Kind: "district", CreatedAt: now.Add(time.Duration(i) * time.Second)}
		if i > 0 {
			n.ParentID = &chain[i-1].ID
		}
		require.NoError(t, s.CreateNode(ctx, n))
		chain[i] = n
	}
	anc, err := s.Ancestors(ctx, chain[8].ID)
	require.NoError(t, err)
	require.Len(t, anc, 8)
	for i, got := range anc {
		want := chain[7-i]
		require.Equal(t, tenancy.Ancestor{ID: want.ID, ParentID: want.ParentID, TenantID: a.ID, Depth: i + 1}, got, "nearest first")
	}
	require.Nil(t, anc[7].ParentID, "the root has no parent")
	anc, err = s.Ancestors(ctx, chain[0].ID)
	require.NoError(t, err)
	require.Empty(t, anc, "a root has no ancestors")
	require.NotNil(t, anc)
	_, err = s.Ancestors(ctx, core.NewID())
	require.Equal(t, core.CodeNotFound, core.CodeOf(err))

	got, err := s.NodeByID(ctx, chain[3].ID)
	require.NoError(t, err)
	require.Equal(t, chain[3], got)
	_, err = s.NodeByID(ctx, core.NewID())
	require.Equal(t, core.CodeNotFound, core.CodeOf(err))
	list, err := s.ListNodes(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, chain, list, "oldest first")
	list, err = s.ListNodes(ctx, b.ID)
	require.NoError(t, err)
	require.Empty(t, list)

	tests := []struct {
		name   string
		node   tenancy.Node
		code   string
		fields string
	}{
		{"parent of another tenant", tenancy.Node{TenantID: b.ID, ParentID: &chain[0].ID}, core.CodeValidation, "parentId"},
		{"unknown parent", tenancy.Node{TenantID: a.ID, ParentID: ptr(core.NewID())}, core.CodeValidation, "parentId"},
		{"unknown tenant", tenancy.Node{TenantID: core.NewID()}, core.CodeNotFound, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.node
			n.ID, n.Name, n.Kind, n.CreatedAt = core.NewID(), "x", "facility", now
			err := s.CreateNode(ctx, n)
			require.Equal(t, tc.code, core.CodeOf(err), "%v", err)
			if tc.fields != "" {
				require.Contains(t, core.AsError(err).Fields, tc.fields)
			}
			_, err = s.NodeByID(ctx, n.ID)
			require.Equal(t, core.CodeNotFound, core.CodeOf(err), "nothing was stored")
		})
	}

	// A cycle (impossible through the service) must not make the query spin.
	_, err = db.Bun().ExecContext(ctx, `UPDATE hierarchy_nodes SET parent_id = ? WHERE id = ?`, chain[8].ID, chain[0].ID)
	require.NoError(t, err)
	_, err = s.Ancestors(ctx, chain[4].ID)
	require.Equal(t, core.KindInternal, core.KindOf(err))
}

func ptr(s string) *string { return &s }

func testTenancyMemberships(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewTenancyStore(db)
	dir := persistence.NewDirectoryStore(db)
	a := newTenant(t, s, "tenant-a")
	now := time.Now().UTC().Truncate(time.Microsecond)
	newUser := func(status user.Status) string {
		u := user.User{ID: core.NewID(), TenantID: a.ID, Email: core.NewID() + "@example.org", Status: status, CreatedAt: now, UpdatedAt: now}
		require.NoError(t, dir.CreateUser(ctx, u))
		return u.ID
	}
	u1, u2, suspended := newUser(user.StatusActive), newUser(user.StatusActive), newUser(user.StatusSuspended)

	home, err := s.UserTenantID(ctx, u1)
	require.NoError(t, err)
	require.Equal(t, a.ID, home)
	_, err = s.UserTenantID(ctx, core.NewID())
	require.Equal(t, core.CodeNotFound, core.CodeOf(err))

	_, ok, err := s.Membership(ctx, u1, a.ID, "")
	require.NoError(t, err)
	require.False(t, ok)

	node := core.NewID()
	require.NoError(t, s.UpsertMembership(ctx, core.Membership{UserID: u1, TenantID: a.ID, Roles: []string{"nurse"}}, now))
	require.NoError(t, s.UpsertMembership(ctx, core.Membership{UserID: u1, TenantID: a.ID, NodeID: node}, now))
	require.NoError(t, s.UpsertMembership(ctx, core.Membership{UserID: u1, TenantID: a.ID, Roles: []string{core.RoleTenantAdmin, "doctor"}}, now))
	m, ok, err := s.Membership(ctx, u1, a.ID, "")
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, core.Membership{UserID: u1, TenantID: a.ID, Roles: []string{core.RoleTenantAdmin, "doctor"}}, m, "roles replaced")
	m, ok, err = s.Membership(ctx, u1, a.ID, node)
	require.NoError(t, err)
	require.True(t, ok)
	require.Equal(t, []string{}, m.Roles, "no roles is an empty list")
	ms, err := s.MembershipsOfUser(ctx, u1)
	require.NoError(t, err)
	require.Len(t, ms, 2, "upsert did not add a row")

	err = s.UpsertMembership(ctx, core.Membership{UserID: core.NewID(), TenantID: a.ID}, now)
	require.Equal(t, core.KindNotFound, core.KindOf(err), "unknown user")

	removed, err := s.DeleteMembership(ctx, u1, a.ID, node)
	require.NoError(t, err)
	require.True(t, removed)
	removed, err = s.DeleteMembership(ctx, u1, a.ID, node)
	require.NoError(t, err)
	require.False(t, removed)

	// Only exact SUPER_ADMIN roles of active users count.
	require.NoError(t, s.UpsertMembership(ctx, core.Membership{UserID: u2, TenantID: a.ID, Roles: []string{core.RoleSuperAdmin}}, now))
	require.NoError(t, s.UpsertMembership(ctx, core.Membership{UserID: u2, TenantID: a.ID, NodeID: node, Roles: []string{"SUPERXADMIN"}}, now))
	require.NoError(t, s.UpsertMembership(ctx, core.Membership{UserID: suspended, TenantID: a.ID, Roles: []string{core.RoleSuperAdmin}}, now))
	require.NoError(t, db.InTx(ctx, func(ctx context.Context) error {
		admins, err := s.SuperAdminMemberships(ctx, a.ID)
		require.NoError(t, err)
		require.Equal(t, []core.Membership{{UserID: u2, TenantID: a.ID, Roles: []string{core.RoleSuperAdmin}}}, admins)
		return nil
	}))
	admins, err := s.SuperAdminMemberships(ctx, core.NewID())
	require.NoError(t, err)
	require.Empty(t, admins)
}
