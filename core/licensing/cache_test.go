package licensing_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/licensing"
	"github.com/ghasi-ehealth/identity-service/core/scope"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
)

const (
	resTenant   = "11111111-1111-4111-8111-111111111111"
	resOther    = "22222222-2222-4222-8222-222222222222"
	resPlatform = "33333333-3333-4333-8333-333333333333"
	resLeaf     = "aaaaaaaa-0000-4000-8000-000000000001"
	resParent   = "aaaaaaaa-0000-4000-8000-000000000002"
)

type resStore struct {
	as    []licensing.Assignment
	calls int
}

func (s *resStore) AssignmentsAt(_ context.Context, tenantID string, nodeIDs []string) ([]licensing.Assignment, error) {
	s.calls++
	var out []licensing.Assignment
	for _, a := range s.as {
		for _, n := range nodeIDs {
			if a.TenantID == tenantID && a.NodeID == n {
				out = append(out, a)
			}
		}
	}
	return out, nil
}

func (s *resStore) Modules(context.Context) ([]licensing.Module, error) { return resCatalogue, nil }

func (s *resStore) TenantIDBySlug(_ context.Context, slug string) (string, error) {
	if slug == core.PlatformTenantSlug {
		return resPlatform, nil
	}
	return "", core.NotFound("tenant")
}

type resHierarchy struct{ calls int }

func (h *resHierarchy) Ancestors(_ context.Context, nodeID string) ([]tenancy.Ancestor, error) {
	h.calls++
	switch nodeID {
	case resLeaf:
		return []tenancy.Ancestor{{ID: resParent, TenantID: resTenant, Depth: 1}}, nil
	case resParent:
		return []tenancy.Ancestor{}, nil
	}
	return nil, core.NotFound("node")
}

type resFixture struct {
	store *resStore
	hier  *resHierarchy
	clock *core.FixedClock
	spans *tracetest.SpanRecorder
	r     *licensing.Resolver
}

func newResFixture(t *testing.T) *resFixture {
	t.Helper()
	f := &resFixture{store: &resStore{as: []licensing.Assignment{
		{ID: "p", TenantID: resTenant, NodeID: resParent, ModuleCode: "lab", Scope: licensing.ScopeInheritDown,
			Status: licensing.StatusActive, EffectiveFrom: resNow.Add(-time.Hour)},
		{ID: "t", TenantID: resTenant, NodeID: resLeaf, ModuleCode: "pharmacy", Scope: licensing.ScopeExact,
			Status: licensing.StatusTrial, EffectiveFrom: resNow.Add(-time.Hour), EffectiveTo: resPtr(resNow.Add(time.Minute))},
	}}, hier: &resHierarchy{}, clock: core.NewFixedClock(resNow), spans: tracetest.NewSpanRecorder()}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(f.spans))
	f.r = licensing.NewResolver(f.store, f.hier, licensing.NewLocalEffectiveCache(f.clock), f.clock, tp)
	return f
}

func (f *resFixture) lastCacheHit(t *testing.T) bool {
	t.Helper()
	ended := f.spans.Ended()
	require.NotEmpty(t, ended)
	s := ended[len(ended)-1]
	require.Equal(t, licensing.SpanEffective, s.Name())
	for _, kv := range s.Attributes() {
		if kv.Key == "cache.hit" {
			return kv.Value.AsBool()
		}
	}
	t.Fatal("no cache.hit attribute")
	return false
}

func TestResolverEffectiveCaching(t *testing.T) {
	ctx := context.Background()
	f := newResFixture(t)
	mods, err := f.r.Effective(ctx, resTenant, resLeaf, "prov")
	require.NoError(t, err)
	require.False(t, f.lastCacheHit(t))
	lab, _ := resFind(mods, "lab")
	require.Equal(t, licensing.EffectiveModule{Code: "lab", Status: licensing.StatusActive, Granted: true,
		Scope: licensing.ScopeInheritDown, SourceNodeID: resParent, AssignmentID: "p"}, lab)

	again, err := f.r.Effective(ctx, resTenant, resLeaf, "prov")
	require.NoError(t, err)
	require.Equal(t, mods, again)
	require.True(t, f.lastCacheHit(t))
	require.Equal(t, 1, f.hier.calls, "a warm hit does not walk the ancestors")
	require.Equal(t, 1, f.store.calls)

	// Another provider is another entry.
	_, err = f.r.Effective(ctx, resTenant, resLeaf, "other")
	require.NoError(t, err)
	require.False(t, f.lastCacheHit(t))

	// The trial ends in one minute: the entry does not outlive it.
	f.clock.Advance(time.Minute)
	granted, status, err := f.r.CheckModuleAccess(ctx, resTenant, resLeaf, "pharmacy")
	require.NoError(t, err)
	require.False(t, granted)
	require.Equal(t, licensing.StatusTrial, status)

	// Invalidation by tenant.
	_, err = f.r.Effective(ctx, resTenant, resLeaf, "prov")
	require.NoError(t, err)
	require.False(t, f.lastCacheHit(t), "expired with the trial")
	_, err = f.r.Effective(ctx, resTenant, resLeaf, "prov")
	require.NoError(t, err)
	require.True(t, f.lastCacheHit(t))
	require.NoError(t, f.r.InvalidateTenant(ctx, resTenant))
	_, err = f.r.Effective(ctx, resTenant, resLeaf, "prov")
	require.NoError(t, err)
	require.False(t, f.lastCacheHit(t))
	require.NoError(t, f.r.InvalidateAll(ctx))
	_, err = f.r.Effective(ctx, resTenant, resLeaf, "prov")
	require.NoError(t, err)
	require.False(t, f.lastCacheHit(t))

	granted, status, err = f.r.CheckModuleAccess(ctx, resTenant, resLeaf, "unknown")
	require.NoError(t, err)
	require.False(t, granted)
	require.Equal(t, licensing.Status(""), status)
}

