package licensing

import (
	"cmp"
	"context"
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/telemetry"
)

// EffectiveTTL is how long an effective set stays cached (IDENT-US-015).
// An entry never outlives the next effective-window boundary of the
// assignments it was computed from, so a trial that ends or an assignment
// that starts is seen on time.
const EffectiveTTL = 5 * time.Minute

// SpanEffective is the span of one effective-set resolution; it carries the
// attribute cache.hit (bool).
const SpanEffective = "identity.licensing.effective"

// ResolverStore is what the resolver reads: a tenant's assignments at a set
// of nodes and the module catalogue. Implemented by persistence.
type ResolverStore interface {
	// AssignmentsAt returns every assignment of tenantID whose node is one of
	// nodeIDs, in any status. Errors: IDENT_UNAVAILABLE.
	AssignmentsAt(ctx context.Context, tenantID string, nodeIDs []string) ([]Assignment, error)
	// Modules returns the whole catalogue, terminated modules included.
	Modules(ctx context.Context) ([]Module, error)
}

// Resolver computes effective license sets. Effective and CheckModuleAccess
// perform no authorization (internal callers: access context, dependency
// checks); transports use AuthorizedResolver.
type Resolver struct {
	store     ResolverStore
	hierarchy tenancy.Hierarchy
	cache     EffectiveCache
	clock     core.Clock
	tracer    trace.Tracer
}

// NewResolver returns a resolver. cache nil means no caching; clock nil the
// system clock; tp nil no tracing.
func NewResolver(store ResolverStore, hierarchy tenancy.Hierarchy, cache EffectiveCache, clock core.Clock, tp trace.TracerProvider) *Resolver {
	if clock == nil {
		clock = core.SystemClock{}
	}
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return &Resolver{store: store, hierarchy: hierarchy, cache: cache, clock: clock, tracer: tp.Tracer(telemetry.ScopeName)}
}

// Effective returns the effective set at nodeID of tenantID, sorted by
// module code. providerID only partitions the cache. Errors:
// IDENT_VALIDATION for a missing tenant or node id; IDENT_NOT_FOUND for an
// unknown node or one whose ancestors belong to another tenant;
// IDENT_UNAVAILABLE.
//
// A root node's own tenant cannot be checked through the hierarchy port
// (it returns ancestors only); the assignments are always read for
// tenantID, so such a query still sees nothing of another tenant but the
// always-on modules.
func (r *Resolver) Effective(ctx context.Context, tenantID, nodeID, providerID string) (mods []EffectiveModule, err error) {
	ctx, span := r.tracer.Start(ctx, SpanEffective, trace.WithAttributes(
		attribute.String("tenant.id", tenantID), attribute.String("node.id", nodeID)))
	hit := false
	defer func() {
		span.SetAttributes(attribute.Bool("cache.hit", hit))
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, core.AsError(err).Code)
		}
		span.End()
	}()
	if err := resolverValidIDs(tenantID, nodeID); err != nil {
		return nil, err
	}
	key := CacheKey{TenantID: tenantID, ProviderID: providerID, NodeID: nodeID}
	var stamp string
	if r.cache != nil {
		cached, st, ok, cerr := r.cache.Get(ctx, key)
		switch {
		case cerr != nil:
			// The cache is an optimisation: resolve from the store.
			span.AddEvent("cache.error", trace.WithAttributes(attribute.String("error", cerr.Error())))
		case ok:
			hit = true
			return cached, nil
		default:
			stamp = st
		}
	}
	ancestors, err := r.hierarchy.Ancestors(ctx, nodeID)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(ancestors)+1)
	ids = append(ids, nodeID)
	for _, a := range ancestors {
		if a.TenantID != tenantID {
			return nil, core.NotFound("node")
		}
		ids = append(ids, a.ID)
	}
	assignments, err := r.store.AssignmentsAt(ctx, tenantID, ids)
	if err != nil {
		return nil, err
	}
	modules, err := r.store.Modules(ctx)
	if err != nil {
		return nil, err
	}
	now := r.clock.Now()
	mods = Resolve(now, nodeID, ids[1:], assignments, modules)
	if r.cache != nil && stamp != "" {
		ttl := EffectiveTTL
		if next, ok := resolveNextBoundary(now, assignments); ok {
			ttl = min(ttl, next.Sub(now))
		}
		if ttl > 0 {
			if serr := r.cache.Set(ctx, key, stamp, mods, ttl); serr != nil {
				span.AddEvent("cache.error", trace.WithAttributes(attribute.String("error", serr.Error())))
			}
		}
	}
	return mods, nil
}

// CheckModuleAccess tells whether moduleCode is usable at nodeID. A module
// that no assignment reaches is granted false with status "".
func (r *Resolver) CheckModuleAccess(ctx context.Context, tenantID, nodeID, moduleCode string) (bool, Status, error) {
	mods, err := r.Effective(ctx, tenantID, nodeID, "")
	if err != nil {
		return false, "", err
	}
	if i, ok := slices.BinarySearchFunc(mods, moduleCode, func(m EffectiveModule, c string) int {
		return cmp.Compare(m.Code, c)
	}); ok {
		return mods[i].Granted, mods[i].Status, nil
	}
	return false, "", nil
}

