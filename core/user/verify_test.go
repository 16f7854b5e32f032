package user_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/password"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/messaging/eventtest"
)

// registered self-registers a user of tenant A and returns it with its token.
func (e *env) registered(t *testing.T, email string) (user.User, string) {
	t.Helper()
	u, err := e.svc.Register(context.Background(), user.RegisterInput{
		TenantID: e.tenantA, Email: email, Password: "a long enough secret", FirstName: "Reg", LastName: "Istered",
	})
	require.NoError(t, err)
	return u, e.token(t, u.ID)
}

func TestVerifyEmail(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		ctx := context.Background()

		t.Run("valid token activates and emits email_verified", func(t *testing.T) {
			u, tok := e.registered(t, "v1@example.org")
			got, err := e.svc.VerifyEmail(ctx, user.VerifyInput{Token: tok})
			require.NoError(t, err)
			require.Equal(t, user.StatusActive, got.Status)
			require.Empty(t, got.PasswordHash)
			require.Equal(t, user.StatusActive, e.get(t, u.ID).Status)

			envs := eventtest.RequireValidStored(t, e.db, user.EventEmailVerified)
			require.Equal(t, u.ID, envs[len(envs)-1].Subject)
			var data user.EmailVerifiedData
			require.NoError(t, json.Unmarshal(envs[len(envs)-1].Data, &data))
			require.Equal(t, user.EmailVerifiedData{UserID: u.ID, TenantID: e.tenantA}, data)

			t.Run("replay is 422", func(t *testing.T) {
				_, err := e.svc.VerifyEmail(ctx, user.VerifyInput{Token: tok})
				requireCode(t, core.CodeVerificationTokenInvalid, err)
				require.Equal(t, core.KindUnprocessable, core.KindOf(err))
				require.Len(t, e.events(t, user.EventEmailVerified, u.ID), 1)
			})
		})

		t.Run("expired token", func(t *testing.T) {
			_, tok := e.registered(t, "v2@example.org")
			_, tok2 := e.registered(t, "v3@example.org")
			e.clock.Advance(24*time.Hour - time.Second)
			defer e.clock.Advance(-(24*time.Hour - time.Second))
			_, err := e.svc.VerifyEmail(ctx, user.VerifyInput{Token: tok2})
			require.NoError(t, err, "valid until the last second")
			e.clock.Advance(time.Second)
			defer e.clock.Advance(-time.Second)
			_, err = e.svc.VerifyEmail(ctx, user.VerifyInput{Token: tok})
			requireCode(t, core.CodeVerificationTokenInvalid, err)
		})

		t.Run("forged, malformed or foreign tokens", func(t *testing.T) {
			_, tok := e.registered(t, "v4@example.org")
			flipped := []byte(tok)
			if flipped[5] == 'A' {
				flipped[5] = 'B'
			} else {
				flipped[5] = 'A'
			}
			for name, bad := range map[string]string{
				"random":    core.RandomToken(32),
				"tampered":  string(flipped),
				"too short": tok[:20],
				"not b64":   strings.Repeat("*", 43),
				"padded":    tok + "=",
			} {
				_, err := e.svc.VerifyEmail(ctx, user.VerifyInput{Token: bad})
				requireCode(t, core.CodeVerificationTokenInvalid, err)
				require.Equal(t, core.KindUnprocessable, core.KindOf(err), name)
			}
			// A token valid under another key (another deployment) is forged here.
			other := user.NewService(e.store, core.NewAuthorizer(e.dir), hasher(), nil, nil, e.clock,
				user.Config{PublicURL: publicURL, TokenKey: []byte(strings.Repeat("k", 32))})
			_, err := other.VerifyEmail(ctx, user.VerifyInput{Token: tok})
			requireCode(t, core.CodeVerificationTokenInvalid, err)

			_, err = e.svc.VerifyEmail(ctx, user.VerifyInput{})
			requireCode(t, core.CodeValidation, err)
			require.Contains(t, core.AsError(err).Fields, "token")
		})

		t.Run("admin-created user sets the first password", func(t *testing.T) {
			u, err := e.svc.Create(e.asAdminA(), user.CreateInput{Email: "nopw@a.example.org", FirstName: "No", LastName: "Pw"})
			require.NoError(t, err)
			tok := e.token(t, u.ID)

			_, err = e.svc.VerifyEmail(ctx, user.VerifyInput{Token: tok})
			requireCode(t, core.CodeValidation, err)
			require.Contains(t, core.AsError(err).Fields, "password")
			_, err = e.svc.VerifyEmail(ctx, user.VerifyInput{Token: tok, Password: ptr("qwertyuiop")})
			requireCode(t, core.CodeValidation, err)
			require.Equal(t, password.ReasonTooCommon, core.AsError(err).Fields["password"])
			require.Equal(t, user.StatusPendingVerification, e.get(t, u.ID).Status, "failed attempts do not use the token")

			got, err := e.svc.VerifyEmail(ctx, user.VerifyInput{Token: tok, Password: ptr("my very own first password")})
			require.NoError(t, err)
			require.Equal(t, user.StatusActive, got.Status)
			hash := e.get(t, u.ID).PasswordHash
			ok, _, err := hasher().Verify(ctx, "my very own first password", hash)
			require.NoError(t, err)
			require.True(t, ok)
		})

		t.Run("a user with a password may not send one", func(t *testing.T) {
			_, tok := e.registered(t, "v5@example.org")
			_, err := e.svc.VerifyEmail(ctx, user.VerifyInput{Token: tok, Password: ptr("another long password")})
			requireCode(t, core.CodeValidation, err)
			require.Contains(t, core.AsError(err).Fields, "password")
		})

		t.Run("user no longer pending", func(t *testing.T) {
			u, tok := e.registered(t, "v6@example.org")
			_, err := e.store.ActivateUser(ctx, u.ID, "", e.clock.Now())
			require.NoError(t, err)
			_, err = e.svc.VerifyEmail(ctx, user.VerifyInput{Token: tok})
			requireCode(t, core.CodeVerificationTokenInvalid, err)
		})

		t.Run("erased user's token is gone", func(t *testing.T) {
			u, tok := e.registered(t, "v7@example.org")
			_, err := e.svc.Erase(e.asAdminA(), u.ID)
			require.NoError(t, err)
			_, err = e.svc.VerifyEmail(ctx, user.VerifyInput{Token: tok})
			requireCode(t, core.CodeVerificationTokenInvalid, err)
		})
	})
}

func TestVerifyEmailConcurrent(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		for _, withPassword := range []bool{false, true} {
			var u user.User
			var tok string
			var pw *string
			if withPassword {
				var err error
				u, err = e.svc.Create(e.asAdminA(), user.CreateInput{Email: "cc-pw@a.example.org", FirstName: "C", LastName: "C"})
				require.NoError(t, err)
				tok, pw = e.token(t, u.ID), ptr("a concurrent first password")
			} else {
				u, tok = e.registered(t, "cc@example.org")
			}
			const n = 10
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					_, errs[i] = e.svc.VerifyEmail(context.Background(), user.VerifyInput{Token: tok, Password: pw})
				})
			}
			wg.Wait()
			ok := 0
			for _, err := range errs {
				if err == nil {
					ok++
					continue
				}
				requireCode(t, core.CodeVerificationTokenInvalid, err)
			}
			require.Equal(t, 1, ok, "exactly one redemption succeeds")
			require.Len(t, e.events(t, user.EventEmailVerified, u.ID), 1)
			require.Equal(t, user.StatusActive, e.get(t, u.ID).Status)
		}
	})
}
