package rest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/auth"
	"github.com/ghasi-ehealth/identity-service/core/mfa"
)

type fakeMFA struct{ verified auth.MFAVerifyInput }

func (f *fakeMFA) EnrollTOTP(context.Context) (mfa.Enrollment, error) {
	return mfa.Enrollment{FactorID: "f1", OTPAuthURI: "otpauth://totp/x"}, nil
}

func (f *fakeMFA) ConfirmTOTP(_ context.Context, code string) (mfa.Confirmation, error) {
	if code != "123456" {
		return mfa.Confirmation{}, core.Invalid("invalid code", map[string]string{"code": "invalid code"})
	}
	return mfa.Confirmation{FactorID: "f1", VerifiedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), RecoveryCodes: []string{"AAAAA-BBBBB"}}, nil
}

func (f *fakeMFA) VerifyMFA(_ context.Context, in auth.MFAVerifyInput) (auth.TokenResponse, error) {
	f.verified = in
	if in.Code == "bad" {
		return auth.TokenResponse{}, core.E(core.KindUnauthenticated, core.CodeMFAInvalidCode, "wrong")
	}
	return auth.TokenResponse{AccessToken: "at", RefreshToken: "rt", ExpiresIn: 900 * time.Second}, nil
}

func TestMFARoutes(t *testing.T) {
	svc := &fakeMFA{}
	mux := http.NewServeMux()
	mountMFA(mux, Errors{}, svc)
	do := func(p *core.Principal, path, body string) (int, map[string]any) {
		r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		if p != nil {
			r = r.WithContext(core.WithPrincipal(r.Context(), p))
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		var out map[string]any
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &out), w.Body.String())
		return w.Code, out
	}
	restricted := &core.Principal{Type: core.PrincipalUser, ID: core.NewID(), TenantID: core.NewID(), Restricted: true}

	code, out := do(nil, "/api/v1/me/mfa/totp/enroll", "")
	require.Equal(t, 401, code)
	require.Equal(t, core.CodeUnauthenticated, out["code"])

	code, out = do(restricted, "/api/v1/me/mfa/totp/enroll", "")
	require.Equal(t, 200, code, "the restricted credential may enrol")
	require.Equal(t, map[string]any{"factorId": "f1", "otpauthUri": "otpauth://totp/x", "verifiedAt": nil}, out)

	code, out = do(restricted, "/api/v1/me/mfa/totp/confirm", `{"code":"123456"}`)
	require.Equal(t, 200, code)
	require.Equal(t, "2026-01-02T03:04:05Z", out["verifiedAt"])
	require.Equal(t, []any{"AAAAA-BBBBB"}, out["recoveryCodes"])
	code, out = do(restricted, "/api/v1/me/mfa/totp/confirm", `{"code":"1"}`)
	require.Equal(t, 400, code)
	require.Equal(t, core.CodeValidation, out["code"])

	code, out = do(nil, "/api/v1/auth/mfa/verify", `{"challengeId":"c","method":"webauthn","assertion":{"id":"x"}}`)
	require.Equal(t, 200, code)
	require.Equal(t, "at", out["accessToken"])
	require.JSONEq(t, `{"id":"x"}`, string(svc.verified.Assertion))
	code, out = do(nil, "/api/v1/auth/mfa/verify", `{"challengeId":"c","method":"totp","code":"bad"}`)
	require.Equal(t, 401, code)
	require.Equal(t, core.CodeMFAInvalidCode, out["code"])

	// The restricted credential opens nothing that needs a full one.
	_, _, err := authenticated(func(http.ResponseWriter, *http.Request) (int, any, error) { return 200, nil, nil })(
		httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil).WithContext(core.WithPrincipal(context.Background(), restricted)))
	require.Equal(t, core.CodeForbidden, core.CodeOf(err))
}
