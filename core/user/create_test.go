package user_test

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/messaging/eventtest"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

func TestCreate(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		t.Run("admin creates a pending user and the registered event", func(t *testing.T) {
			u, err := e.svc.Create(e.asAdminA(), user.CreateInput{
				Email: "  New.User@Example.ORG ", FirstName: " Amina ", LastName: "Khan",
			})
			require.NoError(t, err)
			require.True(t, core.ValidID(u.ID))
			require.Equal(t, e.tenantA, u.TenantID, "defaults to the caller's tenant")
			require.Equal(t, "new.user@example.org", u.Email)
			require.Equal(t, "Amina", u.FirstName)
			require.Equal(t, user.StatusPendingVerification, u.Status)
			require.Empty(t, u.PasswordHash)
			require.Equal(t, testT0, u.CreatedAt)
			require.Equal(t, u, e.get(t, u.ID), "what is returned is what is stored")

			envs := eventtest.RequireValidStored(t, e.db, user.EventRegistered)
			require.Len(t, envs, 1)
			require.Equal(t, u.ID, envs[0].Subject)
			require.Equal(t, e.tenantA, envs[0].TenantID)
			var data user.RegisteredData
			require.NoError(t, json.Unmarshal(envs[0].Data, &data))
			require.Equal(t, u.ID, data.UserID)
			require.Equal(t, "new.user@example.org", data.Email)
			require.Equal(t, user.StatusPendingVerification, data.Status)
			require.Equal(t, testT0.Add(24*time.Hour).Format(time.RFC3339), data.VerificationExpiresAt)
			link, err := url.Parse(data.VerificationURL)
			require.NoError(t, err)
			require.Equal(t, "https", link.Scheme)
			require.Equal(t, "id.example.org", link.Host)
			require.Equal(t, user.VerifyEmailPath, link.Path)
			tok := link.Query().Get("token")
			require.Len(t, tok, 43, "256 bits, base64url without padding")
			require.NotContains(t, string(envs[0].Data), "password")
		})

		t.Run("with a password it is hashed and stored", func(t *testing.T) {
			u, err := e.svc.Create(e.asSuper(), user.CreateInput{
				TenantID: e.tenantB, Email: "pw@b.example.org", FirstName: "P", LastName: "W", Password: ptr("correct horse battery"),
			})
			require.NoError(t, err)
			stored := e.get(t, u.ID)
			require.True(t, strings.HasPrefix(stored.PasswordHash, "$argon2id$"))
			require.NotContains(t, stored.PasswordHash, "correct horse")
		})

		t.Run("duplicate email in the tenant", func(t *testing.T) {
			_, err := e.svc.Create(e.asAdminA(), user.CreateInput{Email: "dup@a.example.org", FirstName: "A", LastName: "B"})
			require.NoError(t, err)
			before := e.eventCount(t)
			_, err = e.svc.Create(e.asAdminA(), user.CreateInput{Email: "DUP@a.example.org", FirstName: "C", LastName: "D"})
			requireCode(t, core.CodeEmailDuplicate, err)
			require.Equal(t, core.KindConflict, core.KindOf(err))
			require.Equal(t, before, e.eventCount(t))
			// The same address is fine in another tenant.
			_, err = e.svc.Create(e.asSuper(), user.CreateInput{TenantID: e.tenantB, Email: "dup@a.example.org", FirstName: "A", LastName: "B"})
			require.NoError(t, err)
		})

		t.Run("unknown tenant", func(t *testing.T) {
			_, err := e.svc.Create(e.asSuper(), user.CreateInput{TenantID: core.NewID(), Email: "x@example.org", FirstName: "A", LastName: "B"})
			requireCode(t, core.CodeNotFound, err)
		})
	})
}

func TestCreateValidation(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		long := strings.Repeat("é", 101)
		cases := []struct {
			name   string
			in     user.CreateInput
			fields []string
		}{
			{"bad email", user.CreateInput{Email: "not-an-email", FirstName: "A", LastName: "B"}, []string{"email"}},
			{"display-name email", user.CreateInput{Email: "Ann <ann@example.org>", FirstName: "A", LastName: "B"}, []string{"email"}},
			{"blank names", user.CreateInput{Email: "a@example.org", FirstName: "  ", LastName: ""}, []string{"firstName", "lastName"}},
			{"long name", user.CreateInput{Email: "a@example.org", FirstName: long, LastName: "B"}, []string{"firstName"}},
			{"short password", user.CreateInput{Email: "a@example.org", FirstName: "A", LastName: "B", Password: ptr("short")}, []string{"password"}},
			{"common password", user.CreateInput{Email: "a@example.org", FirstName: "A", LastName: "B", Password: ptr("password123")}, []string{"password"}},
			{"password is the email", user.CreateInput{Email: "amina.khan@example.org", FirstName: "A", LastName: "B", Password: ptr("amina.khan@example.org")}, []string{"password"}},
			{"everything", user.CreateInput{Email: "", FirstName: "", LastName: "", Password: ptr("")}, []string{"email", "firstName", "lastName", "password"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				before := e.eventCount(t)
				_, err := e.svc.Create(e.asAdminA(), tc.in)
				requireCode(t, core.CodeValidation, err)
				fields := core.AsError(err).Fields
				require.Len(t, fields, len(tc.fields), "%v", fields)
				for _, f := range tc.fields {
					require.Contains(t, fields, f)
				}
				require.Equal(t, before, e.eventCount(t))
			})
		}
		t.Run("100 characters is fine", func(t *testing.T) {
			_, err := e.svc.Create(e.asAdminA(), user.CreateInput{Email: "hundred@a.example.org", FirstName: long[:200], LastName: "B"})
			require.NoError(t, err)
		})
		t.Run("malformed tenant id for a SUPER_ADMIN", func(t *testing.T) {
			_, err := e.svc.Create(e.asSuper(), user.CreateInput{TenantID: "nope", Email: "a@example.org", FirstName: "A", LastName: "B"})
			requireCode(t, core.CodeValidation, err)
			require.Contains(t, core.AsError(err).Fields, "tenantId")
		})
	})
}

