package mfa

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/google/uuid"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/auth"
	"github.com/ghasi-ehealth/identity-service/core/token"
)

// errWrongFactor is the cause (never shown) of IDENT_MFA_INVALID_CODE and
// IDENT_MFA_FAILED.
var errWrongFactor = errors.New("mfa: wrong or missing second factor")

// Challenge decides, after a correct password, whether the login needs a
// second factor (auth.SecondFactor). With a verified factor it stores a
// challenge and answers IDENT_MFA_REQUIRED {challengeId, methods,
// webauthn?}; methods lists "totp" (a verified TOTP factor), "webauthn"
// (credentials and a WebAuthn port) and "recovery" (unused recovery codes).
// In an mfaRequired tenant without a factor it answers IDENT_MFA_REQUIRED
// {methods: [], enrollmentToken, enrollmentExpiresIn: 600} (see the
// package doc). Otherwise nil.
func (s *Service) Challenge(ctx context.Context, in auth.ChallengeRequest) error {
	u := in.User
	fs, err := s.store.FactorsOfUser(ctx, u.ID)
	if err != nil {
		return err
	}
	hasVerified := false
	for _, f := range fs {
		hasVerified = hasVerified || f.VerifiedAt != nil
	}
	if !hasVerified {
		t, err := s.tenants.TenantByID(ctx, u.TenantID)
		if err != nil {
			return err
		}
		if !t.MFARequired {
			return nil
		}
		return s.enrollmentRequired(ctx, in)
	}
	methods := []string{}
	if verifiedTOTP(fs) != nil {
		methods = append(methods, auth.MethodTOTP)
	}
	now := s.now()
	ch := Challenge{
		ID: uuid.NewString(), UserID: u.ID, TenantID: u.TenantID, ContextNodeID: in.ContextNodeID,
		IP: in.IP, UserAgent: in.UserAgent, CreatedAt: now, ExpiresAt: now.Add(ChallengeTTL),
	}
	var options json.RawMessage
	if s.webauthn != nil {
		n, err := s.webauthn.CredentialCount(ctx, u.ID)
		if err != nil {
			return err
		}
		if n > 0 {
			if options, ch.WebAuthnState, err = s.webauthn.BeginAssertion(ctx, u.ID); err != nil {
				return err
			}
			methods = append(methods, auth.MethodWebAuthn)
		}
	}
	n, err := s.store.UnusedRecoveryCodes(ctx, u.ID)
	if err != nil {
		return err
	}
	if n > 0 {
		methods = append(methods, auth.MethodRecovery)
	}
	if err := s.store.InsertChallenge(ctx, ch); err != nil {
		return err
	}
	e := mfaRequired()
	e.Extra = map[string]any{"challengeId": ch.ID, "methods": methods}
	if options != nil {
		e.Extra["webauthn"] = options
	}
	return e
}

// enrollmentRequired answers a user of an mfaRequired tenant without a
// factor: IDENT_MFA_REQUIRED with a restricted enrolment credential.
func (s *Service) enrollmentRequired(ctx context.Context, in auth.ChallengeRequest) error {
	now := s.clock.Now()
	tok, _, err := s.enroll.IssueEnrollment(ctx, token.Claims{
		Subject: in.User.ID, TenantID: in.User.TenantID, AMR: []string{token.AMRPassword},
		IssuedAt: now, ExpiresAt: now.Add(token.EnrollmentTTL),
	})
	if err != nil {
		return err
	}
	e := mfaRequired()
	e.Msg = "the tenant requires a second factor; enrol one with enrollmentToken"
	e.Extra = map[string]any{
		"methods": []string{}, "enrollmentToken": tok,
		"enrollmentExpiresIn": int64(token.EnrollmentTTL / time.Second),
	}
	return e
}

func mfaRequired() *core.Error {
	return core.E(core.KindUnauthenticated, core.CodeMFARequired, "a second factor is required")
}