func TestResolverEffectiveErrors(t *testing.T) {
	ctx := context.Background()
	f := newResFixture(t)
	_, err := f.r.Effective(ctx, resOther, resLeaf, "")
	require.Equal(t, core.CodeNotFound, core.AsError(err).Code, "node of another tenant")
	_, err = f.r.Effective(ctx, resTenant, "aaaaaaaa-0000-4000-8000-00000000ffff", "")
	require.Equal(t, core.CodeNotFound, core.AsError(err).Code)
	_, err = f.r.Effective(ctx, resTenant, "", "")
	require.Equal(t, core.CodeValidation, core.AsError(err).Code)
	_, err = f.r.Effective(ctx, resTenant, "not-a-uuid", "")
	require.Equal(t, core.CodeNotFound, core.AsError(err).Code)
}

func TestLocalEffectiveCache(t *testing.T) {
	ctx := context.Background()
	clock := core.NewFixedClock(resNow)
	c := licensing.NewLocalEffectiveCache(clock)
	key := licensing.CacheKey{TenantID: resTenant, ProviderID: "p", NodeID: resLeaf}
	val := []licensing.EffectiveModule{{Code: "lab", Granted: true}}

	_, stamp, hit, err := c.Get(ctx, key)
	require.NoError(t, err)
	require.False(t, hit)
	require.NoError(t, c.Set(ctx, key, stamp, val, time.Minute))
	got, _, hit, err := c.Get(ctx, key)
	require.NoError(t, err)
	require.True(t, hit)
	require.Equal(t, val, got)
	got[0].Code = "mutated"
	got, _, _, _ = c.Get(ctx, key)
	require.Equal(t, "lab", got[0].Code, "callers get copies")

	clock.Advance(time.Minute)
	_, stamp, hit, _ = c.Get(ctx, key)
	require.False(t, hit, "expired")

	// A set computed before an invalidation is never served.
	require.NoError(t, c.InvalidateTenant(ctx, resTenant))
	require.NoError(t, c.Set(ctx, key, stamp, val, time.Minute))
	_, _, hit, _ = c.Get(ctx, key)
	require.False(t, hit)

	_, stamp, _, _ = c.Get(ctx, key)
	require.NoError(t, c.Set(ctx, key, stamp, val, time.Minute))
	other := licensing.CacheKey{TenantID: resOther, NodeID: resLeaf}
	_, ostamp, _, _ := c.Get(ctx, other)
	require.NoError(t, c.Set(ctx, other, ostamp, val, time.Minute))
	require.NoError(t, c.InvalidateTenant(ctx, resOther))
	_, _, hit, _ = c.Get(ctx, key)
	require.True(t, hit, "other tenants keep their entries")
	require.NoError(t, c.InvalidateAll(ctx))
	_, _, hit, _ = c.Get(ctx, key)
	require.False(t, hit)
}

func TestAuthorizedResolver(t *testing.T) {
	f := newResFixture(t)
	a := licensing.NewAuthorizedResolver(f.r, f.store)
	sa := func(tenant string, scopes ...string) *core.Principal {
		return &core.Principal{Type: core.PrincipalServiceAccount, ID: "sa", TenantID: tenant, Scopes: scopes}
	}
	cases := []struct {
		name   string
		p      *core.Principal
		tenant string
		code   string
	}{
		{"no credential", nil, resTenant, core.CodeUnauthenticated},
		{"user with the scope", &core.Principal{Type: core.PrincipalUser, TenantID: resTenant, Scopes: []string{scope.LicensingRead}}, resTenant, core.CodeForbidden},
		{"service account without the scope", sa(resTenant, scope.UsersRead), resTenant, core.CodeForbidden},
		{"service account, own tenant", sa(resTenant, scope.LicensingRead), resTenant, ""},
		{"service account, tenant defaulted", sa(resTenant, scope.LicensingRead), "", ""},
		{"service account, other tenant", sa(resOther, scope.LicensingRead), resTenant, core.CodeForbidden},
		{"platform service account, any tenant", sa(resPlatform, scope.LicensingRead), resTenant, ""},
		{"api key, own tenant", &core.Principal{Type: core.PrincipalAPIKey, TenantID: resTenant, Scopes: []string{scope.LicensingRead}}, resTenant, ""},
		{"api key, other tenant", &core.Principal{Type: core.PrincipalAPIKey, TenantID: resOther, Scopes: []string{scope.LicensingRead}}, resTenant, core.CodeForbidden},
		{"restricted", &core.Principal{Type: core.PrincipalAPIKey, TenantID: resTenant, Scopes: []string{scope.LicensingRead}, Restricted: true}, resTenant, core.CodeForbidden},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			if c.p != nil {
				ctx = core.WithPrincipal(ctx, c.p)
			}
			mods, err := a.Effective(ctx, c.tenant, resLeaf, "")
			_, _, cerr := a.CheckModuleAccess(ctx, c.tenant, resLeaf, "lab")
			if c.code == "" {
				require.NoError(t, err)
				require.NoError(t, cerr)
				_, ok := resFind(mods, "lab")
				require.True(t, ok)
				return
			}
			require.Equal(t, c.code, core.AsError(err).Code)
			require.Equal(t, c.code, core.AsError(cerr).Code)
		})
	}
	ctx := core.WithAuthError(context.Background(), core.Unauthenticated(nil))
	_, err := a.Effective(ctx, resTenant, resLeaf, "")
	require.Equal(t, core.CodeUnauthenticated, core.AsError(err).Code)
}
