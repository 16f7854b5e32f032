package mfa_test

import (
	"context"
	"regexp"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/auth"
	"github.com/ghasi-ehealth/identity-service/core/mfa"
	"github.com/ghasi-ehealth/identity-service/core/token"
	"github.com/ghasi-ehealth/identity-service/messaging/eventtest"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

func TestMFA(t *testing.T) {
	for name, open := range dbtest.Dialects() {
		t.Run(name, func(t *testing.T) {
			t.Run("totp enrolment", func(t *testing.T) { testEnrol(t, newEnv(t, open)) })
			t.Run("login challenge", func(t *testing.T) { testChallenge(t, newEnv(t, open)) })
			t.Run("failures burn", func(t *testing.T) { testFailures(t, newEnv(t, open)) })
			t.Run("recovery codes", func(t *testing.T) { testRecovery(t, newEnv(t, open)) })
			t.Run("concurrent codes", func(t *testing.T) { testConcurrent(t, newEnv(t, open)) })
			t.Run("restricted credential", func(t *testing.T) { testRestricted(t, newEnv(t, open)) })
			t.Run("webauthn", func(t *testing.T) { testWebAuthn(t, newEnv(t, open)) })
			t.Run("admin reset", func(t *testing.T) { testReset(t, newEnv(t, open)) })
		})
	}
}

func testEnrol(t *testing.T, e *env) {
	u := e.user(t, e.tenant(t, "enrol", false), "ana@example.org")
	ctx := e.as(t, e.loginToken(t, u.Email))
	_, err := e.mfa.ConfirmTOTP(ctx, "123456")
	requireCode(t, err, core.CodeStateConflict)

	first, err := e.mfa.EnrollTOTP(ctx)
	require.NoError(t, err)
	en, err := e.mfa.EnrollTOTP(ctx) // replaces the unconfirmed one
	require.NoError(t, err)
	require.Nil(t, en.VerifiedAt)
	key, err := otp.NewKeyFromURL(en.OTPAuthURI)
	require.NoError(t, err)
	require.Equal(t, "totp", key.Type())
	require.Equal(t, mfa.Issuer, key.Issuer())
	require.Equal(t, u.Email, key.AccountName())
	require.Equal(t, uint64(30), key.Period())
	require.Equal(t, otp.DigitsSix, key.Digits())
	require.Equal(t, otp.AlgorithmSHA1, key.Algorithm())
	require.Len(t, key.Secret(), 32, "20-byte seed")
	fs, err := e.mfa.ListFactors(ctx)
	require.NoError(t, err)
	require.Len(t, fs, 1)
	require.Equal(t, en.FactorID, fs[0].ID)
	require.NotEqual(t, first.FactorID, en.FactorID)

	now := e.clock.Now()
	for _, steps := range []int{-2, 2} {
		_, err = e.mfa.ConfirmTOTP(ctx, code(t, en.OTPAuthURI, now, steps))
		ce := requireCode(t, err, core.CodeValidation)
		require.Equal(t, "invalid code", ce.Fields["code"], "±2 steps")
	}
	_, err = e.mfa.ConfirmTOTP(ctx, "12345a")
	requireCode(t, err, core.CodeValidation)
	c, err := e.mfa.ConfirmTOTP(ctx, code(t, en.OTPAuthURI, now, 1))
	require.NoError(t, err)
	require.Equal(t, en.FactorID, c.FactorID)
	require.Equal(t, now, c.VerifiedAt)
	require.Len(t, c.RecoveryCodes, 10)
	for _, rc := range c.RecoveryCodes {
		require.Regexp(t, regexp.MustCompile(`^[A-Z2-7]{5}-[A-Z2-7]{5}$`), rc)
	}
	_, err = e.mfa.ConfirmTOTP(ctx, code(t, en.OTPAuthURI, now, 0))
	requireCode(t, err, core.CodeStateConflict)
	_, err = e.mfa.EnrollTOTP(ctx)
	requireCode(t, err, core.CodeStateConflict)
	fs, err = e.mfa.ListFactors(ctx)
	require.NoError(t, err)
	require.Len(t, fs, 1)
	require.Equal(t, &now, fs[0].VerifiedAt)
	envs := eventtest.RequireValidStored(t, e.db, mfa.EventEnrolled)
	require.Len(t, envs, 1)
}

func testChallenge(t *testing.T, e *env) {
	u := e.user(t, e.tenant(t, "chal", false), "ana@example.org")
	uri, _ := e.enrolled(t, e.as(t, e.loginToken(t, u.Email)))

	extra := e.challenge(t, u.Email)
	require.Equal(t, []string{"totp", "recovery"}, extra["methods"])
	require.NotContains(t, extra, "webauthn")
	id := extra["challengeId"].(string)
	require.True(t, core.ValidID(id))

	now := e.clock.Now()
	resp, err := e.auth.VerifyMFA(context.Background(), auth.MFAVerifyInput{ChallengeID: id, Method: "totp", Code: code(t, uri, now, 0)})
	require.NoError(t, err)
	p, err := e.verifier.Verify(context.Background(), resp.AccessToken)
	require.NoError(t, err)
	require.Equal(t, []string{token.AMRPassword, token.AMROTP}, p.AMR)
	require.Equal(t, u.ID, p.ID)
	require.NotEmpty(t, resp.RefreshToken)
	eventtest.RequireValidStored(t, e.db, auth.EventLoggedIn)

	_, err = e.auth.VerifyMFA(context.Background(), auth.MFAVerifyInput{ChallengeID: id, Method: "totp", Code: code(t, uri, now, 1)})
	requireCode(t, err, core.CodeUnauthenticated) // single use

	id = e.challenge(t, u.Email)["challengeId"].(string)
	_, err = e.auth.VerifyMFA(context.Background(), auth.MFAVerifyInput{ChallengeID: id, Method: "totp", Code: code(t, uri, now, 0)})
	requireCode(t, err, core.CodeMFAInvalidCode) // replay of an accepted code
	_, err = e.auth.VerifyMFA(context.Background(), auth.MFAVerifyInput{ChallengeID: id, Method: "sms", Code: "1"})
	requireCode(t, err, core.CodeValidation)

	e.clock.Advance(mfa.ChallengeTTL)
	_, err = e.auth.VerifyMFA(context.Background(), auth.MFAVerifyInput{ChallengeID: id, Method: "totp", Code: code(t, uri, e.clock.Now(), 0)})
	requireCode(t, err, core.CodeUnauthenticated) // expired
	_, err = e.auth.VerifyMFA(context.Background(), auth.MFAVerifyInput{ChallengeID: core.NewID(), Method: "totp", Code: "123456"})
	requireCode(t, err, core.CodeUnauthenticated)
}

func testFailures(t *testing.T, e *env) {
	u := e.user(t, e.tenant(t, "fail", false), "ana@example.org")
	uri, _ := e.enrolled(t, e.as(t, e.loginToken(t, u.Email)))
	id := e.challenge(t, u.Email)["challengeId"].(string)
	bad := auth.MFAVerifyInput{ChallengeID: id, Method: "totp", Code: "000000"}
	_, err := e.auth.VerifyMFA(context.Background(), bad)
	requireCode(t, err, core.CodeMFAInvalidCode)
	_, err = e.auth.VerifyMFA(context.Background(), bad)
	requireCode(t, err, core.CodeMFAInvalidCode)
	require.Zero(t, e.events(t, mfa.EventChallengeFailed))
	_, err = e.auth.VerifyMFA(context.Background(), bad)
	requireCode(t, err, core.CodeMFAFailed)
	envs := eventtest.RequireValidStored(t, e.db, mfa.EventChallengeFailed)
	require.Len(t, envs, 1)
	_, err = e.auth.VerifyMFA(context.Background(), auth.MFAVerifyInput{ChallengeID: id, Method: "totp", Code: code(t, uri, e.clock.Now(), 0)})
	requireCode(t, err, core.CodeUnauthenticated) // burned: a correct code fails too

	// The three failures count toward the per-account throttle (limit 4 in
	// the env): one more failure, then the account is rate limited.
	id = e.challenge(t, u.Email)["challengeId"].(string)
	_, err = e.auth.VerifyMFA(context.Background(), auth.MFAVerifyInput{ChallengeID: id, Method: "recovery", Code: "AAAAA-AAAAA"})
	requireCode(t, err, core.CodeMFAInvalidCode)
	_, err = e.login(u.Email)
	requireCode(t, err, core.CodeRateLimited)
}

func testRecovery(t *testing.T, e *env) {
	u := e.user(t, e.tenant(t, "rec", false), "ana@example.org")
	_, codes := e.enrolled(t, e.as(t, e.loginToken(t, u.Email)))
	id := e.challenge(t, u.Email)["challengeId"].(string)
	resp, err := e.auth.VerifyMFA(context.Background(), auth.MFAVerifyInput{ChallengeID: id, Method: "recovery", Code: codes[3]})
	require.NoError(t, err)
	p, err := e.verifier.Verify(context.Background(), resp.AccessToken)
	require.NoError(t, err)
	require.Equal(t, []string{"pwd", "otp"}, p.AMR, "a recovery code is a one-time password")

	id = e.challenge(t, u.Email)["challengeId"].(string)
	_, err = e.auth.VerifyMFA(context.Background(), auth.MFAVerifyInput{ChallengeID: id, Method: "recovery", Code: codes[3]})
	requireCode(t, err, core.CodeMFAInvalidCode) // used once
	_, err = e.auth.VerifyMFA(context.Background(), auth.MFAVerifyInput{ChallengeID: id, Method: "recovery", Code: " " + toLower(codes[4])})
	require.NoError(t, err, "case and spacing do not matter")
}

func toLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 32
		}
	}
	return string(b)
}

