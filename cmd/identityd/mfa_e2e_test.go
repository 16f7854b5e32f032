package main

// End-to-end tests of the second factor (IDENT-US-008 TOTP, IDENT-US-009
// WebAuthn) through the real HTTP endpoints of a running identityd: TOTP
// codes are computed from the enrolled secret, WebAuthn ceremonies are
// answered by a virtual authenticator, and every event is validated
// against its schema.

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core/mfa"
	"github.com/ghasi-ehealth/identity-service/core/mfa/passkey"
)

// TestTOTPMFAEndToEnd: enrolment and confirmation, the login challenge and
// its failures, recovery codes, the enrolment credential of an mfaRequired
// tenant, GraphQL factors and the admin reset.
func TestTOTPMFAEndToEnd(t *testing.T) {
	for name, env := range e2eDialects {
		t.Run(name, func(t *testing.T) {
			s := startService(t, withWebAuthn(withTrustedProxy(env(t))))
			f := newAuthFixture(t, s)
			c := s.from(t)
			email := f.email("totp")
			u := f.activeUser(t, f.tenantA.ID, email, passwordA)

			// No factor yet: the password alone logs in.
			tr := requireTokenResponse(t, c.login(t, email, passwordA, nil))
			require.Equal(t, []string{"pwd"}, s.decodeJWT(t, tr.AccessToken).strs("amr"))
			require.Empty(t, s.myFactors(t, tr.AccessToken))

			// Enrol: a Key URI, nothing verified yet.
			requireProblem(t, c.do(t, http.MethodPost, totpEnrollPath, "", nil), http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")
			enr, gen := c.enrollTOTP(t, tr.AccessToken, email)
			pending := s.myFactors(t, tr.AccessToken)
			require.Len(t, pending, 1)
			require.Equal(t, factorDoc{ID: enr.FactorID, Type: "TOTP"}, pending[0])
			// A pending enrolment does not turn MFA on.
			requireTokenResponse(t, c.login(t, email, passwordA, nil))

			// Confirm: a wrong code is a 400 naming the field; a code computed
			// from the secret verifies the factor and shows 10 recovery codes.
			p := requireProblem(t, c.do(t, http.MethodPost, totpConfirmPath, tr.AccessToken, map[string]any{"code": gen.wrong(t)}),
				http.StatusBadRequest, "IDENT_VALIDATION")
			require.Contains(t, p.Fields, "code")
			conf := c.confirmTOTP(t, tr.AccessToken, enr.FactorID, gen)
			require.Equal(t, []methodEventData{{UserID: u.ID, TenantID: f.tenantA.ID, Method: "totp"}},
				s.methodEvents(t, mfa.EventEnrolled, u.ID))
			// A confirmed TOTP must be reset before enrolling again.
			requireProblem(t, c.do(t, http.MethodPost, totpEnrollPath, tr.AccessToken, nil), http.StatusConflict, "IDENT_STATE_CONFLICT")

			// GraphQL me { factors }.
			fs := s.myFactors(t, tr.AccessToken)
			require.Len(t, fs, 1)
			require.Equal(t, enr.FactorID, fs[0].ID)
			require.Equal(t, "TOTP", fs[0].Type)
			require.NotNil(t, fs[0].VerifiedAt)
			require.WithinDuration(t, conf.VerifiedAt, *fs[0].VerifiedAt, time.Second)

			// Login now needs the second factor.
			ch := requireChallenge(t, c.login(t, email, passwordA, nil), "totp", "recovery")
			code, step := gen.fresh(t)
			tr2 := s.requireMFATokens(t, c.verifyMFA(t, ch.ChallengeID, "totp", code), u.ID, "pwd", "otp")
			gen.used(step)
			var who whoamiDoc
			c.whoami(t, tr2.AccessToken).decode(t, http.StatusOK, &who)
			require.Equal(t, []string{"pwd", "otp"}, who.AMR)
			// The challenge is single use.
			requireProblem(t, c.verifyMFA(t, ch.ChallengeID, "totp", code), http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")
			// The same code on a new challenge: a replay, refused (and the
			// challenge stays usable).
			ch = requireChallenge(t, c.login(t, email, passwordA, nil), "totp", "recovery")
			requireProblem(t, c.verifyMFA(t, ch.ChallengeID, "totp", code), http.StatusUnauthorized, "IDENT_MFA_INVALID_CODE")

			// Three wrong codes: INVALID_CODE, INVALID_CODE, FAILED (burned).
			ch = requireChallenge(t, c.login(t, email, passwordA, nil), "totp", "recovery")
			wrong := gen.wrong(t)
			requireProblem(t, c.verifyMFA(t, ch.ChallengeID, "totp", wrong), http.StatusUnauthorized, "IDENT_MFA_INVALID_CODE")
			requireProblem(t, c.verifyMFA(t, ch.ChallengeID, "totp", wrong), http.StatusUnauthorized, "IDENT_MFA_INVALID_CODE")
			require.Zero(t, s.count(t, `SELECT count(*) FROM events WHERE type = ? AND subject = ?`, mfa.EventChallengeFailed, u.ID))
			requireProblem(t, c.verifyMFA(t, ch.ChallengeID, "totp", wrong), http.StatusUnauthorized, "IDENT_MFA_FAILED")
			require.Equal(t, []methodEventData{{UserID: u.ID, TenantID: f.tenantA.ID, Method: "totp"}},
				s.methodEvents(t, mfa.EventChallengeFailed, u.ID))
			// A correct code no longer opens the burned challenge.
			code, _ = gen.fresh(t)
			res := c.verifyMFA(t, ch.ChallengeID, "totp", code)
			require.Equal(t, http.StatusUnauthorized, res.Status, "body: %s", res.Body)
			requireProblem(t, res, http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")

			// A recovery code works once (amr pwd+otp).
			ch = requireChallenge(t, c.login(t, email, passwordA, nil), "totp", "recovery")
			s.requireMFATokens(t, c.verifyMFA(t, ch.ChallengeID, "recovery", conf.RecoveryCodes[0]), u.ID, "pwd", "otp")
			ch = requireChallenge(t, c.login(t, email, passwordA, nil), "totp", "recovery")
			requireProblem(t, c.verifyMFA(t, ch.ChallengeID, "recovery", conf.RecoveryCodes[0]), http.StatusUnauthorized, "IDENT_MFA_INVALID_CODE")
			s.requireMFATokens(t, c.verifyMFA(t, ch.ChallengeID, "recovery", conf.RecoveryCodes[1]), u.ID, "pwd", "otp")
			// Unknown method.
			ch = requireChallenge(t, c.login(t, email, passwordA, nil), "totp", "recovery")
			p = requireProblem(t, c.verifyMFA(t, ch.ChallengeID, "sms", "123456"), http.StatusBadRequest, "IDENT_VALIDATION")
			require.Contains(t, p.Fields, "method")

			// --- mfaRequired tenant, user without a factor: enrolment credential ---
			tc := s.createTenantREST(t, f.super, "MFA Clinic", "auth-mfa-"+f.tag, false)
			var patched tenantDoc
			s.call(t, http.MethodPatch, "/api/v1/tenants/"+tc.ID, f.super, map[string]any{"mfaRequired": true}).
				decode(t, http.StatusOK, &patched)
			require.True(t, patched.MFARequired)
			emailC := f.email("mfa-required")
			uc := f.activeUser(t, tc.ID, emailC, passwordB)
			cc := s.from(t)
			res = cc.login(t, emailC, passwordB, nil)
			er := requireMFARequired(t, res)
			require.Empty(t, er.Methods)
			require.Empty(t, er.ChallengeID)
			require.NotContains(t, res.members(t), "webauthn")
			require.Equal(t, 600, er.EnrollmentExpiresIn)
			require.NotEmpty(t, er.EnrollmentToken)
			ej := s.decodeJWT(t, er.EnrollmentToken) // signed by a JWKS key
			require.Equal(t, "mfa-enroll+jwt", ej.Header["typ"])
			require.Equal(t, uc.ID, ej.str("sub"))
			require.InDelta(t, 600, ej.num("exp")-ej.num("iat"), 1)

			// The enrolment credential opens only the enrolment endpoints
			// (and whoami).
			enrollTok := er.EnrollmentToken
			cc.requireAccepted(t, enrollTok, uc.ID)
			requireProblem(t, cc.do(t, http.MethodGet, "/api/v1/users/"+uc.ID, enrollTok, nil), http.StatusForbidden, "IDENT_FORBIDDEN")
			requireProblem(t, cc.do(t, http.MethodPost, "/api/v1/auth/logout", enrollTok, nil), http.StatusForbidden, "IDENT_FORBIDDEN")
			requireProblem(t, cc.do(t, http.MethodPost, "/api/v1/auth/logout-all", enrollTok, nil), http.StatusForbidden, "IDENT_FORBIDDEN")
			gq := s.graphql(t, enrollTok, `{ me { id } }`, nil)
			require.Equal(t, "IDENT_FORBIDDEN", gq.code(), "errors: %+v", gq.Errors)
			gq = s.graphql(t, enrollTok, `{ me { factors { id } } }`, nil)
			require.Equal(t, "IDENT_FORBIDDEN", gq.code(), "errors: %+v", gq.Errors)

			enrC, genC := cc.enrollTOTP(t, enrollTok, emailC)
			cc.confirmTOTP(t, enrollTok, enrC.FactorID, genC)
			require.Equal(t, []methodEventData{{UserID: uc.ID, TenantID: tc.ID, Method: "totp"}},
				s.methodEvents(t, mfa.EventEnrolled, uc.ID))
			// Still no full access with it after enrolling.
			requireProblem(t, cc.do(t, http.MethodGet, "/api/v1/users/"+uc.ID, enrollTok, nil), http.StatusForbidden, "IDENT_FORBIDDEN")
			// Log in again and complete the challenge.
			ch = requireChallenge(t, cc.login(t, emailC, passwordB, nil), "totp", "recovery")
			code, step = genC.fresh(t)
			trC := s.requireMFATokens(t, cc.verifyMFA(t, ch.ChallengeID, "totp", code), uc.ID, "pwd", "otp")
			genC.used(step)
			var got userDoc
			cc.do(t, http.MethodGet, "/api/v1/users/"+uc.ID, trC.AccessToken, nil).decode(t, http.StatusOK, &got)
			require.Equal(t, uc.ID, got.ID)

			// --- admin reset (lost phone) ---
			var me struct{ Me userDoc }
			s.graphql(t, f.super, `{ me { id } }`, nil).decode(t, &me)
			var reset struct{ ResetMfaFactors bool }
			s.graphql(t, f.super, `mutation($id: ID!) { resetMfaFactors(userId: $id) }`, map[string]any{"id": u.ID}).decode(t, &reset)
			require.True(t, reset.ResetMfaFactors)
			env := s.eventFor(t, mfa.EventReset, u.ID)
			var rd struct{ UserID, TenantID, ActorID string }
			require.NoError(t, json.Unmarshal(env.Data, &rd))
			require.Equal(t, struct{ UserID, TenantID, ActorID string }{u.ID, f.tenantA.ID, me.Me.ID}, rd)
			// Tenant A is not mfaRequired: the password alone logs in again.
			tr = requireTokenResponse(t, c.login(t, email, passwordA, nil))
			require.Equal(t, []string{"pwd"}, s.decodeJWT(t, tr.AccessToken).strs("amr"))
			require.Empty(t, s.myFactors(t, tr.AccessToken))
			// … and the old recovery codes are gone with the factors: a new
			// enrolment starts afresh.
			_, gen2 := c.enrollTOTP(t, tr.AccessToken, email)
			require.NotEqual(t, gen.secret, gen2.secret)
		})
	}
}

// TestWebAuthnMFAEndToEnd: registration and assertion with a virtual
// authenticator through the real endpoints, wrong origins, a reused
// registration challenge and the credential limit.
func TestWebAuthnMFAEndToEnd(t *testing.T) {
	s := startService(t, withWebAuthn(withTrustedProxy(baseEnv(t))))
	f := newAuthFixture(t, s)
	c := s.from(t)
	email := f.email("passkey")
	u := f.activeUser(t, f.tenantA.ID, email, passwordA)
	tr := c.mustLogin(t, email, passwordA, nil)
	authn := virtualwebauthn.NewAuthenticator()
	evil := goodRP()
	evil.Origin = "https://evil.example"

	// Registration options per FIDO2: the configured RP, the user, a
	// challenge, ES256 among the algorithms.
	requireProblem(t, c.do(t, http.MethodPost, waOptionsPath, "", nil), http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")
	opts := c.registerOptions(t, tr.AccessToken)
	var o struct {
		PublicKey struct {
			Challenge string `json:"challenge"`
			RP        struct{ ID, Name string }
			User      struct {
				ID          string `json:"id"`
				Name        string `json:"name"`
				DisplayName string `json:"displayName"`
			}
			PubKeyCredParams []struct {
				Type string `json:"type"`
				Alg  int    `json:"alg"`
			}
			Timeout int `json:"timeout"`
		}
	}
	require.NoError(t, json.Unmarshal(opts, &o), "%s", opts)
	require.Equal(t, testWebAuthnRPID, o.PublicKey.RP.ID)
	require.Equal(t, passkey.DefaultRPDisplayName, o.PublicKey.RP.Name)
	require.GreaterOrEqual(t, len(o.PublicKey.Challenge), 22, "≥ 128-bit challenge")
	require.NotEmpty(t, o.PublicKey.User.ID)
	require.Equal(t, email, o.PublicKey.User.Name)
	require.Contains(t, o.PublicKey.PubKeyCredParams, struct {
		Type string `json:"type"`
		Alg  int    `json:"alg"`
	}{"public-key", -7})

	// The authenticator creates a credential for those options → 201.
	cred1 := newVirtualCredential(t)
	res := c.do(t, http.MethodPost, waRegisterPath, tr.AccessToken, attest(t, opts, goodRP(), authn, cred1))
	var f1 webAuthnFactorDoc
	res.decode(t, http.StatusCreated, &f1)
	require.ElementsMatch(t, []string{"factorId", "verifiedAt"}, res.members(t))
	require.WithinDuration(t, time.Now(), f1.VerifiedAt, time.Minute)
	authn.AddCredential(cred1)
	require.Equal(t, []methodEventData{{UserID: u.ID, TenantID: f.tenantA.ID, Method: "webauthn"}},
		s.methodEvents(t, passkey.EventMFAEnrolled, u.ID))

	// The same options (challenge) again, for a second credential: spent.
	p := requireProblem(t, c.do(t, http.MethodPost, waRegisterPath, tr.AccessToken, attest(t, opts, goodRP(), authn, newVirtualCredential(t))),
		http.StatusBadRequest, "IDENT_VALIDATION")
	require.NotEmpty(t, p.Detail)
	// Client data signed at another origin.
	requireProblem(t, c.do(t, http.MethodPost, waRegisterPath, tr.AccessToken,
		attest(t, c.registerOptions(t, tr.AccessToken), evil, authn, newVirtualCredential(t))), http.StatusBadRequest, "IDENT_VALIDATION")
	// Another RP ID (origin allowed).
	otherRP := goodRP()
	otherRP.ID = "example.org"
	requireProblem(t, c.do(t, http.MethodPost, waRegisterPath, tr.AccessToken,
		attest(t, c.registerOptions(t, tr.AccessToken), otherRP, authn, newVirtualCredential(t))), http.StatusBadRequest, "IDENT_VALIDATION")
	fs := s.myFactors(t, tr.AccessToken)
	require.Len(t, fs, 1, "the refused registrations stored nothing")
	require.Equal(t, f1.FactorID, fs[0].ID)
	require.Equal(t, "WEBAUTHN", fs[0].Type)
	require.NotNil(t, fs[0].VerifiedAt)

	// Login → IDENT_MFA_REQUIRED with webauthn request options (no TOTP,
	// no recovery codes).
	ch := requireChallenge(t, c.login(t, email, passwordA, nil), "webauthn")
	var ro struct {
		PublicKey struct {
			Challenge        string `json:"challenge"`
			RPID             string `json:"rpId"`
			AllowCredentials []struct {
				Type string `json:"type"`
				ID   string `json:"id"`
			} `json:"allowCredentials"`
		} `json:"publicKey"`
	}
	require.NoError(t, json.Unmarshal(ch.WebAuthn, &ro), "%s", ch.WebAuthn)
	require.Equal(t, testWebAuthnRPID, ro.PublicKey.RPID)
	require.NotEmpty(t, ro.PublicKey.Challenge)
	require.Len(t, ro.PublicKey.AllowCredentials, 1)

	// An assertion signed at a wrong origin: a failed attempt, the
	// challenge stays usable.
	cred1.Counter = 1
	requireProblem(t, c.verifyAssertion(t, ch.ChallengeID, assertFor(t, ch.WebAuthn, evil, authn, cred1)),
		http.StatusUnauthorized, "IDENT_MFA_INVALID_CODE")
	// A TOTP code where the user has none: also just a failed attempt.
	requireProblem(t, c.verifyMFA(t, ch.ChallengeID, "totp", "123456"), http.StatusUnauthorized, "IDENT_MFA_INVALID_CODE")
	// The right origin → 200, amr pwd+webauthn.
	good := assertFor(t, ch.WebAuthn, goodRP(), authn, cred1)
	tr2 := s.requireMFATokens(t, c.verifyAssertion(t, ch.ChallengeID, good), u.ID, "pwd", "webauthn")
	var who whoamiDoc
	c.whoami(t, tr2.AccessToken).decode(t, http.StatusOK, &who)
	require.Equal(t, []string{"pwd", "webauthn"}, who.AMR)
	// The challenge is used up; the same assertion on a new challenge does
	// not sign that challenge.
	requireProblem(t, c.verifyAssertion(t, ch.ChallengeID, good), http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")
	ch = requireChallenge(t, c.login(t, email, passwordA, nil), "webauthn")
	requireProblem(t, c.verifyAssertion(t, ch.ChallengeID, good), http.StatusUnauthorized, "IDENT_MFA_INVALID_CODE")
	cred1.Counter = 2
	s.requireMFATokens(t, c.verifyAssertion(t, ch.ChallengeID, assertFor(t, ch.WebAuthn, goodRP(), authn, cred1)), u.ID, "pwd", "webauthn")

	// Up to five credentials; the 6th is 422 IDENT_MFA_CREDENTIAL_LIMIT,
	// both at the options and at a register whose options were fetched
	// before the 5th.
	for range passkey.MaxCredentials - 2 {
		cred := newVirtualCredential(t)
		c.registerCredential(t, tr.AccessToken, authn, cred)
		authn.AddCredential(cred)
	}
	optsA, optsB := c.registerOptions(t, tr.AccessToken), c.registerOptions(t, tr.AccessToken)
	res = c.do(t, http.MethodPost, waRegisterPath, tr.AccessToken, attest(t, optsA, goodRP(), authn, newVirtualCredential(t)))
	require.Equal(t, http.StatusCreated, res.Status, "body: %s", res.Body)
	requireProblem(t, c.do(t, http.MethodPost, waRegisterPath, tr.AccessToken, attest(t, optsB, goodRP(), authn, newVirtualCredential(t))),
		http.StatusUnprocessableEntity, "IDENT_MFA_CREDENTIAL_LIMIT")
	requireProblem(t, c.do(t, http.MethodPost, waOptionsPath, tr.AccessToken, nil), http.StatusUnprocessableEntity, "IDENT_MFA_CREDENTIAL_LIMIT")
	fs = s.myFactors(t, tr.AccessToken)
	require.Len(t, fs, passkey.MaxCredentials)
	require.Len(t, s.methodEvents(t, passkey.EventMFAEnrolled, u.ID), passkey.MaxCredentials)
	ch = requireChallenge(t, c.login(t, email, passwordA, nil), "webauthn")
	require.NoError(t, json.Unmarshal(ch.WebAuthn, &ro))
	require.Len(t, ro.PublicKey.AllowCredentials, passkey.MaxCredentials)
}

// TestWebAuthnEnrolmentCredential: a user of an mfaRequired tenant without a
// factor registers a passkey with the enrolment credential, then completes
// the WebAuthn challenge.
func TestWebAuthnEnrolmentCredential(t *testing.T) {
	s := startService(t, withWebAuthn(withTrustedProxy(baseEnv(t))))
	f := newAuthFixture(t, s)
	var tn tenantDoc
	s.call(t, http.MethodPost, "/api/v1/tenants", f.super,
		map[string]any{"name": "Passkey Clinic", "slug": "auth-pk-" + f.tag, "mfaRequired": true}).decode(t, http.StatusCreated, &tn)
	require.True(t, tn.MFARequired)
	c := s.from(t)
	email := f.email("pk-enrol")
	u := f.activeUser(t, tn.ID, email, passwordB)
	er := requireMFARequired(t, c.login(t, email, passwordB, nil))
	require.Empty(t, er.Methods)
	require.NotEmpty(t, er.EnrollmentToken)

	authn := virtualwebauthn.NewAuthenticator()
	cred := newVirtualCredential(t)
	c.registerCredential(t, er.EnrollmentToken, authn, cred)
	authn.AddCredential(cred)

	ch := requireChallenge(t, c.login(t, email, passwordB, nil), "webauthn")
	cred.Counter = 1
	tr := s.requireMFATokens(t, c.verifyAssertion(t, ch.ChallengeID, assertFor(t, ch.WebAuthn, goodRP(), authn, cred)),
		u.ID, "pwd", "webauthn")
	c.requireAccepted(t, tr.AccessToken, u.ID)
}
