package federation

import (
	"context"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
)

// EventExternalIdentityLinked is emitted when an IdP account is linked to a
// user, whether the user existed or was provisioned just in time.
const EventExternalIdentityLinked = "identity.external_identity.linked.v1"

// LinkedData is the data of identity.external_identity.linked.v1.
type LinkedData struct {
	UserID   string `json:"userId"`
	TenantID string `json:"tenantId"`
	Issuer   string `json:"issuer"`
	Subject  string `json:"subject"`
	Provider string `json:"provider"`
}

// link returns the user of the IdP account c at provider p, inside the
// transaction carried by ctx: the linked user when (issuer, subject) is
// known; else the tenant's user with c's email when the IdP verified it
// (linking it); else a new active user (just in time). An unverified IdP
// email never links to an existing account.
//
// Errors: IDENT_EXT_IDENTITY_MISMATCH (linked to a user of another tenant);
// IDENT_EMAIL_DUPLICATE (the email is taken and not verified by the IdP);
// IDENT_CONFLICT (a concurrent login linked it first; retrying succeeds);
// IDENT_UNAVAILABLE.
func (s *Service) link(ctx context.Context, p Provider, c claims) (string, error) {
	ext, err := s.store.ExternalIdentity(ctx, c.Issuer, c.Subject)
	switch {
	case err == nil && ext.TenantID != p.TenantID:
		return "", core.E(core.KindConflict, core.CodeExtIdentityMismatch,
			"this identity provider account is already linked to a user of another tenant")
	case err == nil:
		return ext.UserID, nil
	case !core.IsKind(err, core.KindNotFound):
		return "", err
	}
	now := s.cfg.Clock.Now().UTC().Truncate(time.Microsecond)
	u, err := s.store.UserByEmailInTenant(ctx, p.TenantID, c.Email)
	switch {
	case err == nil && !c.EmailVerified:
		return "", core.E(core.KindConflict, core.CodeEmailDuplicate,
			"an account with this email exists; the identity provider has not verified the email, so it is not linked")
	case err == nil:
	case core.IsKind(err, core.KindNotFound):
		u = userFromClaims(p.TenantID, c, now)
		if err := s.store.InsertUser(ctx, u); err != nil {
			return "", err
		}
	default:
		return "", err
	}
	ext = ExternalIdentity{
		ID: core.NewID(), UserID: u.ID, TenantID: p.TenantID, ProviderID: p.ID,
		Issuer: c.Issuer, Subject: c.Subject, CreatedAt: now,
	}
	if err := s.store.InsertExternalIdentity(ctx, ext); err != nil {
		return "", err
	}
	ev := core.NewEvent(now, EventExternalIdentityLinked, u.ID, p.TenantID, LinkedData{
		UserID: u.ID, TenantID: p.TenantID, Issuer: c.Issuer, Subject: c.Subject, Provider: p.Slug,
	})
	if err := s.store.AddEvents(ctx, ev); err != nil {
		return "", err
	}
	return u.ID, nil
}
