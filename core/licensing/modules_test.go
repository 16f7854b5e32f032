package licensing_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/licensing"
	"github.com/ghasi-ehealth/identity-service/messaging/eventtest"
)

func ptr[T any](v T) *T { return &v }

func TestSeededAlwaysOnModules(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		ms, err := e.svc.ListModules(as(e.adminA, e.tenantA))
		require.NoError(t, err)
		got := map[string]string{}
		for _, m := range ms {
			require.True(t, m.IsAlwaysOn, m.Code)
			require.Empty(t, m.DependsOn)
			got[m.Code] = m.Name
		}
		require.Equal(t, map[string]string{"platform.iam": "Identity & access", "platform.audit": "Audit", "ehr.core": "EHR core"}, got)
		for _, code := range licensing.AlwaysOnModules {
			_, err := e.svc.DeleteModule(e.root(), code)
			requireCode(t, core.CodeLicAlwaysOnImmutable, err)
			_, err = e.svc.UpdateModule(e.root(), code, licensing.UpdateModuleInput{IsAlwaysOn: ptr(false)})
			requireCode(t, core.CodeLicAlwaysOnImmutable, err)
		}
		_, err = e.svc.ListModules(t.Context())
		requireCode(t, core.CodeUnauthenticated, err)
	})
}

func TestCreateAndUpdateModule(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		_, err := e.svc.CreateModule(as(e.adminA, e.tenantA), licensing.CreateModuleInput{Code: "lab.core", Name: "Lab"})
		requireCode(t, core.CodeForbidden, err)

		lab, err := e.svc.CreateModule(e.root(), licensing.CreateModuleInput{Code: "lab.core", Name: "Lab", Description: "d", DependsOn: []string{"ehr.core"}})
		require.NoError(t, err)
		require.Equal(t, []string{"ehr.core"}, lab.DependsOn)
		_, err = e.svc.CreateModule(e.root(), licensing.CreateModuleInput{Code: "lab.core", Name: "Again"})
		requireCode(t, core.CodeConflict, err)
		for _, bad := range []licensing.CreateModuleInput{
			{Code: "Lab", Name: "x"}, {Code: "lab", Name: "x"}, {Code: "lab.x", Name: ""},
		} {
			_, err = e.svc.CreateModule(e.root(), bad)
			requireCode(t, core.CodeValidation, err)
		}
		_, err = e.svc.CreateModule(e.root(), licensing.CreateModuleInput{Code: "lab.x", Name: "x", DependsOn: []string{"nope.mod"}})
		requireCode(t, core.CodeValidation, err)
		require.Equal(t, core.KindUnprocessable, core.KindOf(err))

		// Code is immutable; the same code may be echoed.
		_, err = e.svc.UpdateModule(e.root(), "lab.core", licensing.UpdateModuleInput{Code: ptr("lab.other")})
		requireCode(t, core.CodeLicCodeImmutable, err)
		e.clock.Advance(1)
		up, err := e.svc.UpdateModule(e.root(), "lab.core", licensing.UpdateModuleInput{Code: ptr("lab.core"), Name: ptr("Laboratory")})
		require.NoError(t, err)
		require.Equal(t, "Laboratory", up.Name)
		require.Equal(t, []string{"ehr.core"}, up.DependsOn)
		_, err = e.svc.UpdateModule(e.root(), "nope.mod", licensing.UpdateModuleInput{Name: ptr("x")})
		requireCode(t, core.CodeNotFound, err)

		// Cycles over the whole catalogue are refused.
		e.module(t, "lab.results", "lab.core")
		e.module(t, "lab.orders", "lab.results")
		_, err = e.svc.UpdateModule(e.root(), "lab.core", licensing.UpdateModuleInput{DependsOn: &[]string{"lab.orders"}})
		requireCode(t, core.CodeValidation, err)
		require.Contains(t, core.AsError(err).Fields, "dependsOn")
		_, err = e.svc.UpdateModule(e.root(), "lab.core", licensing.UpdateModuleInput{DependsOn: &[]string{"lab.core"}})
		requireCode(t, core.CodeValidation, err)

		// DELETE terminates: kept, listed, idempotent.
		del, err := e.svc.DeleteModule(e.root(), "lab.orders")
		require.NoError(t, err)
		require.NotNil(t, del.TerminatedAt)
		_, err = e.svc.DeleteModule(e.root(), "lab.orders")
		require.NoError(t, err)
		ms, err := e.svc.ListModules(e.root())
		require.NoError(t, err)
		require.Len(t, ms, 6)
		require.Contains(t, e.changed, "")

		created := eventtest.RequireValidStored(t, e.db, licensing.EventModuleCreated)
		require.Len(t, created, 3)
		require.Equal(t, "lab.core", created[0].Subject)
		updated := eventtest.RequireValidStored(t, e.db, licensing.EventModuleUpdated)
		require.Len(t, updated, 2, "rename and termination; the repeated DELETE emits nothing")
	})
}
