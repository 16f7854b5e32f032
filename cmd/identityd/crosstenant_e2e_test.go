package main

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// isolation is the state of tenant B that no refused request may change.
type isolation struct {
	Events                     int
	Users                      int
	UserBStatus, UserBEmail    string
	SuspBStatus, SuspBEmail    string
	AdminBStatus               string
	MembershipsB, NodesB       int
	BSelfRegistration, BMFA    bool
	MembershipsOfAdminA        int
	MembershipsOfUserB         int
	TenantBUpdatedAt, BNameRaw string
}

type crossFixture struct {
	*world
	userB, suspB, nodeB string
	nurse, otherA       userDoc
	nurseTok            string
}

// newCrossFixture adds to the world: an active and a suspended user and a
// node in B (made by B's admin), and in A an ordinary member (nurse) and
// another user.
func newCrossFixture(t *testing.T, s *testService) *crossFixture {
	t.Helper()
	f := &crossFixture{world: newWorld(t, s)}
	ub := s.createUserREST(t, f.tokB, map[string]any{"email": "user.b@clinic-b.example.org", "firstName": "User", "lastName": "B"})
	s.verifyEmail(t, ub.ID, goodPassword)
	sb := s.createUserREST(t, f.tokB, map[string]any{"email": "suspended.b@clinic-b.example.org", "firstName": "Susp", "lastName": "B"})
	s.verifyEmail(t, sb.ID, goodPassword)
	s.call(t, http.MethodPost, "/api/v1/users/"+sb.ID+"/suspend", f.tokB, nil).decode(t, http.StatusOK, &userDoc{})
	f.userB, f.suspB = ub.ID, sb.ID
	var node struct{ CreateNode gqlNode }
	s.graphql(t, f.tokB, createNodeQ, map[string]any{"in": map[string]any{"tenantId": f.tenantB.ID, "name": "Herat", "kind": "province"}}).decode(t, &node)
	f.nodeB = node.CreateNode.ID

	f.nurse = s.createUserREST(t, f.tokA, map[string]any{"email": "nurse@clinic-a.example.org", "firstName": "Nurse", "lastName": "A"})
	s.verifyEmail(t, f.nurse.ID, goodPassword)
	s.addMembershipGQL(t, f.tokA, f.nurse.ID, f.tenantA.ID, "nurse")
	f.nurseTok = s.tokenFor(t, "nurse@clinic-a.example.org")
	f.otherA = s.createUserREST(t, f.tokA, map[string]any{"email": "other@clinic-a.example.org", "firstName": "Other", "lastName": "A"})
	return f
}

func (f *crossFixture) snapshot(t *testing.T, s *testService) isolation {
	t.Helper()
	var iso isolation
	iso.Events = s.eventCount(t)
	iso.Users = s.count(t, `SELECT count(*) FROM users`)
	iso.UserBStatus, iso.UserBEmail = s.storedUser(t, f.userB)
	iso.SuspBStatus, iso.SuspBEmail = s.storedUser(t, f.suspB)
	iso.AdminBStatus, _ = s.storedUser(t, f.adminB.ID)
	iso.MembershipsB = s.count(t, `SELECT count(*) FROM memberships WHERE tenant_id = ?`, f.tenantB.ID)
	iso.NodesB = s.count(t, `SELECT count(*) FROM hierarchy_nodes WHERE tenant_id = ?`, f.tenantB.ID)
	iso.MembershipsOfAdminA = s.count(t, `SELECT count(*) FROM memberships WHERE user_id = ?`, f.adminA.ID)
	iso.MembershipsOfUserB = s.count(t, `SELECT count(*) FROM memberships WHERE user_id = ?`, f.userB)
	iso.BSelfRegistration = s.count(t, `SELECT count(*) FROM tenants WHERE id = ? AND self_registration`, f.tenantB.ID) == 1
	iso.BMFA = s.count(t, `SELECT count(*) FROM tenants WHERE id = ? AND mfa_required`, f.tenantB.ID) == 1
	iso.TenantBUpdatedAt = s.text(t, `SELECT CAST(updated_at AS TEXT) FROM tenants WHERE id = ?`, f.tenantB.ID)
	iso.BNameRaw = s.text(t, `SELECT name FROM tenants WHERE id = ?`, f.tenantB.ID)
	return iso
}

