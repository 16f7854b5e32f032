package auth

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/codes"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/user"
)

// Logout revokes the caller's session (reason "logout"): the session is the
// one of the caller's access token (its jti up to the first '.'). When
// refreshToken is given (non-nil and non-empty) it must be a refresh token of
// that same session, else IDENT_VALIDATION (field refreshToken) and nothing is
// revoked. Logging out a session that is already revoked succeeds without
// emitting anything.
//
// Revocation, identity.session.revoked.v1 and the revocation-set entry (TTL =
// access-token lifetime + leeway) happen in one transaction; the set is written
// before the commit, so a rollback leaves at worst a spurious entry (see
// announce for a set that cannot be written).
//
// Errors: IDENT_UNAUTHENTICATED; IDENT_FORBIDDEN for a caller that is not a
// user session (service account, API key); IDENT_VALIDATION;
// IDENT_UNAVAILABLE.
func (s *Service) Logout(ctx context.Context, refreshToken *string) error {
	ctx, span := s.tracer.Start(ctx, SpanLogout)
	defer span.End()
	p, err := core.RequirePrincipal(ctx)
	if err != nil {
		return err
	}
	sid, ok := sessionOfPrincipal(p)
	if !ok {
		return core.Forbidden("only a user session can log out")
	}
	hash := ""
	if refreshToken != nil && *refreshToken != "" {
		if !wellFormedRefreshToken(*refreshToken) {
			return errForeignRefreshToken()
		}
		hash = s.hashRefreshToken(*refreshToken)
	}
	var revoked []RevokedSession
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		revoked = nil
		if hash != "" {
			owner, err := s.store.RefreshTokenSession(ctx, hash)
			if core.IsKind(err, core.KindNotFound) || err == nil && owner != sid {
				return errForeignRefreshToken()
			}
			if err != nil {
				return err
			}
		}
		sess, err := s.store.SessionByID(ctx, sid)
		if core.IsKind(err, core.KindNotFound) {
			return core.Unauthenticated(ErrSessionRevoked)
		}
		if err != nil {
			return err
		}
		if sess.UserID != p.ID {
			return core.Unauthenticated(ErrSessionRevoked)
		}
		revoked, err = s.revokeOne(ctx, sess, ReasonLogout)
		return err
	})
	if err != nil {
		span.SetStatus(codes.Error, core.CodeOf(err))
		return err
	}
	s.countRevoked(ctx, revoked, ReasonLogout)
	return nil
}

// LogoutAll revokes every session of the caller (reason "logout_all"), and
// every device through Deps.Devices when set, in one transaction; the
// revocation set gets every revoked session before the commit.
//
// Errors: IDENT_UNAUTHENTICATED; IDENT_FORBIDDEN for a caller that is not a
// user; IDENT_UNAVAILABLE.
func (s *Service) LogoutAll(ctx context.Context) error {
	ctx, span := s.tracer.Start(ctx, SpanLogout)
	defer span.End()
	p, err := core.RequirePrincipal(ctx)
	if err != nil {
		return err
	}
	if p.Type != core.PrincipalUser {
		return core.Forbidden("only a user can log out")
	}
	var revoked []RevokedSession
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		var err error
		if revoked, err = s.revokeAll(ctx, p.ID, ReasonLogoutAll); err != nil {
			return err
		}
		if s.devices != nil {
			return s.devices.RevokeAllDevicesOfUser(ctx, p.ID)
		}
		return nil
	})
	if err != nil {
		span.SetStatus(codes.Error, core.CodeOf(err))
		return err
	}
	s.countRevoked(ctx, revoked, ReasonLogoutAll)
	return nil
}

// SessionRevoker is the user.SessionRevoker of the real session store: user
// suspension and erasure call it inside their transaction, and it revokes
// every session of the user the way LogoutAll does (event per session,
// revocation set before commit), so the user's access tokens are rejected
// from then on. Suspension and erasure also revoke the user's devices and
// their binding certificates; erasure empties the sessions' IP and user agent.
//
// The metric identity.session.revoke.total is counted when RevokeAllForUser
// returns, before the caller's transaction commits.
type SessionRevoker struct {
	Service *Service
}

var _ user.SessionRevoker = SessionRevoker{}

