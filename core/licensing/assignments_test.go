package licensing_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/licensing"
	"github.com/ghasi-ehealth/identity-service/core/scope"
	"github.com/ghasi-ehealth/identity-service/messaging/eventtest"
)

func TestCreateAssignmentValidation(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		e.module(t, "lab.core")
		in := func(mod func(*licensing.CreateAssignmentInput)) licensing.CreateAssignmentInput {
			x := licensing.CreateAssignmentInput{TenantID: e.tenantA, NodeID: e.facility, ModuleCode: "lab.core",
				Scope: licensing.ScopeExact, Status: licensing.StatusActive}
			mod(&x)
			return x
		}
		_, err := e.svc.CreateAssignment(as(e.adminA, e.tenantA), in(func(*licensing.CreateAssignmentInput) {}))
		requireCode(t, core.CodeForbidden, err)
		for code, x := range map[string]licensing.CreateAssignmentInput{
			core.CodeValidation + "/scope":  in(func(x *licensing.CreateAssignmentInput) { x.Scope = "down" }),
			core.CodeValidation + "/status": in(func(x *licensing.CreateAssignmentInput) { x.Status = licensing.StatusSuspended }),
			core.CodeValidation + "/node":   in(func(x *licensing.CreateAssignmentInput) { x.NodeID = e.rootB }),
			core.CodeLicTrialRequiresEnd:    in(func(x *licensing.CreateAssignmentInput) { x.Status = licensing.StatusTrial }),
			core.CodeNotFound + "/node":     in(func(x *licensing.CreateAssignmentInput) { x.NodeID = core.NewID() }),
			core.CodeNotFound + "/module":   in(func(x *licensing.CreateAssignmentInput) { x.ModuleCode = "nope.mod" }),
			core.CodeNotFound + "/tenant":   in(func(x *licensing.CreateAssignmentInput) { x.TenantID = "bad" }),
			core.CodeValidation + "/window": in(func(x *licensing.CreateAssignmentInput) { x.EffectiveTo = &testT0 }),
		} {
			_, err := e.svc.CreateAssignment(e.root(), x)
			require.Error(t, err, code)
			want, _, _ := strings.Cut(code, "/")
			require.Equal(t, want, core.CodeOf(err), "%s: %v", code, err)
		}
		end := testT0.Add(30 * 24 * time.Hour)
		a, err := e.svc.CreateAssignment(e.root(), in(func(x *licensing.CreateAssignmentInput) { x.Status = licensing.StatusTrial; x.EffectiveTo = &end }))
		require.NoError(t, err)
		require.Equal(t, licensing.StatusTrial, a.Status)
		require.Equal(t, testT0, a.EffectiveFrom)
		require.Equal(t, e.superAdmin, a.CreatedBy)
		got, err := e.svc.GetAssignment(as(e.adminA, e.tenantA), a.ID)
		require.NoError(t, err)
		require.Equal(t, a, got)

		_, err = e.svc.DeleteModule(e.root(), "lab.core")
		require.NoError(t, err)
		_, err = e.svc.CreateAssignment(e.root(), in(func(*licensing.CreateAssignmentInput) {}))
		requireCode(t, core.CodeValidation, err)
		require.Contains(t, e.changed, e.tenantA)
	})
}

