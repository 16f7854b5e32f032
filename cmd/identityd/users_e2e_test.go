package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core/user"
)

// TestUserLifecycleThroughREST is IDENT-US-003 as a TENANT_ADMIN of A sees
// it: create (pending_verification, registered event), duplicates, reads,
// paginated listing, suspend, reactivate, invalid transitions and GDPR
// erasure that leaves no copy of the personal data behind.
func TestUserLifecycleThroughREST(t *testing.T) {
	for name, env := range e2eDialects {
		t.Run(name, func(t *testing.T) {
			s := startService(t, env(t))
			w := newWorld(t, s)
			const email = "zarghuna.qaderyar@clinic-a.example.org"
			const first, last = "Zarghuna", "Qaderyarzai"

			// --- create ---
			res := s.call(t, http.MethodPost, "/api/v1/users", w.tokA,
				map[string]any{"email": "  Zarghuna.QADERYAR@Clinic-A.example.org ", "firstName": " " + first + " ", "lastName": last})
			var u userDoc
			res.decode(t, http.StatusCreated, &u)
			require.ElementsMatch(t, []string{"id", "tenantId", "email", "firstName", "lastName", "status", "createdAt"}, res.members(t),
				"no deactivatedAt before erasure")
			require.Equal(t, userDoc{ID: u.ID, TenantID: w.tenantA.ID, Email: email, FirstName: first, LastName: last,
				Status: "pending_verification", CreatedAt: u.CreatedAt}, u)
			require.WithinDuration(t, time.Now(), u.CreatedAt, time.Minute)
			requireUTCTimestamps(t, res.Body, "createdAt")

			reg := s.eventFor(t, user.EventRegistered, u.ID)
			require.Equal(t, w.tenantA.ID, reg.TenantID)
			data := s.registeredData(t, u.ID)
			require.Equal(t, u.ID, data.UserID)
			require.Equal(t, w.tenantA.ID, data.TenantID)
			require.Equal(t, email, data.Email)
			require.Equal(t, user.StatusPendingVerification, data.Status)
			require.True(t, strings.HasPrefix(data.VerificationURL, s.main.cfg.PublicURL+"/api/v1/auth/verify-email?token="), data.VerificationURL)
			expires, err := time.Parse(time.RFC3339, data.VerificationExpiresAt)
			require.NoError(t, err)
			require.WithinDuration(t, time.Now().Add(24*time.Hour), expires, time.Minute)
			require.NotContains(t, string(reg.Data), "password", "no secret in the event")

			// --- duplicates: the normalised address is taken in A ---
			for _, dup := range []string{email, strings.ToUpper(email), "\t " + email + "  ", "Zarghuna.Qaderyar@CLINIC-A.example.org"} {
				before := s.eventCount(t)
				requireProblem(t, s.call(t, http.MethodPost, "/api/v1/users", w.tokA,
					map[string]any{"email": dup, "firstName": "Other", "lastName": "Person"}), http.StatusConflict, "IDENT_EMAIL_DUPLICATE")
				require.Equal(t, before, s.eventCount(t), "a refused create emits nothing")
			}
			// … but not in B: uniqueness is per tenant.
			other := s.createUserREST(t, w.tokB, map[string]any{"email": "shared@example.org", "firstName": "In", "lastName": "B"})
			again := s.createUserREST(t, w.tokA, map[string]any{"email": "SHARED@example.org", "firstName": "In", "lastName": "A"})
			require.NotEqual(t, other.ID, again.ID)
			require.Equal(t, "shared@example.org", again.Email)

			// --- two concurrent creates of one address: one 201, one 409 ---
			for round := range 3 {
				addr := fmt.Sprintf("race-%d@clinic-a.example.org", round)
				statuses := make([]int, 2)
				errs := make([]error, 2)
				var wg sync.WaitGroup
				for i := range statuses {
					wg.Go(func() {
						statuses[i], errs[i] = s.statusOf(http.MethodPost, "/api/v1/users", w.tokA,
							map[string]any{"email": addr, "firstName": "Race", "lastName": fmt.Sprint(i)})
					})
				}
				wg.Wait()
				require.NoError(t, errors.Join(errs...))
				slices.Sort(statuses)
				require.Equal(t, []int{http.StatusCreated, http.StatusConflict}, statuses, "round %d", round)
				require.Equal(t, 1, s.count(t, `SELECT count(*) FROM users WHERE email = ?`, addr))
			}

			// --- validation ---
			for _, tc := range []struct {
				name   string
				body   any
				fields []string
			}{
				{"bad email, empty names", map[string]any{"email": "not-an-email", "firstName": "", "lastName": " "}, []string{"email", "firstName", "lastName"}},
				{"common password", map[string]any{"email": "p@clinic-a.example.org", "firstName": "P", "lastName": "Q", "password": "password123"}, []string{"password"}},
				{"short password", map[string]any{"email": "p@clinic-a.example.org", "firstName": "P", "lastName": "Q", "password": "short"}, []string{"password"}},
				{"unknown field", map[string]any{"email": "p@clinic-a.example.org", "firstName": "P", "lastName": "Q", "role": "admin"}, []string{"role"}},
				{"bad tenant id", map[string]any{"tenantId": "clinic-a", "email": "p@clinic-a.example.org", "firstName": "P", "lastName": "Q"}, nil},
			} {
				res := s.call(t, http.MethodPost, "/api/v1/users", w.tokA, tc.body)
				if tc.fields == nil {
					// Not a tenant the caller administers: refused before the input is read.
					requireProblem(t, res, http.StatusForbidden, "IDENT_CROSS_TENANT")
					continue
				}
				p := requireProblem(t, res, http.StatusBadRequest, "IDENT_VALIDATION")
				for _, f := range tc.fields {
					require.Contains(t, p.Fields, f, tc.name)
				}
			}
			requireProblem(t, s.call(t, http.MethodPost, "/api/v1/users", w.tokA, `{"email":`), http.StatusBadRequest, "IDENT_VALIDATION")
			requireProblem(t, s.call(t, http.MethodPost, "/api/v1/users", w.super,
				map[string]any{"tenantId": "01900000-0000-7000-8000-0000000000ff", "email": "x@y.org", "firstName": "X", "lastName": "Y"}),
				http.StatusNotFound, "IDENT_NOT_FOUND")

			// --- GET /users/{id} ---
			var got userDoc
			s.call(t, http.MethodGet, "/api/v1/users/"+u.ID, w.tokA, nil).decode(t, http.StatusOK, &got)
			require.Equal(t, u, got)
			requireProblem(t, s.call(t, http.MethodGet, "/api/v1/users/01900000-0000-7000-8000-0000000000ff", w.tokA, nil), http.StatusNotFound, "IDENT_NOT_FOUND")
			requireProblem(t, s.call(t, http.MethodGet, "/api/v1/users/not-a-uuid", w.tokA, nil), http.StatusNotFound, "IDENT_NOT_FOUND")

			// --- GET /users: ≥ 3 pages, nextCursor null on the last one ---
			for i := range 4 {
				s.createUserREST(t, w.tokA, map[string]any{"email": fmt.Sprintf("page-%d@clinic-a.example.org", i), "firstName": "Page", "lastName": fmt.Sprint(i)})
			}
			var all userList
			s.call(t, http.MethodGet, "/api/v1/users?tenantId="+w.tenantA.ID+"&limit=200", w.tokA, nil).decode(t, http.StatusOK, &all)
			require.Nil(t, all.NextCursor)
			// adminA, u, "shared", 3 race winners, 4 page users.
			require.Len(t, all.Items, 10)
			require.True(t, slices.IsSortedFunc(all.Items, func(a, b userDoc) int { return strings.Compare(a.ID, b.ID) }), "creation order")
			for _, it := range all.Items {
				require.Equal(t, w.tenantA.ID, it.TenantID, "only tenant A")
			}
			var walked []userDoc
			pages, after := 0, ""
			for {
				q := url.Values{"tenantId": {w.tenantA.ID}, "limit": {"4"}}
				if after != "" {
					q.Set("after", after)
				}
				res := s.call(t, http.MethodGet, "/api/v1/users?"+q.Encode(), w.tokA, nil)
				var page userList
				res.decode(t, http.StatusOK, &page)
				require.ElementsMatch(t, []string{"items", "nextCursor"}, res.members(t))
				pages++
				walked = append(walked, page.Items...)
				if page.NextCursor == nil {
					require.Contains(t, string(res.Body), `"nextCursor":null`)
					break
				}
				require.Len(t, page.Items, 4)
				after = *page.NextCursor
				require.Less(t, pages, 10, "pagination terminates")
			}
			require.Equal(t, 3, pages)
			require.Equal(t, all.Items, walked, "the pages add up to the whole listing, no gaps or repeats")
			// The default tenant is the caller's.
			var deflt userList
			s.call(t, http.MethodGet, "/api/v1/users", w.tokA, nil).decode(t, http.StatusOK, &deflt)
			require.Equal(t, all.Items, deflt.Items)
			// Status filter.
			var active userList
			s.call(t, http.MethodGet, "/api/v1/users?status=active&tenantId="+w.tenantA.ID, w.tokA, nil).decode(t, http.StatusOK, &active)
			require.Len(t, active.Items, 1)
			require.Equal(t, w.adminA.ID, active.Items[0].ID)
			var pending userList
			s.call(t, http.MethodGet, "/api/v1/users?status=pending_verification&limit=2", w.tokA, nil).decode(t, http.StatusOK, &pending)
			require.Len(t, pending.Items, 2)
			require.NotNil(t, pending.NextCursor)
			for _, it := range pending.Items {
				require.Equal(t, "pending_verification", it.Status)
			}
			for _, q := range []struct{ query, field string }{
				{"status=gone", "status"}, {"limit=0x", "limit"}, {"limit=201", "limit"}, {"limit=-1", "limit"}, {"after=%21%21", "after"}, {"after=bm90LWEtdXVpZA", "after"},
			} {
				p := requireProblem(t, s.call(t, http.MethodGet, "/api/v1/users?"+q.query, w.tokA, nil), http.StatusBadRequest, "IDENT_VALIDATION")
				require.Contains(t, p.Fields, q.field, q.query)
			}

			// --- transitions ---
			transition := func(action, id string) apiResponse {
				return s.call(t, http.MethodPost, "/api/v1/users/"+id+"/"+action, w.tokA, nil)
			}
			// A pending user can be neither suspended nor reactivated.
			requireProblem(t, transition("suspend", u.ID), http.StatusConflict, "IDENT_STATE_CONFLICT")
			requireProblem(t, transition("reactivate", u.ID), http.StatusConflict, "IDENT_STATE_CONFLICT")
			s.verifyEmail(t, u.ID, "her own first password")

			var suspended userDoc
			transition("suspend", u.ID).decode(t, http.StatusOK, &suspended)
			require.Equal(t, "suspended", suspended.Status)
			require.Equal(t, email, suspended.Email)
			requireActor(t, s, user.EventSuspended, u.ID, w.tenantA.ID, w.adminA.ID)
			requireProblem(t, transition("suspend", u.ID), http.StatusConflict, "IDENT_STATE_CONFLICT")

			var reactivated userDoc
			transition("reactivate", u.ID).decode(t, http.StatusOK, &reactivated)
			require.Equal(t, "active", reactivated.Status)
			requireActor(t, s, user.EventReactivated, u.ID, w.tenantA.ID, w.adminA.ID)
			requireProblem(t, transition("reactivate", u.ID), http.StatusConflict, "IDENT_STATE_CONFLICT")

			// Admins cannot suspend or erase themselves.
			requireProblem(t, transition("suspend", w.adminA.ID), http.StatusForbidden, "IDENT_FORBIDDEN")
			requireProblem(t, s.call(t, http.MethodDelete, "/api/v1/users/"+w.adminA.ID, w.tokA, nil), http.StatusForbidden, "IDENT_FORBIDDEN")
			requireProblem(t, transition("suspend", "01900000-0000-7000-8000-0000000000ff"), http.StatusNotFound, "IDENT_NOT_FOUND")

			// --- GDPR erasure ---
			for _, needle := range []string{email, first, last} {
				require.NotEmpty(t, dbtest.FindEverywhere(t, s.main.db, needle), "positive control: %s is stored before erasure", needle)
			}
			res = s.call(t, http.MethodDelete, "/api/v1/users/"+u.ID, w.tokA, nil)
			var erased userDoc
			res.decode(t, http.StatusOK, &erased)
			require.ElementsMatch(t, []string{"id", "tenantId", "email", "firstName", "lastName", "status", "createdAt", "deactivatedAt"}, res.members(t))
			require.Equal(t, "deactivated", erased.Status)
			require.Equal(t, "", erased.Email)
			require.Equal(t, "", erased.FirstName)
			require.Equal(t, "", erased.LastName)
			require.NotNil(t, erased.DeactivatedAt)
			require.WithinDuration(t, time.Now(), *erased.DeactivatedAt, time.Minute)
			requireUTCTimestamps(t, res.Body, "createdAt", "deactivatedAt")

			eventsBefore := s.eventCount(t)
			var twice userDoc
			s.call(t, http.MethodDelete, "/api/v1/users/"+u.ID, w.tokA, nil).decode(t, http.StatusOK, &twice)
			require.Equal(t, erased, twice, "repeating the erasure answers the same user")
			require.Equal(t, eventsBefore, s.eventCount(t), "and emits nothing")
			s.call(t, http.MethodDelete, "/api/v1/users/"+u.ID, w.super, nil).decode(t, http.StatusOK, &twice)
			require.Equal(t, erased, twice)

			env := s.eventFor(t, user.EventDeactivated, u.ID)
			require.Equal(t, w.tenantA.ID, env.TenantID)
			var dd user.DeactivatedData
			require.NoError(t, json.Unmarshal(env.Data, &dd))
			require.Equal(t, u.ID, dd.UserID)
			require.Equal(t, w.tenantA.ID, dd.TenantID)
			require.Equal(t, w.adminA.ID, dd.ActorID)
			require.Equal(t, []string{"firstName", "lastName", "email"}, dd.ErasedFields)
			at, err := time.Parse(time.RFC3339Nano, dd.DeactivatedAt)
			require.NoError(t, err)
			require.True(t, erased.DeactivatedAt.Equal(at), "event %s, response %s", at, erased.DeactivatedAt)

			for _, needle := range []string{email, first, last} {
				require.Empty(t, dbtest.FindEverywhere(t, s.main.db, needle), "no copy of %q may remain", needle)
			}
			// The audit trail stays (redacted) and still validates.
			require.Len(t, s.eventsFor(t, user.EventRegistered, u.ID), 1)
			require.Len(t, s.eventsFor(t, user.EventSuspended, u.ID), 1)
			require.Len(t, s.eventsFor(t, user.EventEmailVerified, u.ID), 1)

			// No way back from deactivated.
			requireProblem(t, transition("suspend", u.ID), http.StatusConflict, "IDENT_STATE_CONFLICT")
			requireProblem(t, transition("reactivate", u.ID), http.StatusConflict, "IDENT_STATE_CONFLICT")
			var gone userDoc
			s.call(t, http.MethodGet, "/api/v1/users/"+u.ID, w.tokA, nil).decode(t, http.StatusOK, &gone)
			require.Equal(t, erased, gone)
			var deactivated userList
			s.call(t, http.MethodGet, "/api/v1/users?status=deactivated", w.tokA, nil).decode(t, http.StatusOK, &deactivated)
			require.Equal(t, []userDoc{erased}, deactivated.Items)
			// The address is free again.
			reused := s.createUserREST(t, w.tokA, map[string]any{"email": email, "firstName": "New", "lastName": "Person"})
			require.NotEqual(t, u.ID, reused.ID)

			// Erasing A's holder of an address that B's user also holds
			// leaves B's user and B's events alone.
			s.call(t, http.MethodDelete, "/api/v1/users/"+again.ID, w.tokA, nil).decode(t, http.StatusOK, &erased)
			require.Empty(t, s.registeredData(t, again.ID).Email, "A's copy is redacted")
			require.Equal(t, "shared@example.org", s.registeredData(t, other.ID).Email, "B's copy is B's data")
			_, otherEmail := s.storedUser(t, other.ID)
			require.Equal(t, "shared@example.org", otherEmail)
		})
	}
}

