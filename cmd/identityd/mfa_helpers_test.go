package main

// Helpers for the end-to-end tests of the second factor (IDENT-US-008/009):
// TOTP codes computed from the enrolled secret, a virtual WebAuthn
// authenticator (github.com/descope/virtualwebauthn) answering the options
// of the real HTTP endpoints, and the IDENT_MFA_REQUIRED problem.

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base32"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core/mfa/passkey"
)

const (
	totpEnrollPath   = "/api/v1/me/mfa/totp/enroll"
	totpConfirmPath  = "/api/v1/me/mfa/totp/confirm"
	mfaVerifyPath    = "/api/v1/auth/mfa/verify"
	waOptionsPath    = "/api/v1/me/mfa/webauthn/register/options"
	waRegisterPath   = "/api/v1/me/mfa/webauthn/register"
	testWebAuthnRPID = "localhost"
	// testWebAuthnOrigin is IDENTITY_WEBAUTHN_ORIGINS of the test services.
	testWebAuthnOrigin = "http://localhost:8080"
)

// withWebAuthn pins the relying party of the test service (the defaults,
// spelled out so the tests do not depend on them).
func withWebAuthn(env map[string]string) map[string]string {
	env["IDENTITY_WEBAUTHN_RP_ID"] = testWebAuthnRPID
	env["IDENTITY_WEBAUTHN_ORIGINS"] = testWebAuthnOrigin
	return env
}

// mfaRequiredDoc is the extension members of 401 IDENT_MFA_REQUIRED.
type mfaRequiredDoc struct {
	ChallengeID         string          `json:"challengeId"`
	Methods             []string        `json:"methods"`
	WebAuthn            json.RawMessage `json:"webauthn"`
	EnrollmentToken     string          `json:"enrollmentToken"`
	EnrollmentExpiresIn int             `json:"enrollmentExpiresIn"`
}

// requireMFARequired checks a 401 IDENT_MFA_REQUIRED problem and returns
// its MFA members; methods is always present (possibly []).
func requireMFARequired(t *testing.T, res apiResponse) mfaRequiredDoc {
	t.Helper()
	requireProblem(t, res, http.StatusUnauthorized, "IDENT_MFA_REQUIRED")
	require.Contains(t, res.members(t), "methods", "body: %s", res.Body)
	var d mfaRequiredDoc
	require.NoError(t, json.Unmarshal(res.Body, &d))
	require.NotNil(t, d.Methods, "methods is a list: %s", res.Body)
	return d
}

// requireChallenge checks an IDENT_MFA_REQUIRED answer with a challenge
// (the user has a factor) offering exactly methods, in that order.
func requireChallenge(t *testing.T, res apiResponse, methods ...string) mfaRequiredDoc {
	t.Helper()
	d := requireMFARequired(t, res)
	require.Equal(t, methods, d.Methods, "body: %s", res.Body)
	require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, d.ChallengeID,
		"an unguessable (random UUID) challenge id")
	require.Empty(t, d.EnrollmentToken)
	members := res.members(t)
	require.NotContains(t, members, "enrollmentToken")
	if slices.Contains(methods, "webauthn") {
		require.Contains(t, members, "webauthn")
	} else {
		require.NotContains(t, members, "webauthn")
	}
	return d
}

// verifyMFA posts /auth/mfa/verify with a code (TOTP or recovery).
func (c client) verifyMFA(t *testing.T, challengeID, method, code string) apiResponse {
	t.Helper()
	return c.do(t, http.MethodPost, mfaVerifyPath, "", map[string]any{"challengeId": challengeID, "method": method, "code": code})
}

// verifyAssertion posts /auth/mfa/verify with a WebAuthn assertion.
func (c client) verifyAssertion(t *testing.T, challengeID string, assertion []byte) apiResponse {
	t.Helper()
	return c.do(t, http.MethodPost, mfaVerifyPath, "", map[string]any{"challengeId": challengeID, "method": "webauthn",
		"assertion": json.RawMessage(assertion)})
}

// requireMFATokens checks the token response of an MFA verification: its
// members, and an access token (signature verified with the JWKS) of userID
// whose amr is exactly amr.
func (s *testService) requireMFATokens(t *testing.T, res apiResponse, userID string, amr ...string) tokenResponseDoc {
	t.Helper()
	tr := requireTokenResponse(t, res)
	require.Equal(t, userID, tr.User.ID)
	j := s.decodeJWT(t, tr.AccessToken)
	require.Equal(t, "at+jwt", j.Header["typ"])
	require.Equal(t, userID, j.str("sub"))
	require.Equal(t, amr, j.strs("amr"))
	return tr
}

// enrollmentDoc is POST /me/mfa/totp/enroll.
type enrollmentDoc struct {
	FactorID   string     `json:"factorId"`
	OTPAuthURI string     `json:"otpauthUri"`
	VerifiedAt *time.Time `json:"verifiedAt"`
}

