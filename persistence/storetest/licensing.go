package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/licensing"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

func testLicensing(t *testing.T, open dbtest.Opener) {
	t.Run("modules", func(t *testing.T) { testLicenseModules(t, open(t)) })
	t.Run("assignments and history", func(t *testing.T) { testLicenseAssignments(t, open(t)) })
}

func testLicenseModules(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewLicensingStore(db)
	ms, err := s.ListModules(ctx)
	require.NoError(t, err)
	require.Len(t, ms, 3, "seeded always-on modules")
	for _, m := range ms {
		require.True(t, m.IsAlwaysOn)
		require.Equal(t, []string{}, m.DependsOn)
	}

	m := licensing.Module{Code: "lab.core", Name: "Lab", Description: "d", DependsOn: []string{"ehr.core"}, CreatedAt: userT0, UpdatedAt: userT0}
	require.NoError(t, s.InsertModule(ctx, m))
	require.Equal(t, core.KindConflict, core.KindOf(s.InsertModule(ctx, m)))
	got, err := s.ModuleByCode(ctx, "lab.core")
	require.NoError(t, err)
	require.Equal(t, m, got)

	m.Name, m.DependsOn, m.UpdatedAt = "Laboratory", nil, userT0.Add(time.Hour)
	require.NoError(t, s.UpdateModule(ctx, m))
	got, err = s.ModuleByCode(ctx, "lab.core")
	require.NoError(t, err)
	require.Equal(t, "Laboratory", got.Name)
	require.Equal(t, []string{}, got.DependsOn)
	require.Equal(t, core.CodeNotFound, core.CodeOf(s.UpdateModule(ctx, licensing.Module{Code: "nope.mod", Name: "x"})))

	at := userT0.Add(2 * time.Hour)
	ok, err := s.TerminateModule(ctx, "lab.core", at)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = s.TerminateModule(ctx, "lab.core", at.Add(time.Hour))
	require.NoError(t, err)
	require.False(t, ok)
	got, err = s.ModuleByCode(ctx, "lab.core")
	require.NoError(t, err)
	require.Equal(t, at, *got.TerminatedAt)
	_, err = s.ModuleByCode(ctx, "nope.mod")
	require.Equal(t, core.CodeNotFound, core.CodeOf(err))
}

func testLicenseAssignments(t *testing.T, db *persistence.DB) {
	ctx := context.Background()
	s := persistence.NewLicensingStore(db)
	tenant := userTestTenant(t, db, "lic", false)
	node := tenancy.Node{ID: core.NewID(), TenantID: tenant, Name: "f", Kind: "facility", CreatedAt: userT0}
	require.NoError(t, persistence.NewTenancyStore(db).CreateNode(ctx, node))
	owner, err := s.NodeTenantID(ctx, node.ID)
	require.NoError(t, err)
	require.Equal(t, tenant, owner)
	_, err = s.NodeTenantID(ctx, core.NewID())
	require.Equal(t, core.CodeNotFound, core.CodeOf(err))

	end := userT0.Add(24 * time.Hour)
	a := licensing.Assignment{ID: core.NewID(), TenantID: tenant, NodeID: node.ID, ModuleCode: "ehr.core", Scope: licensing.ScopeInheritDown,
		Status: licensing.StatusTrial, EffectiveFrom: userT0, EffectiveTo: &end, CreatedBy: core.NewID(), CreatedAt: userT0, UpdatedAt: userT0}
	require.NoError(t, s.InsertAssignment(ctx, a))
	got, err := s.AssignmentByID(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, a, got)
	orphan := a
	orphan.ID, orphan.ModuleCode = core.NewID(), "nope.mod"
	require.Equal(t, core.KindNotFound, core.KindOf(s.InsertAssignment(ctx, orphan)))

	list, err := s.ListAssignments(ctx, tenant, node.ID)
	require.NoError(t, err)
	require.Equal(t, []licensing.Assignment{a}, list)
	list, err = s.ListAssignments(ctx, tenant, core.NewID())
	require.NoError(t, err)
	require.Empty(t, list)
	list, err = s.AssignmentsOfModules(ctx, tenant, []string{core.NewID(), node.ID}, []string{"ehr.core", "platform.iam"})
	require.NoError(t, err)
	require.Len(t, list, 1)

	// The conditional update lets exactly one change from a status win.
	at := userT0.Add(time.Minute)
	ok, err := s.SetAssignmentStatus(ctx, a.ID, licensing.StatusTrial, licensing.StatusActive, at)
	require.NoError(t, err)
	require.True(t, ok)
	ok, err = s.SetAssignmentStatus(ctx, a.ID, licensing.StatusTrial, licensing.StatusSuspended, at)
	require.NoError(t, err)
	require.False(t, ok)
	got, err = s.AssignmentByID(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, licensing.StatusActive, got.Status)
	require.Equal(t, at, got.UpdatedAt)

	h1 := licensing.HistoryEntry{AssignmentID: a.ID, ToStatus: licensing.StatusTrial, ActorID: "u", At: userT0}
	h2 := licensing.HistoryEntry{AssignmentID: a.ID, FromStatus: licensing.StatusTrial, ToStatus: licensing.StatusActive, Reason: "paid", ActorID: "u", At: at}
	require.NoError(t, s.AppendHistory(ctx, h2))
	require.NoError(t, s.AppendHistory(ctx, h1))
	h, err := s.History(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, []licensing.HistoryEntry{h1, h2}, h)
	require.Equal(t, core.KindNotFound, core.KindOf(s.AppendHistory(ctx, licensing.HistoryEntry{AssignmentID: core.NewID(), ToStatus: "active", At: at})))
}