func (s *testService) text(t *testing.T, query string, args ...any) string {
	t.Helper()
	var v string
	require.NoError(t, s.main.db.Bun().QueryRowContext(t.Context(), query, args...).Scan(&v))
	return v
}

// TestCrossTenantMatrix: a TENANT_ADMIN of A gets 403 IDENT_CROSS_TENANT
// for every admin operation on tenant B's resources, on REST and GraphQL,
// and nothing changes in B and no event is written.
func TestCrossTenantMatrix(t *testing.T) {
	for name, env := range e2eDialects {
		t.Run(name, func(t *testing.T) {
			s := startService(t, env(t))
			f := newCrossFixture(t, s)
			B := f.tenantB.ID
			newUserInB := map[string]any{"tenantId": B, "email": "intruder@clinic-b.example.org", "firstName": "In", "lastName": "Truder"}

			rest := []struct {
				name, method, path string
				body               any
			}{
				{"get user", http.MethodGet, "/api/v1/users/" + f.userB, nil},
				{"get admin of B", http.MethodGet, "/api/v1/users/" + f.adminB.ID, nil},
				{"list users", http.MethodGet, "/api/v1/users?tenantId=" + B, nil},
				{"list users filtered", http.MethodGet, "/api/v1/users?tenantId=" + B + "&status=active&limit=1", nil},
				{"create user", http.MethodPost, "/api/v1/users", newUserInB},
				{"create user, invalid otherwise", http.MethodPost, "/api/v1/users", map[string]any{"tenantId": B, "email": "bad", "firstName": "", "lastName": ""}},
				{"suspend", http.MethodPost, "/api/v1/users/" + f.userB + "/suspend", nil},
				{"suspend admin of B", http.MethodPost, "/api/v1/users/" + f.adminB.ID + "/suspend", nil},
				{"suspend an already suspended user", http.MethodPost, "/api/v1/users/" + f.suspB + "/suspend", nil},
				{"reactivate", http.MethodPost, "/api/v1/users/" + f.suspB + "/reactivate", nil},
				{"erase", http.MethodDelete, "/api/v1/users/" + f.userB, nil},
				{"erase admin of B", http.MethodDelete, "/api/v1/users/" + f.adminB.ID, nil},
				{"patch tenant", http.MethodPatch, "/api/v1/tenants/" + B, map[string]any{"selfRegistration": true, "mfaRequired": true}},
				{"patch platform tenant", http.MethodPatch, "/api/v1/tenants/" + f.platformID, map[string]any{"selfRegistration": true}},
				{"patch unknown tenant", http.MethodPatch, "/api/v1/tenants/01900000-0000-7000-8000-0000000000ff", map[string]any{"mfaRequired": true}},
			}
			for _, tc := range rest {
				t.Run("REST "+tc.name, func(t *testing.T) {
					before := f.snapshot(t, s)
					requireProblem(t, s.call(t, tc.method, tc.path, f.tokA, tc.body), http.StatusForbidden, "IDENT_CROSS_TENANT")
					require.Equal(t, before, f.snapshot(t, s), "no side effect, no event")
				})
			}

			strp := func(v string) *string { return &v }
			gql := []struct {
				name, query string
				vars        map[string]any
				field       string
			}{
				{"user", userQ, map[string]any{"id": f.userB}, "user"},
				{"users", usersQ, map[string]any{"t": B}, "users"},
				{"users by status", usersQ, map[string]any{"t": B, "s": "SUSPENDED", "f": 1}, "users"},
				{"createUser", createUserQ, map[string]any{"in": newUserInB}, "createUser"},
				{"suspendUser", suspendUserQ, map[string]any{"id": f.userB}, "suspendUser"},
				{"reactivateUser", reactivateQ, map[string]any{"id": f.suspB}, "reactivateUser"},
				{"eraseUser", eraseUserQ, map[string]any{"id": f.userB}, "eraseUser"},
				{"eraseUser admin of B", eraseUserQ, map[string]any{"id": f.adminB.ID}, "eraseUser"},
				{"updateTenant", updateTenantQ, map[string]any{"id": B, "in": map[string]any{"selfRegistration": true}}, "updateTenant"},
				{"createNode", createNodeQ, map[string]any{"in": map[string]any{"tenantId": B, "name": "Injected", "kind": "district"}}, "createNode"},
				{"createNode under B's node", createNodeQ, map[string]any{"in": map[string]any{"tenantId": B, "parentId": f.nodeB, "name": "Injected", "kind": "district"}}, "createNode"},
				{"addMembership for B's user", addMemberQ, map[string]any{"in": map[string]any{"userId": f.userB, "tenantId": B, "roles": []string{"TENANT_ADMIN"}}}, "addMembership"},
				{"addMembership of itself in B", addMemberQ, map[string]any{"in": map[string]any{"userId": f.adminA.ID, "tenantId": B, "roles": []string{"TENANT_ADMIN"}}}, "addMembership"},
				{"addMembership at B's node", addMemberQ, map[string]any{"in": map[string]any{"userId": f.userB, "tenantId": B, "nodeId": f.nodeB, "roles": []string{}}}, "addMembership"},
				{"addMembership pulling B's user into A", addMemberQ, map[string]any{"in": map[string]any{"userId": f.userB, "tenantId": f.tenantA.ID, "roles": []string{"nurse"}}}, "addMembership"},
				{"removeMembership", removeMemberQ, map[string]any{"u": f.adminB.ID, "t": B}, "removeMembership"},
				{"removeMembership at a node", removeMemberQ, map[string]any{"u": f.userB, "t": B, "n": strp(f.nodeB)}, "removeMembership"},
				{"nodes", nodesQ, map[string]any{"t": B}, "nodes"},
			}
			for _, tc := range gql {
				t.Run("GraphQL "+tc.name, func(t *testing.T) {
					before := f.snapshot(t, s)
					resp := s.graphql(t, f.tokA, tc.query, tc.vars)
					require.Equal(t, "IDENT_CROSS_TENANT", resp.code(), "errors: %+v", resp.Errors)
					require.Len(t, resp.Errors, 1)
					require.NotEmpty(t, resp.Errors[0].Message)
					require.NotContains(t, string(resp.Data), "clinic-b.example.org", "nothing of B leaks")
					require.Equal(t, before, f.snapshot(t, s), "no side effect, no event")
				})
			}

			// Controls: the same operations are fine for B's own admin and
			// for the SUPER_ADMIN, and A's admin can still act in A.
			var got userDoc
			s.call(t, http.MethodGet, "/api/v1/users/"+f.userB, f.tokB, nil).decode(t, http.StatusOK, &got)
			require.Equal(t, "active", got.Status)
			s.call(t, http.MethodGet, "/api/v1/users/"+f.userB, f.super, nil).decode(t, http.StatusOK, &got)
			var nodes struct{ Nodes []gqlNode }
			s.graphql(t, f.tokB, nodesQ, map[string]any{"t": B}).decode(t, &nodes)
			require.Len(t, nodes.Nodes, 1)
			s.call(t, http.MethodGet, "/api/v1/users/"+f.otherA.ID, f.tokA, nil).decode(t, http.StatusOK, &got)
		})
	}
}

