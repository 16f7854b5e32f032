package bootstrap_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/bootstrap"
	"github.com/ghasi-ehealth/identity-service/core/password"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/messaging/eventtest"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

func TestEnsureSuperAdmin(t *testing.T) {
	for name, open := range dbtest.Dialects() {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			store := persistence.NewDirectoryStore(open(t))
			hasher := password.NewHasher(password.Params{Memory: 64, Time: 1, Threads: 1}, 4, time.Second)
			svc := bootstrap.NewService(store, hasher, core.SystemClock{}, slog.New(slog.NewTextHandler(io.Discard, nil)))

			res, err := svc.EnsureSuperAdmin(ctx, "  Admin@Example.ORG ", "correct horse battery")
			require.NoError(t, err)
			require.True(t, res.Created)

			ms, err := store.MembershipsOfUser(ctx, res.UserID)
			require.NoError(t, err)
			require.Len(t, ms, 1)
			require.Equal(t, []string{core.RoleSuperAdmin}, ms[0].Roles)
			platform, err := store.TenantBySlug(ctx, core.PlatformTenantSlug)
			require.NoError(t, err)
			require.Equal(t, platform.ID, res.TenantID)

			// Its events, in the same transaction, valid against their schemas.
			tenants := eventtest.RequireValidStored(t, store.DB, tenancy.EventTenantCreated)
			require.Len(t, tenants, 1)
			require.Equal(t, res.TenantID, tenants[0].Subject)
			changes := eventtest.RequireValidStored(t, store.DB, tenancy.EventMembershipChanged)
			require.Len(t, changes, 1)
			var data tenancy.MembershipChangedData
			require.NoError(t, json.Unmarshal(changes[0].Data, &data))
			require.Equal(t, tenancy.MembershipChangedData{UserID: res.UserID, TenantID: res.TenantID,
				Roles: []string{core.RoleSuperAdmin}, Change: tenancy.ChangeAdded, ActorID: res.UserID}, data)

			again, err := svc.EnsureSuperAdmin(ctx, "other@example.org", "correct horse battery")
			require.NoError(t, err)
			require.False(t, again.Created, "a SUPER_ADMIN exists already")
			require.Len(t, eventtest.RequireValidStored(t, store.DB, tenancy.EventMembershipChanged), 1, "nothing emitted the second time")

			var hash string
			require.NoError(t, store.Bun().QueryRowContext(ctx, "SELECT password_hash FROM users WHERE id = ?", res.UserID).Scan(&hash))
			ok, _, err := hasher.Verify(ctx, "correct horse battery", hash)
			require.NoError(t, err)
			require.True(t, ok)
			var email string
			require.NoError(t, store.Bun().QueryRowContext(ctx, "SELECT email FROM users WHERE id = ?", res.UserID).Scan(&email))
			require.Equal(t, "admin@example.org", email, "emails are trimmed and lower-cased")
		})
	}
}

func TestEnsureSuperAdminConcurrentStarts(t *testing.T) {
	ctx := context.Background()
	store := persistence.NewDirectoryStore(dbtest.Postgres(t))
	hasher := password.NewHasher(password.Params{Memory: 64, Time: 1, Threads: 1}, 4, time.Second)
	svc := bootstrap.NewService(store, hasher, core.SystemClock{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Racing instances may see a conflict; none may create a second admin.
			_, _ = svc.EnsureSuperAdmin(ctx, "admin@example.org", "correct horse battery")
		}()
	}
	wg.Wait()
	var n int
	require.NoError(t, store.Bun().QueryRowContext(ctx, "SELECT count(*) FROM users").Scan(&n))
	require.Equal(t, 1, n)
}

func TestEnsureSuperAdminValidation(t *testing.T) {
	store := persistence.NewDirectoryStore(dbtest.SQLite(t))
	hasher := password.NewHasher(password.Params{Memory: 64, Time: 1, Threads: 1}, 1, time.Second)
	svc := bootstrap.NewService(store, hasher, core.SystemClock{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	tests := []struct{ email, password, field string }{
		{"not-an-email", "correct horse battery", "email"},
		{"a@example.org", "short", "password"},
		{"a@example.org", string(make([]rune, 129)), "password"},
	}
	for _, tc := range tests {
		_, err := svc.EnsureSuperAdmin(context.Background(), tc.email, tc.password)
		require.Equal(t, core.CodeValidation, core.CodeOf(err))
		require.Contains(t, core.AsError(err).Fields, tc.field)
	}
}
