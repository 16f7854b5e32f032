package user

import (
	"context"

	"github.com/ghasi-ehealth/identity-service/core"
)

// Erase is the GDPR erasure (DELETE /users/{id}). From any state the user
// becomes deactivated with first name, last name and email emptied, the
// password hash dropped and deactivated_at set; the user's verification
// tokens are deleted, every session is revoked (SessionRevoker, reason
// "erased"), the user's personal data is redacted from stored event payloads
// (see Erasure) and identity.user.deactivated.v1 is emitted — all in one
// transaction. The erasure event itself is kept.
//
// Erase is idempotent: erasing a deactivated user returns it unchanged and
// emits nothing (also when two erasures race).
//
// Authorization: TENANT_ADMIN of the user's tenant or SUPER_ADMIN; an admin
// may not erase themselves (IDENT_FORBIDDEN).
// Errors: IDENT_UNAUTHENTICATED; IDENT_NOT_FOUND (unknown or malformed id, or
// someone else's record for a non-admin); IDENT_CROSS_TENANT; IDENT_FORBIDDEN;
// IDENT_UNAVAILABLE.
func (s *Service) Erase(ctx context.Context, id string) (User, error) {
	acc, u, err := s.adminTarget(ctx, id)
	if err != nil {
		return User{}, err
	}
	if u.Status == StatusDeactivated {
		return public(u), nil
	}
	if isSelf(acc, u.ID) {
		return User{}, core.Forbidden("administrators cannot erase themselves")
	}
	var out User
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		cur, err := s.store.UserByID(ctx, u.ID)
		if err != nil {
			return err
		}
		if cur.Status == StatusDeactivated {
			out = cur // erased since we looked: nothing to do
			return nil
		}
		now := s.now()
		changed, err := s.store.EraseUser(ctx, u.ID, now)
		if err != nil {
			return err
		}
		if !changed {
			// A concurrent erasure won; answer with its result.
			out, err = s.store.UserByID(ctx, u.ID)
			return err
		}
		if err := s.store.DeleteVerificationTokens(ctx, u.ID); err != nil {
			return err
		}
		if err := s.sessions.RevokeAllForUser(ctx, u.ID, RevokeReasonErased); err != nil {
			return err
		}
		if _, err := s.store.RedactEvents(ctx, Erasure{UserID: u.ID, Email: cur.Email}); err != nil {
			return err
		}
		if out, err = s.store.UserByID(ctx, u.ID); err != nil {
			return err
		}
		return s.store.AddEvents(ctx, deactivatedEvent(now, out, acc.Principal.ID))
	})
	if err != nil {
		return User{}, err
	}
	return public(out), nil
}
