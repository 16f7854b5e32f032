package user_test

import (
	"context"
	"encoding/json"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/messaging/eventtest"
)

func TestErase(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		const email = "quintessa.vandermolen@a.example.org"
		const first, last = "Quintessa", "Vandermolen"

		// A life in the system: created, verified (first password set),
		// suspended (sessions revoked) and reactivated.
		u, err := e.svc.Create(e.asAdminA(), user.CreateInput{Email: email, FirstName: first, LastName: last})
		require.NoError(t, err)
		registeredURL := e.registeredURL(t, u.ID)
		_, err = e.svc.VerifyEmail(ctx, user.VerifyInput{Token: e.token(t, u.ID), Password: ptr("her own first password")})
		require.NoError(t, err)
		_, err = e.svc.Suspend(e.asAdminA(), u.ID)
		require.NoError(t, err)
		_, err = e.svc.Reactivate(e.asAdminA(), u.ID)
		require.NoError(t, err)
		// Someone else's event mentions her address.
		require.NoError(t, e.db.InTx(ctx, func(ctx context.Context) error {
			return e.db.AddEvents(ctx, core.NewEvent(testT0, "identity.test.note.v1", core.NewID(), e.tenantA,
				map[string]any{"note": "forwarded to " + strings.ToUpper(email)}))
		}))

		for _, needle := range []string{email, first, last} {
			require.NotEmpty(t, dbtest.FindEverywhere(t, e.db, needle), "positive control: %s is stored before erasure", needle)
		}
		require.ElementsMatch(t, []string{"users.email", "events.data"}, dbtest.FindEverywhere(t, e.db, email))

		e.clock.Advance(time.Hour)
		got, err := e.svc.Erase(e.asAdminA(), u.ID)
		require.NoError(t, err)
		require.Equal(t, user.StatusDeactivated, got.Status)
		require.Empty(t, got.Email+got.FirstName+got.LastName)
		require.NotNil(t, got.DeactivatedAt)
		deactivatedAt := testT0.Add(time.Hour)
		require.Equal(t, deactivatedAt, *got.DeactivatedAt)
		stored := e.get(t, u.ID)
		require.Empty(t, stored.PasswordHash)
		require.Equal(t, got, stored)
		require.Contains(t, e.sessions.Calls(), revokeCall{u.ID, user.RevokeReasonErased})

		for _, needle := range []string{email, first, last} {
			require.Empty(t, dbtest.FindEverywhere(t, e.db, needle), "no copy of %q may remain", needle)
		}

		// The audit trail stays: every event is still there, redacted.
		require.Len(t, e.events(t, user.EventRegistered, u.ID), 1)
		require.Equal(t, registeredURL, e.registeredURL(t, u.ID), "verificationUrl holds no personal data")
		eventtest.RequireValidStored(t, e.db, user.EventRegistered)
		eventtest.RequireValidStored(t, e.db, user.EventEmailVerified)
		eventtest.RequireValidStored(t, e.db, user.EventSuspended)

		envs := eventtest.RequireValidStored(t, e.db, user.EventDeactivated)
		require.Len(t, envs, 1)
		require.Equal(t, u.ID, envs[0].Subject)
		var data user.DeactivatedData
		require.NoError(t, json.Unmarshal(envs[0].Data, &data))
		require.Equal(t, user.DeactivatedData{
			UserID: u.ID, TenantID: e.tenantA, ActorID: e.adminA,
			ErasedFields: []string{"firstName", "lastName", "email"}, DeactivatedAt: deactivatedAt.Format(time.RFC3339Nano),
		}, data)

		t.Run("idempotent", func(t *testing.T) {
			before := e.eventCount(t)
			calls := len(e.sessions.Calls())
			e.clock.Advance(time.Hour)
			again, err := e.svc.Erase(e.asSuper(), u.ID)
			require.NoError(t, err)
			require.Equal(t, got, again, "same deactivated user, same deactivatedAt")
			require.Equal(t, before, e.eventCount(t), "nothing new emitted")
			require.Len(t, e.sessions.Calls(), calls)
			require.Len(t, e.events(t, user.EventDeactivated, u.ID), 1)
		})

		t.Run("the address can be used again", func(t *testing.T) {
			_, err := e.svc.Create(e.asAdminA(), user.CreateInput{Email: email, FirstName: "New", LastName: "Person"})
			require.NoError(t, err)
		})
	})
}

func TestEraseFromEveryState(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		for _, st := range []user.Status{user.StatusPendingVerification, user.StatusActive, user.StatusSuspended} {
			u := e.insertUser(t, e.tenantA, string(st)+"@erase.example.org", st)
			got, err := e.svc.Erase(e.asAdminA(), u.ID)
			require.NoError(t, err)
			require.Equal(t, user.StatusDeactivated, got.Status)
		}
		_, err := e.svc.Erase(e.asAdminA(), e.adminA)
		requireCode(t, core.CodeForbidden, err)
		require.Equal(t, user.StatusActive, e.get(t, e.adminA).Status)
		require.Len(t, eventtest.RequireValidStored(t, e.db, user.EventDeactivated), 3)
	})
}

// registeredURL returns the verificationUrl of userID's registered event.
func (e *env) registeredURL(t *testing.T, userID string) string {
	t.Helper()
	evs := e.events(t, user.EventRegistered, userID)
	require.NotEmpty(t, evs)
	var data user.RegisteredData
	require.NoError(t, json.Unmarshal(evs[0].Data, &data))
	return data.VerificationURL
}
