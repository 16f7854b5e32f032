package mfa_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/auth"
	"github.com/ghasi-ehealth/identity-service/core/mfa"
	"github.com/ghasi-ehealth/identity-service/messaging/eventtest"
)

func testRestricted(t *testing.T, e *env) {
	tid := e.tenant(t, "strict", true)
	u := e.user(t, tid, "ana@example.org")
	extra := e.challenge(t, u.Email)
	require.Equal(t, []string{}, extra["methods"])
	require.NotContains(t, extra, "challengeId")
	require.Equal(t, int64(600), extra["enrollmentExpiresIn"])
	ctx := e.as(t, extra["enrollmentToken"].(string))
	p, _ := core.PrincipalFrom(ctx)
	require.True(t, p.Restricted)
	require.Equal(t, u.ID, p.ID)

	// It opens nothing but enrolment (and whoami).
	_, err := core.RequirePrincipal(ctx)
	requireCode(t, err, core.CodeForbidden)
	_, err = core.NewAuthorizer(e.dir).Load(ctx)
	requireCode(t, err, core.CodeForbidden)
	_, err = e.mfa.ListFactors(ctx)
	requireCode(t, err, core.CodeForbidden)
	_, err = e.mfa.FactorsOf(ctx, u.ID)
	requireCode(t, err, core.CodeForbidden)
	requireCode(t, e.mfa.ResetFactors(ctx, u.ID), core.CodeForbidden)
	who, err := e.auth.Whoami(ctx)
	require.NoError(t, err)
	require.Equal(t, u.ID, who.ID)

	uri, codes := e.enrolled(t, ctx)
	require.Len(t, codes, 10)
	extra = e.challenge(t, u.Email)
	require.Equal(t, []string{"totp", "recovery"}, extra["methods"])
	resp, err := e.auth.VerifyMFA(context.Background(), auth.MFAVerifyInput{
		ChallengeID: extra["challengeId"].(string), Method: "totp", Code: code(t, uri, e.clock.Now(), 0)})
	require.NoError(t, err)
	full := e.as(t, resp.AccessToken)
	_, err = core.RequirePrincipal(full)
	require.NoError(t, err)
	fs, err := e.mfa.ListFactors(full)
	require.NoError(t, err)
	require.Len(t, fs, 1)
	require.Equal(t, mfa.TypeTOTP, fs[0].Type)
	require.NotNil(t, fs[0].LastUsedAt)
}

func testWebAuthn(t *testing.T, e *env) {
	u := e.user(t, e.tenant(t, "wa", false), "ana@example.org")
	uri, _ := e.enrolled(t, e.as(t, e.loginToken(t, u.Email)))
	e.webauthn.creds[u.ID] = 1
	extra := e.challenge(t, u.Email)
	require.Equal(t, []string{"totp", "webauthn", "recovery"}, extra["methods"])
	require.JSONEq(t, `{"publicKey":{"challenge":"abc"}}`, string(extra["webauthn"].(json.RawMessage)))
	id := extra["challengeId"].(string)
	_, err := e.auth.VerifyMFA(context.Background(), auth.MFAVerifyInput{ChallengeID: id, Method: "webauthn", Assertion: json.RawMessage(`"bad"`)})
	requireCode(t, err, core.CodeMFAInvalidCode)
	resp, err := e.auth.VerifyMFA(context.Background(), auth.MFAVerifyInput{ChallengeID: id, Method: "webauthn", Assertion: json.RawMessage(`"good"`)})
	require.NoError(t, err)
	p, err := e.verifier.Verify(context.Background(), resp.AccessToken)
	require.NoError(t, err)
	require.Equal(t, []string{"pwd", "webauthn"}, p.AMR)
	_ = uri
}

func testReset(t *testing.T, e *env) {
	tid, other := e.tenant(t, "home", false), e.tenant(t, "other", false)
	u := e.user(t, tid, "ana@example.org")
	admin := e.user(t, tid, "admin@example.org", core.RoleTenantAdmin)
	foreign := e.user(t, other, "foreign@example.org", core.RoleTenantAdmin)
	uctx := e.as(t, e.loginToken(t, u.Email))
	e.enrolled(t, uctx)
	ctxOf := func(email string) context.Context { return e.as(t, e.loginToken(t, email)) }

	requireCode(t, e.mfa.ResetFactors(ctxOf(foreign.Email), u.ID), core.CodeCrossTenant)
	_, err := e.mfa.FactorsOf(ctxOf(foreign.Email), u.ID)
	requireCode(t, err, core.CodeCrossTenant)
	requireCode(t, e.mfa.ResetFactors(ctxOf(admin.Email), core.NewID()), core.CodeNotFound)
	require.Zero(t, e.events(t, mfa.EventReset), "no side effect")
	extra := e.challenge(t, u.Email) // still enrolled
	requireCode(t, e.mfa.ResetFactors(uctx, u.ID), core.CodeForbidden)

	actx := ctxOf(admin.Email)
	fs, err := e.mfa.FactorsOf(actx, u.ID)
	require.NoError(t, err)
	require.Len(t, fs, 1)
	require.NoError(t, e.mfa.ResetFactors(actx, u.ID))
	fs, err = e.mfa.FactorsOf(actx, u.ID)
	require.NoError(t, err)
	require.Empty(t, fs)
	envs := eventtest.RequireValidStored(t, e.db, mfa.EventReset)
	require.Len(t, envs, 1)
	var data map[string]any
	require.NoError(t, json.Unmarshal(envs[0].Data, &data))
	require.Equal(t, admin.ID, data["actorId"])

	_, err = e.auth.VerifyMFA(context.Background(), auth.MFAVerifyInput{ChallengeID: extra["challengeId"].(string), Method: "recovery", Code: "x"})
	requireCode(t, err, core.CodeUnauthenticated) // open challenges are burned
	e.loginToken(t, u.Email)                      // no factor, no MFA
	_, err = e.mfa.EnrollTOTP(uctx)
	require.NoError(t, err, "may enrol again")
}
