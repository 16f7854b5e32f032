package user

import (
	"context"

	"github.com/ghasi-ehealth/identity-service/core"
)

// Suspend moves an active user to suspended, revokes every session of the
// user (SessionRevoker, reason "suspended") and emits
// identity.user.suspended.v1, in one transaction. The status change is one
// conditional UPDATE, so of concurrent transitions at most one succeeds.
//
// Authorization: TENANT_ADMIN of the user's tenant or SUPER_ADMIN; an admin
// may not suspend themselves (IDENT_FORBIDDEN: the caller lacks the right,
// the user's state is not the problem).
// Errors: IDENT_UNAUTHENTICATED; IDENT_NOT_FOUND (unknown or malformed id, or
// someone else's record for a non-admin); IDENT_CROSS_TENANT; IDENT_FORBIDDEN;
// IDENT_STATE_CONFLICT unless the user is active; IDENT_UNAVAILABLE.
func (s *Service) Suspend(ctx context.Context, id string) (User, error) {
	return s.transition(ctx, id, StatusActive, StatusSuspended, EventSuspended, "suspend")
}

// Reactivate moves a suspended user back to active and emits
// identity.user.reactivated.v1. Authorization and errors as for Suspend
// (IDENT_STATE_CONFLICT unless the user is suspended); reactivating oneself
// is not refused (a suspended user has no session to ask with).
func (s *Service) Reactivate(ctx context.Context, id string) (User, error) {
	return s.transition(ctx, id, StatusSuspended, StatusActive, EventReactivated, "reactivate")
}

func (s *Service) transition(ctx context.Context, id string, from, to Status, eventType, action string) (User, error) {
	acc, u, err := s.adminTarget(ctx, id)
	if err != nil {
		return User{}, err
	}
	if to == StatusSuspended && isSelf(acc, u.ID) {
		return User{}, core.Forbidden("administrators cannot suspend themselves")
	}
	if u.Status != from {
		return User{}, errStateConflict(u.Status, action)
	}
	var out User
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		now := s.now()
		ok, err := s.store.TransitionUser(ctx, u.ID, from, to, now)
		if err != nil {
			return err
		}
		if !ok {
			// Someone else changed the status since we read it.
			cur, err := s.store.UserByID(ctx, u.ID)
			if err != nil {
				return err
			}
			return errStateConflict(cur.Status, action)
		}
		if to == StatusSuspended {
			if err := s.sessions.RevokeAllForUser(ctx, u.ID, RevokeReasonSuspended); err != nil {
				return err
			}
		}
		if out, err = s.store.UserByID(ctx, u.ID); err != nil {
			return err
		}
		return s.store.AddEvents(ctx, statusChangedEvent(now, eventType, out, acc.Principal.ID))
	})
	if err != nil {
		return User{}, err
	}
	return public(out), nil
}
