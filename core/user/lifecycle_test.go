package user_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/messaging/eventtest"
)

func TestSuspendReactivate(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		target := e.insertUser(t, e.tenantA, "s@a.example.org", user.StatusActive)
		e.clock.Advance(time.Minute)

		got, err := e.svc.Suspend(e.asAdminA(), target.ID)
		require.NoError(t, err)
		require.Equal(t, user.StatusSuspended, got.Status)
		require.Equal(t, testT0.Add(time.Minute), got.UpdatedAt)
		require.Equal(t, user.StatusSuspended, e.get(t, target.ID).Status)
		require.Equal(t, []revokeCall{{target.ID, user.RevokeReasonSuspended}}, e.sessions.Calls(), "sessions revoked in the tx")

		envs := eventtest.RequireValidStored(t, e.db, user.EventSuspended)
		require.Len(t, envs, 1)
		var data user.StatusChangedData
		require.NoError(t, json.Unmarshal(envs[0].Data, &data))
		require.Equal(t, user.StatusChangedData{UserID: target.ID, TenantID: e.tenantA, ActorID: e.adminA}, data)

		_, err = e.svc.Suspend(e.asAdminA(), target.ID)
		requireCode(t, core.CodeStateConflict, err)
		require.Equal(t, core.KindConflict, core.KindOf(err))

		got, err = e.svc.Reactivate(e.asSuper(), target.ID)
		require.NoError(t, err)
		require.Equal(t, user.StatusActive, got.Status)
		envs = eventtest.RequireValidStored(t, e.db, user.EventReactivated)
		require.NoError(t, json.Unmarshal(envs[0].Data, &data))
		require.Equal(t, user.StatusChangedData{UserID: target.ID, TenantID: e.tenantA, ActorID: e.superAdmin}, data)
		require.Len(t, e.sessions.Calls(), 1, "reactivation revokes nothing")

		_, err = e.svc.Reactivate(e.asAdminA(), target.ID)
		requireCode(t, core.CodeStateConflict, err)
	})
}

func TestTransitionConflicts(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		ops := map[string]func(context.Context, string) (user.User, error){
			"suspend": e.svc.Suspend, "reactivate": e.svc.Reactivate,
		}
		cases := []struct {
			from    user.Status
			allowed string // the one operation allowed from this state
		}{
			{user.StatusPendingVerification, ""},
			{user.StatusActive, "suspend"},
			{user.StatusSuspended, "reactivate"},
			{user.StatusDeactivated, ""},
		}
		for _, tc := range cases {
			for name, op := range ops {
				t.Run(string(tc.from)+"/"+name, func(t *testing.T) {
					u := e.insertUser(t, e.tenantA, core.NewID()+"@conflict.example.org", tc.from)
					before := e.eventCount(t)
					got, err := op(e.asAdminA(), u.ID)
					if name == tc.allowed {
						require.NoError(t, err)
						require.NotEqual(t, tc.from, got.Status)
						return
					}
					requireCode(t, core.CodeStateConflict, err)
					require.Equal(t, tc.from, e.get(t, u.ID).Status)
					require.Equal(t, before, e.eventCount(t))
				})
			}
		}
	})
}

func TestSuspendSelfAndRollback(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		_, err := e.svc.Suspend(e.asAdminA(), e.adminA)
		requireCode(t, core.CodeForbidden, err)
		_, err = e.svc.Suspend(e.asSuper(), e.superAdmin)
		requireCode(t, core.CodeForbidden, err)
		require.Equal(t, user.StatusActive, e.get(t, e.adminA).Status)

		// A failing session revocation rolls the suspension back.
		target := e.insertUser(t, e.tenantA, "rb@a.example.org", user.StatusActive)
		before := e.eventCount(t)
		e.sessions.err = core.Unavailable(errors.New("session store down"))
		_, err = e.svc.Suspend(e.asAdminA(), target.ID)
		e.sessions.err = nil
		requireCode(t, core.CodeUnavailable, err)
		require.Equal(t, user.StatusActive, e.get(t, target.ID).Status)
		require.Equal(t, before, e.eventCount(t))
	})
}

func TestConcurrentSuspend(t *testing.T) {
	forEachDialect(t, func(t *testing.T, e *env) {
		target := e.insertUser(t, e.tenantA, "cs@a.example.org", user.StatusActive)
		errs := make([]error, 5)
		var wg sync.WaitGroup
		for i := range errs {
			wg.Go(func() { _, errs[i] = e.svc.Suspend(e.asAdminA(), target.ID) })
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			if err == nil {
				ok++
				continue
			}
			requireCode(t, core.CodeStateConflict, err)
		}
		require.Equal(t, 1, ok)
		require.Len(t, e.events(t, user.EventSuspended, target.ID), 1)
		require.Len(t, e.sessions.Calls(), 1)
	})
}
