package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/access"
	"github.com/ghasi-ehealth/identity-service/messaging"
)

// fakeTenantService serves CONTRACT.md §7 for one remote tenant with a root
// node and a facility below it, and one user holding a membership at the
// root.
type fakeTenantService struct {
	tenantID, root, facility string

	mu          sync.Mutex
	userID      string
	roles       []string
	failMembers bool
}

func (f *fakeTenantService) set(fn func(f *fakeTenantService)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeTenantService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /internal/identity/providers/{userId}/identity", func(w http.ResponseWriter, r *http.Request) {
		switch {
		case f.failMembers:
			http.Error(w, "boom", http.StatusInternalServerError)
		case r.PathValue("userId") != f.userID:
			http.NotFound(w, r)
		default:
			writeJSON(w, map[string]any{"userId": f.userID, "memberships": []map[string]any{
				{"tenantId": f.tenantID, "nodeId": f.root, "roles": f.roles},
			}})
		}
	})
	mux.HandleFunc("GET /internal/hierarchy/nodes/{nodeId}/ancestors", func(w http.ResponseWriter, r *http.Request) {
		switch r.PathValue("nodeId") {
		case f.root:
			writeJSON(w, map[string]any{"nodeId": f.root, "tenantId": f.tenantID, "ancestors": []any{}})
		case f.facility:
			writeJSON(w, map[string]any{"nodeId": f.facility, "ancestors": []map[string]any{
				{"id": f.root, "parentId": nil, "tenantId": f.tenantID, "depth": 1},
			}})
		default:
			http.NotFound(w, r)
		}
	})
	mux.ServeHTTP(w, r)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// TestTenantServiceDirectoryEndToEnd: with IDENTITY_TENANT_SERVICE_URL set,
// memberships and nodes come from tenant-service merged with the local
// directory: a remote membership grants roles at remote nodes, the local
// bootstrap SUPER_ADMIN keeps its rights, a tenant-service outage serves
// warm access contexts and fails cold ones with 503, and a
// tenant.role.changed.v1 event invalidates cached contexts.
func TestTenantServiceDirectoryEndToEnd(t *testing.T) {
	fake := &fakeTenantService{tenantID: core.NewID(), root: core.NewID(), facility: core.NewID(), roles: []string{"DOCTOR"}}
	ts := httptest.NewServer(fake)
	t.Cleanup(ts.Close)
	env := baseEnv(t)
	env["IDENTITY_TENANT_SERVICE_URL"] = ts.URL
	s := startService(t, env)
	super := s.adminToken(t)

	// The bootstrap SUPER_ADMIN (a local membership) still administers.
	var rotated struct {
		RotateSigningKey struct{ Kid, State string } `json:"rotateSigningKey"`
	}
	s.graphql(t, super, `mutation { rotateSigningKey { kid state } }`, nil).decode(t, &rotated)
	require.Equal(t, "ACTIVE", rotated.RotateSigningKey.State)

	tn := s.createTenantREST(t, super, "Clinic", "clinic-remote", false)
	doc := s.createUserREST(t, super, map[string]any{"tenantId": tn.ID, "email": "doctor@clinic-remote.example.org", "firstName": "D", "lastName": "Octor"})
	s.verifyEmail(t, doc.ID, goodPassword)
	fake.set(func(f *fakeTenantService) { f.userID = doc.ID })
	tok := s.tokenFor(t, "doctor@clinic-remote.example.org")

	var got accessContextDoc
	s.call(t, http.MethodGet, "/api/v1/me/access-context?nodeId="+fake.facility, tok, nil).decode(t, http.StatusOK, &got)
	require.Equal(t, fake.tenantID, got.TenantID)
	require.Equal(t, []string{"DOCTOR"}, got.Roles, "the remote membership at the root covers the facility")
	require.Len(t, got.Memberships, 1)

	// A tenant.role.changed.v1 event invalidates the cached context.
	fake.set(func(f *fakeTenantService) { f.roles = []string{"DOCTOR", "SURGEON"} })
	s.call(t, http.MethodGet, "/api/v1/me/access-context?nodeId="+fake.facility, tok, nil).decode(t, http.StatusOK, &got)
	require.Equal(t, []string{"DOCTOR"}, got.Roles, "served from the cache until invalidated")
	// The consumer subscribes in the background: publish until it is seen.
	require.Eventually(t, func() bool {
		publishTenantEvent(t, s, access.EventTenantRoleChanged, map[string]any{"userId": doc.ID, "tenantId": fake.tenantID})
		s.call(t, http.MethodGet, "/api/v1/me/access-context?nodeId="+fake.facility, tok, nil).decode(t, http.StatusOK, &got)
		return len(got.Roles) == 2
	}, 5*time.Second, 20*time.Millisecond)
	require.Equal(t, []string{"DOCTOR", "SURGEON"}, got.Roles)

	// tenant-service fails: the warm context is still served, a cold one is 503.
	fake.set(func(f *fakeTenantService) { f.failMembers = true })
	s.call(t, http.MethodGet, "/api/v1/me/access-context?nodeId="+fake.facility, tok, nil).decode(t, http.StatusOK, &got)
	require.Equal(t, []string{"DOCTOR", "SURGEON"}, got.Roles)
	requireProblem(t, s.call(t, http.MethodGet, "/api/v1/me/access-context?nodeId="+fake.root, tok, nil),
		http.StatusServiceUnavailable, "IDENT_UNAVAILABLE")
}

// publishTenantEvent publishes a tenant-service event envelope on the
// service's bus, as tenant-service would.
func publishTenantEvent(t *testing.T, s *testService, eventType string, data map[string]any) {
	t.Helper()
	raw, err := json.Marshal(data)
	require.NoError(t, err)
	env := messaging.Envelope{SpecVersion: "1.0", ID: core.NewID(), Type: eventType, Source: "tenant-service",
		Time: time.Now().UTC(), Subject: core.NewID(), TenantID: core.NewID(), DataContentType: "application/json", Data: raw}
	payload, err := json.Marshal(env)
	require.NoError(t, err)
	require.NoError(t, s.main.bus.Publisher.Publish(eventType, message.NewMessage(watermill.NewUUID(), payload)))
}

// TestMergeMemberships: one membership per (tenant, node), roles merged.
func TestMergeMemberships(t *testing.T) {
	local := []core.Membership{{UserID: "u", TenantID: "p", Roles: []string{"SUPER_ADMIN"}}, {UserID: "u", TenantID: "a", NodeID: "n", Roles: []string{"NURSE"}}}
	remote := []core.Membership{{UserID: "u", TenantID: "a", NodeID: "n", Roles: []string{"DOCTOR", "NURSE"}}, {UserID: "u", TenantID: "a", Roles: []string{"CLERK"}}}
	got := mergeMemberships(local, remote)
	require.Equal(t, []core.Membership{
		{UserID: "u", TenantID: "p", Roles: []string{"SUPER_ADMIN"}},
		{UserID: "u", TenantID: "a", NodeID: "n", Roles: []string{"DOCTOR", "NURSE"}},
		{UserID: "u", TenantID: "a", Roles: []string{"CLERK"}},
	}, got)
	require.Equal(t, []string{"NURSE"}, local[1].Roles, "inputs are not modified")
}