// RevokeAllForUser revokes every session of userID with reason, one of the
// contract's revocation reasons. Called with a context inside a transaction
// of the same database it joins it. Errors: IDENT_INTERNAL for an unknown
// reason; IDENT_UNAVAILABLE.
func (r SessionRevoker) RevokeAllForUser(ctx context.Context, userID, reason string) error {
	switch reason {
	case ReasonLogout, ReasonLogoutAll, ReasonReplay, ReasonSuspended, ReasonErased:
	default:
		return core.Internal(fmt.Errorf("auth: unknown session revocation reason %q", reason))
	}
	var revoked []RevokedSession
	err := r.Service.store.InTx(ctx, func(ctx context.Context) error {
		var err error
		if revoked, err = r.Service.revokeAll(ctx, userID, reason); err != nil {
			return err
		}
		// A suspended or erased user's devices lose their offline binding
		// certificates too (CRL), or a 30-day certificate would outlive the
		// account's access.
		if (reason == ReasonSuspended || reason == ReasonErased) && r.Service.devices != nil {
			if err := r.Service.devices.RevokeAllDevicesOfUser(ctx, userID); err != nil {
				return err
			}
		}
		if reason == ReasonErased {
			return r.Service.store.ForgetSessionClients(ctx, userID)
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.Service.countRevoked(ctx, revoked, reason)
	return nil
}

// revokeAll revokes every unrevoked session of userID inside the transaction
// of ctx and announces them.
func (s *Service) revokeAll(ctx context.Context, userID, reason string) ([]RevokedSession, error) {
	if !core.ValidID(userID) {
		return nil, nil
	}
	revoked, err := s.store.RevokeUserSessions(ctx, userID, reason, s.now())
	if err != nil {
		return nil, err
	}
	return revoked, s.announce(ctx, revoked, reason)
}

// revokeOne revokes sess inside the transaction of ctx unless it is already
// revoked, and announces it.
func (s *Service) revokeOne(ctx context.Context, sess Session, reason string) ([]RevokedSession, error) {
	changed, err := s.store.RevokeSession(ctx, sess.ID, reason, s.now())
	if err != nil || !changed {
		return nil, err
	}
	revoked := []RevokedSession{{ID: sess.ID, UserID: sess.UserID, TenantID: sess.TenantID}}
	return revoked, s.announce(ctx, revoked, reason)
}

// announce adds identity.session.revoked.v1 per session to the outbox and
// puts the sessions into the revocation set, still inside the transaction.
//
// A set that cannot be written does not fail the revocation: the database
// row is the record (the verifier's fallback reads it while the set is down,
// and cache.FailoverRevocations keeps the ids and replays them to Valkey),
// and failing would leave the session — and its access tokens — alive
// exactly when someone wants it dead (a suspension during a cache outage,
// a replay). The error is logged.
func (s *Service) announce(ctx context.Context, revoked []RevokedSession, reason string) error {
	if len(revoked) == 0 {
		return nil
	}
	now := s.now()
	events := make([]core.Event, 0, len(revoked))
	ids := make([]string, 0, len(revoked))
	for _, r := range revoked {
		events = append(events, sessionRevokedEvent(now, r, reason))
		ids = append(ids, r.ID)
	}
	if err := s.store.AddEvents(ctx, events...); err != nil {
		return err
	}
	if err := s.revocations.Revoke(ctx, ids, s.revocationTTL()); err != nil {
		s.log.ErrorContext(ctx, "revocation set write failed; the database revocation stands",
			"reason", reason, "sessions", len(ids), "error", err)
	}
	return nil
}

// countRevoked records the metric for sessions whose revocation committed.
func (s *Service) countRevoked(ctx context.Context, revoked []RevokedSession, reason string) {
	for range revoked {
		s.metrics.SessionRevoked(ctx, reason)
	}
}

// sessionOfPrincipal returns the session of a user principal's access token.
func sessionOfPrincipal(p *core.Principal) (string, bool) {
	if p.Type != core.PrincipalUser {
		return "", false
	}
	if sid, ok := SessionIDOf(p.TokenID); ok {
		return sid, true
	}
	return p.SessionID, p.SessionID != ""
}

func errForeignRefreshToken() *core.Error {
	return core.InvalidField("refreshToken", "is not a refresh token of the caller's session")
}
