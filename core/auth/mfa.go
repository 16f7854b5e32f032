package auth

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/token"
	"github.com/ghasi-ehealth/identity-service/core/user"
)

// SecondFactor is the login's port to the second factor (IDENT-US-008);
// mfa.Service implements it. Deps.SecondFactor nil means no MFA at all.
type SecondFactor interface {
	// Challenge is called after a correct password of an active user. It
	// returns nil when the login needs no second factor, else the
	// IDENT_MFA_REQUIRED error (with its Extra members) to answer.
	Challenge(ctx context.Context, in ChallengeRequest) error
	// Verify checks a second factor against a challenge and, in ONE
	// transaction, uses the factor up, consumes the challenge (exactly one of
	// concurrent callers wins) and calls complete with the challenge's login
	// (which opens the session in that transaction). It returns the error of
	// complete unchanged. On a failure (IDENT_MFA_INVALID_CODE,
	// IDENT_MFA_FAILED) it returns the challenge's UserID, so the failure is
	// counted for the account.
	Verify(ctx context.Context, in MFAVerifyInput, complete func(ctx context.Context, v MFAVerified) error) (MFAVerified, error)
}

// ChallengeRequest is the login that needs deciding.
type ChallengeRequest struct {
	User          user.User
	ContextNodeID string
	IP            string
	UserAgent     string
}

// MFA methods (CONTRACT.md §4 /auth/mfa/verify).
const (
	MethodTOTP     = "totp"
	MethodWebAuthn = "webauthn"
	MethodRecovery = "recovery"
)

// MFAVerifyInput is POST /auth/mfa/verify. Code is the TOTP or recovery
// code; Assertion the WebAuthn PublicKeyCredential JSON.
type MFAVerifyInput struct {
	ChallengeID string
	Method      string
	Code        string
	Assertion   json.RawMessage
}

// MFAVerified is the login a verified challenge completes.
type MFAVerified struct {
	UserID        string
	ContextNodeID string
	IP            string
	UserAgent     string
	// AMR is ["pwd","otp"] (TOTP or recovery code) or ["pwd","webauthn"].
	AMR []string
}

// ErrChallenge is the cause (never shown) of the IDENT_UNAUTHENTICATED answer
// to an unknown, expired, burned or already used MFA challenge.
var ErrChallenge = errors.New("auth: unknown, expired or used MFA challenge")

// VerifyMFA is POST /auth/mfa/verify: it checks the second factor of a
// challenge that Login answered with IDENT_MFA_REQUIRED and then opens the
// session exactly like Login (same events, tokens and lifetime) with the
// challenge's context node, IP and user agent and amr ["pwd","otp"] or
// ["pwd","webauthn"]. A recovery code counts as "otp": the contract's amr
// vocabulary has no value for it, and it is a one-time password.
//
// Every failed code is counted against the per-account login throttle
// (the same key and window as failed passwords). Consuming the challenge and
// opening the session commit together, and of concurrent verifications of
// one challenge exactly one succeeds.
//
// Errors: IDENT_UNAUTHENTICATED (unknown/expired/used challenge, or the user
// is no longer active); IDENT_MFA_INVALID_CODE; IDENT_MFA_FAILED (third
// failure, challenge burned); IDENT_VALIDATION (unknown method);
// IDENT_UNAVAILABLE.
func (s *Service) VerifyMFA(ctx context.Context, in MFAVerifyInput) (TokenResponse, error) {
	ctx, span := s.tracer.Start(ctx, SpanMFAVerify)
	defer span.End()
	if s.mfa == nil {
		return TokenResponse{}, core.Unauthenticated(ErrChallenge)
	}
	var resp TokenResponse
	v, err := s.mfa.Verify(ctx, in, func(ctx context.Context, v MFAVerified) error {
		var err error
		resp, err = s.completeMFA(ctx, v)
		return err
	})
	if err != nil {
		if c := core.CodeOf(err); v.UserID != "" && (c == core.CodeMFAInvalidCode || c == core.CodeMFAFailed) {
			s.countMFAFailure(ctx, v.UserID)
		}
		return TokenResponse{}, err
	}
	return resp, nil
}

// completeMFA opens the session of a verified challenge (inside Verify's
// transaction): the user must still be active and the context node covered.
func (s *Service) completeMFA(ctx context.Context, v MFAVerified) (TokenResponse, error) {
	u, err := s.users.UserByID(ctx, v.UserID)
	if core.IsKind(err, core.KindNotFound) || err == nil && u.Status != user.StatusActive {
		return TokenResponse{}, core.Unauthenticated(ErrUserInactive)
	}
	if err != nil {
		return TokenResponse{}, err
	}
	ms, err := s.dir.MembershipsOfUser(ctx, u.ID)
	if err != nil {
		return TokenResponse{}, err
	}
	if v.ContextNodeID != "" {
		ok, err := s.nodeCovered(ctx, v.ContextNodeID, ms)
		if err != nil {
			return TokenResponse{}, err
		}
		if !ok {
			return TokenResponse{}, core.Unauthenticated(ErrContextNode)
		}
	}
	return s.openSession(ctx, u, core.TenantIDs(u.TenantID, ms), v.ContextNodeID, v.IP, v.UserAgent, "", v.AMR)
}

// countMFAFailure hits the per-account throttle key of userID's email. A
// failing limiter only loses the count, so it is logged.
func (s *Service) countMFAFailure(ctx context.Context, userID string) {
	ctx = context.WithoutCancel(ctx)
	u, err := s.users.UserByID(ctx, userID)
	if err != nil {
		s.log.WarnContext(ctx, "mfa failure not counted", "userId", userID, "error", err)
		return
	}
	if _, _, err := s.limiter.Hit(ctx, accountKey(u.Email), s.cfg.AccountFailureWindow); err != nil {
		s.log.WarnContext(ctx, "mfa failure not counted", "userId", userID, "error", err)
	}
}

// passwordAMR is the amr of a password-only login.
func passwordAMR() []string { return []string{token.AMRPassword} }