// confirmationDoc is POST /me/mfa/totp/confirm.
type confirmationDoc struct {
	FactorID      string    `json:"factorId"`
	VerifiedAt    time.Time `json:"verifiedAt"`
	RecoveryCodes []string  `json:"recoveryCodes"`
}

// enrollTOTP starts a TOTP enrolment as bearer and checks the answer and
// its Key URI (RFC 6238: SHA1, 6 digits, 30 s, issuer, label = email).
func (c client) enrollTOTP(t *testing.T, bearer, email string) (enrollmentDoc, *totpGen) {
	t.Helper()
	res := c.do(t, http.MethodPost, totpEnrollPath, bearer, nil)
	var e enrollmentDoc
	res.decode(t, http.StatusOK, &e)
	require.ElementsMatch(t, []string{"factorId", "otpauthUri", "verifiedAt"}, res.members(t))
	require.Contains(t, string(res.Body), `"verifiedAt":null`)
	require.Nil(t, e.VerifiedAt)
	require.NotEmpty(t, e.FactorID)

	u, err := url.Parse(e.OTPAuthURI)
	require.NoError(t, err)
	require.Equal(t, "otpauth", u.Scheme)
	require.Equal(t, "totp", u.Host)
	require.Equal(t, "/Ghasi eHealth:"+email, u.Path, "label = issuer:account")
	q := u.Query()
	require.Equal(t, "Ghasi eHealth", q.Get("issuer"))
	require.Equal(t, "SHA1", q.Get("algorithm"))
	require.Equal(t, "6", q.Get("digits"))
	require.Equal(t, "30", q.Get("period"))
	key, err := otp.NewKeyFromURL(e.OTPAuthURI)
	require.NoError(t, err)
	require.Equal(t, "totp", key.Type())
	require.Equal(t, "Ghasi eHealth", key.Issuer())
	require.Equal(t, email, key.AccountName())
	require.Equal(t, otp.AlgorithmSHA1, key.Algorithm())
	require.Equal(t, otp.DigitsSix, key.Digits())
	require.Equal(t, uint64(30), key.Period())
	seed, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(key.Secret()))
	require.NoError(t, err)
	require.Len(t, seed, 20, "a 160-bit seed")
	return e, &totpGen{secret: key.Secret()}
}

// confirmTOTP confirms the pending enrolment with a fresh code and checks
// the answer (10 distinct recovery codes).
func (c client) confirmTOTP(t *testing.T, bearer, factorID string, gen *totpGen) confirmationDoc {
	t.Helper()
	code, step := gen.fresh(t)
	res := c.do(t, http.MethodPost, totpConfirmPath, bearer, map[string]any{"code": code})
	var conf confirmationDoc
	res.decode(t, http.StatusOK, &conf)
	gen.used(step)
	require.ElementsMatch(t, []string{"factorId", "verifiedAt", "recoveryCodes"}, res.members(t))
	require.Equal(t, factorID, conf.FactorID)
	require.WithinDuration(t, time.Now(), conf.VerifiedAt, time.Minute)
	require.Len(t, conf.RecoveryCodes, 10)
	seen := map[string]bool{}
	for _, rc := range conf.RecoveryCodes {
		require.NotEmpty(t, rc)
		require.False(t, seen[rc], "recovery codes are distinct")
		seen[rc] = true
	}
	return conf
}

// totpGen is an authenticator app: it computes codes from the enrolled
// secret. The service accepts the codes of now ±1 step, each step once per
// user and only moving forward, so fresh picks the earliest step after the
// last one used that the service still accepts, waiting when needed.
type totpGen struct {
	secret string
	last   int64 // last step the service accepted; 0 = none
}