// requireActor checks the single eventType about userID: valid, in tenantID,
// with actorID.
func requireActor(t *testing.T, s *testService, eventType, userID, tenantID, actorID string) {
	t.Helper()
	env := s.eventFor(t, eventType, userID)
	var d user.StatusChangedData
	require.NoError(t, json.Unmarshal(env.Data, &d))
	require.Equal(t, user.StatusChangedData{UserID: userID, TenantID: tenantID, ActorID: actorID}, d)
}

type gqlUser struct {
	ID            string
	TenantID      string
	Email         string
	FirstName     string
	LastName      string
	Status        string
	CreatedAt     time.Time
	DeactivatedAt *time.Time
}

const (
	userFields   = `id tenantId email firstName lastName status createdAt deactivatedAt`
	createUserQ  = `mutation($in: CreateUserInput!) { createUser(input: $in) { ` + userFields + ` } }`
	userQ        = `query($id: ID!) { user(id: $id) { ` + userFields + ` } }`
	usersQ       = `query($t: ID, $s: UserStatus, $f: Int, $a: String) { users(tenantId: $t, status: $s, first: $f, after: $a) { edges { cursor node { ` + userFields + ` } } pageInfo { hasNextPage endCursor } } }`
	suspendUserQ = `mutation($id: ID!) { suspendUser(id: $id) { ` + userFields + ` } }`
	reactivateQ  = `mutation($id: ID!) { reactivateUser(id: $id) { ` + userFields + ` } }`
	eraseUserQ   = `mutation($id: ID!) { eraseUser(id: $id) { ` + userFields + ` } }`
)