func TestDependencies(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		e.module(t, "lab.core", "ehr.core") // always-on dependency: always satisfied
		e.module(t, "lab.results", "lab.core")
		create := func(node string) error {
			_, err := e.svc.CreateAssignment(e.root(), licensing.CreateAssignmentInput{TenantID: e.tenantA, NodeID: node,
				ModuleCode: "lab.results", Scope: licensing.ScopeExact, Status: licensing.StatusActive})
			return err
		}
		requireCode(t, core.CodeLicDependencyNotLicensed, create(e.facility))

		// exact at an ancestor does not reach the facility, but licenses the node itself.
		exact := e.assign(t, e.province, "lab.core", licensing.ScopeExact)
		requireCode(t, core.CodeLicDependencyNotLicensed, create(e.facility))
		require.NoError(t, create(e.province))

		// inherit_down at an ancestor reaches every descendant.
		down := e.assign(t, e.district, "lab.core", licensing.ScopeInheritDown)
		require.NoError(t, create(e.facility))

		// A suspended dependency no longer licenses; re-activation re-checks.
		child := e.assign(t, e.district, "lab.results", licensing.ScopeExact)
		_, err := e.svc.ChangeAssignmentStatus(e.root(), child.ID, licensing.StatusSuspended, "")
		require.NoError(t, err)
		_, err = e.svc.ChangeAssignmentStatus(e.root(), down.ID, licensing.StatusSuspended, "unpaid")
		require.NoError(t, err)
		_, err = e.svc.ChangeAssignmentStatus(e.root(), child.ID, licensing.StatusActive, "")
		requireCode(t, core.CodeLicDependencyNotLicensed, err)
		_, err = e.svc.ChangeAssignmentStatus(e.root(), down.ID, licensing.StatusActive, "paid")
		require.NoError(t, err)
		_, err = e.svc.ChangeAssignmentStatus(e.root(), child.ID, licensing.StatusActive, "")
		require.NoError(t, err)
		_ = exact

		// A dependency outside its window does not license.
		e.module(t, "rad.core")
		e.module(t, "rad.pacs", "rad.core")
		end := testT0.Add(time.Hour)
		_, err = e.svc.CreateAssignment(e.root(), licensing.CreateAssignmentInput{TenantID: e.tenantA, NodeID: e.province,
			ModuleCode: "rad.core", Scope: licensing.ScopeInheritDown, Status: licensing.StatusTrial, EffectiveTo: &end})
		require.NoError(t, err)
		e.clock.Advance(2 * time.Hour)
		_, err = e.svc.CreateAssignment(e.root(), licensing.CreateAssignmentInput{TenantID: e.tenantA, NodeID: e.facility,
			ModuleCode: "rad.pacs", Scope: licensing.ScopeExact, Status: licensing.StatusActive})
		requireCode(t, core.CodeLicDependencyNotLicensed, err)
	})
}

