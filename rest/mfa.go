package rest

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/auth"
	"github.com/ghasi-ehealth/identity-service/core/mfa"
)

// MFA is TOTP enrolment (mfa.Service) and the login's second step
// (auth.Service.VerifyMFA) as the REST transport uses them; e.g.
// struct{ *mfa.Service; *auth.Service }{m, a} satisfies it.
type MFA interface {
	EnrollTOTP(ctx context.Context) (mfa.Enrollment, error)
	ConfirmTOTP(ctx context.Context, code string) (mfa.Confirmation, error)
	VerifyMFA(ctx context.Context, in auth.MFAVerifyInput) (auth.TokenResponse, error)
}

type enrollmentJSON struct {
	FactorID   string     `json:"factorId"`
	OTPAuthURI string     `json:"otpauthUri"`
	VerifiedAt *time.Time `json:"verifiedAt"`
}

type confirmationJSON struct {
	FactorID      string    `json:"factorId"`
	VerifiedAt    time.Time `json:"verifiedAt"`
	RecoveryCodes []string  `json:"recoveryCodes"`
}

// mountMFA registers POST /me/mfa/totp/enroll, /me/mfa/totp/confirm (both
// accept the restricted enrolment credential) and /auth/mfa/verify.
func mountMFA(mux *http.ServeMux, errs Errors, svc MFA) {
	mux.HandleFunc("POST /api/v1/me/mfa/totp/enroll", errs.handler(mfaEnrolment(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		e, err := svc.EnrollTOTP(r.Context())
		return http.StatusOK, enrollmentJSON{FactorID: e.FactorID, OTPAuthURI: e.OTPAuthURI, VerifiedAt: utcPtr(e.VerifiedAt)}, err
	})))
	mux.HandleFunc("POST /api/v1/me/mfa/totp/confirm", errs.handler(mfaEnrolment(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		var in struct {
			Code string `json:"code"`
		}
		if err := DecodeJSON(w, r, &in); err != nil {
			return 0, nil, err
		}
		c, err := svc.ConfirmTOTP(r.Context(), in.Code)
		return http.StatusOK, confirmationJSON{FactorID: c.FactorID, VerifiedAt: c.VerifiedAt.UTC(), RecoveryCodes: c.RecoveryCodes}, err
	})))
	mux.HandleFunc("POST /api/v1/auth/mfa/verify", errs.handler(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		var in struct {
			ChallengeID string          `json:"challengeId"`
			Method      string          `json:"method"`
			Code        string          `json:"code"`
			Assertion   json.RawMessage `json:"assertion"`
		}
		if err := DecodeJSON(w, r, &in); err != nil {
			return 0, nil, err
		}
		t, err := svc.VerifyMFA(r.Context(), auth.MFAVerifyInput{ChallengeID: in.ChallengeID, Method: in.Method,
			Code: in.Code, Assertion: in.Assertion})
		return http.StatusOK, tokenResponseOut(t), err
	}))
}

// mfaEnrolment is authenticated for the /me/mfa/* enrolment routes: it answers
// IDENT_UNAUTHENTICATED before the body is read, and accepts the restricted
// enrolment credential (core.RequireAnyPrincipal).
func mfaEnrolment(do func(w http.ResponseWriter, r *http.Request) (int, any, error)) func(w http.ResponseWriter, r *http.Request) (int, any, error) {
	return func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		if _, err := core.RequireAnyPrincipal(r.Context()); err != nil {
			return 0, nil, err
		}
		return do(w, r)
	}
}
