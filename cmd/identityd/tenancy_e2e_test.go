package main

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core/tenancy"
)

type gqlTenant struct {
	ID               string
	Name             string
	Slug             string
	SelfRegistration bool
	MfaRequired      bool
	CreatedAt        time.Time
	UpdatedAt        time.Time
}

type gqlNode struct {
	ID       string
	TenantID string
	ParentID *string
	Name     string
	Kind     string
}

type gqlMembership struct {
	UserID   string
	TenantID string
	NodeID   *string
	Roles    []string
}

const (
	createTenantQ = `mutation($in: CreateTenantInput!) { createTenant(input: $in) { id name slug selfRegistration mfaRequired createdAt updatedAt } }`
	updateTenantQ = `mutation($id: ID!, $in: UpdateTenantInput!) { updateTenant(id: $id, input: $in) { id name slug selfRegistration mfaRequired createdAt updatedAt } }`
	createNodeQ   = `mutation($in: CreateNodeInput!) { createNode(input: $in) { id tenantId parentId name kind createdAt } }`
	nodesQ        = `query($t: ID!) { nodes(tenantId: $t) { id tenantId parentId name kind } }`
	addMemberQ    = `mutation($in: MembershipInput!) { addMembership(input: $in) { userId tenantId nodeId roles } }`
	removeMemberQ = `mutation($u: ID!, $t: ID!, $n: ID) { removeMembership(userId: $u, tenantId: $t, nodeId: $n) }`
	tenantsQ      = `{ tenants { id name slug selfRegistration mfaRequired } }`
)