func TestStatusLifecycleAndHistory(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		e.module(t, "lab.core")
		a := e.assign(t, e.facility, "lab.core", licensing.ScopeExact)
		_, err := e.svc.ChangeAssignmentStatus(as(e.adminA, e.tenantA), a.ID, licensing.StatusSuspended, "")
		requireCode(t, core.CodeForbidden, err)
		_, err = e.svc.ChangeAssignmentStatus(e.root(), a.ID, "paused", "")
		requireCode(t, core.CodeValidation, err)
		_, err = e.svc.ChangeAssignmentStatus(e.root(), core.NewID(), licensing.StatusSuspended, "")
		requireCode(t, core.CodeNotFound, err)
		_, err = e.svc.ChangeAssignmentStatus(e.root(), a.ID, licensing.StatusTrial, "")
		requireCode(t, core.CodeLicTrialRequiresEnd, err)

		e.clock.Advance(time.Minute)
		s, err := e.svc.ChangeAssignmentStatus(e.root(), a.ID, licensing.StatusSuspended, "unpaid")
		require.NoError(t, err)
		require.Equal(t, licensing.StatusSuspended, s.Status)
		e.clock.Advance(time.Minute)
		_, err = e.svc.ChangeAssignmentStatus(e.root(), a.ID, licensing.StatusActive, "")
		require.NoError(t, err)
		e.clock.Advance(time.Minute)
		_, err = e.svc.ChangeAssignmentStatus(e.root(), a.ID, licensing.StatusTerminated, "contract ended")
		require.NoError(t, err)
		for _, to := range []licensing.Status{licensing.StatusActive, licensing.StatusTrial, licensing.StatusSuspended, licensing.StatusTerminated} {
			_, err = e.svc.ChangeAssignmentStatus(e.root(), a.ID, to, "")
			requireCode(t, core.CodeLicTerminated, err)
		}

		h, err := e.svc.History(as(e.adminA, e.tenantA), a.ID)
		require.NoError(t, err)
		require.Len(t, h, 4)
		want := [][2]licensing.Status{{"", "active"}, {"active", "suspended"}, {"suspended", "active"}, {"active", "terminated"}}
		for i, x := range h {
			require.Equal(t, want[i], [2]licensing.Status{x.FromStatus, x.ToStatus})
			require.Equal(t, e.superAdmin, x.ActorID)
			require.Equal(t, testT0.Add(time.Duration(i)*time.Minute), x.At)
		}
		require.Equal(t, "unpaid", h[1].Reason)

		// Reads: tenant admin of another tenant, service credentials.
		_, err = e.svc.History(as(e.adminB, e.tenantB), a.ID)
		requireCode(t, core.CodeCrossTenant, err)
		list, err := e.svc.ListAssignments(service(e.tenantA, scope.LicensingRead), e.tenantA, e.facility)
		require.NoError(t, err)
		require.Len(t, list, 1)
		list, err = e.svc.ListAssignments(service(e.platform, scope.LicensingRead), e.tenantA, "")
		require.NoError(t, err)
		require.Len(t, list, 1)
		_, err = e.svc.ListAssignments(service(e.tenantB, scope.LicensingRead), e.tenantA, "")
		requireCode(t, core.CodeCrossTenant, err)
		_, err = e.svc.ListAssignments(service(e.tenantA), e.tenantA, "")
		requireCode(t, core.CodeForbidden, err)
		list, err = e.svc.ListAssignments(as(e.adminA, e.tenantA), e.tenantA, e.district)
		require.NoError(t, err)
		require.Empty(t, list)

		created := eventtest.RequireValidStored(t, e.db, licensing.EventAssignmentCreated)
		require.Equal(t, a.ID, created[0].Subject)
		changed := eventtest.RequireValidStored(t, e.db, licensing.EventAssignmentStatusChanged)
		require.Len(t, changed, 3)
	})
}

// TestConcurrentStatusChangesOneWinner races changes of one assignment:
// every change that succeeds appended exactly one history row, the rows
// form one chain (each from is the previous to), so no two changes both
// won from the same status, and nothing follows terminated.
func TestConcurrentStatusChangesOneWinner(t *testing.T) {
	forDialects(t, func(t *testing.T, e *env) {
		e.module(t, "lab.core")
		end := testT0.Add(24 * time.Hour)
		for round := 0; round < 5; round++ {
			a, err := e.svc.CreateAssignment(e.root(), licensing.CreateAssignmentInput{TenantID: e.tenantA, NodeID: e.facility,
				ModuleCode: "lab.core", Scope: licensing.ScopeExact, Status: licensing.StatusActive, EffectiveTo: &end})
			require.NoError(t, err)
			targets := []licensing.Status{licensing.StatusSuspended, licensing.StatusTerminated, licensing.StatusTrial, licensing.StatusSuspended}
			var wg sync.WaitGroup
			errs := make([]error, len(targets))
			for i, to := range targets {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, errs[i] = e.svc.ChangeAssignmentStatus(e.root(), a.ID, to, "race")
				}()
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					require.Contains(t, []string{core.CodeStateConflict, core.CodeLicTerminated}, core.CodeOf(err), "%v", err)
				}
			}
			h, err := e.svc.History(e.root(), a.ID)
			require.NoError(t, err)
			for i := 1; i < len(h); i++ {
				require.Equal(t, h[i-1].ToStatus, h[i].FromStatus, "history chain %v", h)
				require.NotEqual(t, licensing.StatusTerminated, h[i-1].ToStatus)
			}
			got, err := e.svc.GetAssignment(e.root(), a.ID)
			require.NoError(t, err)
			require.Equal(t, h[len(h)-1].ToStatus, got.Status)
		}
	})
}
