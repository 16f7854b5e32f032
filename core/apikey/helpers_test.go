package apikey_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/apikey"
	"github.com/ghasi-ehealth/identity-service/core/audit"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

var testT0 = time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)

var testHMACKey = []byte("0123456789abcdef0123456789abcdef")

// env is one database with the platform tenant and tenants A and B, and the
// users superAdmin, adminA, adminB and memberA.
type env struct {
	db    *persistence.DB
	store *persistence.APIKeyStore
	dir   *persistence.DirectoryStore
	clock *core.FixedClock
	svc   *apikey.Service

	platform, tenantA, tenantB          string
	superAdmin, adminA, adminB, memberA string
}

func newEnv(t testing.TB, open dbtest.Opener) *env {
	t.Helper()
	db := open(t)
	e := &env{db: db, store: persistence.NewAPIKeyStore(db), dir: persistence.NewDirectoryStore(db), clock: core.NewFixedClock(testT0)}
	e.svc = e.newService()
	e.platform = e.tenant(t, core.PlatformTenantSlug)
	e.tenantA = e.tenant(t, "clinic-a")
	e.tenantB = e.tenant(t, "clinic-b")
	e.superAdmin = e.member(t, e.platform, "root@example.org", core.RoleSuperAdmin)
	e.adminA = e.member(t, e.tenantA, "admin@a.example.org", core.RoleTenantAdmin)
	e.adminB = e.member(t, e.tenantB, "admin@b.example.org", core.RoleTenantAdmin)
	e.memberA = e.member(t, e.tenantA, "nurse@a.example.org", "nurse")
	return e
}

// newService returns another service instance over the same database and
// clock (a second replica).
func (e *env) newService() *apikey.Service {
	return apikey.NewService(e.store, core.NewAuthorizer(e.dir), e.clock, testHMACKey, nil)
}

func (e *env) tenant(t testing.TB, slug string) string {
	t.Helper()
	tn := tenancy.Tenant{ID: core.NewID(), Slug: slug, Name: slug, CreatedAt: testT0, UpdatedAt: testT0}
	require.NoError(t, e.dir.CreateTenant(context.Background(), tn))
	return tn.ID
}

func (e *env) member(t testing.TB, tenantID, email, role string) string {
	t.Helper()
	ctx := context.Background()
	u := user.User{ID: core.NewID(), TenantID: tenantID, Email: email, Status: user.StatusActive, CreatedAt: testT0, UpdatedAt: testT0}
	require.NoError(t, e.dir.CreateUser(ctx, u))
	require.NoError(t, e.dir.AddMembership(ctx, core.Membership{UserID: u.ID, TenantID: tenantID, Roles: []string{role}}))
	return u.ID
}

// as returns a context whose caller is user userID of tenantID.
func as(userID, tenantID string) context.Context {
	return core.WithPrincipal(context.Background(), &core.Principal{Type: core.PrincipalUser, ID: userID,
		TenantID: tenantID, TenantIDs: []string{tenantID}})
}

// create issues a key as adminA-style caller ctx and fails the test on error.
func (e *env) create(t testing.TB, ctx context.Context, in apikey.CreateInput) apikey.Created {
	t.Helper()
	c, err := e.svc.Create(ctx, in)
	require.NoError(t, err)
	return c
}

// events returns the stored events of eventType, oldest first.
func (e *env) events(t testing.TB, eventType string) []persistence.StoredEvent {
	t.Helper()
	got, err := e.db.ListStoredEvents(context.Background(), audit.Query{Type: eventType, AllTenants: true})
	require.NoError(t, err)
	return got
}

// requireCode fails unless err carries code.
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

func mustJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	require.NoError(t, err)
	return string(b)
}

func sqliteOnly(t testing.TB) *persistence.DB { return dbtest.SQLite(t) }

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