// TestOrdinaryUserGetsNotFound: a member without an admin role sees its own
// record, gets 404 (REST) or null (GraphQL user) for anyone else's, in its
// tenant or another, and 403 for admin-only operations without a target.
func TestOrdinaryUserGetsNotFound(t *testing.T) {
	s := startService(t, baseEnv(t))
	f := newCrossFixture(t, s)

	var self userDoc
	s.call(t, http.MethodGet, "/api/v1/users/"+f.nurse.ID, f.nurseTok, nil).decode(t, http.StatusOK, &self)
	require.Equal(t, f.nurse.ID, self.ID)
	require.Equal(t, "active", self.Status)

	before := f.snapshot(t, s)
	for _, id := range []string{f.otherA.ID, f.adminA.ID, f.userB, f.adminB.ID, f.superID, "01900000-0000-7000-8000-0000000000ff"} {
		requireProblem(t, s.call(t, http.MethodGet, "/api/v1/users/"+id, f.nurseTok, nil), http.StatusNotFound, "IDENT_NOT_FOUND")
		requireProblem(t, s.call(t, http.MethodPost, "/api/v1/users/"+id+"/suspend", f.nurseTok, nil), http.StatusNotFound, "IDENT_NOT_FOUND")
		requireProblem(t, s.call(t, http.MethodPost, "/api/v1/users/"+id+"/reactivate", f.nurseTok, nil), http.StatusNotFound, "IDENT_NOT_FOUND")
		requireProblem(t, s.call(t, http.MethodDelete, "/api/v1/users/"+id, f.nurseTok, nil), http.StatusNotFound, "IDENT_NOT_FOUND")

		var one struct{ User *gqlUser }
		s.graphql(t, f.nurseTok, userQ, map[string]any{"id": id}).decode(t, &one)
		require.Nil(t, one.User, "someone else's user is null to an ordinary user")
		require.Equal(t, "IDENT_NOT_FOUND", s.graphql(t, f.nurseTok, suspendUserQ, map[string]any{"id": id}).code())
		require.Equal(t, "IDENT_NOT_FOUND", s.graphql(t, f.nurseTok, eraseUserQ, map[string]any{"id": id}).code())
	}
	// Acting on oneself is a missing right, not a missing resource.
	requireProblem(t, s.call(t, http.MethodPost, "/api/v1/users/"+f.nurse.ID+"/suspend", f.nurseTok, nil), http.StatusForbidden, "IDENT_FORBIDDEN")
	requireProblem(t, s.call(t, http.MethodDelete, "/api/v1/users/"+f.nurse.ID, f.nurseTok, nil), http.StatusForbidden, "IDENT_FORBIDDEN")
	// Admin-only operations without a target resource: 403 IDENT_FORBIDDEN.
	requireProblem(t, s.call(t, http.MethodGet, "/api/v1/users", f.nurseTok, nil), http.StatusForbidden, "IDENT_FORBIDDEN")
	requireProblem(t, s.call(t, http.MethodPost, "/api/v1/users", f.nurseTok,
		map[string]any{"email": "x@clinic-a.example.org", "firstName": "X", "lastName": "Y"}), http.StatusForbidden, "IDENT_FORBIDDEN")
	requireProblem(t, s.call(t, http.MethodPatch, "/api/v1/tenants/"+f.tenantA.ID, f.nurseTok, map[string]any{"mfaRequired": true}), http.StatusForbidden, "IDENT_FORBIDDEN")
	require.Equal(t, "IDENT_FORBIDDEN", s.graphql(t, f.nurseTok, usersQ, nil).code())
	require.Equal(t, before, f.snapshot(t, s), "nothing changed")

	var one struct{ User *gqlUser }
	s.graphql(t, f.nurseTok, userQ, map[string]any{"id": f.nurse.ID}).decode(t, &one)
	require.NotNil(t, one.User)
	require.Equal(t, "ACTIVE", one.User.Status)
	var me struct{ Me gqlUser }
	s.graphql(t, f.nurseTok, `{ me { `+userFields+` } }`, nil).decode(t, &me)
	require.Equal(t, f.nurse.ID, me.Me.ID)
	// Its own tenant's hierarchy is readable; another tenant's does not exist for it.
	var nodes struct{ Nodes []gqlNode }
	s.graphql(t, f.nurseTok, nodesQ, map[string]any{"t": f.tenantA.ID}).decode(t, &nodes)
	require.Equal(t, "IDENT_NOT_FOUND", s.graphql(t, f.nurseTok, nodesQ, map[string]any{"t": f.tenantB.ID}).code())
	var tenants struct{ Tenants []gqlTenant }
	s.graphql(t, f.nurseTok, tenantsQ, nil).decode(t, &tenants)
	require.Len(t, tenants.Tenants, 1)
	require.Equal(t, f.tenantA.ID, tenants.Tenants[0].ID)
}

