package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core/user"
)

const verifyPath = "/api/v1/auth/verify-email"

// TestEmailVerificationThroughREST is IDENT-US-004: the token travels in the
// registered event's verificationUrl; redeeming it activates the user once
// (setting the first password of an admin-created user), and a replayed,
// forged or expired token answers 422.
func TestEmailVerificationThroughREST(t *testing.T) {
	for name, env := range e2eDialects {
		t.Run(name, func(t *testing.T) {
			s := startService(t, env(t))
			w := newWorld(t, s)

			// An admin-created user without a password.
			u := s.createUserREST(t, w.tokA, map[string]any{"email": "farida.noori@clinic-a.example.org", "firstName": "Farida", "lastName": "Noori"})
			tok := s.verificationToken(t, u.ID)

			// Input problems leave the token usable.
			p := requireProblem(t, s.call(t, http.MethodPost, verifyPath, "", map[string]any{"token": tok}), http.StatusBadRequest, "IDENT_VALIDATION")
			require.Contains(t, p.Fields, "password", "a passwordless user must choose one")
			p = requireProblem(t, s.call(t, http.MethodPost, verifyPath, "", map[string]any{"token": tok, "password": "password123"}), http.StatusBadRequest, "IDENT_VALIDATION")
			require.Contains(t, p.Fields, "password", "a common password is refused")
			p = requireProblem(t, s.call(t, http.MethodPost, verifyPath, "", map[string]any{"token": tok, "password": "short"}), http.StatusBadRequest, "IDENT_VALIDATION")
			require.Contains(t, p.Fields, "password")
			p = requireProblem(t, s.call(t, http.MethodPost, verifyPath, "", map[string]any{"token": tok, "password": "farida.noori@clinic-a.example.org"}), http.StatusBadRequest, "IDENT_VALIDATION")
			require.Contains(t, p.Fields, "password", "the account's own email is refused")
			p = requireProblem(t, s.call(t, http.MethodPost, verifyPath, "", map[string]any{"token": tok, "password": goodPassword, "email": "x@y.org"}), http.StatusBadRequest, "IDENT_VALIDATION")
			require.Contains(t, p.Fields, "email", "unknown field")
			p = requireProblem(t, s.call(t, http.MethodPost, verifyPath, "", map[string]any{"password": goodPassword}), http.StatusBadRequest, "IDENT_VALIDATION")
			require.Contains(t, p.Fields, "token")
			status, _ := s.storedUser(t, u.ID)
			require.Equal(t, "pending_verification", status)

			var out struct{ User userDoc }
			res := s.call(t, http.MethodPost, verifyPath, "", map[string]any{"token": tok, "password": goodPassword})
			res.decode(t, http.StatusOK, &out)
			require.Equal(t, []string{"user"}, res.members(t))
			require.Equal(t, u.ID, out.User.ID)
			require.Equal(t, "active", out.User.Status)
			require.Equal(t, u.Email, out.User.Email)
			env := s.eventFor(t, user.EventEmailVerified, u.ID)
			require.Equal(t, w.tenantA.ID, env.TenantID)
			var d user.EmailVerifiedData
			require.NoError(t, json.Unmarshal(env.Data, &d))
			require.Equal(t, user.EmailVerifiedData{UserID: u.ID, TenantID: w.tenantA.ID}, d)
			require.NotContains(t, string(env.Data), goodPassword)
			var hash string
			require.NoError(t, s.main.db.Bun().QueryRowContext(context.Background(), `SELECT password_hash FROM users WHERE id = ?`, u.ID).Scan(&hash))
			require.Regexp(t, `^\$argon2id\$`, hash, "the first password is stored as an argon2id hash")
			var fetched userDoc
			s.call(t, http.MethodGet, "/api/v1/users/"+u.ID, w.tokA, nil).decode(t, http.StatusOK, &fetched)
			require.Equal(t, "active", fetched.Status)

			// Replay, forgery, garbage: 422, nothing emitted.
			before := s.eventCount(t)
			forged := make([]byte, 32)
			_, _ = rand.Read(forged)
			for _, bad := range []map[string]any{
				{"token": tok, "password": goodPassword},
				{"token": tok},
				{"token": base64.RawURLEncoding.EncodeToString(forged), "password": goodPassword},
				{"token": "not-a-token"},
				{"token": tok + "x"},
			} {
				requireProblem(t, s.call(t, http.MethodPost, verifyPath, "", bad), http.StatusUnprocessableEntity, "IDENT_VERIFICATION_TOKEN_INVALID")
			}
			require.Equal(t, before, s.eventCount(t))
			require.Len(t, s.eventsFor(t, user.EventEmailVerified, u.ID), 1)

			// A user created with a password verifies without one.
			withPw := s.createUserREST(t, w.tokA, map[string]any{"email": "with.password@clinic-a.example.org", "firstName": "With", "lastName": "Password", "password": goodPassword})
			tok2 := s.verificationToken(t, withPw.ID)
			p = requireProblem(t, s.call(t, http.MethodPost, verifyPath, "", map[string]any{"token": tok2, "password": "another good passphrase"}), http.StatusBadRequest, "IDENT_VALIDATION")
			require.Contains(t, p.Fields, "password", "the account already has a password")

			// 10 concurrent redemptions of one fresh token: exactly one wins.
			statuses := make([]int, 10)
			errs := make([]error, len(statuses))
			var wg sync.WaitGroup
			for i := range statuses {
				wg.Go(func() {
					statuses[i], errs[i] = s.statusOf(http.MethodPost, verifyPath, "", map[string]any{"token": tok2})
				})
			}
			wg.Wait()
			require.NoError(t, errors.Join(errs...))
			slices.Sort(statuses)
			want := slices.Repeat([]int{http.StatusUnprocessableEntity}, 9)
			require.Equal(t, append([]int{http.StatusOK}, want...), statuses)
			require.Len(t, s.eventsFor(t, user.EventEmailVerified, withPw.ID), 1)
			status, _ = s.storedUser(t, withPw.ID)
			require.Equal(t, "active", status)

			// An expired token is refused too (its expiry moved into the past).
			late := s.createUserREST(t, w.tokA, map[string]any{"email": "late@clinic-a.example.org", "firstName": "Late", "lastName": "Comer", "password": goodPassword})
			_, err := s.main.db.Bun().ExecContext(context.Background(), `UPDATE verification_tokens SET expires_at = ? WHERE user_id = ?`, time.Now().Add(-time.Minute).UTC(), late.ID)
			require.NoError(t, err)
			requireProblem(t, s.call(t, http.MethodPost, verifyPath, "", map[string]any{"token": s.verificationToken(t, late.ID)}),
				http.StatusUnprocessableEntity, "IDENT_VERIFICATION_TOKEN_INVALID")
			status, _ = s.storedUser(t, late.ID)
			require.Equal(t, "pending_verification", status)

			// The token of an erased user is gone with it.
			gone := s.createUserREST(t, w.tokA, map[string]any{"email": "gone@clinic-a.example.org", "firstName": "Gone", "lastName": "Soon", "password": goodPassword})
			goneTok := s.verificationToken(t, gone.ID)
			s.call(t, http.MethodDelete, "/api/v1/users/"+gone.ID, w.tokA, nil).decode(t, http.StatusOK, &fetched)
			requireProblem(t, s.call(t, http.MethodPost, verifyPath, "", map[string]any{"token": goneTok}),
				http.StatusUnprocessableEntity, "IDENT_VERIFICATION_TOKEN_INVALID")
		})
	}
}