// InvalidateTenant drops the cached sets of tenantID (assignment events).
func (r *Resolver) InvalidateTenant(ctx context.Context, tenantID string) error {
	if r.cache == nil {
		return nil
	}
	return r.cache.InvalidateTenant(ctx, tenantID)
}

// InvalidateAll drops every cached set (module events).
func (r *Resolver) InvalidateAll(ctx context.Context) error {
	if r.cache == nil {
		return nil
	}
	return r.cache.InvalidateAll(ctx)
}

func resolverValidIDs(tenantID, nodeID string) error {
	switch {
	case tenantID == "":
		return core.InvalidField("tenantId", "required")
	case nodeID == "":
		return core.InvalidField("nodeId", "required")
	case !core.ValidID(tenantID):
		return core.NotFound("tenant")
	case !core.ValidID(nodeID):
		return core.NotFound("node")
	}
	return nil
}

// Resolve computes the effective set at node, whose ancestors are given
// nearest first. Rules:
//
//   - An assignment applies at node when it sits on node (any scope) or on
//     an ancestor with scope inherit_down; assignments on other nodes are
//     ignored.
//   - Terminated assignments are ignored, so an ancestor's inherit_down
//     assignment applies again below a terminated one. A suspended one
//     still wins and denies.
//   - Per module the deepest applicable assignment wins with its status: a
//     deeper active assignment overrides a suspended ancestor and a deeper
//     suspended one overrides an active ancestor. At equal depth the most
//     recently created wins (then the greater id), so the answer is
//     deterministic.
//   - granted = status active or trial, EffectiveFrom ≤ now < EffectiveTo
//     (nil EffectiveTo is open-ended) and the module not terminated.
//   - Always-on modules (Module.IsAlwaysOn or AlwaysOnModules) are always
//     granted. Without an applicable assignment they are reported as
//     active, inherit_down, with empty source node and assignment id; with
//     one, its status, scope, node and id are reported and granted stays
//     true.
//
// Only modules with an applicable assignment or always-on appear; the
// result is sorted by code.
func Resolve(now time.Time, node string, ancestors []string, assignments []Assignment, modules []Module) []EffectiveModule {
	depth := make(map[string]int, len(ancestors)+1)
	depth[node] = 0
	for i, a := range ancestors {
		if _, seen := depth[a]; !seen {
			depth[a] = i + 1
		}
	}
	type winner struct {
		a     *Assignment
		depth int
	}
	best := map[string]winner{}
	for i := range assignments {
		a := &assignments[i]
		if a.Status == StatusTerminated {
			continue
		}
		d, ok := depth[a.NodeID]
		if !ok || (d > 0 && a.Scope != ScopeInheritDown) {
			continue
		}
		w, ok := best[a.ModuleCode]
		if !ok || d < w.depth || (d == w.depth && resolveNewer(a, w.a)) {
			best[a.ModuleCode] = winner{a: a, depth: d}
		}
	}
	catalogue := make(map[string]*Module, len(modules))
	for i := range modules {
		catalogue[modules[i].Code] = &modules[i]
	}
	alwaysOn := map[string]bool{}
	for _, c := range AlwaysOnModules {
		alwaysOn[c] = true
	}
	for _, m := range modules {
		if m.IsAlwaysOn {
			alwaysOn[m.Code] = true
		}
	}
	out := make([]EffectiveModule, 0, len(best)+len(alwaysOn))
	for code, w := range best {
		a := w.a
		granted := (a.Status == StatusActive || a.Status == StatusTrial) && resolveInWindow(now, a)
		if m := catalogue[code]; m != nil && m.TerminatedAt != nil {
			granted = false
		}
		if alwaysOn[code] {
			granted = true
		}
		out = append(out, EffectiveModule{Code: code, Status: a.Status, Granted: granted, Scope: a.Scope,
			SourceNodeID: a.NodeID, AssignmentID: a.ID})
	}
	for code := range alwaysOn {
		if _, ok := best[code]; !ok {
			out = append(out, EffectiveModule{Code: code, Status: StatusActive, Granted: true, Scope: ScopeInheritDown})
		}
	}
	slices.SortFunc(out, func(a, b EffectiveModule) int { return cmp.Compare(a.Code, b.Code) })
	return out
}

// resolveNewer reports whether a beats b at equal depth.
func resolveNewer(a, b *Assignment) bool {
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c > 0
	}
	return a.ID > b.ID
}

func resolveInWindow(now time.Time, a *Assignment) bool {
	return !now.Before(a.EffectiveFrom) && (a.EffectiveTo == nil || now.Before(*a.EffectiveTo))
}

// resolveNextBoundary returns the earliest EffectiveFrom or EffectiveTo after now
// among assignments: the moment a resolution may change by itself.
func resolveNextBoundary(now time.Time, assignments []Assignment) (time.Time, bool) {
	var next time.Time
	found := false
	consider := func(t time.Time) {
		if t.After(now) && (!found || t.Before(next)) {
			next, found = t, true
		}
	}
	for i := range assignments {
		consider(assignments[i].EffectiveFrom)
		if assignments[i].EffectiveTo != nil {
			consider(*assignments[i].EffectiveTo)
		}
	}
	return next, found
}
