package rest

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/mfa/passkey"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/messaging/eventtest"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

const webauthnTestOrigin = "http://localhost:8080"

// webauthnServer mounts mountWebAuthn on a real passkey.Service and a test
// middleware that sets the principal named by X-Test-Principal
// ("user", "restricted", "service"; absent → none).
func webauthnServer(t *testing.T, db *persistence.DB) (*httptest.Server, user.User) {
	t.Helper()
	t0 := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)
	ctx := context.Background()
	dir := persistence.NewDirectoryStore(db)
	tn := tenancy.Tenant{ID: core.NewID(), Slug: "clinic", Name: "Clinic", CreatedAt: t0, UpdatedAt: t0}
	require.NoError(t, dir.CreateTenant(ctx, tn))
	u := user.User{ID: core.NewID(), TenantID: tn.ID, Email: "ada@example.org", FirstName: "Ada", LastName: "Lovelace",
		Status: user.StatusActive, CreatedAt: t0, UpdatedAt: t0}
	require.NoError(t, dir.CreateUser(ctx, u))

	svc, err := passkey.NewService(persistence.NewPasskeyStore(db), core.NewFixedClock(t0),
		passkey.Config{RPID: "localhost", RPOrigins: []string{webauthnTestOrigin}})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mountWebAuthn(mux, Errors{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, svc)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := &core.Principal{Type: core.PrincipalUser, ID: u.ID, TenantID: u.TenantID, TenantIDs: []string{u.TenantID}}
		switch r.Header.Get("X-Test-Principal") {
		case "user":
		case "restricted":
			p.Restricted = true
		case "service":
			p.Type, p.ID = core.PrincipalServiceAccount, core.NewID()
		default:
			p = nil
		}
		ctx := core.WithClientIP(r.Context(), "203.0.113.7")
		if p != nil {
			ctx = core.WithPrincipal(ctx, p)
		}
		mux.ServeHTTP(w, r.WithContext(ctx))
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, u
}

func webauthnPost(t *testing.T, srv *httptest.Server, path, principal string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, srv.URL+path, bytes.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	if principal != "" {
		req.Header.Set("X-Test-Principal", principal)
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer res.Body.Close()
	out, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	return res.StatusCode, out
}

func problemCode(t *testing.T, body []byte) string {
	t.Helper()
	var p Problem
	require.NoError(t, json.Unmarshal(body, &p), "%s", body)
	return p.Code
}

// virtualCredential skips EC2 keys virtualwebauthn would encode with short
// coordinates (see core/mfa/passkey's tests).
func virtualCredential(t *testing.T) virtualwebauthn.Credential {
	t.Helper()
	for {
		cred := virtualwebauthn.NewCredential(virtualwebauthn.KeyTypeEC2)
		k, err := x509.ParsePKCS8PrivateKey(cred.Key.Data)
		require.NoError(t, err)
		if ec := k.(*ecdsa.PrivateKey); len(ec.X.Bytes()) == 32 && len(ec.Y.Bytes()) == 32 {
			return cred
		}
	}
}

const (
	optionsPath  = "/api/v1/me/mfa/webauthn/register/options"
	registerPath = "/api/v1/me/mfa/webauthn/register"
)

func TestWebAuthnRegistrationOverHTTP(t *testing.T) {
	for name, open := range dbtest.Dialects() {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			srv, u := webauthnServer(t, db)
			rp := virtualwebauthn.RelyingParty{ID: "localhost", Name: passkey.DefaultRPDisplayName, Origin: webauthnTestOrigin}
			auth := virtualwebauthn.NewAuthenticator()

			registerOnce := func(principal string, rp virtualwebauthn.RelyingParty, cred virtualwebauthn.Credential) (int, []byte, []byte) {
				status, opts := webauthnPost(t, srv, optionsPath, principal, nil)
				require.Equal(t, http.StatusOK, status, "%s", opts)
				parsed, err := virtualwebauthn.ParseAttestationOptions(string(opts))
				require.NoError(t, err)
				resp := []byte(virtualwebauthn.CreateAttestationResponse(rp, auth, cred, *parsed))
				status, body := webauthnPost(t, srv, registerPath, principal, resp)
				return status, body, resp
			}

			// Options → virtual authenticator → register, with a restricted
			// (MFA-enrolment) credential.
			status, body, resp := registerOnce("restricted", rp, virtualCredential(t))
			require.Equal(t, http.StatusCreated, status, "%s", body)
			var f struct {
				FactorID   string    `json:"factorId"`
				VerifiedAt time.Time `json:"verifiedAt"`
			}
			require.NoError(t, json.Unmarshal(body, &f))
			require.True(t, core.ValidID(f.FactorID))
			require.False(t, f.VerifiedAt.IsZero())
			eventtest.RequireValidStored(t, db, passkey.EventMFAEnrolled)

			// The same response again: the challenge is spent.
			status, body = webauthnPost(t, srv, registerPath, "user", resp)
			require.Equal(t, http.StatusBadRequest, status)
			require.Equal(t, core.CodeValidation, problemCode(t, body))

			// Wrong origin.
			evil := rp
			evil.Origin = "https://evil.example"
			status, body, _ = registerOnce("user", evil, virtualCredential(t))
			require.Equal(t, http.StatusBadRequest, status)
			require.Equal(t, core.CodeValidation, problemCode(t, body))

			// Up to five; the sixth is refused at the options.
			for range passkey.MaxCredentials - 1 {
				status, body, _ = registerOnce("user", rp, virtualCredential(t))
				require.Equal(t, http.StatusCreated, status, "%s", body)
			}
			status, body = webauthnPost(t, srv, optionsPath, "user", []byte(`{}`))
			require.Equal(t, http.StatusUnprocessableEntity, status)
			require.Equal(t, core.CodeMFACredentialLimit, problemCode(t, body))

			// Callers and bodies.
			status, body = webauthnPost(t, srv, optionsPath, "", nil)
			require.Equal(t, http.StatusUnauthorized, status)
			require.Equal(t, core.CodeUnauthenticated, problemCode(t, body))
			status, body = webauthnPost(t, srv, registerPath, "service", []byte(`{}`))
			require.Equal(t, http.StatusForbidden, status)
			require.Equal(t, core.CodeForbidden, problemCode(t, body))
			for _, b := range []string{``, `[]`, `{"id":`, `"x"`} {
				status, body = webauthnPost(t, srv, registerPath, "user", []byte(b))
				require.Equal(t, http.StatusBadRequest, status, b)
				require.Equal(t, core.CodeValidation, problemCode(t, body))
			}
			status, _ = webauthnPost(t, srv, optionsPath, "user", []byte(`{"unknown":1}`))
			require.Equal(t, http.StatusBadRequest, status)
			big := append([]byte(`{"id":"`), bytes.Repeat([]byte("a"), MaxBodyBytes)...)
			status, _ = webauthnPost(t, srv, registerPath, "user", append(big, `"}`...))
			require.Equal(t, http.StatusBadRequest, status)

			n, err := persistence.NewPasskeyStore(db).CountPasskeys(context.Background(), u.ID)
			require.NoError(t, err)
			require.Equal(t, passkey.MaxCredentials, n)
		})
	}
}

