package tenancy

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ghasi-ehealth/identity-service/core"
)

// Input limits.
const (
	MaxTenantNameLen = 200
	MaxNodeNameLen   = 200
	MaxKindLen       = 64
	MaxRoleLen       = 64
	MaxRoles         = 32
)

// Service is the local tenant directory. Every method but Ancestors decides
// access through the Authorizer (CONTRACT.md §2: a TENANT_ADMIN acting on
// another tenant gets IDENT_CROSS_TENANT; a principal without the role gets
// IDENT_FORBIDDEN; no principal IDENT_UNAUTHENTICATED), before any write, so
// a refused call changes nothing and emits nothing. Writes and their events
// commit in one transaction.
type Service struct {
	store Store
	authz *core.Authorizer
	clock core.Clock

	// OnMembershipChange, when set, is called after a membership of userID
	// in tenantID was added, changed or removed and the change committed
	// (the access-context cache invalidates the user). Set it before use.
	OnMembershipChange func(userID, tenantID string)
}

var _ Hierarchy = (*Service)(nil)

// NewService returns the directory service. A nil clock means the system clock.
func NewService(store Store, authz *core.Authorizer, clock core.Clock) *Service {
	if clock == nil {
		clock = core.SystemClock{}
	}
	return &Service{store: store, authz: authz, clock: clock}
}

// now is the clock at the storage precision of both dialects.
func (s *Service) now() time.Time { return s.clock.Now().UTC().Truncate(time.Microsecond) }

// CreateTenantInput is POST /tenants and GraphQL createTenant.
type CreateTenantInput struct {
	Name             string
	Slug             string
	SelfRegistration bool
	MFARequired      bool
}

// UpdateTenantInput is PATCH /tenants/{id} and GraphQL updateTenant; nil
// fields keep their value.
type UpdateTenantInput struct {
	SelfRegistration *bool
	MFARequired      *bool
}

// CreateTenant creates a tenant and emits identity.tenant.created.v1. Name
// and slug are trimmed. Errors: IDENT_UNAUTHENTICATED; IDENT_FORBIDDEN unless
// SUPER_ADMIN; IDENT_VALIDATION (fields name, slug); IDENT_CONFLICT when the
// slug is taken; IDENT_UNAVAILABLE.
func (s *Service) CreateTenant(ctx context.Context, in CreateTenantInput) (Tenant, error) {
	if _, err := s.authz.RequireSuperAdmin(ctx); err != nil {
		return Tenant{}, err
	}
	fields := map[string]string{}
	name := strings.TrimSpace(in.Name)
	if reason := checkText(name, MaxTenantNameLen); reason != "" {
		fields["name"] = reason
	}
	slug := strings.TrimSpace(in.Slug)
	if !ValidSlug(slug) {
		fields["slug"] = "must be 1 to 63 lower-case letters, digits or inner hyphens"
	}
	if len(fields) > 0 {
		return Tenant{}, core.Invalid("invalid tenant", fields)
	}
	now := s.now()
	t := Tenant{ID: core.NewID(), Slug: slug, Name: name, SelfRegistration: in.SelfRegistration, MFARequired: in.MFARequired, CreatedAt: now, UpdatedAt: now}
	err := s.store.InTx(ctx, func(ctx context.Context) error {
		if err := s.store.CreateTenant(ctx, t); err != nil {
			if core.IsKind(err, core.KindConflict) {
				e := core.Wrap(err, core.KindConflict, core.CodeConflict, "slug \""+slug+"\" is already taken")
				e.Fields = map[string]string{"slug": "already taken"}
				return e
			}
			return err
		}
		return s.store.AddEvents(ctx, core.NewEvent(now, EventTenantCreated, t.ID, t.ID, tenantData(t)))
	})
	if err != nil {
		return Tenant{}, err
	}
	return t, nil
}

