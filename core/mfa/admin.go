package mfa

import (
	"context"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/user"
)

// FactorInfo is a factor as clients see it (no secrets).
type FactorInfo struct {
	ID         string
	Type       string // TypeTOTP or TypeWebAuthn
	Name       string
	CreatedAt  time.Time
	VerifiedAt *time.Time
	LastUsedAt *time.Time
}

// ListFactors returns the caller's factors, oldest first (pending TOTP
// enrolments included, with a nil VerifiedAt). A restricted enrolment
// credential is refused. Errors: IDENT_UNAUTHENTICATED, IDENT_FORBIDDEN,
// IDENT_UNAVAILABLE.
func (s *Service) ListFactors(ctx context.Context) ([]FactorInfo, error) {
	p, err := core.RequirePrincipal(ctx)
	if err != nil {
		return nil, err
	}
	if p.Type != core.PrincipalUser {
		return []FactorInfo{}, nil
	}
	return s.factors(ctx, p.ID)
}

// FactorsOf returns the factors of userID to the user itself or to an admin
// of the user's tenant (GraphQL User.factors). Errors: IDENT_UNAUTHENTICATED;
// IDENT_NOT_FOUND (unknown user, or someone else's for a non-admin);
// IDENT_CROSS_TENANT; IDENT_UNAVAILABLE.
func (s *Service) FactorsOf(ctx context.Context, userID string) ([]FactorInfo, error) {
	acc, err := s.authz.Load(ctx)
	if err != nil {
		return nil, err
	}
	if acc.Principal.Type == core.PrincipalUser && acc.Principal.ID == userID {
		return s.factors(ctx, userID)
	}
	u, err := s.lookup(ctx, userID)
	if err != nil {
		return nil, err
	}
	if err := mayAdminister(acc, u); err != nil {
		return nil, err
	}
	return s.factors(ctx, userID)
}

func (s *Service) factors(ctx context.Context, userID string) ([]FactorInfo, error) {
	fs, err := s.store.FactorsOfUser(ctx, userID)
	if err != nil {
		return nil, err
	}
	out := make([]FactorInfo, 0, len(fs))
	for _, f := range fs {
		out = append(out, FactorInfo{ID: f.ID, Type: f.Type, Name: f.Name, CreatedAt: f.CreatedAt,
			VerifiedAt: f.VerifiedAt, LastUsedAt: f.LastUsedAt})
	}
	return out, nil
}

// ResetFactors deletes every factor and recovery code of userID and burns
// its open login challenges (a lost phone), in one transaction with
// identity.user.mfa_reset.v1 {userId, tenantId, actorId}. The caller must be
// SUPER_ADMIN or TENANT_ADMIN of the user's tenant; a TENANT_ADMIN of another
// tenant gets IDENT_CROSS_TENANT and nothing changes. Idempotent: a user
// without factors is reset again (and the event emitted again).
// Errors: IDENT_UNAUTHENTICATED; IDENT_NOT_FOUND; IDENT_CROSS_TENANT;
// IDENT_FORBIDDEN (a non-admin resetting itself); IDENT_UNAVAILABLE.
func (s *Service) ResetFactors(ctx context.Context, userID string) error {
	acc, err := s.authz.Load(ctx)
	if err != nil {
		return err
	}
	u, err := s.lookup(ctx, userID)
	if err != nil {
		return err
	}
	if err := mayAdminister(acc, u); err != nil {
		return err
	}
	now := s.now()
	return s.store.InTx(ctx, func(ctx context.Context) error {
		if _, err := s.store.DeleteFactorsOfUser(ctx, u.ID); err != nil {
			return err
		}
		if err := s.store.DeleteRecoveryCodes(ctx, u.ID); err != nil {
			return err
		}
		if err := s.store.BurnChallengesOfUser(ctx, u.ID, now); err != nil {
			return err
		}
		return s.store.AddEvents(ctx, core.NewEvent(now, EventReset, u.ID, u.TenantID,
			resetData{UserID: u.ID, TenantID: u.TenantID, ActorID: acc.Principal.ID}))
	})
}

func (s *Service) lookup(ctx context.Context, id string) (user.User, error) {
	if !core.ValidID(id) {
		return user.User{}, core.NotFound("user")
	}
	u, err := s.users.UserByID(ctx, id)
	if core.IsKind(err, core.KindNotFound) {
		return user.User{}, core.NotFound("user")
	}
	return u, err
}

// mayAdminister is core/user's rule for a user resource: SUPER_ADMIN and
// TENANT_ADMIN of the user's tenant pass; a TENANT_ADMIN of another tenant
// gets IDENT_CROSS_TENANT; anyone else IDENT_FORBIDDEN for their own record
// and IDENT_NOT_FOUND for someone else's.
func mayAdminister(acc *core.Access, u user.User) error {
	err := acc.CanAdminister(u.TenantID)
	if err == nil || acc.SuperAdmin || len(acc.AdminOf) > 0 {
		return err
	}
	if acc.Principal.Type == core.PrincipalUser && acc.Principal.ID == u.ID {
		return core.Forbidden("requires TENANT_ADMIN of the user's tenant")
	}
	return core.NotFound("user")
}