// TestSelfRegistrationThroughREST: POST /auth/register works without a
// credential on a tenant that allows it, emits the registered event that
// carries the verification link, and is refused (403) everywhere else.
func TestSelfRegistrationThroughREST(t *testing.T) {
	for name, env := range e2eDialects {
		t.Run(name, func(t *testing.T) {
			s := startService(t, env(t))
			w := newWorld(t, s) // A allows self-registration, B does not
			const registerPath = "/api/v1/auth/register"
			body := func(tenantID, email string) map[string]any {
				return map[string]any{"tenantId": tenantID, "email": email, "password": goodPassword, "firstName": "Patient", "lastName": "Portal"}
			}

			res := s.call(t, http.MethodPost, registerPath, "", body(w.tenantA.ID, " Patient.One@Example.org "))
			var out struct{ User userDoc }
			res.decode(t, http.StatusCreated, &out)
			require.Equal(t, []string{"user"}, res.members(t))
			u := out.User
			require.Equal(t, "patient.one@example.org", u.Email)
			require.Equal(t, w.tenantA.ID, u.TenantID)
			require.Equal(t, "pending_verification", u.Status)
			require.Nil(t, u.DeactivatedAt)
			data := s.registeredData(t, u.ID)
			require.Equal(t, "patient.one@example.org", data.Email)
			require.Equal(t, user.StatusPendingVerification, data.Status)
			require.NotEmpty(t, data.VerificationURL)
			require.NotEmpty(t, data.VerificationExpiresAt)

			// The link activates the account; no password needed (it has one).
			verified := s.verifyEmail(t, u.ID, "")
			require.Equal(t, u.ID, verified.ID)
			s.eventFor(t, user.EventEmailVerified, u.ID)

			requireProblem(t, s.call(t, http.MethodPost, registerPath, "", body(w.tenantA.ID, "PATIENT.ONE@example.org")), http.StatusConflict, "IDENT_EMAIL_DUPLICATE")

			// Refused: B does not allow it; an unknown tenant looks the same.
			before, users := s.eventCount(t), s.count(t, `SELECT count(*) FROM users`)
			for _, tenantID := range []string{w.tenantB.ID, "01900000-0000-7000-8000-0000000000ff", w.platformID} {
				requireProblem(t, s.call(t, http.MethodPost, registerPath, "", body(tenantID, "patient.two@example.org")), http.StatusForbidden, "IDENT_REGISTRATION_DISABLED")
			}
			// A bearer token changes nothing.
			requireProblem(t, s.call(t, http.MethodPost, registerPath, w.tokB, body(w.tenantB.ID, "patient.two@example.org")), http.StatusForbidden, "IDENT_REGISTRATION_DISABLED")
			require.Equal(t, before, s.eventCount(t))
			require.Equal(t, users, s.count(t, `SELECT count(*) FROM users`))

			// Turning the setting on opens B; turning it off closes A.
			s.call(t, http.MethodPatch, "/api/v1/tenants/"+w.tenantB.ID, w.tokB, map[string]any{"selfRegistration": true}).decode(t, http.StatusOK, &tenantDoc{})
			s.call(t, http.MethodPost, registerPath, "", body(w.tenantB.ID, "patient.two@example.org")).decode(t, http.StatusCreated, &out)
			require.Equal(t, w.tenantB.ID, out.User.TenantID)
			s.call(t, http.MethodPatch, "/api/v1/tenants/"+w.tenantA.ID, w.tokA, map[string]any{"selfRegistration": false}).decode(t, http.StatusOK, &tenantDoc{})
			requireProblem(t, s.call(t, http.MethodPost, registerPath, "", body(w.tenantA.ID, "patient.three@example.org")), http.StatusForbidden, "IDENT_REGISTRATION_DISABLED")
			s.call(t, http.MethodPatch, "/api/v1/tenants/"+w.tenantA.ID, w.tokA, map[string]any{"selfRegistration": true}).decode(t, http.StatusOK, &tenantDoc{})

			// Bad bodies: 400 naming the fields.
			for _, tc := range []struct {
				name   string
				body   any
				fields []string
			}{
				{"unknown field", map[string]any{"tenantId": w.tenantA.ID, "email": "a@example.org", "password": goodPassword, "firstName": "A", "lastName": "B", "role": "TENANT_ADMIN"}, []string{"role"}},
				{"bad email", map[string]any{"tenantId": w.tenantA.ID, "email": "not an email", "password": goodPassword, "firstName": "A", "lastName": "B"}, []string{"email"}},
				{"short password", map[string]any{"tenantId": w.tenantA.ID, "email": "a@example.org", "password": "short", "firstName": "A", "lastName": "B"}, []string{"password"}},
				{"common password", map[string]any{"tenantId": w.tenantA.ID, "email": "a@example.org", "password": "password123", "firstName": "A", "lastName": "B"}, []string{"password"}},
				{"missing password and names", map[string]any{"tenantId": w.tenantA.ID, "email": "a@example.org"}, []string{"password", "firstName", "lastName"}},
				{"tenant id not a UUID", map[string]any{"tenantId": "clinic-a", "email": "a@example.org", "password": goodPassword, "firstName": "A", "lastName": "B"}, []string{"tenantId"}},
				{"wrong type", map[string]any{"tenantId": w.tenantA.ID, "email": "a@example.org", "password": 12345678, "firstName": "A", "lastName": "B"}, []string{"password"}},
				{"not JSON", `tenantId=x`, nil},
				{"two values", `{} {}`, nil},
				{"empty", ``, nil},
			} {
				t.Run(tc.name, func(t *testing.T) {
					p := requireProblem(t, s.call(t, http.MethodPost, registerPath, "", tc.body), http.StatusBadRequest, "IDENT_VALIDATION")
					require.Len(t, p.Fields, len(tc.fields), "%v", p.Fields)
					for _, f := range tc.fields {
						require.Contains(t, p.Fields, f)
					}
				})
			}
			require.Equal(t, 0, s.count(t, `SELECT count(*) FROM users WHERE email = 'a@example.org'`))
		})
	}
}
