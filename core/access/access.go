// Package access builds a user's access context at a hierarchy node
// (IDENT-US-012, CONTRACT.md §4 GET /me/access-context, §5 accessContext):
// the roles the user holds there, all of the user's memberships and the
// modules licensed there. Results are cached per (user, node) for
// ContextTTL and invalidated by membership, role and licensing changes.
package access

import (
	"context"
	"slices"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/licensing"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/telemetry"
)

const (
	// ContextTTL is how long an access context is served from the cache.
	ContextTTL = 5 * time.Minute
	// StaleGrace is how long after ContextTTL an entry that nothing
	// invalidated is kept, to be served (marked stale) while the directory
	// is unavailable.
	StaleGrace = time.Hour
	// SpanAccessContext is the span of one AccessContext call; it carries
	// cache.hit (bool) and, when a stale entry was served, cache.stale.
	SpanAccessContext = "identity.access_context"
)

// Context is a user's access context at a node (or at tenant level when
// NodeID is empty).
type Context struct {
	UserID   string
	TenantID string
	NodeID   string
	// Roles are the roles of the memberships that cover the node, sorted
	// and deduplicated.
	Roles []string
	// Memberships are all of the user's memberships (NodeID "" is tenant-wide).
	Memberships []core.Membership
	// EffectiveModules are the granted modules at the node, sorted by code.
	EffectiveModules []licensing.EffectiveModule
	// Stale marks a cached context served because the directory is
	// unavailable; it may miss changes made since it was computed.
	Stale bool
}

// Directory is the tenant directory as the access context reads it. The
// local directory (LocalDirectory) and the tenant-service client implement it.
type Directory interface {
	// MembershipsOfUser returns every membership of userID (none is not an error).
	MembershipsOfUser(ctx context.Context, userID string) ([]core.Membership, error)
	// Ancestors returns the ancestors of nodeID nearest first (empty for a
	// root), or IDENT_NOT_FOUND.
	Ancestors(ctx context.Context, nodeID string) ([]tenancy.Ancestor, error)
	// NodeTenantID returns the tenant of nodeID, or IDENT_NOT_FOUND. It is
	// only called for root nodes (others get it from Ancestors); when it
	// fails otherwise than IDENT_NOT_FOUND / IDENT_UNAVAILABLE (a directory
	// that cannot tell), the tenant of the user's membership at the node
	// itself is used, if any.
	NodeTenantID(ctx context.Context, nodeID string) (string, error)
}

// EffectiveResolver computes effective license sets without authorization
// (*licensing.Resolver implements it).
type EffectiveResolver interface {
	Effective(ctx context.Context, tenantID, nodeID, providerID string) ([]licensing.EffectiveModule, error)
}

// Service answers access contexts. Safe for concurrent use.
type Service struct {
	dir      Directory
	licenses EffectiveResolver
	cache    ContextCache
	clock    core.Clock
	tracer   trace.Tracer
	metrics  *telemetry.Metrics
}

// NewService returns the access-context service. cache nil means an
// in-process cache (NewLocalCache); clock nil the system clock; tp nil no
// tracing; metrics nil no metrics.
func NewService(dir Directory, licenses EffectiveResolver, cache ContextCache, clock core.Clock, tp trace.TracerProvider, metrics *telemetry.Metrics) *Service {
	if clock == nil {
		clock = core.SystemClock{}
	}
	if cache == nil {
		cache = NewLocalCache(clock)
	}
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return &Service{dir: dir, licenses: licenses, cache: cache, clock: clock,
		tracer: tp.Tracer(telemetry.ScopeName), metrics: metrics}
}

// AccessContext returns the caller's access context at nodeID. nodeID ""
// means the token's context node when it has one, else tenant level: the
// principal's tenant, the roles of the user's tenant-wide membership there
// and the always-on modules (licensing is per node).
//
// A node is covered by a tenant-wide membership of its tenant and by a
// membership at the node or one of its ancestors; the roles are the union
// of the covering memberships' roles.
//
// Errors: IDENT_UNAUTHENTICATED; IDENT_FORBIDDEN for a principal that is
// not a user, for a node no membership covers (unknown nodes included), and
// at tenant level without any membership in the tenant; IDENT_VALIDATION
// (field nodeId) for a malformed id, and at tenant level when the user has
// only node memberships in the tenant (a node must be chosen);
// IDENT_UNAVAILABLE when the directory or licensing fails and no cached
// context (fresh, or within StaleGrace after expiry) exists.
func (s *Service) AccessContext(ctx context.Context, nodeID string) (out Context, err error) {
	ctx, span := s.tracer.Start(ctx, SpanAccessContext)
	hit := false
	defer func() {
		span.SetAttributes(attribute.Bool("cache.hit", hit))
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, core.AsError(err).Code)
		}
		span.End()
	}()
	p, err := core.RequirePrincipal(ctx)
	if err != nil {
		return Context{}, err
	}
	if p.Type != core.PrincipalUser {
		return Context{}, core.Forbidden("the access context is for users only")
	}
	if nodeID == "" {
		nodeID = p.ContextNodeID
	}
	if nodeID != "" && !core.ValidID(nodeID) {
		return Context{}, core.InvalidField("nodeId", "must be the id of a hierarchy node")
	}
	span.SetAttributes(attribute.String("user.id", p.ID), attribute.String("node.id", nodeID))

	now := s.clock.Now()
	var cached *Entry
	e, ok, cerr := s.cache.Get(ctx, p.ID, nodeID)
	switch {
	case cerr != nil:
		span.AddEvent("cache.error", trace.WithAttributes(attribute.String("error", cerr.Error())))
	case ok && now.Before(e.ExpiresAt):
		hit = true
		s.metrics.AccessContextCacheLookup(ctx, true)
		return e.Context, nil
	case ok:
		cached = &e
	}
	s.metrics.AccessContextCacheLookup(ctx, false)

	c, stamp, err := s.compute(ctx, p, nodeID)
	if err != nil {
		if core.IsKind(err, core.KindUnavailable) && cached != nil && now.Before(cached.ExpiresAt.Add(StaleGrace)) {
			span.SetAttributes(attribute.Bool("cache.stale", true))
			span.AddEvent("directory.unavailable", trace.WithAttributes(attribute.String("error", err.Error())))
			stale := cached.Context
			stale.Stale = true
			return stale, nil
		}
		return Context{}, err
	}
	if stamp != "" {
		entry := Entry{Context: c, ExpiresAt: now.Add(ContextTTL)}
		if serr := s.cache.Set(ctx, p.ID, nodeID, stamp, entry, ContextTTL+StaleGrace); serr != nil {
			span.AddEvent("cache.error", trace.WithAttributes(attribute.String("error", serr.Error())))
		}
	}
	return c, nil
}