// TestAdminRoutesRequireACredential: every admin REST route answers 401
// IDENT_UNAUTHENTICATED without a credential or with a bad one, before
// anything else, and so does every admin GraphQL operation.
func TestAdminRoutesRequireACredential(t *testing.T) {
	s := startService(t, baseEnv(t))
	f := newCrossFixture(t, s)
	before := f.snapshot(t, s)
	validUser := map[string]any{"tenantId": f.tenantA.ID, "email": "anon@clinic-a.example.org", "firstName": "A", "lastName": "Non"}
	routes := []struct {
		method, path string
		body         any
	}{
		{http.MethodPost, "/api/v1/tenants", map[string]any{"name": "Anon", "slug": "anon"}},
		{http.MethodPatch, "/api/v1/tenants/" + f.tenantA.ID, map[string]any{"mfaRequired": true}},
		{http.MethodPost, "/api/v1/users", validUser},
		{http.MethodGet, "/api/v1/users", nil},
		{http.MethodGet, "/api/v1/users?tenantId=" + f.tenantA.ID, nil},
		{http.MethodGet, "/api/v1/users/" + f.otherA.ID, nil},
		{http.MethodPost, "/api/v1/users/" + f.nurse.ID + "/suspend", nil},
		{http.MethodPost, "/api/v1/users/" + f.suspB + "/reactivate", nil},
		{http.MethodDelete, "/api/v1/users/" + f.otherA.ID, nil},
		// The credential is checked before the body is read.
		{http.MethodPost, "/api/v1/users", `{"nope": true}`},
		{http.MethodPost, "/api/v1/tenants", ``},
		{http.MethodPatch, "/api/v1/tenants/" + f.tenantA.ID, `not json`},
		{http.MethodGet, "/api/v1/users?limit=many", nil},
	}
	for _, r := range routes {
		for _, auth := range []string{"", "Bearer not-a-jwt", "Basic YWRtaW46cGFzcw==", "Bearer "} {
			h := http.Header{}
			if auth != "" {
				h.Set("Authorization", auth)
			}
			res := s.callWith(t, r.method, r.path, "", r.body, h)
			requireProblem(t, res, http.StatusUnauthorized, "IDENT_UNAUTHENTICATED")
		}
	}
	for _, op := range []struct {
		query string
		vars  map[string]any
	}{
		{createTenantQ, map[string]any{"in": map[string]any{"name": "Anon", "slug": "anon"}}},
		{updateTenantQ, map[string]any{"id": f.tenantA.ID, "in": map[string]any{"mfaRequired": true}}},
		{createNodeQ, map[string]any{"in": map[string]any{"tenantId": f.tenantA.ID, "name": "N", "kind": "k"}}},
		{addMemberQ, map[string]any{"in": map[string]any{"userId": f.otherA.ID, "tenantId": f.tenantA.ID, "roles": []string{"TENANT_ADMIN"}}}},
		{removeMemberQ, map[string]any{"u": f.nurse.ID, "t": f.tenantA.ID}},
		{createUserQ, map[string]any{"in": validUser}},
		{suspendUserQ, map[string]any{"id": f.nurse.ID}},
		{reactivateQ, map[string]any{"id": f.suspB}},
		{eraseUserQ, map[string]any{"id": f.otherA.ID}},
		{userQ, map[string]any{"id": f.otherA.ID}},
		{usersQ, nil},
		{nodesQ, map[string]any{"t": f.tenantA.ID}},
		{tenantsQ, nil},
	} {
		for _, bearer := range []string{"", "not-a-jwt"} {
			require.Equal(t, "IDENT_UNAUTHENTICATED", s.graphql(t, bearer, op.query, op.vars).code(), op.query)
		}
	}
	require.Equal(t, before, f.snapshot(t, s), "nothing changed")
}

