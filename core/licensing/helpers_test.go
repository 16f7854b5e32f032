package licensing_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/licensing"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

var testT0 = time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)

// env is one database with the platform tenant, tenants A and B, the
// hierarchy province → district → facility in A, a root in B, and users
// superAdmin, adminA, adminB.
type env struct {
	db    *persistence.DB
	ten   *persistence.TenancyStore
	dir   *persistence.DirectoryStore
	clock *core.FixedClock
	svc   *licensing.Service

	platform, tenantA, tenantB   string
	province, district, facility string
	rootB                        string
	superAdmin, adminA, adminB   string
	mu                           sync.Mutex
	changed                      []string
}

func newEnv(t testing.TB, open dbtest.Opener) *env {
	t.Helper()
	db := open(t)
	e := &env{db: db, ten: persistence.NewTenancyStore(db), dir: persistence.NewDirectoryStore(db), clock: core.NewFixedClock(testT0)}
	authz := core.NewAuthorizer(e.dir)
	e.svc = licensing.NewService(persistence.NewLicensingStore(db), authz, tenancy.NewService(e.ten, authz, e.clock), e.clock)
	e.svc.OnChange = func(tenantID string) {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.changed = append(e.changed, tenantID)
	}
	e.platform = e.tenant(t, core.PlatformTenantSlug)
	e.tenantA = e.tenant(t, "clinic-a")
	e.tenantB = e.tenant(t, "clinic-b")
	e.province = e.node(t, e.tenantA, "")
	e.district = e.node(t, e.tenantA, e.province)
	e.facility = e.node(t, e.tenantA, e.district)
	e.rootB = e.node(t, e.tenantB, "")
	e.superAdmin = e.member(t, e.platform, "root@example.org", core.RoleSuperAdmin)
	e.adminA = e.member(t, e.tenantA, "admin@a.example.org", core.RoleTenantAdmin)
	e.adminB = e.member(t, e.tenantB, "admin@b.example.org", core.RoleTenantAdmin)
	return e
}

func (e *env) tenant(t testing.TB, slug string) string {
	t.Helper()
	tn := tenancy.Tenant{ID: core.NewID(), Slug: slug, Name: slug, CreatedAt: testT0, UpdatedAt: testT0}
	require.NoError(t, e.ten.CreateTenant(context.Background(), tn))
	return tn.ID
}

func (e *env) node(t testing.TB, tenantID, parent string) string {
	t.Helper()
	n := tenancy.Node{ID: core.NewID(), TenantID: tenantID, Name: "n", Kind: "facility", CreatedAt: testT0}
	if parent != "" {
		n.ParentID = &parent
	}
	require.NoError(t, e.ten.CreateNode(context.Background(), n))
	return n.ID
}

func (e *env) member(t testing.TB, tenantID, email, role string) string {
	t.Helper()
	ctx := context.Background()
	u := user.User{ID: core.NewID(), TenantID: tenantID, Email: email, Status: user.StatusActive, CreatedAt: testT0, UpdatedAt: testT0}
	require.NoError(t, e.dir.CreateUser(ctx, u))
	require.NoError(t, e.dir.AddMembership(ctx, core.Membership{UserID: u.ID, TenantID: tenantID, Roles: []string{role}}))
	return u.ID
}

func as(userID, tenantID string) context.Context {
	return core.WithPrincipal(context.Background(), &core.Principal{Type: core.PrincipalUser, ID: userID,
		TenantID: tenantID, TenantIDs: []string{tenantID}})
}

func service(tenantID string, scopes ...string) context.Context {
	return core.WithPrincipal(context.Background(), &core.Principal{Type: core.PrincipalServiceAccount, ID: core.NewID(),
		TenantID: tenantID, TenantIDs: []string{tenantID}, Scopes: scopes})
}

func (e *env) root() context.Context { return as(e.superAdmin, e.platform) }

func (e *env) module(t testing.TB, code string, deps ...string) licensing.Module {
	t.Helper()
	m, err := e.svc.CreateModule(e.root(), licensing.CreateModuleInput{Code: code, Name: code, DependsOn: deps})
	require.NoError(t, err)
	return m
}

func (e *env) assign(t testing.TB, node, code string, scope licensing.Scope) licensing.Assignment {
	t.Helper()
	a, err := e.svc.CreateAssignment(e.root(), licensing.CreateAssignmentInput{TenantID: e.tenantA, NodeID: node,
		ModuleCode: code, Scope: scope, Status: licensing.StatusActive})
	require.NoError(t, err)
	return a
}

func requireCode(t testing.TB, code string, err error) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, code, core.CodeOf(err), "%v", err)
}

func forDialects(t *testing.T, run func(t *testing.T, e *env)) {
	for name, open := range dbtest.Dialects() {
		t.Run(name, func(t *testing.T) { run(t, newEnv(t, open)) })
	}
}