func testConcurrent(t *testing.T, e *env) {
	u := e.user(t, e.tenant(t, "conc", false), "ana@example.org")
	ctx := e.as(t, e.loginToken(t, u.Email))
	en, err := e.mfa.EnrollTOTP(ctx)
	require.NoError(t, err)
	c := code(t, en.OTPAuthURI, e.clock.Now(), 0)
	var wins atomic.Int32
	run := func(n int, fn func(i int) error) {
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if fn(i) == nil {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
	}
	run(4, func(int) error { _, err := e.mfa.ConfirmTOTP(ctx, c); return err })
	require.Equal(t, int32(1), wins.Load(), "one code, one confirmation")

	ids := make([]string, 4)
	for i := range ids {
		ids[i] = e.challenge(t, u.Email)["challengeId"].(string)
	}
	c = code(t, en.OTPAuthURI, e.clock.Now(), 1)
	wins.Store(0)
	run(4, func(i int) error {
		_, err := e.auth.VerifyMFA(context.Background(), auth.MFAVerifyInput{ChallengeID: ids[i], Method: "totp", Code: c})
		return err
	})
	require.Equal(t, int32(1), wins.Load(), "one code, one login")

	id := e.challenge(t, u.Email)["challengeId"].(string)
	e.clock.Advance(30 * time.Second)
	c = code(t, en.OTPAuthURI, e.clock.Now(), 1)
	wins.Store(0)
	run(4, func(int) error {
		_, err := e.auth.VerifyMFA(context.Background(), auth.MFAVerifyInput{ChallengeID: id, Method: "totp", Code: c})
		return err
	})
	require.Equal(t, int32(1), wins.Load(), "one challenge, one login")
}