type gqlUserConn struct {
	Users struct {
		Edges []struct {
			Cursor string
			Node   gqlUser
		}
		PageInfo struct {
			HasNextPage bool
			EndCursor   *string
		}
	}
}

// TestUserLifecycleThroughGraphQL runs the same lifecycle through the admin
// UI's GraphQL operations, with the upper-case enums.
func TestUserLifecycleThroughGraphQL(t *testing.T) {
	for name, env := range e2eDialects {
		t.Run(name, func(t *testing.T) {
			s := startService(t, env(t))
			w := newWorld(t, s)
			const email = "gul.makai.gql@clinic-a.example.org"

			var c struct{ CreateUser gqlUser }
			s.graphql(t, w.tokA, createUserQ, map[string]any{"in": map[string]any{"email": " Gul.Makai.GQL@clinic-a.example.org", "firstName": "Gulalai", "lastName": "Makaizai"}}).decode(t, &c)
			u := c.CreateUser
			require.Equal(t, "PENDING_VERIFICATION", u.Status)
			require.Equal(t, email, u.Email)
			require.Equal(t, w.tenantA.ID, u.TenantID)
			require.Nil(t, u.DeactivatedAt)
			require.Equal(t, email, s.registeredData(t, u.ID).Email)
			require.Equal(t, "IDENT_EMAIL_DUPLICATE", s.graphql(t, w.tokA, createUserQ,
				map[string]any{"in": map[string]any{"email": strings.ToUpper(email), "firstName": "X", "lastName": "Y"}}).code())
			resp := s.graphql(t, w.tokA, createUserQ, map[string]any{"in": map[string]any{"email": "nope", "firstName": "X", "lastName": "Y", "password": "password123"}})
			require.Equal(t, "IDENT_VALIDATION", resp.code())
			require.Contains(t, resp.Errors[0].Extensions["fields"], "email")
			require.Contains(t, resp.Errors[0].Extensions["fields"], "password")

			var one struct{ User *gqlUser }
			s.graphql(t, w.tokA, userQ, map[string]any{"id": u.ID}).decode(t, &one)
			require.Equal(t, &u, one.User)
			s.graphql(t, w.tokA, userQ, map[string]any{"id": "01900000-0000-7000-8000-0000000000ff"}).decode(t, &one)
			require.Nil(t, one.User, "unknown id: null")

			for i := range 3 {
				var out struct{ CreateUser gqlUser }
				s.graphql(t, w.tokA, createUserQ, map[string]any{"in": map[string]any{"email": fmt.Sprintf("g%d@clinic-a.example.org", i), "firstName": "G", "lastName": fmt.Sprint(i)}}).decode(t, &out)
			}
			// 5 users in A (admin, u, 3 more): pages of 2 → 3 pages.
			var ids []string
			var after any
			for pages := 1; ; pages++ {
				var conn gqlUserConn
				s.graphql(t, w.tokA, usersQ, map[string]any{"t": w.tenantA.ID, "f": 2, "a": after}).decode(t, &conn)
				for _, e := range conn.Users.Edges {
					ids = append(ids, e.Node.ID)
				}
				if !conn.Users.PageInfo.HasNextPage {
					require.Equal(t, 3, pages)
					break
				}
				require.NotNil(t, conn.Users.PageInfo.EndCursor)
				require.Equal(t, conn.Users.Edges[len(conn.Users.Edges)-1].Cursor, *conn.Users.PageInfo.EndCursor)
				after = *conn.Users.PageInfo.EndCursor
			}
			require.Len(t, ids, 5)
			require.True(t, slices.IsSorted(ids))
			require.Equal(t, w.adminA.ID, ids[0])
			var act gqlUserConn
			s.graphql(t, w.tokA, usersQ, map[string]any{"s": "ACTIVE"}).decode(t, &act)
			require.Len(t, act.Users.Edges, 1)
			require.Equal(t, "ACTIVE", act.Users.Edges[0].Node.Status)
			require.Equal(t, "IDENT_VALIDATION", s.graphql(t, w.tokA, usersQ, map[string]any{"s": "active"}).code(), "enums are upper case")
			require.Equal(t, "IDENT_VALIDATION", s.graphql(t, w.tokA, usersQ, map[string]any{"f": 500}).code())

			require.Equal(t, "IDENT_STATE_CONFLICT", s.graphql(t, w.tokA, suspendUserQ, map[string]any{"id": u.ID}).code(), "pending")
			s.verifyEmail(t, u.ID, goodPassword)
			var sus struct{ SuspendUser gqlUser }
			s.graphql(t, w.tokA, suspendUserQ, map[string]any{"id": u.ID}).decode(t, &sus)
			require.Equal(t, "SUSPENDED", sus.SuspendUser.Status)
			requireActor(t, s, user.EventSuspended, u.ID, w.tenantA.ID, w.adminA.ID)
			require.Equal(t, "IDENT_STATE_CONFLICT", s.graphql(t, w.tokA, suspendUserQ, map[string]any{"id": u.ID}).code())
			var rea struct{ ReactivateUser gqlUser }
			s.graphql(t, w.tokA, reactivateQ, map[string]any{"id": u.ID}).decode(t, &rea)
			require.Equal(t, "ACTIVE", rea.ReactivateUser.Status)
			requireActor(t, s, user.EventReactivated, u.ID, w.tenantA.ID, w.adminA.ID)
			require.Equal(t, "IDENT_STATE_CONFLICT", s.graphql(t, w.tokA, reactivateQ, map[string]any{"id": u.ID}).code())
			require.Equal(t, "IDENT_FORBIDDEN", s.graphql(t, w.tokA, suspendUserQ, map[string]any{"id": w.adminA.ID}).code(), "not oneself")
			require.Equal(t, "IDENT_FORBIDDEN", s.graphql(t, w.tokA, eraseUserQ, map[string]any{"id": w.adminA.ID}).code(), "not oneself")
			require.Equal(t, "IDENT_NOT_FOUND", s.graphql(t, w.tokA, eraseUserQ, map[string]any{"id": "01900000-0000-7000-8000-0000000000ff"}).code())

			var er struct{ EraseUser gqlUser }
			s.graphql(t, w.tokA, eraseUserQ, map[string]any{"id": u.ID}).decode(t, &er)
			require.Equal(t, "DEACTIVATED", er.EraseUser.Status)
			require.Empty(t, er.EraseUser.Email+er.EraseUser.FirstName+er.EraseUser.LastName)
			require.NotNil(t, er.EraseUser.DeactivatedAt)
			var er2 struct{ EraseUser gqlUser }
			s.graphql(t, w.tokA, eraseUserQ, map[string]any{"id": u.ID}).decode(t, &er2)
			require.Equal(t, er.EraseUser, er2.EraseUser, "idempotent")
			env := s.eventFor(t, user.EventDeactivated, u.ID)
			var dd user.DeactivatedData
			require.NoError(t, json.Unmarshal(env.Data, &dd))
			require.Equal(t, w.adminA.ID, dd.ActorID)
			require.Empty(t, dbtest.FindEverywhere(t, s.main.db, email))
			require.Empty(t, dbtest.FindEverywhere(t, s.main.db, "Makaizai"))

			var me struct{ Me gqlUser }
			s.graphql(t, w.tokA, `{ me { `+userFields+` } }`, nil).decode(t, &me)
			require.Equal(t, w.adminA.ID, me.Me.ID)
			require.Equal(t, adminAEmail, me.Me.Email)
			require.Equal(t, "ACTIVE", me.Me.Status)
			require.Equal(t, "IDENT_UNAUTHENTICATED", s.graphql(t, "", `{ me { id } }`, nil).code())
		})
	}
}
