// Package bootstrap creates the first platform administrator, so a fresh
// installation can be administered without touching the database.
package bootstrap

import (
	"context"
	"log/slog"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/core/user"
)

// Store is what bootstrapping needs from persistence.
type Store interface {
	core.Transactor
	core.EventSink
	// SuperAdminExists reports whether any membership holds SUPER_ADMIN.
	SuperAdminExists(ctx context.Context) (bool, error)
	// TenantBySlug returns IDENT_NOT_FOUND when no tenant has slug.
	TenantBySlug(ctx context.Context, slug string) (tenancy.Tenant, error)
	CreateTenant(ctx context.Context, t tenancy.Tenant) error
	// CreateUser returns IDENT_EMAIL_DUPLICATE when the email is taken in the tenant.
	CreateUser(ctx context.Context, u user.User) error
	AddMembership(ctx context.Context, m core.Membership) error
}

// PasswordHasher hashes a new password (argon2id PHC string).
type PasswordHasher interface {
	Hash(ctx context.Context, plain string) (string, error)
}

// Service seeds the platform tenant and its first SUPER_ADMIN.
type Service struct {
	store  Store
	hasher PasswordHasher
	clock  core.Clock
	logger *slog.Logger
}

// NewService returns a bootstrap service.
func NewService(store Store, hasher PasswordHasher, clock core.Clock, logger *slog.Logger) *Service {
	return &Service{store: store, hasher: hasher, clock: clock, logger: logger}
}

// Result says what EnsureSuperAdmin did.
type Result struct {
	Created  bool
	TenantID string
	UserID   string
}

// EnsureSuperAdmin creates the platform tenant (slug "platform") if missing
// and an active SUPER_ADMIN with email and password, unless any SUPER_ADMIN
// already exists (then it does nothing). It emits identity.tenant.created.v1
// (when it creates the tenant) and identity.membership.changed.v1 (actorId =
// the new administrator) in the same transaction. Errors: IDENT_VALIDATION for a bad
// email or a password shorter than 8 or longer than 128 characters,
// IDENT_EMAIL_DUPLICATE when the email is taken in the platform tenant,
// IDENT_OVERLOADED / IDENT_UNAVAILABLE from the hasher and the database.
func (s *Service) EnsureSuperAdmin(ctx context.Context, email, password string) (Result, error) {
	email = user.NormalizeEmail(email)
	if !user.ValidEmail(email) {
		return Result{}, core.InvalidField("email", "must be a valid email address")
	}
	if n := len([]rune(password)); n < 8 || n > 128 {
		return Result{}, core.InvalidField("password", "must be 8 to 128 characters")
	}
	exists, err := s.store.SuperAdminExists(ctx)
	if err != nil || exists {
		return Result{}, err
	}
	// Hash before the transaction: argon2id takes ~0.2 s and must not hold locks.
	hash, err := s.hasher.Hash(ctx, password)
	if err != nil {
		return Result{}, err
	}
	var res Result
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		if exists, err := s.store.SuperAdminExists(ctx); err != nil || exists {
			return err
		}
		now := s.clock.Now()
		var events []core.Event
		tenant, err := s.store.TenantBySlug(ctx, core.PlatformTenantSlug)
		if core.IsKind(err, core.KindNotFound) {
			tenant = tenancy.Tenant{ID: core.NewID(), Slug: core.PlatformTenantSlug, Name: "Platform", CreatedAt: now, UpdatedAt: now}
			err = s.store.CreateTenant(ctx, tenant)
			events = append(events, core.NewEvent(now, tenancy.EventTenantCreated, tenant.ID, tenant.ID,
				tenancy.TenantData{TenantID: tenant.ID, Name: tenant.Name, Slug: tenant.Slug}))
		}
		if err != nil {
			return err
		}
		u := user.User{
			ID: core.NewID(), TenantID: tenant.ID, Email: email, Status: user.StatusActive,
			PasswordHash: hash, CreatedAt: now, UpdatedAt: now,
		}
		if err := s.store.CreateUser(ctx, u); err != nil {
			return err
		}
		if err := s.store.AddMembership(ctx, core.Membership{UserID: u.ID, TenantID: tenant.ID, Roles: []string{core.RoleSuperAdmin}}); err != nil {
			return err
		}
		// The first administrator has no actor but itself. (No
		// identity.user.registered.v1: that event carries a verification
		// link, and this user is active from the start.)
		events = append(events, core.NewEvent(now, tenancy.EventMembershipChanged, u.ID, tenant.ID, tenancy.MembershipChangedData{
			UserID: u.ID, TenantID: tenant.ID, Roles: []string{core.RoleSuperAdmin}, Change: tenancy.ChangeAdded, ActorID: u.ID,
		}))
		res = Result{Created: true, TenantID: tenant.ID, UserID: u.ID}
		return s.store.AddEvents(ctx, events...)
	})
	if err != nil {
		return Result{}, err
	}
	s.logger.InfoContext(ctx, "bootstrap: created platform SUPER_ADMIN", "user_id", res.UserID, "tenant_id", res.TenantID)
	return res, nil
}