// UpdateTenant changes the identity-owned settings of tenant id in one
// UPDATE and emits identity.tenant.updated.v1 with the settings afterwards.
// An input without fields changes nothing, emits nothing and returns the
// tenant. Errors: IDENT_UNAUTHENTICATED; IDENT_CROSS_TENANT for a
// TENANT_ADMIN of another tenant (whether or not id exists, so the answer
// reveals nothing); IDENT_FORBIDDEN for anyone else who is neither
// SUPER_ADMIN nor TENANT_ADMIN of id; IDENT_NOT_FOUND for an unknown or
// malformed id; IDENT_UNAVAILABLE.
func (s *Service) UpdateTenant(ctx context.Context, id string, in UpdateTenantInput) (Tenant, error) {
	if _, err := s.authz.RequireTenantAdmin(ctx, id); err != nil {
		return Tenant{}, err
	}
	if !core.ValidID(id) {
		return Tenant{}, core.NotFound("tenant")
	}
	if in.SelfRegistration == nil && in.MFARequired == nil {
		return s.store.TenantByID(ctx, id)
	}
	var t Tenant
	err := s.store.InTx(ctx, func(ctx context.Context) error {
		now := s.now()
		var err error
		if t, err = s.store.UpdateTenantSettings(ctx, id, in.SelfRegistration, in.MFARequired, now); err != nil {
			return err
		}
		return s.store.AddEvents(ctx, core.NewEvent(now, EventTenantUpdated, t.ID, t.ID, tenantData(t)))
	})
	if err != nil {
		return Tenant{}, err
	}
	return t, nil
}

// GetTenant returns tenant id to a SUPER_ADMIN or to any principal with a
// membership in it. Errors: IDENT_UNAUTHENTICATED; IDENT_CROSS_TENANT for a
// TENANT_ADMIN of other tenants only; IDENT_NOT_FOUND for an unknown or
// malformed id, and for an ordinary user who is not a member (CONTRACT.md
// §2: someone else's resource is 404 to ordinary users); IDENT_UNAVAILABLE.
func (s *Service) GetTenant(ctx context.Context, id string) (Tenant, error) {
	acc, err := s.authz.Load(ctx)
	if err != nil {
		return Tenant{}, err
	}
	if err := canRead(acc, id); err != nil {
		return Tenant{}, err
	}
	if !core.ValidID(id) {
		return Tenant{}, core.NotFound("tenant")
	}
	return s.store.TenantByID(ctx, id)
}

// ListTenants returns every tenant to a SUPER_ADMIN and the tenants the
// caller has memberships in to anyone else (possibly none), ordered by
// slug. Errors: IDENT_UNAUTHENTICATED, IDENT_UNAVAILABLE.
func (s *Service) ListTenants(ctx context.Context) ([]Tenant, error) {
	acc, err := s.authz.Load(ctx)
	if err != nil {
		return nil, err
	}
	if acc.SuperAdmin {
		return s.store.ListTenants(ctx)
	}
	var ids []string
	for _, m := range acc.Memberships {
		if !slices.Contains(ids, m.TenantID) {
			ids = append(ids, m.TenantID)
		}
	}
	if len(ids) == 0 {
		return []Tenant{}, nil
	}
	return s.store.TenantsByID(ctx, ids)
}

// canRead allows SUPER_ADMINs and members of tenantID; a TENANT_ADMIN of
// other tenants gets IDENT_CROSS_TENANT, anyone else IDENT_NOT_FOUND.
func canRead(acc *core.Access, tenantID string) error {
	if acc.SuperAdmin || isMember(acc, tenantID) {
		return nil
	}
	if len(acc.AdminOf) > 0 {
		return acc.CanAdminister(tenantID) // IDENT_CROSS_TENANT
	}
	return core.NotFound("tenant")
}

func isMember(acc *core.Access, tenantID string) bool {
	return slices.ContainsFunc(acc.Memberships, func(m core.Membership) bool { return m.TenantID == tenantID })
}

// checkText returns why s (already trimmed) is not a valid name of at most
// limit characters, or "" when it is.
func checkText(s string, limit int) string {
	if s == "" {
		return "required"
	}
	if problem := core.TextProblem(s, false); problem != "" {
		return problem
	}
	if utf8.RuneCountInString(s) > limit {
		return "must be at most " + strconv.Itoa(limit) + " characters"
	}
	return ""
}

// notFoundAs turns IDENT_NOT_FOUND from the store into err2 and passes
// anything else through.
func notFoundAs(err error, err2 error) error {
	if core.IsKind(err, core.KindNotFound) {
		return err2
	}
	return err
}
