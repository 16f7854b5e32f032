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

func testDirectory(t *testing.T, open dbtest.Opener) {
	ctx := context.Background()
	store := persistence.NewDirectoryStore(open(t))
	now := time.Now().UTC().Truncate(time.Microsecond)

	tenant := tenancy.Tenant{ID: core.NewID(), Slug: "clinic-a", Name: "Clinic A", MFARequired: true, CreatedAt: now, UpdatedAt: now}
	require.NoError(t, store.CreateTenant(ctx, tenant))
	err := store.CreateTenant(ctx, tenancy.Tenant{ID: core.NewID(), Slug: "clinic-a", Name: "dup", CreatedAt: now, UpdatedAt: now})
	require.Equal(t, core.KindConflict, core.KindOf(err), "duplicate slug")

	got, err := store.TenantBySlug(ctx, "clinic-a")
	require.NoError(t, err)
	require.Equal(t, tenant.ID, got.ID)
	require.True(t, got.MFARequired)
	require.WithinDuration(t, now, got.CreatedAt, time.Millisecond)
	_, err = store.TenantBySlug(ctx, "nope")
	require.Equal(t, core.CodeNotFound, core.CodeOf(err))

	u := user.User{ID: core.NewID(), TenantID: tenant.ID, Email: "a@example.org", Status: user.StatusActive, CreatedAt: now, UpdatedAt: now}
	require.NoError(t, store.CreateUser(ctx, u))
	dup := u
	dup.ID = core.NewID()
	require.Equal(t, core.CodeEmailDuplicate, core.CodeOf(store.CreateUser(ctx, dup)))

	// Erased users keep an empty email; several may exist in one tenant.
	for range 2 {
		erased := user.User{ID: core.NewID(), TenantID: tenant.ID, Status: user.StatusDeactivated, CreatedAt: now, UpdatedAt: now}
		require.NoError(t, store.CreateUser(ctx, erased))
	}

	exists, err := store.SuperAdminExists(ctx)
	require.NoError(t, err)
	require.False(t, exists)
	// A look-alike role must not count ("_" is a LIKE wildcard).
	lookAlike := user.User{ID: core.NewID(), TenantID: tenant.ID, Email: "b@example.org", Status: user.StatusActive, CreatedAt: now, UpdatedAt: now}
	require.NoError(t, store.CreateUser(ctx, lookAlike))
	require.NoError(t, store.AddMembership(ctx, core.Membership{UserID: lookAlike.ID, TenantID: tenant.ID, Roles: []string{"SUPERXADMIN"}}))
	exists, err = store.SuperAdminExists(ctx)
	require.NoError(t, err)
	require.False(t, exists)
	require.NoError(t, store.AddMembership(ctx, core.Membership{UserID: u.ID, TenantID: tenant.ID, Roles: []string{core.RoleSuperAdmin, "nurse"}}))
	require.Equal(t, core.KindConflict, core.KindOf(store.AddMembership(ctx, core.Membership{UserID: u.ID, TenantID: tenant.ID, Roles: []string{"x"}})))
	exists, err = store.SuperAdminExists(ctx)
	require.NoError(t, err)
	require.True(t, exists)

	ms, err := store.MembershipsOfUser(ctx, u.ID)
	require.NoError(t, err)
	require.Equal(t, []core.Membership{{UserID: u.ID, TenantID: tenant.ID, Roles: []string{core.RoleSuperAdmin, "nurse"}}}, ms)
	ms, err = store.MembershipsOfUser(ctx, "not-a-uuid")
	require.NoError(t, err)
	require.Empty(t, ms)

	// A membership for a user that does not exist violates the foreign key.
	err = store.AddMembership(ctx, core.Membership{UserID: core.NewID(), TenantID: tenant.ID, Roles: []string{"x"}})
	require.Equal(t, core.KindNotFound, core.KindOf(err))
}