// TestProblemJSONShape: every REST error is a complete RFC 9457 document
// whose requestId is the X-Request-Id header (echoed when the client sent a
// usable one).
func TestProblemJSONShape(t *testing.T) {
	s := startService(t, baseEnv(t))
	f := newCrossFixture(t, s)
	cases := []struct {
		name, method, path, bearer string
		body                       any
		status                     int
		code                       string
	}{
		{"validation", http.MethodPost, "/api/v1/auth/register", "", map[string]any{"tenantId": f.tenantA.ID, "email": "x"}, 400, "IDENT_VALIDATION"},
		{"unauthenticated", http.MethodGet, "/api/v1/users", "", nil, 401, "IDENT_UNAUTHENTICATED"},
		{"forbidden", http.MethodPost, "/api/v1/tenants", f.tokA, map[string]any{"name": "X", "slug": "x"}, 403, "IDENT_FORBIDDEN"},
		{"cross tenant", http.MethodGet, "/api/v1/users/" + f.userB, f.tokA, nil, 403, "IDENT_CROSS_TENANT"},
		{"registration disabled", http.MethodPost, "/api/v1/auth/register", "", map[string]any{"tenantId": f.tenantB.ID, "email": "x@y.org", "password": goodPassword, "firstName": "X", "lastName": "Y"}, 403, "IDENT_REGISTRATION_DISABLED"},
		{"not found", http.MethodGet, "/api/v1/users/" + f.otherA.ID, f.nurseTok, nil, 404, "IDENT_NOT_FOUND"},
		{"unknown route", http.MethodGet, "/api/v1/nope", "", nil, 404, "IDENT_NOT_FOUND"},
		{"email duplicate", http.MethodPost, "/api/v1/users", f.tokA, map[string]any{"email": "other@clinic-a.example.org", "firstName": "X", "lastName": "Y"}, 409, "IDENT_EMAIL_DUPLICATE"},
		{"state conflict", http.MethodPost, "/api/v1/users/" + f.otherA.ID + "/reactivate", f.tokA, nil, 409, "IDENT_STATE_CONFLICT"},
		{"verification token", http.MethodPost, verifyPath, "", map[string]any{"token": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}, 422, "IDENT_VERIFICATION_TOKEN_INVALID"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// No X-Request-Id: one is generated and used in both places.
			res := s.call(t, tc.method, tc.path, tc.bearer, tc.body)
			p := requireProblem(t, res, tc.status, tc.code)
			require.Regexp(t, `^[0-9a-f-]{36}$`, p.RequestID)
			// A client's X-Request-Id is echoed in the header and the body.
			res = s.callWith(t, tc.method, tc.path, tc.bearer, tc.body, http.Header{"X-Request-Id": {"req-" + tc.code}})
			p = requireProblem(t, res, tc.status, tc.code)
			require.Equal(t, "req-"+tc.code, p.RequestID)
			var raw map[string]any
			require.NoError(t, json.Unmarshal(res.Body, &raw))
			for _, member := range []string{"type", "title", "status", "detail", "code", "requestId"} {
				require.Contains(t, raw, member)
			}
			require.IsType(t, float64(0), raw["status"], "status is a number")
		})
	}
	p := requireProblem(t, s.call(t, http.MethodPost, "/api/v1/auth/register", "", map[string]any{"tenantId": f.tenantA.ID, "email": "x"}), 400, "IDENT_VALIDATION")
	require.Contains(t, p.Fields, "email")
	require.Contains(t, p.Fields, "password")
	// A 405 is a problem too, with Allow.
	res := s.call(t, http.MethodPut, "/api/v1/users/"+f.otherA.ID, f.tokA, map[string]any{})
	requireProblem(t, res, http.StatusMethodNotAllowed, "IDENT_VALIDATION")
	require.Equal(t, "GET, DELETE", res.Header.Get("Allow"))
}