// Verify checks a second factor against an open challenge
// (auth.SecondFactor). TOTP: the code of the step of now ±1; a step is
// accepted once (conditional UPDATE of last_used_step). Recovery: an unused
// code of the user (conditional UPDATE of used_at). WebAuthn: the port's
// FinishAssertion against the state stored with the challenge. On success,
// using the factor up, consuming the challenge and complete run in ONE
// transaction, so a concurrent duplicate of the same code only learns that
// the code was used after the winner's challenge is consumed (it then gets
// IDENT_UNAUTHENTICATED instead of burning the winner's challenge).
//
// A failure adds one to the challenge's count: the first and second answer
// IDENT_MFA_INVALID_CODE, the MaxFailures-th burns the challenge, emits
// identity.user.mfa_challenge_failed.v1 and answers IDENT_MFA_FAILED.
// Errors also: IDENT_UNAUTHENTICATED (unknown, expired or used challenge);
// IDENT_VALIDATION (unknown method); IDENT_UNAVAILABLE; complete's errors.
func (s *Service) Verify(ctx context.Context, in auth.MFAVerifyInput, complete func(ctx context.Context, v auth.MFAVerified) error) (auth.MFAVerified, error) {
	switch in.Method {
	case auth.MethodTOTP, auth.MethodRecovery, auth.MethodWebAuthn:
	default:
		return auth.MFAVerified{}, core.Invalid("unknown method", map[string]string{"method": "must be totp, webauthn or recovery"})
	}
	ch, err := s.store.ChallengeByID(ctx, in.ChallengeID)
	if core.IsKind(err, core.KindNotFound) {
		return auth.MFAVerified{}, core.Unauthenticated(auth.ErrChallenge)
	}
	if err != nil {
		return auth.MFAVerified{}, err
	}
	now := s.now()
	if ch.ConsumedAt != nil || !now.Before(ch.ExpiresAt) {
		return auth.MFAVerified{}, core.Unauthenticated(auth.ErrChallenge)
	}
	v := auth.MFAVerified{UserID: ch.UserID, ContextNodeID: ch.ContextNodeID, IP: ch.IP, UserAgent: ch.UserAgent,
		AMR: []string{token.AMRPassword, token.AMROTP}}
	failed := auth.MFAVerified{UserID: ch.UserID}
	// use uses the factor up inside the transaction; false is a failure.
	var use func(ctx context.Context) (bool, error)
	switch in.Method {
	case auth.MethodTOTP:
		f, step, ok, err := s.matchTOTP(ctx, ch.UserID, in.Code, now)
		if err != nil {
			return auth.MFAVerified{}, err
		}
		if !ok {
			return failed, s.fail(ctx, ch, in.Method, now)
		}
		use = func(ctx context.Context) (bool, error) { return s.store.AdvanceTOTPStep(ctx, f.ID, step, now) }
	case auth.MethodRecovery:
		hash := s.hashRecoveryCode(in.Code)
		use = func(ctx context.Context) (bool, error) { return s.store.UseRecoveryCode(ctx, ch.UserID, hash, now) }
	case auth.MethodWebAuthn:
		v.AMR = []string{token.AMRPassword, token.AMRWebAuthn}
		ok, err := s.checkWebAuthn(ctx, ch, in.Assertion) // the port's writes persist on their own
		if err != nil {
			return auth.MFAVerified{}, err
		}
		if !ok {
			return failed, s.fail(ctx, ch, in.Method, now)
		}
		use = func(context.Context) (bool, error) { return true, nil }
	}
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		ok, err := use(ctx)
		if err != nil {
			return err
		}
		if !ok {
			return errWrongFactor
		}
		if ok, err = s.store.ConsumeChallenge(ctx, ch.ID, now); err != nil {
			return err
		}
		if !ok {
			return core.Unauthenticated(auth.ErrChallenge)
		}
		return complete(ctx, v)
	})
	if errors.Is(err, errWrongFactor) {
		return failed, s.fail(ctx, ch, in.Method, now)
	}
	if err != nil {
		return auth.MFAVerified{}, err
	}
	return v, nil
}

// matchTOTP finds the verified TOTP factor of userID and whether code is its
// code for a step around now.
func (s *Service) matchTOTP(ctx context.Context, userID, code string, now time.Time) (Factor, int64, bool, error) {
	fs, err := s.store.FactorsOfUser(ctx, userID)
	if err != nil {
		return Factor{}, 0, false, err
	}
	f := verifiedTOTP(fs)
	if f == nil {
		return Factor{}, 0, false, nil
	}
	step, ok, err := s.matchCode(*f, code, now)
	return *f, step, ok, err
}

// checkWebAuthn runs the port's FinishAssertion; IDENT_MFA_INVALID_CODE is a
// failed attempt, any other error passes through.
func (s *Service) checkWebAuthn(ctx context.Context, ch Challenge, assertion json.RawMessage) (bool, error) {
	if s.webauthn == nil || len(ch.WebAuthnState) == 0 || len(assertion) == 0 {
		return false, nil
	}
	err := s.webauthn.FinishAssertion(ctx, ch.UserID, ch.WebAuthnState, assertion)
	if core.CodeOf(err) == core.CodeMFAInvalidCode {
		return false, nil
	}
	return err == nil, err
}

// fail counts a failed attempt on ch and builds the answer.
func (s *Service) fail(ctx context.Context, ch Challenge, method string, now time.Time) error {
	var failures int
	err := s.store.InTx(ctx, func(ctx context.Context) error {
		n, ok, err := s.store.RecordChallengeFailure(ctx, ch.ID, MaxFailures, now)
		if err != nil {
			return err
		}
		if !ok {
			return core.Unauthenticated(auth.ErrChallenge) // used or burned meanwhile
		}
		failures = n
		if n < MaxFailures {
			return nil
		}
		return s.store.AddEvents(ctx, methodEvent(now, EventChallengeFailed, ch.UserID, ch.TenantID, method))
	})
	if err != nil {
		return err
	}
	if failures >= MaxFailures {
		return core.Wrap(errWrongFactor, core.KindUnauthenticated, core.CodeMFAFailed,
			"too many wrong second-factor codes; log in again")
	}
	return core.Wrap(errWrongFactor, core.KindUnauthenticated, core.CodeMFAInvalidCode, "wrong second-factor code")
}
