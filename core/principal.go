package core

import (
	"context"
	"slices"
	"time"
)

// PrincipalType names who is calling (CONTRACT.md §4 whoami).
type PrincipalType string

const (
	PrincipalUser           PrincipalType = "user"
	PrincipalServiceAccount PrincipalType = "service_account"
	PrincipalAPIKey         PrincipalType = "api_key"
)

// Role names with meaning inside identity-service; any other role string is
// passed through to clients untouched.
const (
	RoleSuperAdmin  = "SUPER_ADMIN"
	RoleTenantAdmin = "TENANT_ADMIN"
)

// PlatformTenantSlug is the slug of the tenant that holds SUPER_ADMINs.
const PlatformTenantSlug = "platform"

// Principal is the authenticated caller, built from a verified credential.
type Principal struct {
	Type          PrincipalType
	ID            string
	TenantID      string
	TenantIDs     []string
	Scopes        []string
	AMR           []string
	SessionID     string
	TokenID       string
	ContextNodeID string
	ExpiresAt     time.Time
	// Restricted marks a credential good only for MFA enrolment.
	Restricted bool
}

// HasScope reports whether the principal carries scope.
func (p *Principal) HasScope(scope string) bool {
	return p != nil && slices.Contains(p.Scopes, scope)
}

type principalKey struct{}
type authErrorKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// WithAuthError records that the request presented a credential that failed
// verification. Core reports it when the operation needs a principal, so each
// transport renders it in its own format.
func WithAuthError(ctx context.Context, err error) context.Context {
	return context.WithValue(ctx, authErrorKey{}, err)
}

// PrincipalFrom returns the principal on ctx, if any.
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok && p != nil
}

// RequirePrincipal returns the caller or IDENT_UNAUTHENTICATED. A restricted
// (MFA-enrolment-only) credential is refused here; the few operations that
// accept it call RequireAnyPrincipal.
func RequirePrincipal(ctx context.Context) (*Principal, error) {
	p, err := RequireAnyPrincipal(ctx)
	if err != nil {
		return nil, err
	}
	if p.Restricted {
		return nil, E(KindForbidden, CodeForbidden, "this credential may only enrol a second factor")
	}
	return p, nil
}

// RequireAnyPrincipal is RequirePrincipal that also accepts restricted credentials.
func RequireAnyPrincipal(ctx context.Context) (*Principal, error) {
	if err, ok := ctx.Value(authErrorKey{}).(error); ok && err != nil {
		return nil, err
	}
	p, ok := PrincipalFrom(ctx)
	if !ok {
		return nil, Unauthenticated(nil)
	}
	return p, nil
}
