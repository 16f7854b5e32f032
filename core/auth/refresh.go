package auth

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/codes"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/token"
	"github.com/ghasi-ehealth/identity-service/core/user"
)

// Refresh rotates a refresh token: it consumes refreshToken and returns a new
// access token and a new refresh token of the same session.
//
// The old token is consumed by one conditional UPDATE, so of concurrent
// refreshes with one token exactly one wins. Presenting a token that is
// already used — the loser of such a race, or any later use — is a replay:
// the whole session is revoked (reason "replay", identity.session.revoked.v1,
// the revocation set) and identity.user.security_incident.v1 (kind
// refresh_replay) is emitted and counted in identity.security_incident.total;
// that revocation commits, and the call fails with IDENT_REFRESH_REPLAY. The
// winner's new tokens die with the session.
//
// The user and tenant are checked again: a user who is no longer active (or
// no longer in the session's tenant) cannot refresh, and the session is
// revoked (reason "suspended", or "erased" for a deactivated or vanished
// user). The tids claim is recomputed from the current memberships, and a
// session's context node must still be covered by them.
//
// The access token is signed after the rotation commits: an RS256 signature
// (about a millisecond) inside the transaction would hold SQLite's single
// writer for every refresh. Signing with the in-memory keyring does not fail
// in practice; if it did, the rotated token is lost and the user signs in
// again — never a token that outlives its committed state.
//
// Errors: IDENT_REFRESH_REPLAY; IDENT_UNAUTHENTICATED (unknown or forged
// token, revoked or expired session, inactive user, context node no longer
// covered); IDENT_UNAVAILABLE.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (TokenResponse, error) {
	ctx, span := s.tracer.Start(ctx, SpanRefresh)
	defer span.End()
	resp, err := s.refresh(ctx, refreshToken)
	if err != nil {
		span.SetStatus(codes.Error, core.CodeOf(err))
	}
	return resp, err
}

func (s *Service) refresh(ctx context.Context, raw string) (TokenResponse, error) {
	if !wellFormedRefreshToken(raw) {
		return TokenResponse{}, core.Unauthenticated(ErrUnknownRefreshToken)
	}
	hash := s.hashRefreshToken(raw)
	ip := eventIP(core.ClientIPFrom(ctx))
	var (
		claims  token.Claims // of the access token to sign once committed
		sess    Session
		u       user.User
		next    string // the new refresh token
		now     time.Time
		failure error // the answer when the transaction commits a revocation
		revoked []RevokedSession
		reason  string
	)
	err := s.store.InTx(ctx, func(ctx context.Context) error {
		failure, revoked, reason = nil, nil, ""
		now = s.now()
		sid, consumed, err := s.store.ConsumeRefreshToken(ctx, hash, now)
		if core.IsKind(err, core.KindNotFound) {
			return core.Unauthenticated(ErrUnknownRefreshToken)
		}
		if err != nil {
			return err
		}
		sess, err = s.store.SessionByID(ctx, sid)
		if err != nil {
			return err
		}
		if !consumed {
			failure, reason = errReplay(), ReasonReplay
			revoked, err = s.revokeOne(ctx, sess, ReasonReplay)
			if err != nil {
				return err
			}
			return s.store.AddEvents(ctx, replayIncidentEvent(now, sess, ip))
		}
		if sess.RevokedAt != nil {
			return core.Unauthenticated(ErrSessionRevoked)
		}
		if !now.Before(sess.ExpiresAt) {
			return core.Unauthenticated(ErrSessionExpired)
		}
		u, err = s.users.UserByID(ctx, sess.UserID)
		if err != nil && !core.IsKind(err, core.KindNotFound) {
			return err
		}
		if err != nil || u.Status != user.StatusActive || u.TenantID != sess.TenantID {
			reason = ReasonErased
			if err == nil && u.Status == user.StatusSuspended {
				reason = ReasonSuspended
			}
			failure = core.Unauthenticated(ErrUserInactive)
			revoked, err = s.revokeOne(ctx, sess, reason)
			return err
		}
		ms, err := s.dir.MembershipsOfUser(ctx, u.ID)
		if err != nil {
			return err
		}
		if sess.ContextNodeID != "" {
			ok, err := s.nodeCovered(ctx, sess.ContextNodeID, ms)
			if err != nil {
				return err
			}
			if !ok {
				return core.Unauthenticated(ErrContextNode)
			}
		}
		if claims, err = s.accessClaims(sess, u, core.TenantIDs(u.TenantID, ms), now); err != nil {
			return err
		}
		next = newRefreshToken()
		if err := s.store.InsertRefreshToken(ctx, s.hashRefreshToken(next), sess.ID, now); err != nil {
			return err
		}
		return s.store.TouchSession(ctx, sess.ID, now)
	})
	if err != nil {
		return TokenResponse{}, err
	}
	s.countRevoked(ctx, revoked, reason)
	if reason == ReasonReplay {
		// Counted per committed incident event, also when the session was
		// already revoked by an earlier replay.
		s.metrics.SecurityIncidentDetected(ctx, IncidentRefreshReplay)
	}
	if failure != nil {
		return TokenResponse{}, failure
	}
	return s.issueTokens(ctx, claims, sess, u, next, now)
}
