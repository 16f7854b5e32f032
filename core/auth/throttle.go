package auth

import (
	"context"
	"errors"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/telemetry"
)

// throttle admits or refuses a login attempt before any hash is computed.
//
//   - Client IP: refused (IDENT_RATE_LIMITED) once the address has
//     IPFailureLimit failures in the window (Peek); the attempt itself is
//     counted only if it fails (failedFromIP). So correct logins, however
//     many run at once behind one clinic's NAT address, never count and are
//     never refused, and refused attempts do not extend a block.
//   - Account: the attempt is counted before hashing (one atomic Hit), which
//     bounds the hashes parallel guesses at one account can buy to
//     AccountFailureLimit; it is taken back when the attempt turns out not
//     to be a failure (undo), and at once when it is refused.
//
// An attempt from a blocked IP is not counted against the account, so one
// noisy address cannot also lock out the accounts it names. It returns the
// account key it counted.
func (s *Service) throttle(ctx context.Context, ip, email string) (string, error) {
	n, reset, err := s.limiter.Peek(ctx, ipKey(ip))
	if err != nil {
		return "", dependencyError(err)
	}
	if n >= int64(s.cfg.IPFailureLimit) {
		return "", rateLimited(reset)
	}
	ak := accountKey(email)
	n, reset, err = s.limiter.Hit(ctx, ak, s.cfg.AccountFailureWindow)
	if err != nil {
		return "", dependencyError(err)
	}
	if n > int64(s.cfg.AccountFailureLimit) {
		s.undo(ctx, ak)
		return "", rateLimited(reset)
	}
	return ak, nil
}

// failedFromIP counts a failed login against the client IP. A failing
// limiter only loses the count, so it is logged.
func (s *Service) failedFromIP(ctx context.Context, ip string) {
	ctx = context.WithoutCancel(ctx)
	if _, _, err := s.limiter.Hit(ctx, ipKey(ip), s.cfg.IPFailureWindow); err != nil {
		s.log.WarnContext(ctx, "rate limiter hit failed", "error", err)
	}
}

// undo takes back the hit under key of an attempt that turned out not to be
// a failure. A failing Undo only leaves the count one too high, so it is
// logged, not returned.
func (s *Service) undo(ctx context.Context, key string) {
	ctx = context.WithoutCancel(ctx)
	if err := s.limiter.Undo(ctx, key); err != nil {
		s.log.WarnContext(ctx, "rate limiter undo failed", "error", err)
	}
}

// rateLimited builds IDENT_RATE_LIMITED with RetryAfter = the time until the
// window ends, in whole seconds, at least one.
func rateLimited(resetIn time.Duration) *core.Error {
	e := core.E(core.KindRateLimited, core.CodeRateLimited, "too many failed login attempts; try again later")
	e.RetryAfter = max(ceilSecond(resetIn), time.Second)
	return e
}

// dependencyError passes core errors through and makes anything else
// IDENT_UNAVAILABLE: without a count there is no login (fail closed).
func dependencyError(err error) error {
	var ce *core.Error
	if errors.As(err, &ce) {
		return err
	}
	return core.Unavailable(err)
}

// loginOutcome maps a Login result to its metric outcome.
func loginOutcome(err error) string {
	switch core.CodeOf(err) {
	case "":
		return telemetry.OutcomeSuccess
	case core.CodeInvalidCredentials:
		return telemetry.OutcomeInvalidCredentials
	case core.CodeRateLimited:
		return telemetry.OutcomeRateLimited
	case core.CodeOverloaded:
		return telemetry.OutcomeOverloaded
	case core.CodeMFARequired:
		return telemetry.OutcomeMFARequired
	}
	return telemetry.OutcomeError
}