// TestTenancyThroughRESTAndGraphQL: a SUPER_ADMIN builds two tenants, a
// hierarchy and tenant admins through both transports; every change emits
// an event that validates against its schema.
func TestTenancyThroughRESTAndGraphQL(t *testing.T) {
	for name, env := range e2eDialects {
		t.Run(name, func(t *testing.T) {
			s := startService(t, env(t))
			super := s.adminToken(t)

			// --- REST: POST /tenants, PATCH /tenants/{id} ---
			res := s.call(t, http.MethodPost, "/api/v1/tenants", super,
				map[string]any{"name": "  Kabul Clinic A ", "slug": "clinic-a"})
			var a tenantDoc
			res.decode(t, http.StatusCreated, &a)
			require.ElementsMatch(t, []string{"id", "name", "slug", "selfRegistration", "mfaRequired", "createdAt", "updatedAt"}, res.members(t))
			require.Regexp(t, `^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`, a.ID, "UUIDv7")
			require.Equal(t, "Kabul Clinic A", a.Name, "trimmed")
			require.Equal(t, "clinic-a", a.Slug)
			require.False(t, a.SelfRegistration)
			require.False(t, a.MFARequired)
			require.WithinDuration(t, time.Now(), a.CreatedAt, time.Minute)
			require.Equal(t, a.CreatedAt, a.UpdatedAt)
			requireUTCTimestamps(t, res.Body, "createdAt", "updatedAt")

			p := requireProblem(t, s.call(t, http.MethodPost, "/api/v1/tenants", super,
				map[string]any{"name": "Another", "slug": "clinic-a"}), http.StatusConflict, "IDENT_CONFLICT")
			require.Contains(t, p.Fields, "slug")
			for _, tc := range []struct {
				name   string
				body   any
				fields []string
			}{
				{"bad slug and empty name", map[string]any{"name": " ", "slug": "Clinic A"}, []string{"name", "slug"}},
				{"unknown field", map[string]any{"name": "X", "slug": "x", "plan": "gold"}, []string{"plan"}},
				{"wrong type", map[string]any{"name": "X", "slug": "x", "mfaRequired": "yes"}, []string{"mfaRequired"}},
			} {
				p := requireProblem(t, s.call(t, http.MethodPost, "/api/v1/tenants", super, tc.body), http.StatusBadRequest, "IDENT_VALIDATION")
				for _, f := range tc.fields {
					require.Contains(t, p.Fields, f, tc.name)
				}
			}

			var patched tenantDoc
			res = s.call(t, http.MethodPatch, "/api/v1/tenants/"+a.ID, super, map[string]any{"selfRegistration": true})
			res.decode(t, http.StatusOK, &patched)
			require.True(t, patched.SelfRegistration)
			require.False(t, patched.MFARequired, "absent fields keep their value")
			require.Equal(t, a.CreatedAt, patched.CreatedAt)
			require.False(t, patched.UpdatedAt.Before(a.UpdatedAt))
			requireProblem(t, s.call(t, http.MethodPatch, "/api/v1/tenants/01900000-0000-7000-8000-0000000000ff", super,
				map[string]any{"mfaRequired": true}), http.StatusNotFound, "IDENT_NOT_FOUND")
			requireProblem(t, s.call(t, http.MethodPatch, "/api/v1/tenants/"+a.ID, super,
				map[string]any{"name": "renamed"}), http.StatusBadRequest, "IDENT_VALIDATION")

			// --- GraphQL: createTenant, updateTenant, tenants ---
			var created struct{ CreateTenant gqlTenant }
			s.graphql(t, super, createTenantQ, map[string]any{"in": map[string]any{"name": "Herat Clinic B", "slug": "clinic-b", "mfaRequired": true}}).decode(t, &created)
			b := created.CreateTenant
			require.Equal(t, "clinic-b", b.Slug)
			require.True(t, b.MfaRequired)
			require.False(t, b.SelfRegistration, "defaults to false")
			require.Equal(t, "IDENT_CONFLICT", s.graphql(t, super, createTenantQ,
				map[string]any{"in": map[string]any{"name": "Dup", "slug": "clinic-b"}}).code())
			require.Equal(t, "IDENT_VALIDATION", s.graphql(t, super, createTenantQ,
				map[string]any{"in": map[string]any{"name": "Bad", "slug": "-bad-"}}).code())

			var updated struct{ UpdateTenant gqlTenant }
			s.graphql(t, super, updateTenantQ, map[string]any{"id": b.ID, "in": map[string]any{"mfaRequired": false}}).decode(t, &updated)
			require.False(t, updated.UpdateTenant.MfaRequired)
			require.Equal(t, b.ID, updated.UpdateTenant.ID)

			var listed struct{ Tenants []gqlTenant }
			s.graphql(t, super, tenantsQ, nil).decode(t, &listed)
			var slugs []string
			for _, tn := range listed.Tenants {
				slugs = append(slugs, tn.Slug)
			}
			require.Equal(t, []string{"clinic-a", "clinic-b", "platform"}, slugs, "SUPER_ADMIN sees every tenant, by slug")

			// --- GraphQL: a province → district → facility chain in A ---
			var parent *string
			var chain []gqlNode
			for _, n := range []struct{ name, kind string }{{"Kabul", "province"}, {"Kabul City", "district"}, {"Wazir Akbar Khan Hospital", "facility"}} {
				var out struct{ CreateNode gqlNode }
				s.graphql(t, super, createNodeQ, map[string]any{"in": map[string]any{"tenantId": a.ID, "parentId": parent, "name": n.name, "kind": n.kind}}).decode(t, &out)
				require.Equal(t, a.ID, out.CreateNode.TenantID)
				require.Equal(t, parent, out.CreateNode.ParentID)
				require.Equal(t, n.kind, out.CreateNode.Kind)
				chain = append(chain, out.CreateNode)
				parent = &out.CreateNode.ID
			}
			var nodes struct{ Nodes []gqlNode }
			s.graphql(t, super, nodesQ, map[string]any{"t": a.ID}).decode(t, &nodes)
			require.Equal(t, chain, nodes.Nodes, "oldest first, parents before children")
			s.graphql(t, super, nodesQ, map[string]any{"t": b.ID}).decode(t, &nodes)
			require.Empty(t, nodes.Nodes)
			// A parent from another tenant is refused.
			resp := s.graphql(t, super, createNodeQ, map[string]any{"in": map[string]any{"tenantId": b.ID, "parentId": chain[0].ID, "name": "Herat", "kind": "province"}})
			require.Equal(t, "IDENT_VALIDATION", resp.code())
			require.Contains(t, resp.Errors[0].Extensions["fields"], "parentId")

			// --- memberships: a TENANT_ADMIN of A and of B ---
			adminA := s.createUserREST(t, super, map[string]any{"tenantId": a.ID, "email": adminAEmail, "firstName": "Admin", "lastName": "A"})
			adminB := s.createUserREST(t, super, map[string]any{"tenantId": b.ID, "email": adminBEmail, "firstName": "Admin", "lastName": "B"})
			addMember := func(bearer string, in map[string]any) gqlResponse {
				return s.graphql(t, bearer, addMemberQ, map[string]any{"in": in})
			}
			var m struct{ AddMembership gqlMembership }
			addMember(super, map[string]any{"userId": adminA.ID, "tenantId": a.ID, "roles": []string{"TENANT_ADMIN"}}).decode(t, &m)
			require.Equal(t, gqlMembership{UserID: adminA.ID, TenantID: a.ID, Roles: []string{"TENANT_ADMIN"}}, m.AddMembership)
			// Upsert: the same (user, tenant, node) replaces the roles, trimmed and deduplicated.
			addMember(super, map[string]any{"userId": adminA.ID, "tenantId": a.ID, "roles": []string{"TENANT_ADMIN", " doctor ", "doctor"}}).decode(t, &m)
			require.Equal(t, []string{"TENANT_ADMIN", "doctor"}, m.AddMembership.Roles)
			require.Equal(t, 1, s.count(t, `SELECT count(*) FROM memberships WHERE user_id = ?`, adminA.ID), "upserted, not duplicated")
			addMember(super, map[string]any{"userId": adminB.ID, "tenantId": b.ID, "roles": []string{"TENANT_ADMIN"}}).decode(t, &m)

			// The new admin of A works on its own tenant: a node membership at the facility.
			tokA := s.tokenFor(t, adminAEmail)
			nurse := s.createUserREST(t, tokA, map[string]any{"email": "nurse@clinic-a.example.org", "firstName": "Nurse", "lastName": "A"})
			require.Equal(t, a.ID, nurse.TenantID, "defaults to the caller's tenant")
			addMember(tokA, map[string]any{"userId": nurse.ID, "tenantId": a.ID, "nodeId": chain[2].ID, "roles": []string{"nurse"}}).decode(t, &m)
			require.Equal(t, &chain[2].ID, m.AddMembership.NodeID)
			var out struct{ Tenants []gqlTenant }
			s.graphql(t, tokA, tenantsQ, nil).decode(t, &out)
			require.Len(t, out.Tenants, 1, "a tenant admin sees the tenants it belongs to")
			require.Equal(t, a.ID, out.Tenants[0].ID)
			var ns struct{ Nodes []gqlNode }
			s.graphql(t, tokA, nodesQ, map[string]any{"t": a.ID}).decode(t, &ns)
			require.Len(t, ns.Nodes, 3)

			// Role rules: SUPER_ADMIN only by a SUPER_ADMIN and only in the platform tenant.
			require.Equal(t, "IDENT_FORBIDDEN", addMember(tokA, map[string]any{"userId": nurse.ID, "tenantId": a.ID, "roles": []string{"SUPER_ADMIN"}}).code())
			require.Equal(t, "IDENT_FORBIDDEN", addMember(super, map[string]any{"userId": nurse.ID, "tenantId": a.ID, "roles": []string{"SUPER_ADMIN"}}).code())
			require.Equal(t, "IDENT_FORBIDDEN", s.graphql(t, tokA, createTenantQ, map[string]any{"in": map[string]any{"name": "Mine", "slug": "mine"}}).code())
			requireProblem(t, s.call(t, http.MethodPost, "/api/v1/tenants", tokA, map[string]any{"name": "Mine", "slug": "mine"}), http.StatusForbidden, "IDENT_FORBIDDEN")
			// The platform never loses its last SUPER_ADMIN.
			var me struct{ Me userDoc }
			s.graphql(t, super, `{ me { id tenantId } }`, nil).decode(t, &me)
			require.Equal(t, "IDENT_STATE_CONFLICT", s.graphql(t, super, removeMemberQ, map[string]any{"u": me.Me.ID, "t": me.Me.TenantID}).code())

			// removeMembership: true once, then false; the tenant-wide membership stays.
			var removed struct{ RemoveMembership bool }
			s.graphql(t, tokA, removeMemberQ, map[string]any{"u": nurse.ID, "t": a.ID, "n": chain[2].ID}).decode(t, &removed)
			require.True(t, removed.RemoveMembership)
			s.graphql(t, tokA, removeMemberQ, map[string]any{"u": nurse.ID, "t": a.ID, "n": chain[2].ID}).decode(t, &removed)
			require.False(t, removed.RemoveMembership)
			require.Equal(t, 1, s.count(t, `SELECT count(*) FROM memberships WHERE user_id = ?`, adminA.ID))

			// --- events ---
			created2 := s.eventsFor(t, tenancy.EventTenantCreated, a.ID)
			require.Len(t, created2, 1)
			require.Equal(t, a.ID, created2[0].TenantID)
			require.Len(t, s.eventsFor(t, tenancy.EventTenantCreated, b.ID), 1)
			updatedEvents := s.eventsFor(t, tenancy.EventTenantUpdated, a.ID)
			require.Len(t, updatedEvents, 1)
			var td tenancy.TenantData
			require.NoError(t, json.Unmarshal(updatedEvents[0].Data, &td))
			require.Equal(t, tenancy.TenantData{TenantID: a.ID, Name: "Kabul Clinic A", Slug: "clinic-a", SelfRegistration: true}, td)
			require.Len(t, s.eventsFor(t, tenancy.EventTenantUpdated, b.ID), 1)
			for _, n := range chain {
				require.Len(t, s.eventsFor(t, tenancy.EventNodeCreated, n.ID), 1)
			}
			var changes []string
			for _, env := range s.eventsFor(t, tenancy.EventMembershipChanged, adminA.ID) {
				var d tenancy.MembershipChangedData
				require.NoError(t, json.Unmarshal(env.Data, &d))
				require.Equal(t, me.Me.ID, d.ActorID)
				changes = append(changes, d.Change)
			}
			require.Equal(t, []string{"added", "updated"}, changes)
			var nurseChanges []tenancy.MembershipChangedData
			for _, env := range s.eventsFor(t, tenancy.EventMembershipChanged, nurse.ID) {
				var d tenancy.MembershipChangedData
				require.NoError(t, json.Unmarshal(env.Data, &d))
				nurseChanges = append(nurseChanges, d)
			}
			require.Len(t, nurseChanges, 2)
			require.Equal(t, []string{"added", "removed"}, []string{nurseChanges[0].Change, nurseChanges[1].Change})
			require.Equal(t, adminA.ID, nurseChanges[1].ActorID)
			require.Equal(t, []string{"nurse"}, nurseChanges[1].Roles, "removed lists the roles it held")
		})
	}
}

// requireUTCTimestamps checks that the named members of a JSON object are
// RFC 3339 strings in UTC.
func requireUTCTimestamps(t *testing.T, body []byte, names ...string) {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(body, &m))
	for _, n := range names {
		s, ok := m[n].(string)
		require.True(t, ok, "%s is a string", n)
		ts, err := time.Parse(time.RFC3339Nano, s)
		require.NoError(t, err, n)
		require.Equal(t, time.UTC, ts.Location(), "%s is UTC: %s", n, s)
		require.Equal(t, byte('Z'), s[len(s)-1], "%s ends in Z: %s", n, s)
	}
}