// compute builds the context from the directory and licensing. stamp is
// the cache generation read before the memberships ("" when the cache
// failed: the result is then not stored).
func (s *Service) compute(ctx context.Context, p *core.Principal, nodeID string) (c Context, stamp string, err error) {
	c = Context{UserID: p.ID, NodeID: nodeID, TenantID: p.TenantID}
	var ancestors []tenancy.Ancestor
	if nodeID != "" {
		if ancestors, err = s.dir.Ancestors(ctx, nodeID); err != nil {
			return Context{}, "", hideNotFound(err)
		}
		if len(ancestors) > 0 {
			c.TenantID = ancestors[0].TenantID
		} else if c.TenantID, err = s.rootTenant(ctx, p.ID, nodeID); err != nil {
			return Context{}, "", err
		}
	}
	stamp, serr := s.cache.Stamp(ctx, p.ID, c.TenantID)
	if serr != nil {
		stamp = ""
	}
	ms, err := s.dir.MembershipsOfUser(ctx, p.ID)
	if err != nil {
		return Context{}, "", err
	}
	c.Memberships = ms
	covered, inTenant := false, false
	roles := []string{}
	for _, m := range ms {
		if m.TenantID != c.TenantID {
			continue
		}
		inTenant = true
		if m.NodeID == "" || m.NodeID == nodeID ||
			slices.ContainsFunc(ancestors, func(a tenancy.Ancestor) bool { return a.ID == m.NodeID }) {
			covered = true
			roles = append(roles, m.Roles...)
		}
	}
	if !covered {
		if nodeID == "" && inTenant {
			return Context{}, "", core.InvalidField("nodeId",
				"required: the user holds no tenant-wide membership in the tenant, only node memberships")
		}
		return Context{}, "", core.Forbidden("the node is outside the user's memberships")
	}
	slices.Sort(roles)
	c.Roles = slices.Compact(roles)
	if nodeID == "" {
		c.EffectiveModules = alwaysOn()
		return c, stamp, nil
	}
	mods, err := s.licenses.Effective(ctx, c.TenantID, nodeID, "")
	if err != nil {
		return Context{}, "", err
	}
	c.EffectiveModules = make([]licensing.EffectiveModule, 0, len(mods))
	for _, m := range mods {
		if m.Granted {
			c.EffectiveModules = append(c.EffectiveModules, m)
		}
	}
	return c, stamp, nil
}

// rootTenant returns the tenant of the root node nodeID: NodeTenantID, or,
// when the directory cannot tell (the tenant-service contract has no tenant
// for a root), the tenant of the user's membership at the node itself —
// a node never changes tenant, so reading it before the cache stamp is safe.
func (s *Service) rootTenant(ctx context.Context, userID, nodeID string) (string, error) {
	tenantID, err := s.dir.NodeTenantID(ctx, nodeID)
	if err == nil || core.IsKind(err, core.KindUnavailable) || core.IsKind(err, core.KindNotFound) {
		return tenantID, hideNotFound(err)
	}
	ms, merr := s.dir.MembershipsOfUser(ctx, userID)
	if merr != nil {
		return "", merr
	}
	for _, m := range ms {
		if m.NodeID == nodeID {
			return m.TenantID, nil
		}
	}
	return "", err
}

// hideNotFound turns an unknown node into IDENT_FORBIDDEN, so a caller
// cannot tell unknown nodes from other tenants' nodes.
func hideNotFound(err error) error {
	if core.IsKind(err, core.KindNotFound) {
		return core.Forbidden("the node is outside the user's memberships")
	}
	return err
}

// alwaysOn is the tenant-level effective set: the always-on modules.
func alwaysOn() []licensing.EffectiveModule {
	codes := slices.Sorted(slices.Values(licensing.AlwaysOnModules))
	out := make([]licensing.EffectiveModule, len(codes))
	for i, code := range codes {
		out[i] = licensing.EffectiveModule{Code: code, Status: licensing.StatusActive, Granted: true,
			Scope: licensing.ScopeInheritDown}
	}
	return out
}
