package auth

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/token"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/telemetry"
)

// SpanFederatedLogin is the span of a session opened for an IdP login.
const SpanFederatedLogin = "identity.auth.federated_login"

// OpenFederatedSession opens a session with amr ["fed"] for userID, whom an
// identity provider has just authenticated (core/federation), and returns
// the token response. It joins the transaction carried by ctx, so linking
// or provisioning the user and opening the session commit together. The
// password throttle and second factor do not apply: the IdP authenticated
// the user.
//
// Errors: IDENT_INVALID_CREDENTIALS when the user does not exist or is not
// active; IDENT_UNAVAILABLE.
func (s *Service) OpenFederatedSession(ctx context.Context, userID, ip, userAgent string) (resp TokenResponse, err error) {
	start := time.Now()
	ctx, span := s.tracer.Start(ctx, SpanFederatedLogin)
	outcome := telemetry.OutcomeError
	defer func() {
		s.metrics.RecordLogin(ctx, time.Since(start), outcome)
		span.SetAttributes(attribute.String("outcome", outcome))
		if err != nil {
			span.SetStatus(codes.Error, core.CodeOf(err))
		}
		span.End()
	}()
	u, err := s.users.UserByID(ctx, userID)
	if core.IsKind(err, core.KindNotFound) || err == nil && u.Status != user.StatusActive {
		err = errInvalidCredentials(ErrUserInactive)
	}
	if err != nil {
		outcome = loginOutcome(err)
		return TokenResponse{}, err
	}
	ms, err := s.dir.MembershipsOfUser(ctx, u.ID)
	if err != nil {
		return TokenResponse{}, err
	}
	resp, err = s.openSession(ctx, u, core.TenantIDs(u.TenantID, ms), "", eventIP(ip), core.CleanText(userAgent, maxUserAgentLen), "", []string{token.AMRFed})
	outcome = loginOutcome(err)
	return resp, err
}