func (g *totpGen) codeAt(t *testing.T, step int64) string {
	t.Helper()
	code, err := totp.GenerateCodeCustom(g.secret, time.Unix(step*30, 0), totp.ValidateOpts{
		Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	require.NoError(t, err)
	return code
}

// fresh returns a code the service accepts now and has not seen, and its
// step; call used(step) once the service accepted it.
func (g *totpGen) fresh(t *testing.T) (string, int64) {
	t.Helper()
	for {
		now := time.Now()
		// Keep clear of a step boundary: the service must see the same
		// current step as the test.
		if into := now.Unix() % 30; into >= 28 {
			time.Sleep(time.Duration(31-into) * time.Second)
			continue
		}
		cur := now.Unix() / 30
		step := max(g.last+1, cur-1)
		if step > cur+1 {
			time.Sleep(time.Until(time.Unix((step-1)*30+1, 0)))
			continue
		}
		return g.codeAt(t, step), step
	}
}

func (g *totpGen) used(step int64) { g.last = max(g.last, step) }

// wrong returns a six-digit code that is none of the codes around now.
func (g *totpGen) wrong(t *testing.T) string {
	t.Helper()
	cur := time.Now().Unix() / 30
	valid := map[string]bool{}
	for step := cur - 2; step <= cur+2; step++ {
		valid[g.codeAt(t, step)] = true
	}
	for _, c := range []string{"000000", "123456", "999999", "424242"} {
		if !valid[c] {
			return c
		}
	}
	t.Fatal("no wrong code found")
	return ""
}

// methodEventData is identity.user.mfa_enrolled.v1 and
// identity.user.mfa_challenge_failed.v1.
type methodEventData struct {
	UserID   string `json:"userId"`
	TenantID string `json:"tenantId"`
	Method   string `json:"method"`
}

// methodEvents validates every stored event of eventType (schema) and
// returns the data of those about userID.
func (s *testService) methodEvents(t *testing.T, eventType, userID string) []methodEventData {
	t.Helper()
	var out []methodEventData
	for _, env := range s.eventsFor(t, eventType, userID) {
		var d methodEventData
		require.NoError(t, json.Unmarshal(env.Data, &d))
		require.Equal(t, env.TenantID, d.TenantID)
		out = append(out, d)
	}
	return out
}

// factorDoc is GraphQL MfaFactor.
type factorDoc struct {
	ID         string     `json:"id"`
	Type       string     `json:"type"`
	VerifiedAt *time.Time `json:"verifiedAt"`
}

// myFactors is GraphQL me { factors } as bearer.
func (s *testService) myFactors(t *testing.T, bearer string) []factorDoc {
	t.Helper()
	var out struct {
		Me struct{ Factors []factorDoc }
	}
	s.graphql(t, bearer, `{ me { id factors { id type verifiedAt } } }`, nil).decode(t, &out)
	return out.Me.Factors
}

// --- WebAuthn ---

// goodRP is the relying party of the test services, as a browser at the
// allowed origin presents it.
func goodRP() virtualwebauthn.RelyingParty {
	return virtualwebauthn.RelyingParty{ID: testWebAuthnRPID, Name: passkey.DefaultRPDisplayName, Origin: testWebAuthnOrigin}
}

// newVirtualCredential returns a virtual EC2 credential. virtualwebauthn
// encodes the public key's coordinates with big.Int.Bytes, which drops
// leading zero bytes (about one key in 128), and go-webauthn rightly refuses
// such COSE keys; those keys are skipped (as in core/mfa/passkey's tests).
func newVirtualCredential(t *testing.T) virtualwebauthn.Credential {
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

// registerOptions is POST /me/mfa/webauthn/register/options as bearer.
func (c client) registerOptions(t *testing.T, bearer string) []byte {
	t.Helper()
	res := c.do(t, http.MethodPost, waOptionsPath, bearer, nil)
	require.Equal(t, http.StatusOK, res.Status, "body: %s", res.Body)
	return res.Body
}

// attest answers registration options as the authenticator at rp would
// (the PublicKeyCredential JSON a browser posts).
func attest(t *testing.T, options []byte, rp virtualwebauthn.RelyingParty, auth virtualwebauthn.Authenticator,
	cred virtualwebauthn.Credential) []byte {
	t.Helper()
	parsed, err := virtualwebauthn.ParseAttestationOptions(string(options))
	require.NoError(t, err)
	return []byte(virtualwebauthn.CreateAttestationResponse(rp, auth, cred, *parsed))
}

// assertFor answers the login's webauthn request options as the
// authenticator at rp would; cred must be among allowCredentials.
func assertFor(t *testing.T, options json.RawMessage, rp virtualwebauthn.RelyingParty, auth virtualwebauthn.Authenticator,
	cred virtualwebauthn.Credential) []byte {
	t.Helper()
	parsed, err := virtualwebauthn.ParseAssertionOptions(string(options))
	require.NoError(t, err)
	require.True(t, cred.IsAllowedForAssertion(*parsed), "the credential is in allowCredentials")
	return []byte(virtualwebauthn.CreateAssertionResponse(rp, auth, cred, *parsed))
}

// webAuthnFactorDoc is the 201 of POST /me/mfa/webauthn/register.
type webAuthnFactorDoc struct {
	FactorID   string    `json:"factorId"`
	VerifiedAt time.Time `json:"verifiedAt"`
}

// registerCredential runs options → authenticator → register and requires 201.
func (c client) registerCredential(t *testing.T, bearer string, auth virtualwebauthn.Authenticator,
	cred virtualwebauthn.Credential) webAuthnFactorDoc {
	t.Helper()
	res := c.do(t, http.MethodPost, waRegisterPath, bearer, attest(t, c.registerOptions(t, bearer), goodRP(), auth, cred))
	var f webAuthnFactorDoc
	res.decode(t, http.StatusCreated, &f)
	require.ElementsMatch(t, []string{"factorId", "verifiedAt"}, res.members(t))
	require.NotEmpty(t, f.FactorID)
	require.WithinDuration(t, time.Now(), f.VerifiedAt, time.Minute)
	return f
}
