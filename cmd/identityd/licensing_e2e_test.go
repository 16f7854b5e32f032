package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"maps"
	"net/http"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core/licensing"
	"github.com/ghasi-ehealth/identity-service/messaging"
	"github.com/ghasi-ehealth/identity-service/messaging/eventtest"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
	identityv1 "github.com/ghasi-ehealth/identity-service/rpc/gen/identity/v1"
)

// TestLicensingCatalogue covers IDENT-US-013 through REST and GraphQL as
// SUPER_ADMIN: the seeded always-on modules, creation with its event, code
// immutability, description updates with their event, the always-on
// invariant and the SUPER_ADMIN-only writes.
func TestLicensingCatalogue(t *testing.T) {
	for name, env := range e2eDialects {
		t.Run(name, func(t *testing.T) {
			s := startService(t, env(t))
			w := newWorld(t, s)

			t.Run("seeded always-on modules", func(t *testing.T) {
				var list struct{ Items []moduleDoc }
				s.call(t, http.MethodGet, "/api/v1/licensing/modules", w.super, nil).decode(t, http.StatusOK, &list)
				got := map[string]moduleDoc{}
				for _, m := range list.Items {
					got[m.Code] = m
				}
				for _, code := range []string{"platform.iam", "platform.audit", "ehr.core"} {
					require.Contains(t, got, code)
					require.True(t, got[code].IsAlwaysOn, code)
					require.Nil(t, got[code].TerminatedAt, code)
				}
				var q struct {
					Modules []struct {
						Code       string
						IsAlwaysOn bool
					}
				}
				s.graphql(t, w.super, `{ modules { code isAlwaysOn } }`, nil).decode(t, &q)
				gq := map[string]bool{}
				for _, m := range q.Modules {
					gq[m.Code] = m.IsAlwaysOn
				}
				require.Equal(t, map[string]bool{"platform.iam": true, "platform.audit": true, "ehr.core": true},
					map[string]bool{"platform.iam": gq["platform.iam"], "platform.audit": gq["platform.audit"], "ehr.core": gq["ehr.core"]})
				require.Len(t, q.Modules, len(list.Items), "REST and GraphQL list the same catalogue")
			})

			t.Run("create through REST emits module.created", func(t *testing.T) {
				m := s.createModule(t, w.super, map[string]any{"code": "lab.core", "name": "Laboratory", "description": "orders", "dependsOn": []string{"ehr.core"}})
				require.Equal(t, moduleDoc{Code: "lab.core", Name: "Laboratory", Description: "orders", DependsOn: []string{"ehr.core"}}, m)
				var d licensing.ModuleData
				s.licensingEventData(t, licensing.EventModuleCreated, "lab.core", &d)
				require.Equal(t, licensing.ModuleData{Code: "lab.core", Name: "Laboratory", Description: "orders", DependsOn: []string{"ehr.core"}}, d)
				// The same code again is a conflict, not a second module.
				requireProblem(t, s.call(t, http.MethodPost, "/api/v1/licensing/modules", w.super,
					map[string]any{"code": "lab.core", "name": "Again"}), http.StatusConflict, "IDENT_CONFLICT")
			})

			t.Run("create through GraphQL emits module.created", func(t *testing.T) {
				var out struct {
					CreateModule struct {
						Code       string
						DependsOn  []string
						IsAlwaysOn bool
					}
				}
				s.graphql(t, w.super, `mutation($in: CreateModuleInput!) { createModule(input: $in) { code dependsOn isAlwaysOn } }`,
					map[string]any{"in": map[string]any{"code": "rad.core", "name": "Radiology"}}).decode(t, &out)
				require.Equal(t, "rad.core", out.CreateModule.Code)
				require.Empty(t, out.CreateModule.DependsOn)
				var d licensing.ModuleData
				s.licensingEventData(t, licensing.EventModuleCreated, "rad.core", &d)
				require.Equal(t, []string{}, d.DependsOn)
			})

			t.Run("code is immutable", func(t *testing.T) {
				before := len(s.eventsFor(t, licensing.EventModuleCreated, "lab.core"))
				requireProblem(t, s.call(t, http.MethodPatch, "/api/v1/licensing/modules/lab.core", w.super,
					map[string]any{"code": "lab.renamed", "name": "Renamed"}), http.StatusUnprocessableEntity, "IDENT_LIC_CODE_IMMUTABLE")
				res := s.graphql(t, w.super, `mutation { updateModule(code: "lab.core", input: {code: "lab.other"}) { code } }`, nil)
				require.Equal(t, "IDENT_LIC_CODE_IMMUTABLE", res.code())
				// Nothing changed, nothing emitted.
				require.Equal(t, 0, s.count(t, `SELECT count(*) FROM events WHERE type = ?`, licensing.EventModuleUpdated))
				require.Equal(t, 0, s.count(t, `SELECT count(*) FROM license_modules WHERE code IN ('lab.renamed', 'lab.other')`))
				require.Len(t, s.eventsFor(t, licensing.EventModuleCreated, "lab.core"), before)
			})

			t.Run("description update keeps the code and emits module.updated", func(t *testing.T) {
				var m moduleDoc
				// Sending the same code is allowed.
				s.call(t, http.MethodPatch, "/api/v1/licensing/modules/lab.core", w.super,
					map[string]any{"code": "lab.core", "description": "orders and results"}).decode(t, http.StatusOK, &m)
				require.Equal(t, "lab.core", m.Code)
				require.Equal(t, "orders and results", m.Description)
				require.Equal(t, "Laboratory", m.Name)
				var d licensing.ModuleData
				s.licensingEventData(t, licensing.EventModuleUpdated, "lab.core", &d)
				require.Equal(t, licensing.ModuleData{Code: "lab.core", Name: "Laboratory", Description: "orders and results",
					DependsOn: []string{"ehr.core"}}, d)

				var out struct {
					UpdateModule struct{ Code, Description string }
				}
				s.graphql(t, w.super, `mutation { updateModule(code: "rad.core", input: {description: "imaging"}) { code description } }`, nil).decode(t, &out)
				require.Equal(t, "rad.core", out.UpdateModule.Code)
				require.Equal(t, "imaging", out.UpdateModule.Description)
				require.Len(t, s.eventsFor(t, licensing.EventModuleUpdated, "rad.core"), 1)
			})

			t.Run("always-on modules cannot be deleted or switched off", func(t *testing.T) {
				for _, code := range licensing.AlwaysOnModules {
					requireProblem(t, s.call(t, http.MethodDelete, "/api/v1/licensing/modules/"+code, w.super, nil),
						http.StatusUnprocessableEntity, "IDENT_LIC_ALWAYS_ON_IMMUTABLE")
				}
				requireProblem(t, s.call(t, http.MethodPatch, "/api/v1/licensing/modules/ehr.core", w.super,
					map[string]any{"isAlwaysOn": false}), http.StatusUnprocessableEntity, "IDENT_LIC_ALWAYS_ON_IMMUTABLE")
				require.Equal(t, 3, s.count(t, `SELECT count(*) FROM license_modules
					WHERE code IN ('platform.iam', 'platform.audit', 'ehr.core') AND is_always_on AND terminated_at IS NULL`))
				// An ordinary module is terminated, kept, and takes no new assignments.
				res := s.call(t, http.MethodDelete, "/api/v1/licensing/modules/rad.core", w.super, nil)
				require.Equal(t, http.StatusNoContent, res.Status, "body: %s", res.Body)
				require.Len(t, s.eventsFor(t, licensing.EventModuleUpdated, "rad.core"), 2)
			})

			t.Run("writes need SUPER_ADMIN", func(t *testing.T) {
				for _, tok := range []string{w.tokA, w.tokB} {
					requireProblem(t, s.call(t, http.MethodPost, "/api/v1/licensing/modules", tok,
						map[string]any{"code": "x.y", "name": "X"}), http.StatusForbidden, "IDENT_FORBIDDEN")
					requireProblem(t, s.call(t, http.MethodPatch, "/api/v1/licensing/modules/lab.core", tok,
						map[string]any{"description": "mine"}), http.StatusForbidden, "IDENT_FORBIDDEN")
					requireProblem(t, s.call(t, http.MethodDelete, "/api/v1/licensing/modules/lab.core", tok, nil),
						http.StatusForbidden, "IDENT_FORBIDDEN")
					res := s.graphql(t, tok, `mutation { createModule(input: {code: "x.y", name: "X"}) { code } }`, nil)
					require.Equal(t, "IDENT_FORBIDDEN", res.code())
				}
				requireProblem(t, s.call(t, http.MethodPost, "/api/v1/licensing/modules", "",
					map[string]any{"code": "x.y", "name": "X"}), http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")
				require.Equal(t, 0, s.count(t, `SELECT count(*) FROM license_modules WHERE code = 'x.y'`))
			})
		})
	}
}

// TestLicensingAssignmentsAndEffective covers IDENT-US-014 (dependency
// checks, trial end, status history and events, terminated is final) and
// IDENT-US-015 (the internal resolver over REST, Connect, gRPC and GraphQL,
// inheritance and deeper-wins, who may ask).
func TestLicensingAssignmentsAndEffective(t *testing.T) {
	for name, env := range e2eDialects {
		t.Run(name, func(t *testing.T) {
			s := startService(t, env(t))
			w := newLicensingWorld(t, s)
			A := w.tenantA.ID
			for _, m := range []map[string]any{
				{"code": "lab.core", "name": "Laboratory"},
				{"code": "lab.results", "name": "Lab results", "dependsOn": []string{"lab.core"}},
				{"code": "rad.core", "name": "Radiology"},
				{"code": "rad.viewer", "name": "Image viewer", "dependsOn": []string{"rad.core"}},
				{"code": "pharm.core", "name": "Pharmacy"},
				{"code": "tele.core", "name": "Telemedicine"},
			} {
				s.createModule(t, w.super, m)
			}

			var labCore, labResults, pharmProvince, pharmFacility, teleTrial assignmentDoc

			t.Run("create emits assignment.created", func(t *testing.T) {
				labCore = s.assign(t, w.super, map[string]any{"tenantId": A, "nodeId": w.province, "moduleCode": "lab.core",
					"scope": "inherit_down", "status": "active"})
				require.Equal(t, assignmentDoc{ID: labCore.ID, TenantID: A, NodeID: w.province, ModuleCode: "lab.core",
					Scope: "inherit_down", Status: "active", EffectiveFrom: labCore.EffectiveFrom}, labCore)
				evs := s.assignmentEvents(t, licensing.EventAssignmentCreated, labCore.ID)
				require.Len(t, evs, 1)
				require.Equal(t, licensing.AssignmentData{AssignmentID: labCore.ID, TenantID: A, NodeID: w.province,
					ModuleCode: "lab.core", ToStatus: licensing.StatusActive}, evs[0])
				h := s.assignmentHistory(t, w.super, labCore.ID)
				require.Len(t, h, 1)
				require.Equal(t, "", h[0].FromStatus)
				require.Equal(t, "active", h[0].ToStatus)
				require.Equal(t, w.superID, h[0].ActorID)
			})

			t.Run("dependency licensed at an ancestor", func(t *testing.T) {
				labResults = s.assign(t, w.super, map[string]any{"tenantId": A, "nodeId": w.facility, "moduleCode": "lab.results",
					"scope": "exact", "status": "active"})
				require.Len(t, s.assignmentEvents(t, licensing.EventAssignmentCreated, labResults.ID), 1)
			})

			t.Run("unlicensed dependency is refused", func(t *testing.T) {
				body := map[string]any{"tenantId": A, "nodeId": w.facility, "moduleCode": "rad.viewer", "scope": "exact", "status": "active"}
				requireProblem(t, s.call(t, http.MethodPost, "/api/v1/licensing/assignments", w.super, body),
					http.StatusUnprocessableEntity, "IDENT_LIC_DEPENDENCY_NOT_LICENSED")
				// An exact assignment at an ancestor does not reach the facility.
				s.assign(t, w.super, map[string]any{"tenantId": A, "nodeId": w.district, "moduleCode": "rad.core", "scope": "exact", "status": "active"})
				requireProblem(t, s.call(t, http.MethodPost, "/api/v1/licensing/assignments", w.super, body),
					http.StatusUnprocessableEntity, "IDENT_LIC_DEPENDENCY_NOT_LICENSED")
				res := s.graphql(t, w.super, `mutation($in: CreateAssignmentInput!) { createAssignment(input: $in) { id } }`,
					map[string]any{"in": map[string]any{"tenantId": A, "nodeId": w.facility, "moduleCode": "rad.viewer", "scope": "EXACT", "status": "ACTIVE"}})
				require.Equal(t, "IDENT_LIC_DEPENDENCY_NOT_LICENSED", res.code())
				require.Equal(t, 0, s.count(t, `SELECT count(*) FROM license_assignments WHERE module_code = 'rad.viewer'`))
			})

			t.Run("trial requires an end", func(t *testing.T) {
				body := map[string]any{"tenantId": A, "nodeId": w.facility, "moduleCode": "tele.core", "scope": "exact", "status": "trial"}
				requireProblem(t, s.call(t, http.MethodPost, "/api/v1/licensing/assignments", w.super, body),
					http.StatusUnprocessableEntity, "IDENT_LIC_TRIAL_REQUIRES_END")
				require.Equal(t, 0, s.count(t, `SELECT count(*) FROM license_assignments WHERE module_code = 'tele.core'`))
				body["effectiveTo"] = time.Now().Add(30 * 24 * time.Hour).UTC().Format(time.RFC3339)
				teleTrial = s.assign(t, w.super, body)
				require.Equal(t, "trial", teleTrial.Status)
				require.NotNil(t, teleTrial.EffectiveTo)
			})

			t.Run("suspension appends history and emits status_changed", func(t *testing.T) {
				pharmProvince = s.assign(t, w.super, map[string]any{"tenantId": A, "nodeId": w.province, "moduleCode": "pharm.core",
					"scope": "inherit_down", "status": "active"})
				var a assignmentDoc
				s.setAssignmentStatus(t, w.super, pharmProvince.ID, "suspended", "unpaid invoice").decode(t, http.StatusOK, &a)
				require.Equal(t, "suspended", a.Status)
				h := s.assignmentHistory(t, w.super, pharmProvince.ID)
				require.Len(t, h, 2)
				require.Equal(t, historyDoc{FromStatus: "active", ToStatus: "suspended", Reason: "unpaid invoice", ActorID: w.superID, At: h[1].At}, h[1])
				require.False(t, h[1].At.Before(h[0].At))
				from := licensing.StatusActive
				reason := "unpaid invoice"
				evs := s.assignmentEvents(t, licensing.EventAssignmentStatusChanged, pharmProvince.ID)
				require.Equal(t, []licensing.AssignmentData{{AssignmentID: pharmProvince.ID, TenantID: A, NodeID: w.province,
					ModuleCode: "pharm.core", FromStatus: &from, ToStatus: licensing.StatusSuspended, Reason: &reason}}, evs)
				// The same status again is a no-op: no row, no event.
				s.setAssignmentStatus(t, w.super, pharmProvince.ID, "suspended", "").decode(t, http.StatusOK, &a)
				require.Len(t, s.assignmentHistory(t, w.super, pharmProvince.ID), 2)
				require.Len(t, s.assignmentEvents(t, licensing.EventAssignmentStatusChanged, pharmProvince.ID), 1)
				// A deeper, exact, active assignment under the suspended one.
				pharmFacility = s.assign(t, w.super, map[string]any{"tenantId": A, "nodeId": w.facility, "moduleCode": "pharm.core",
					"scope": "exact", "status": "active"})
			})

			t.Run("terminated is final", func(t *testing.T) {
				a := s.assign(t, w.super, map[string]any{"tenantId": A, "nodeId": w.district, "moduleCode": "tele.core",
					"scope": "exact", "status": "active"})
				var got assignmentDoc
				s.setAssignmentStatus(t, w.super, a.ID, "terminated", "contract ended").decode(t, http.StatusOK, &got)
				require.Equal(t, "terminated", got.Status)
				for _, to := range []string{"active", "trial", "suspended", "terminated"} {
					requireProblem(t, s.setAssignmentStatus(t, w.super, a.ID, to, ""), http.StatusUnprocessableEntity, "IDENT_LIC_TERMINATED")
				}
				res := s.graphql(t, w.super, `mutation($id: ID!) { changeAssignmentStatus(id: $id, status: ACTIVE) { id } }`, map[string]any{"id": a.ID})
				require.Equal(t, "IDENT_LIC_TERMINATED", res.code())
				require.Len(t, s.assignmentHistory(t, w.super, a.ID), 2)
				require.Len(t, s.assignmentEvents(t, licensing.EventAssignmentStatusChanged, a.ID), 1)
			})

			t.Run("status changes need SUPER_ADMIN", func(t *testing.T) {
				requireProblem(t, s.setAssignmentStatus(t, w.tokA, labCore.ID, "suspended", ""), http.StatusForbidden, "IDENT_FORBIDDEN")
				requireProblem(t, s.call(t, http.MethodPost, "/api/v1/licensing/assignments", w.tokA, map[string]any{"tenantId": A,
					"nodeId": w.facility, "moduleCode": "lab.core", "scope": "exact", "status": "active"}), http.StatusForbidden, "IDENT_FORBIDDEN")
			})

			platform := []effectiveDoc{
				{Code: "ehr.core", Status: "active", Granted: true, Scope: "inherit_down"},
				{Code: "platform.audit", Status: "active", Granted: true, Scope: "inherit_down"},
				{Code: "platform.iam", Status: "active", Granted: true, Scope: "inherit_down"},
			}
			wantFacility := func() []effectiveDoc {
				out := append(slices.Clone(platform),
					effectiveDoc{Code: "lab.core", Status: "active", Granted: true, Scope: "inherit_down", SourceNodeID: w.province, AssignmentID: labCore.ID},
					effectiveDoc{Code: "lab.results", Status: "active", Granted: true, Scope: "exact", SourceNodeID: w.facility, AssignmentID: labResults.ID},
					effectiveDoc{Code: "pharm.core", Status: "active", Granted: true, Scope: "exact", SourceNodeID: w.facility, AssignmentID: pharmFacility.ID},
					effectiveDoc{Code: "tele.core", Status: "trial", Granted: true, Scope: "exact", SourceNodeID: w.facility, AssignmentID: teleTrial.ID},
				)
				slices.SortFunc(out, func(a, b effectiveDoc) int { return compare(a.Code, b.Code) })
				return out
			}

			t.Run("effective over REST with a service credential", func(t *testing.T) {
				got := s.effectiveREST(t, w.svcToken, A, w.facility)
				// The facility: lab.core from the grandparent, pharm.core's
				// exact assignment overrides the suspended province one.
				require.Equal(t, wantFacility(), got)
				// The district: lab.core inherited, pharm.core suspended from the
				// province, rad.core exact at the district, the terminated
				// tele.core ignored.
				dist := byCode(s.effectiveREST(t, w.svcToken, A, w.district))
				require.Equal(t, effectiveDoc{Code: "pharm.core", Status: "suspended", Granted: false, Scope: "inherit_down",
					SourceNodeID: w.province, AssignmentID: pharmProvince.ID}, dist["pharm.core"])
				require.True(t, dist["lab.core"].Granted)
				require.Equal(t, w.province, dist["lab.core"].SourceNodeID)
				require.True(t, dist["rad.core"].Granted)
				require.NotContains(t, dist, "lab.results")
				require.NotContains(t, dist, "tele.core")
				// rad.core was exact at the district: not at the facility.
				require.NotContains(t, byCode(got), "rad.core")
				// A node of the tenant with nothing but always-on modules.
				var out struct{ CreateNode struct{ ID string } }
				s.graphql(t, w.super, createNodeQ, map[string]any{"in": map[string]any{"tenantId": A, "name": "Herat", "kind": "province"}}).decode(t, &out)
				require.Equal(t, platform, s.effectiveREST(t, w.svcToken, A, out.CreateNode.ID))
			})

			t.Run("effective is for service credentials only", func(t *testing.T) {
				path := effectivePath(A, w.facility)
				requireProblem(t, s.call(t, http.MethodGet, path, "", nil), http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")
				requireProblem(t, s.call(t, http.MethodGet, path, "not-a-token", nil), http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")
				for _, user := range []string{w.super, w.tokA} {
					requireProblem(t, s.call(t, http.MethodGet, path, user, nil), http.StatusForbidden, "IDENT_FORBIDDEN")
				}
				// A service account without the scope; one of another tenant.
				noScope := s.createServiceAccount(t, w.super, w.platformID, "tenant:users:read")
				requireProblem(t, s.call(t, http.MethodGet, path, s.clientToken(t, noScope.ClientID, noScope.ClientSecret), nil),
					http.StatusForbidden, "IDENT_FORBIDDEN")
				ofB := s.createServiceAccount(t, w.super, w.tenantB.ID, "tenant:licensing:read")
				requireProblem(t, s.call(t, http.MethodGet, path, s.clientToken(t, ofB.ClientID, ofB.ClientSecret), nil),
					http.StatusForbidden, "IDENT_FORBIDDEN")
				// The tenant's own service account reads its tenant (tenantId optional).
				ofA := s.createServiceAccount(t, w.super, A, "tenant:licensing:read")
				tokA := s.clientToken(t, ofA.ClientID, ofA.ClientSecret)
				require.Equal(t, wantFacility(), s.effectiveREST(t, tokA, A, w.facility))
				require.Equal(t, wantFacility(), s.effectiveREST(t, tokA, "", w.facility))
				// An API key of the platform tenant with the scope.
				key := s.createAPIKey(t, w.super, map[string]any{"name": "resolver", "scopes": []string{"tenant:licensing:read"}, "tenantId": w.platformID})
				var viaKey effectiveSetDoc
				s.callWith(t, http.MethodGet, path, "", nil, http.Header{"X-API-Key": {key.Secret}}).decode(t, http.StatusOK, &viaKey)
				require.Equal(t, wantFacility(), viaKey.Modules)
				// A node of another tenant is not found, not resolved.
				var nodeB struct{ CreateNode struct{ ID string } }
				s.graphql(t, w.super, createNodeQ, map[string]any{"in": map[string]any{"tenantId": w.tenantB.ID, "name": "Herat", "kind": "province"}}).decode(t, &nodeB)
				var child struct{ CreateNode struct{ ID string } }
				s.graphql(t, w.super, createNodeQ, map[string]any{"in": map[string]any{"tenantId": w.tenantB.ID, "parentId": nodeB.CreateNode.ID,
					"name": "Herat 1", "kind": "district"}}).decode(t, &child)
				requireProblem(t, s.call(t, http.MethodGet, effectivePath(A, child.CreateNode.ID), w.svcToken, nil), http.StatusNotFound, "IDENT_NOT_FOUND")
			})

			t.Run("Connect and gRPC answer the same", func(t *testing.T) {
				want := wantFacility()
				for proto, c := range s.licensingClients() {
					require.Equal(t, want, effectiveRPC(t, c, w.svcToken, A, w.facility), proto)
					for _, m := range []struct {
						code    string
						granted bool
						status  string
					}{{"lab.core", true, "active"}, {"lab.results", true, "active"}, {"pharm.core", true, "active"},
						{"ehr.core", true, "active"}, {"rad.core", false, ""}, {"unknown.module", false, ""}} {
						res, err := c.CheckModuleAccess(t.Context(), bearerRequest(&identityv1.CheckModuleAccessRequest{
							TenantId: A, NodeId: w.facility, ModuleCode: m.code}, w.svcToken))
						require.NoError(t, err, "%s %s", proto, m.code)
						require.Equal(t, m.granted, res.Msg.GetGranted(), "%s %s", proto, m.code)
						require.Equal(t, m.status, res.Msg.GetStatus(), "%s %s", proto, m.code)
					}
					res, err := c.CheckModuleAccess(t.Context(), bearerRequest(&identityv1.CheckModuleAccessRequest{
						TenantId: A, NodeId: w.district, ModuleCode: "pharm.core"}, w.svcToken))
					require.NoError(t, err, proto)
					require.False(t, res.Msg.GetGranted(), proto)
					require.Equal(t, "suspended", res.Msg.GetStatus(), proto)

					_, err = c.GetEffectiveLicenses(t.Context(), bearerRequest(&identityv1.GetEffectiveLicensesRequest{TenantId: A, NodeId: w.facility}, ""))
					require.Equal(t, connect.CodeUnauthenticated, connect.CodeOf(err), "%s: %v", proto, err)
					_, err = c.GetEffectiveLicenses(t.Context(), bearerRequest(&identityv1.GetEffectiveLicensesRequest{TenantId: A, NodeId: w.facility}, w.super))
					require.Equal(t, connect.CodePermissionDenied, connect.CodeOf(err), "%s: %v", proto, err)
					_, err = c.CheckModuleAccess(t.Context(), bearerRequest(&identityv1.CheckModuleAccessRequest{TenantId: A, NodeId: w.facility, ModuleCode: "lab.core"}, w.tokA))
					require.Equal(t, connect.CodePermissionDenied, connect.CodeOf(err), "%s: %v", proto, err)
				}
			})

			t.Run("GraphQL effectiveLicenses answers the same for SUPER_ADMIN", func(t *testing.T) {
				require.Equal(t, wantFacility(), s.effectiveGQL(t, w.super, A, w.facility))
				// The tenant's admin reads its own tenant, not another's.
				require.Equal(t, wantFacility(), s.effectiveGQL(t, w.tokA, A, w.facility))
				res := s.graphql(t, w.tokB, `query($t: ID!, $n: ID!) { effectiveLicenses(tenantId: $t, nodeId: $n) { code } }`,
					map[string]any{"t": A, "n": w.facility})
				require.Equal(t, "IDENT_CROSS_TENANT", res.code())
			})

			t.Run("a status change is seen by the next call", func(t *testing.T) {
				// Warm the cache, then suspend: the resolver must not serve the old set.
				require.True(t, byCode(s.effectiveREST(t, w.svcToken, A, w.facility))["lab.core"].Granted)
				require.True(t, byCode(s.effectiveREST(t, w.svcToken, A, w.facility))["lab.core"].Granted)
				// Warm means cached: a change behind the service's back is not seen.
				_, err := s.main.db.Bun().ExecContext(t.Context(), `UPDATE license_assignments SET status = 'suspended' WHERE id = ?`, pharmFacility.ID)
				require.NoError(t, err)
				require.True(t, byCode(s.effectiveREST(t, w.svcToken, A, w.facility))["pharm.core"].Granted, "served from the cache")
				s.setAssignmentStatus(t, w.super, labCore.ID, "suspended", "audit").decode(t, http.StatusOK, &assignmentDoc{})
				now := byCode(s.effectiveREST(t, w.svcToken, A, w.facility))
				require.Equal(t, effectiveDoc{Code: "lab.core", Status: "suspended", Granted: false, Scope: "inherit_down",
					SourceNodeID: w.province, AssignmentID: labCore.ID}, now["lab.core"])
				require.False(t, now["pharm.core"].Granted, "the tenant's entries were dropped")
				// Reactivation through GraphQL, with its event.
				var out struct{ ChangeAssignmentStatus struct{ Status string } }
				s.graphql(t, w.super, `mutation($id: ID!) { changeAssignmentStatus(id: $id, status: ACTIVE, reason: "audit done") { status } }`,
					map[string]any{"id": labCore.ID}).decode(t, &out)
				require.Equal(t, "ACTIVE", out.ChangeAssignmentStatus.Status)
				require.True(t, byCode(s.effectiveREST(t, w.svcToken, A, w.facility))["lab.core"].Granted)
				require.Len(t, s.assignmentEvents(t, licensing.EventAssignmentStatusChanged, labCore.ID), 2)
				h := s.assignmentHistory(t, w.super, labCore.ID)
				require.Equal(t, []string{"->active", "active->suspended", "suspended->active"}, transitions(h))
			})
		})
	}
}

func transitions(h []historyDoc) []string {
	out := make([]string, len(h))
	for i, x := range h {
		out[i] = x.FromStatus + "->" + x.ToStatus
	}
	return out
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestLicensingCacheAcrossInstances runs two instances on one Postgres
// schema, one Valkey and one NATS with a shared master key: B serves a warm
// effective set from the cache, a status change on A reaches B's next calls
// without waiting for the 5-min TTL (the invalidation is pushed; the 1-s
// target is measured by BenchmarkCrossInstancePropagation), and the
// status_changed event reaches JetStream valid.
func TestLicensingCacheAcrossInstances(t *testing.T) {
	nc, err := nats.Connect(dbtest.NATSURL(), nats.Timeout(2*time.Second))
	dbtest.NeedServer(t, "NATS", err)
	defer nc.Close()
	dbURL := dbtest.PostgresSchemaURL(t)
	valkeyURL := testValkeyURL(t)
	key := make([]byte, 32)
	_, err = rand.Read(key)
	require.NoError(t, err)
	shared := baseEnv(t)
	shared["IDENTITY_DATABASE_URL"] = dbURL
	shared["IDENTITY_VALKEY_URL"] = valkeyURL
	shared["IDENTITY_NATS_URL"] = dbtest.NATSURL()
	shared["IDENTITY_MASTER_KEY"] = base64.StdEncoding.EncodeToString(key)
	shared["IDENTITY_PUBLIC_URL"] = "https://identity.test.example"
	a := startService(t, shared)
	b := startService(t, maps.Clone(shared))

	w := newLicensingWorld(t, a)
	A := w.tenantA.ID
	a.createModule(t, w.super, map[string]any{"code": "lab.core", "name": "Laboratory"})
	b.createModule(t, w.super, map[string]any{"code": "pharm.core", "name": "Pharmacy"})
	lab := a.assign(t, w.super, map[string]any{"tenantId": A, "nodeId": w.province, "moduleCode": "lab.core", "scope": "inherit_down", "status": "active"})
	pharm := b.assign(t, w.super, map[string]any{"tenantId": A, "nodeId": w.province, "moduleCode": "pharm.core", "scope": "inherit_down", "status": "active"})

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	since := time.Now().Add(-time.Second)
	consumer, err := js.OrderedConsumer(ctx, messaging.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{licensing.EventAssignmentStatusChanged},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &since,
	})
	require.NoError(t, err)

	// The token of A's service account works on B (shared master key).
	for range 2 {
		got := byCode(b.effectiveREST(t, w.svcToken, A, w.facility))
		require.True(t, got["lab.core"].Granted)
		require.True(t, got["pharm.core"].Granted)
	}
	// B's set is cached: a change behind the service's back is not seen.
	_, err = b.main.db.Bun().ExecContext(ctx, `UPDATE license_assignments SET status = 'suspended' WHERE id = ?`, pharm.ID)
	require.NoError(t, err)
	require.True(t, byCode(b.effectiveREST(t, w.svcToken, A, w.facility))["pharm.core"].Granted, "served from the cache")

	// A status change through A invalidates the shared cache for B.
	changed := time.Now()
	a.setAssignmentStatus(t, w.super, lab.ID, "suspended", "overdue").decode(t, http.StatusOK, &assignmentDoc{})
	var last map[string]effectiveDoc
	require.Eventually(t, func() bool {
		last = byCode(b.effectiveREST(t, w.svcToken, A, w.facility))
		return !last["lab.core"].Granted
	}, 5*time.Second, 20*time.Millisecond, "B sees A's change (pushed; the cache TTL is 5 min)")
	t.Logf("B saw the change after %s", time.Since(changed))
	require.Equal(t, "suspended", last["lab.core"].Status)
	require.False(t, last["pharm.core"].Granted, "the whole tenant was recomputed")
	// And through Connect on B.
	for proto, c := range b.licensingClients() {
		res, err := c.CheckModuleAccess(ctx, bearerRequest(&identityv1.CheckModuleAccessRequest{TenantId: A, NodeId: w.facility, ModuleCode: "lab.core"}, w.svcToken))
		require.NoError(t, err, proto)
		require.False(t, res.Msg.GetGranted(), proto)
		require.Equal(t, "suspended", res.Msg.GetStatus(), proto)
	}

	// The reverse direction: warm A, reactivate on B.
	require.False(t, byCode(a.effectiveREST(t, w.svcToken, A, w.facility))["lab.core"].Granted)
	b.setAssignmentStatus(t, w.super, lab.ID, "active", "paid").decode(t, http.StatusOK, &assignmentDoc{})
	require.Eventually(t, func() bool {
		return byCode(a.effectiveREST(t, w.svcToken, A, w.facility))["lab.core"].Granted
	}, 5*time.Second, 20*time.Millisecond, "A sees B's change (pushed; the cache TTL is 5 min)")

	// The status_changed events reach JetStream and validate.
	seen := map[string]bool{}
	for len(seen) < 2 {
		msg, err := consumer.Next(jetstream.FetchMaxWait(10 * time.Second))
		require.NoError(t, err, "the status_changed events reach JetStream")
		eventtest.RequireValid(t, msg.Data())
		env, err := messaging.ParseEnvelope(msg.Data())
		require.NoError(t, err)
		if env.Subject == lab.ID {
			require.Equal(t, licensing.EventAssignmentStatusChanged, env.Type)
			require.Equal(t, A, env.TenantID)
			seen[string(msg.Data())] = true
		}
	}
	require.Len(t, a.assignmentEvents(t, licensing.EventAssignmentStatusChanged, lab.ID), 2)
}
