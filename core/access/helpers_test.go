package access_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/access"
	"github.com/ghasi-ehealth/identity-service/core/licensing"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

var testT0 = time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)

// countingDirectory wraps a Directory, counts calls and can fail.
type countingDirectory struct {
	access.Directory
	calls atomic.Int64
	down  atomic.Bool
	// noTenant makes NodeTenantID fail as a directory that cannot tell.
	noTenant atomic.Bool
}

func (d *countingDirectory) fail() error {
	d.calls.Add(1)
	if d.down.Load() {
		return core.Unavailable(context.DeadlineExceeded)
	}
	return nil
}

func (d *countingDirectory) MembershipsOfUser(ctx context.Context, userID string) ([]core.Membership, error) {
	if err := d.fail(); err != nil {
		return nil, err
	}
	return d.Directory.MembershipsOfUser(ctx, userID)
}

func (d *countingDirectory) Ancestors(ctx context.Context, nodeID string) ([]tenancy.Ancestor, error) {
	if err := d.fail(); err != nil {
		return nil, err
	}
	return d.Directory.Ancestors(ctx, nodeID)
}

func (d *countingDirectory) NodeTenantID(ctx context.Context, nodeID string) (string, error) {
	if err := d.fail(); err != nil {
		return "", err
	}
	if d.noTenant.Load() {
		return "", core.Internal(errors.New("no tenant for a root node"))
	}
	return d.Directory.NodeTenantID(ctx, nodeID)
}

// env: platform tenant, tenant A with province → district → facility and a
// second root, tenant B with a root; a SUPER_ADMIN; the access service over
// the real stores and resolver.
type env struct {
	ten    *persistence.TenancyStore
	dir    *persistence.DirectoryStore
	clock  *core.FixedClock
	lic    *licensing.Service
	tsvc   *tenancy.Service
	spans  *tracetest.SpanRecorder
	count  *countingDirectory
	svc    *access.Service
	mu     sync.Mutex
	hooked []string

	platform, tenantA, tenantB          string
	province, district, facility, rootA string
	rootB, superAdmin                   string
}

func newEnv(t testing.TB, open dbtest.Opener, cache func(core.Clock) access.ContextCache) *env {
	t.Helper()
	db := open(t)
	e := &env{ten: persistence.NewTenancyStore(db), dir: persistence.NewDirectoryStore(db), clock: core.NewFixedClock(testT0)}
	authz := core.NewAuthorizer(e.dir)
	e.tsvc = tenancy.NewService(e.ten, authz, e.clock)
	e.lic = licensing.NewService(persistence.NewLicensingStore(db), authz, e.tsvc, e.clock)
	resolver := licensing.NewResolver(persistence.NewLicensingResolverStore(db), e.tsvc, nil, e.clock, nil)
	e.spans = tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(e.spans))
	e.count = &countingDirectory{Directory: access.NewLocalDirectory(e.ten)}
	var c access.ContextCache
	if cache != nil {
		c = cache(e.clock)
	}
	e.svc = access.NewService(e.count, resolver, c, e.clock, tp, nil)
	e.tsvc.OnMembershipChange = func(userID, tenantID string) {
		e.mu.Lock()
		e.hooked = append(e.hooked, userID+"@"+tenantID)
		e.mu.Unlock()
		_ = e.svc.InvalidateUser(context.Background(), userID)
	}
	e.platform = e.tenant(t, core.PlatformTenantSlug)
	e.tenantA = e.tenant(t, "clinic-a")
	e.tenantB = e.tenant(t, "clinic-b")
	e.province = e.node(t, e.tenantA, "")
	e.district = e.node(t, e.tenantA, e.province)
	e.facility = e.node(t, e.tenantA, e.district)
	e.rootA = e.node(t, e.tenantA, "")
	e.rootB = e.node(t, e.tenantB, "")
	e.superAdmin = e.user(t, e.platform)
	e.member(t, e.superAdmin, e.platform, "", core.RoleSuperAdmin)
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

func (e *env) user(t testing.TB, tenantID string) string {
	t.Helper()
	u := user.User{ID: core.NewID(), TenantID: tenantID, Email: core.NewID() + "@example.org", Status: user.StatusActive,
		CreatedAt: testT0, UpdatedAt: testT0}
	require.NoError(t, e.dir.CreateUser(context.Background(), u))
	return u.ID
}

func (e *env) member(t testing.TB, userID, tenantID, nodeID string, roles ...string) {
	t.Helper()
	require.NoError(t, e.dir.AddMembership(context.Background(),
		core.Membership{UserID: userID, TenantID: tenantID, NodeID: nodeID, Roles: roles}))
}

func (e *env) root() context.Context { return as(e.superAdmin, e.platform) }

func as(userID, tenantID string) context.Context {
	return core.WithPrincipal(context.Background(), &core.Principal{Type: core.PrincipalUser, ID: userID,
		TenantID: tenantID, TenantIDs: []string{tenantID}})
}

// lastHit returns cache.hit of the last access-context span.
func (e *env) lastHit(t testing.TB) bool {
	t.Helper()
	ended := e.spans.Ended()
	for i := len(ended) - 1; i >= 0; i-- {
		if ended[i].Name() != access.SpanAccessContext {
			continue
		}
		for _, a := range ended[i].Attributes() {
			if a.Key == "cache.hit" {
				return a.Value.AsBool()
			}
		}
		t.Fatal("span without cache.hit")
	}
	t.Fatal("no access-context span")
	return false
}

func requireCode(t testing.TB, code string, err error) {
	t.Helper()
	require.Error(t, err)
	require.Equal(t, code, core.CodeOf(err), "%v", err)
}

func codes(mods []licensing.EffectiveModule) []string {
	out := make([]string, len(mods))
	for i, m := range mods {
		out[i] = m.Code
	}
	return out
}

func forDialects(t *testing.T, run func(t *testing.T, e *env)) {
	for name, open := range dbtest.Dialects() {
		t.Run(name, func(t *testing.T) { run(t, newEnv(t, open, nil)) })
	}
}
