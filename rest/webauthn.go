package rest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/mfa/passkey"
)

// WebAuthnRegistration is WebAuthn credential registration as the REST
// transport uses it (passkey.Service).
type WebAuthnRegistration interface {
	RegisterOptions(ctx context.Context) (json.RawMessage, error)
	Register(ctx context.Context, credentialJSON json.RawMessage) (passkey.Factor, error)
}

type webAuthnFactorJSON struct {
	FactorID   string    `json:"factorId"`
	VerifiedAt time.Time `json:"verifiedAt"`
}

// mountWebAuthn serves /me/mfa/webauthn/register/options and
// /me/mfa/webauthn/register (CONTRACT.md §4). Both need a principal;
// restricted (MFA-enrolment) credentials are accepted.
func mountWebAuthn(mux *http.ServeMux, errs Errors, svc WebAuthnRegistration) {
	mux.HandleFunc("POST /api/v1/me/mfa/webauthn/register/options", errs.handler(enrolment(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		if err := drainEmptyOrObject(w, r); err != nil {
			return 0, nil, err
		}
		opts, err := svc.RegisterOptions(r.Context())
		return http.StatusOK, opts, err
	})))
	mux.HandleFunc("POST /api/v1/me/mfa/webauthn/register", errs.handler(enrolment(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		body, err := readRawJSON(w, r)
		if err != nil {
			return 0, nil, err
		}
		f, err := svc.Register(r.Context(), body)
		return http.StatusCreated, webAuthnFactorJSON{FactorID: f.ID, VerifiedAt: f.VerifiedAt.UTC()}, err
	})))
}

// enrolment is authenticated for the MFA-enrolment routes: a restricted
// credential passes.
func enrolment(do func(w http.ResponseWriter, r *http.Request) (int, any, error)) func(w http.ResponseWriter, r *http.Request) (int, any, error) {
	return func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		if _, err := core.RequireAnyPrincipal(r.Context()); err != nil {
			return 0, nil, err
		}
		return do(w, r)
	}
}

// readRawJSON reads a body of at most MaxBodyBytes that must be one JSON
// object, without imposing a Go shape: the PublicKeyCredential has its own
// schema, checked by the WebAuthn library.
func readRawJSON(w http.ResponseWriter, r *http.Request) (json.RawMessage, error) {
	if err := requireJSONContentType(r); err != nil {
		return nil, err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		return nil, decodeError(err)
	}
	if err := requireUTF8(body); err != nil {
		return nil, err
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, core.Invalid("the body is empty; a JSON object is required", nil)
	}
	if trimmed[0] != '{' || !json.Valid(trimmed) {
		return nil, core.Invalid("the body must be a JSON object", nil)
	}
	return json.RawMessage(trimmed), nil
}

// drainEmptyOrObject accepts an empty body or {} (clients often send one
// with a POST); members are unknown fields, rejected as everywhere (§2).
func drainEmptyOrObject(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		return decodeError(err)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return DecodeJSON(w, r, &struct{}{})
}

func requireJSONContentType(r *http.Request) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return core.Invalid("the body must be application/json", nil)
		}
	}
	return nil
}