func TestCreateRace(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		for round := range 3 {
			email := "race" + string(rune('0'+round)) + "@a.example.org"
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i := range errs {
				wg.Go(func() {
					_, errs[i] = e.svc.Create(e.asAdminA(), user.CreateInput{Email: email, FirstName: "R", LastName: "C"})
				})
			}
			wg.Wait()
			ok := 0
			for _, err := range errs {
				if err == nil {
					ok++
					continue
				}
				requireCode(t, core.CodeEmailDuplicate, err)
			}
			require.Equal(t, 1, ok, "exactly one create wins")
		}
		require.Len(t, eventtest.RequireValidStored(t, e.db, user.EventRegistered), 3)
	})
}

func TestRegister(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		in := user.RegisterInput{TenantID: e.tenantA, Email: "Patient@Example.org", Password: "a long enough secret", FirstName: "Pat", LastName: "Ient"}

		t.Run("self-registration emits the registered event", func(t *testing.T) {
			u, err := e.svc.Register(context.Background(), in)
			require.NoError(t, err)
			require.Equal(t, user.StatusPendingVerification, u.Status)
			require.Equal(t, "patient@example.org", u.Email)
			require.NotEmpty(t, e.get(t, u.ID).PasswordHash)
			envs := eventtest.RequireValidStored(t, e.db, user.EventRegistered)
			require.Equal(t, u.ID, envs[len(envs)-1].Subject)
			require.NotEmpty(t, e.token(t, u.ID))
		})

		t.Run("duplicate", func(t *testing.T) {
			_, err := e.svc.Register(context.Background(), in)
			requireCode(t, core.CodeEmailDuplicate, err)
		})

		t.Run("disabled or unknown tenant", func(t *testing.T) {
			for _, tenant := range []string{e.tenantB, core.NewID()} {
				before := e.eventCount(t)
				bad := in
				bad.TenantID, bad.Email = tenant, "someone@example.org"
				_, err := e.svc.Register(context.Background(), bad)
				requireCode(t, core.CodeRegistrationDisabled, err)
				require.Equal(t, core.KindForbidden, core.KindOf(err))
				require.Equal(t, before, e.eventCount(t))
			}
		})

		t.Run("validation", func(t *testing.T) {
			cases := []struct {
				name  string
				edit  func(*user.RegisterInput)
				field string
			}{
				{"no password", func(r *user.RegisterInput) { r.Password = "" }, "password"},
				{"weak password", func(r *user.RegisterInput) { r.Password = "12345678" }, "password"},
				{"no tenant", func(r *user.RegisterInput) { r.TenantID = "" }, "tenantId"},
				{"malformed tenant", func(r *user.RegisterInput) { r.TenantID = "x" }, "tenantId"},
				{"bad email", func(r *user.RegisterInput) { r.Email = "x@" }, "email"},
				{"no first name", func(r *user.RegisterInput) { r.FirstName = "" }, "firstName"},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					r := in
					r.Email = "valid@example.org"
					tc.edit(&r)
					_, err := e.svc.Register(context.Background(), r)
					requireCode(t, core.CodeValidation, err)
					require.Contains(t, core.AsError(err).Fields, tc.field)
				})
			}
		})
	})
}

func TestNilPolicyFallback(t *testing.T) {
	e := newEnv(t, dbtest.SQLite)
	svc := user.NewService(e.store, core.NewAuthorizer(e.dir), hasher(), nil, nil, e.clock,
		user.Config{PublicURL: publicURL, TokenKey: make([]byte, 32)})
	n := 0
	for pw, ok := range map[string]bool{"1234567": false, "12345678": true, strings.Repeat("ü", 128): true, strings.Repeat("ü", 129): false} {
		n++
		email := "fallback" + string(rune('a'+n)) + "@a.example.org"
		_, err := svc.Create(e.asAdminA(), user.CreateInput{Email: email, FirstName: "A", LastName: "B", Password: ptr(pw)})
		if ok {
			require.NoError(t, err, "%d code points", len([]rune(pw)))
		} else {
			requireCode(t, core.CodeValidation, err)
			require.Contains(t, core.AsError(err).Fields, "password")
		}
	}
}

func TestNewServicePanicsOnBadConfig(t *testing.T) {
	e := newEnv(t, dbtest.SQLite)
	authz := core.NewAuthorizer(e.dir)
	for name, cfg := range map[string]user.Config{
		"short key":    {PublicURL: publicURL, TokenKey: make([]byte, 16)},
		"relative url": {PublicURL: "/id", TokenKey: make([]byte, 32)},
		"no url":       {TokenKey: make([]byte, 32)},
	} {
		require.Panics(t, func() { user.NewService(e.store, authz, hasher(), nil, nil, nil, cfg) }, name)
	}
}