// fakeWebAuthn records the credential Register was given.
type fakeWebAuthn struct{ registered json.RawMessage }

func (f *fakeWebAuthn) RegisterOptions(context.Context) (json.RawMessage, error) {
	return json.RawMessage(`{}`), nil
}

func (f *fakeWebAuthn) Register(_ context.Context, credential json.RawMessage) (passkey.Factor, error) {
	f.registered = credential
	return passkey.Factor{ID: core.NewID(), VerifiedAt: time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)}, nil
}

// TestWebAuthnRegisterRefusesNonUTF8: readRawJSON hands the credential to
// the WebAuthn library as raw bytes, so a body that is not UTF-8, or escapes
// a lone UTF-16 surrogate, is refused as DecodeJSON refuses it (400
// IDENT_VALIDATION, "the body is not valid UTF-8") before it gets there.
// json.Valid alone accepts both.
func TestWebAuthnRegisterRefusesNonUTF8(t *testing.T) {
	svc := &fakeWebAuthn{}
	mux := http.NewServeMux()
	mountWebAuthn(mux, Errors{Logger: slog.New(slog.DiscardHandler)}, svc)
	post := func(body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, registerPath, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/json")
		p := &core.Principal{Type: core.PrincipalUser, ID: core.NewID(), TenantID: core.NewID()}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r.WithContext(core.WithPrincipal(r.Context(), p)))
		return w
	}
	for name, body := range map[string]string{
		"invalid byte":           "{\"id\":\"a\xffb\",\"type\":\"public-key\"}",
		"invalid member name":    "{\"i\xffd\":\"x\"}",
		"lone high surrogate":    `{"id":"a\ud800b","type":"public-key"}`,
		"lone low surrogate":     `{"id":"a\uDFFFb","type":"public-key"}`,
		"high, non-low escape":   `{"id":"\ud800\u0041","type":"public-key"}`,
		"lone low, nested":       `{"response":{"clientDataJSON":"\udc00"}}`,
		"invalid byte, trailing": "{\"id\":\"x\"}\xff",
	} {
		t.Run(name, func(t *testing.T) {
			svc.registered = nil
			w := post(body)
			require.Equal(t, http.StatusBadRequest, w.Code, w.Body.String())
			require.Equal(t, "application/problem+json", w.Header().Get("Content-Type"))
			var p Problem
			require.NoError(t, json.Unmarshal(w.Body.Bytes(), &p), w.Body.String())
			require.Equal(t, core.CodeValidation, p.Code)
			require.Equal(t, "the body is not valid UTF-8", p.Detail)
			require.Nil(t, svc.registered, "the credential never reaches the WebAuthn service")
		})
	}

	// UTF-8, a surrogate pair and an escaped backslash before "u" go through.
	body := `{"id":"کابل \ud83d\ude00 \\ud800","type":"public-key"}`
	w := post(body)
	require.Equal(t, http.StatusCreated, w.Code, w.Body.String())
	require.JSONEq(t, body, string(svc.registered))
}
