package licensing

import (
	"context"
	"sync"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/scope"
)

// TenantSlugLookup resolves a tenant slug to its id; the resolver's
// authorization uses it to find the platform tenant (core.PlatformTenantSlug).
// The licensing persistence store implements it.
type TenantSlugLookup interface {
	// TenantIDBySlug returns the id of the tenant with slug or IDENT_NOT_FOUND.
	TenantIDBySlug(ctx context.Context, slug string) (string, error)
}

// AuthorizedResolver is the Resolver behind the internal surfaces (REST
// /internal/identity/licensing/effective, Connect LicensingService). The
// caller must be a service credential — a service account or an API key —
// carrying scope tenant:licensing:read; credentials of the platform tenant
// act for every tenant, others for their own tenant only (CONTRACT.md §4).
type AuthorizedResolver struct {
	resolver *Resolver
	tenants  TenantSlugLookup

	admins *core.Authorizer

	mu         sync.Mutex
	platformID string
}

// NewAuthorizedResolver wraps r; tenants finds the platform tenant.
func NewAuthorizedResolver(r *Resolver, tenants TenantSlugLookup) *AuthorizedResolver {
	return &AuthorizedResolver{resolver: r, tenants: tenants}
}

// Effective is Resolver.Effective for the caller on ctx; tenantID ""
// means the caller's tenant. Errors: IDENT_UNAUTHENTICATED without a
// credential; IDENT_FORBIDDEN for a user, a credential without the scope or
// one of another (non-platform) tenant; those of Resolver.Effective.
func (a *AuthorizedResolver) Effective(ctx context.Context, tenantID, nodeID, providerID string) ([]EffectiveModule, error) {
	tenantID, err := a.authorize(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	return a.resolver.Effective(ctx, tenantID, nodeID, providerID)
}

// CheckModuleAccess is Resolver.CheckModuleAccess for the caller on ctx,
// authorized as Effective.
func (a *AuthorizedResolver) CheckModuleAccess(ctx context.Context, tenantID, nodeID, moduleCode string) (bool, Status, error) {
	tenantID, err := a.authorize(ctx, tenantID)
	if err != nil {
		return false, "", err
	}
	return a.resolver.CheckModuleAccess(ctx, tenantID, nodeID, moduleCode)
}

// authorize checks the caller and returns the tenant to resolve for.
func (a *AuthorizedResolver) authorize(ctx context.Context, tenantID string) (string, error) {
	p, err := core.RequirePrincipal(ctx)
	if err != nil {
		return "", err
	}
	if p.Type != core.PrincipalServiceAccount && p.Type != core.PrincipalAPIKey {
		return "", core.Forbidden("a service credential is required")
	}
	if !p.HasScope(scope.LicensingRead) {
		return "", core.Forbidden("the credential lacks scope " + scope.LicensingRead)
	}
	if tenantID == "" || tenantID == p.TenantID {
		return p.TenantID, nil
	}
	platform, err := a.platformTenantID(ctx)
	if err != nil {
		return "", err
	}
	if platform == "" || p.TenantID != platform {
		return "", core.Forbidden("the credential may not act for this tenant")
	}
	return tenantID, nil
}

// platformTenantID returns the platform tenant's id ("" while there is
// none), remembered once found: a tenant id never changes.
func (a *AuthorizedResolver) platformTenantID(ctx context.Context) (string, error) {
	a.mu.Lock()
	id := a.platformID
	a.mu.Unlock()
	if id != "" {
		return id, nil
	}
	id, err := a.tenants.TenantIDBySlug(ctx, core.PlatformTenantSlug)
	if err != nil {
		if ce := core.AsError(err); ce.Kind == core.KindNotFound {
			return "", nil
		}
		return "", err
	}
	a.mu.Lock()
	a.platformID = id
	a.mu.Unlock()
	return id, nil
}

// WithAdmins lets administrators read effective sets through AdminEffective
// (the admin UI); service credentials keep using Effective.
func (a *AuthorizedResolver) WithAdmins(authz *core.Authorizer) *AuthorizedResolver {
	a.admins = authz
	return a
}

// AdminEffective is the effective set at nodeID of tenantID for an admin:
// SUPER_ADMIN, or TENANT_ADMIN of the tenant (IDENT_CROSS_TENANT for another
// tenant's admin, IDENT_FORBIDDEN for anyone else, IDENT_UNAUTHENTICATED
// without a credential); then the errors of Resolver.Effective.
func (a *AuthorizedResolver) AdminEffective(ctx context.Context, tenantID, nodeID string) ([]EffectiveModule, error) {
	if a.admins == nil {
		return nil, core.Forbidden("administrator access is not configured")
	}
	if _, err := a.admins.RequireTenantAdmin(ctx, tenantID); err != nil {
		return nil, err
	}
	return a.resolver.Effective(ctx, tenantID, nodeID, "")
}
