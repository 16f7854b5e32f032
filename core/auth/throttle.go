package auth

import (
	"context"
	"errors"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/telemetry"
)

// throttle counts a login attempt under the client IP and the account before
// any hash is computed, and refuses it with IDENT_RATE_LIMITED when either
// count is over its limit. Counting first (one atomic Hit per key) is what
// bounds the hashes parallel guesses can buy: of any number of concurrent
// attempts at most the limit get a count within it. It returns the keys it
// counted, for undo after a success.
//
// An attempt from a blocked IP is not counted against the account, so one
// noisy address cannot also lock out the accounts it names; an attempt
// refused for the account stays counted against the IP.
func (s *Service) throttle(ctx context.Context, ip, email string) ([]string, error) {
	ik := ipKey(ip)
	n, reset, err := s.limiter.Hit(ctx, ik, s.cfg.IPFailureWindow)
	if err != nil {
		return nil, dependencyError(err)
	}
	if n > int64(s.cfg.IPFailureLimit) {
		return nil, rateLimited(reset)
	}
	ak := accountKey(email)
	n, reset, err = s.limiter.Hit(ctx, ak, s.cfg.AccountFailureWindow)
	if err != nil {
		s.undo(ctx, []string{ik})
		return nil, dependencyError(err)
	}
	if n > int64(s.cfg.AccountFailureLimit) {
		return nil, rateLimited(reset)
	}
	return []string{ik, ak}, nil
}

// undo takes back the hits of an attempt that turned out not to be a failure.
// A failing Undo only leaves the count one too high, so it is logged, not
// returned.
func (s *Service) undo(ctx context.Context, keys []string) {
	ctx = context.WithoutCancel(ctx)
	for _, k := range keys {
		if err := s.limiter.Undo(ctx, k); err != nil {
			s.log.WarnContext(ctx, "rate limiter undo failed", "error", err)
		}
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
