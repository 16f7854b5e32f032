package tenancy_test

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

// actor names a caller of the authorization tables.
type actor string

const (
	anon    actor = "no principal"
	super   actor = "SUPER_ADMIN"
	adminA  actor = "TENANT_ADMIN of A"
	adminB  actor = "TENANT_ADMIN of B"
	memberA actor = "plain member of A"
	memberB actor = "plain member of B"
)

var actors = []actor{super, adminA, adminB, memberA, memberB, anon}

// fixture is a migrated database with the platform tenant, tenants A and B,
// and one user per actor, built through persistence.DirectoryStore.
type fixture struct {
	db    *persistence.DB
	dir   *persistence.DirectoryStore
	store *persistence.TenancyStore
	svc   *tenancy.Service
	clock *core.FixedClock

	platform, a, b tenancy.Tenant
	users          map[actor]string // user id per actor
}

// eachDialect runs fn against a fresh fixture on every backend.
func eachDialect(t *testing.T, fn func(t *testing.T, f *fixture)) {
	for name, open := range dbtest.Dialects() {
		t.Run(name, func(t *testing.T) { fn(t, newFixture(t, open(t))) })
	}
}

func newFixture(t *testing.T, db *persistence.DB) *fixture {
	t.Helper()
	dir := persistence.NewDirectoryStore(db)
	store := persistence.NewTenancyStore(db)
	clock := core.NewFixedClock(time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC))
	f := &fixture{db: db, dir: dir, store: store, clock: clock, users: map[actor]string{},
		svc: tenancy.NewService(store, core.NewAuthorizer(dir), clock)}
	f.platform = f.tenant(t, core.PlatformTenantSlug)
	f.a = f.tenant(t, "tenant-a")
	f.b = f.tenant(t, "tenant-b")
	f.users[super] = f.user(t, f.platform.ID, core.RoleSuperAdmin)
	f.users[adminA] = f.user(t, f.a.ID, core.RoleTenantAdmin)
	f.users[adminB] = f.user(t, f.b.ID, core.RoleTenantAdmin)
	f.users[memberA] = f.user(t, f.a.ID, "nurse")
	f.users[memberB] = f.user(t, f.b.ID, "nurse")
	return f
}

func (f *fixture) tenant(t *testing.T, slug string) tenancy.Tenant {
	t.Helper()
	now := f.clock.Now()
	tn := tenancy.Tenant{ID: core.NewID(), Slug: slug, Name: "Tenant " + slug, CreatedAt: now, UpdatedAt: now}
	require.NoError(t, f.dir.CreateTenant(context.Background(), tn))
	return tn
}

// user creates an active user of tenantID with a tenant-wide membership
// holding roles (none when roles is empty).
func (f *fixture) user(t *testing.T, tenantID string, roles ...string) string {
	t.Helper()
	return f.userWithStatus(t, tenantID, user.StatusActive, roles...)
}

func (f *fixture) userWithStatus(t *testing.T, tenantID string, status user.Status, roles ...string) string {
	t.Helper()
	ctx := context.Background()
	now := f.clock.Now()
	u := user.User{ID: core.NewID(), TenantID: tenantID, Email: core.NewID() + "@example.org", Status: status, CreatedAt: now, UpdatedAt: now}
	require.NoError(t, f.dir.CreateUser(ctx, u))
	if len(roles) > 0 {
		require.NoError(t, f.dir.AddMembership(ctx, core.Membership{UserID: u.ID, TenantID: tenantID, Roles: roles}))
	}
	return u.ID
}

// as returns a context carrying the principal of actor a (none for anon).
func (f *fixture) as(a actor) context.Context {
	if a == anon {
		return context.Background()
	}
	return asUser(f.users[a])
}

func asUser(userID string) context.Context {
	return core.WithPrincipal(context.Background(), &core.Principal{Type: core.PrincipalUser, ID: userID})
}

// counts returns the row counts a refused call must leave untouched.
func (f *fixture) counts(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, table := range []string{"tenants", "hierarchy_nodes", "memberships", "events"} {
		var n int
		require.NoError(t, f.db.Bun().QueryRowContext(context.Background(), "SELECT count(*) FROM "+table).Scan(&n))
		out[table] = n
	}
	return out
}

// roles returns the roles of (userID, tenantID, nodeID), nil when absent.
func (f *fixture) roles(t *testing.T, userID, tenantID, nodeID string) []string {
	t.Helper()
	m, ok, err := f.store.Membership(context.Background(), userID, tenantID, nodeID)
	require.NoError(t, err)
	if !ok {
		return nil
	}
	return m.Roles
}

func ptr[T any](v T) *T { return &v }

// requireCode fails unless err carries code ("" means no error).
func requireCode(t *testing.T, code string, err error) {
	t.Helper()
	if code == "" {
		require.NoError(t, err)
		return
	}
	require.Error(t, err)
	require.Equal(t, code, core.CodeOf(err), "%v", err)
}
