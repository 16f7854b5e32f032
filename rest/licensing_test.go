package rest

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/licensing"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/httpx"
	"github.com/ghasi-ehealth/identity-service/messaging/eventtest"
	"github.com/ghasi-ehealth/identity-service/persistence"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

func TestLicensingRoutes(t *testing.T) {
	ctx := context.Background()
	db := dbtest.SQLite(t)
	ten := persistence.NewTenancyStore(db)
	dir := persistence.NewDirectoryStore(db)
	t0 := time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC)
	clock := core.NewFixedClock(t0)
	authz := core.NewAuthorizer(dir)
	svc := licensing.NewService(persistence.NewLicensingStore(db), authz, tenancy.NewService(ten, authz, clock), clock)
	tenant := func(slug string) string {
		tn := tenancy.Tenant{ID: core.NewID(), Slug: slug, Name: slug, CreatedAt: t0, UpdatedAt: t0}
		require.NoError(t, ten.CreateTenant(ctx, tn))
		return tn.ID
	}
	principal := func(tenantID, email, role string) *core.Principal {
		u := user.User{ID: core.NewID(), TenantID: tenantID, Email: email, Status: user.StatusActive, CreatedAt: t0, UpdatedAt: t0}
		require.NoError(t, dir.CreateUser(ctx, u))
		require.NoError(t, dir.AddMembership(ctx, core.Membership{UserID: u.ID, TenantID: tenantID, Roles: []string{role}}))
		return &core.Principal{Type: core.PrincipalUser, ID: u.ID, TenantID: tenantID, TenantIDs: []string{tenantID}}
	}
	platform, clinic := tenant(core.PlatformTenantSlug), tenant("clinic")
	node := tenancy.Node{ID: core.NewID(), TenantID: clinic, Name: "f", Kind: "facility", CreatedAt: t0}
	require.NoError(t, ten.CreateNode(ctx, node))
	root := principal(platform, "root@example.org", core.RoleSuperAdmin)
	tokens := bearerPrincipals{"root": root, "admin": principal(clinic, "a@example.org", core.RoleTenantAdmin)}

	mux := http.NewServeMux()
	mountLicensing(mux, Errors{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, svc)
	srv := httptest.NewServer(httpx.Authenticate(tokens, nil)(mux))
	t.Cleanup(srv.Close)
	do := func(method, path, cred, body string) (int, map[string]any) {
		req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		require.NoError(t, err)
		if cred != "" {
			req.Header.Set("Authorization", "Bearer "+cred)
		}
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer res.Body.Close()
		raw, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		var out map[string]any
		if len(raw) > 0 {
			require.NoError(t, json.Unmarshal(raw, &out), string(raw))
		}
		return res.StatusCode, out
	}

	code, out := do("GET", "/api/v1/licensing/modules", "", "")
	require.Equal(t, 401, code)
	code, out = do("GET", "/api/v1/licensing/modules", "admin", "")
	require.Equal(t, 200, code, out)
	require.Len(t, out["items"], 3)

	code, out = do("POST", "/api/v1/licensing/modules", "admin", `{"code":"lab.core","name":"Lab","dependsOn":[]}`)
	require.Equal(t, 403, code, out)
	code, out = do("POST", "/api/v1/licensing/modules", "root", `{"code":"lab.core","name":"Lab","dependsOn":["ehr.core"],"extra":1}`)
	require.Equal(t, 400, code, out)
	code, out = do("POST", "/api/v1/licensing/modules", "root", `{"code":"lab.core","name":"Lab","dependsOn":["ehr.core"]}`)
	require.Equal(t, 201, code, out)
	require.Equal(t, map[string]any{"code": "lab.core", "name": "Lab", "description": "", "dependsOn": []any{"ehr.core"},
		"isAlwaysOn": false, "createdAt": "2025-06-01T09:00:00Z", "updatedAt": "2025-06-01T09:00:00Z"}, out)
	code, out = do("POST", "/api/v1/licensing/modules", "root", `{"code":"lab.core","name":"Lab"}`)
	require.Equal(t, 409, code, out)

	code, out = do("PATCH", "/api/v1/licensing/modules/lab.core", "root", `{"code":"lab.other"}`)
	require.Equal(t, 422, code, out)
	require.Equal(t, core.CodeLicCodeImmutable, out["code"])
	code, out = do("PATCH", "/api/v1/licensing/modules/lab.core", "root", `{"code":"lab.core","name":"Laboratory"}`)
	require.Equal(t, 200, code, out)
	require.Equal(t, "Laboratory", out["name"])
	code, out = do("DELETE", "/api/v1/licensing/modules/ehr.core", "root", "")
	require.Equal(t, 422, code, out)
	require.Equal(t, core.CodeLicAlwaysOnImmutable, out["code"])

	code, out = do("POST", "/api/v1/licensing/assignments", "root",
		`{"tenantId":"`+clinic+`","nodeId":"`+node.ID+`","moduleCode":"lab.core","scope":"exact","status":"trial"}`)
	require.Equal(t, 422, code, out)
	require.Equal(t, core.CodeLicTrialRequiresEnd, out["code"])
	code, out = do("POST", "/api/v1/licensing/assignments", "root",
		`{"tenantId":"`+clinic+`","nodeId":"`+node.ID+`","moduleCode":"lab.core","scope":"inherit_down","status":"trial","effectiveTo":"2025-07-01T00:00:00Z"}`)
	require.Equal(t, 201, code, out)
	id := out["id"].(string)
	require.Equal(t, "2025-07-01T00:00:00Z", out["effectiveTo"])
	require.Equal(t, "2025-06-01T09:00:00Z", out["effectiveFrom"])
	require.Equal(t, "trial", out["status"])

	code, out = do("PATCH", "/api/v1/licensing/assignments/"+id+"/status", "root", `{"status":"terminated","reason":"ended"}`)
	require.Equal(t, 200, code, out)
	require.Equal(t, "terminated", out["status"])
	code, out = do("PATCH", "/api/v1/licensing/assignments/"+id+"/status", "root", `{"status":"terminated"}`)
	require.Equal(t, 422, code, out)
	require.Equal(t, core.CodeLicTerminated, out["code"])

	code, out = do("GET", "/api/v1/licensing/assignments/"+id+"/history", "admin", "")
	require.Equal(t, 200, code, out)
	require.Equal(t, []any{
		map[string]any{"fromStatus": "", "toStatus": "trial", "reason": "", "actorId": root.ID, "at": "2025-06-01T09:00:00Z"},
		map[string]any{"fromStatus": "trial", "toStatus": "terminated", "reason": "ended", "actorId": root.ID, "at": "2025-06-01T09:00:00Z"},
	}, out["items"])

	code, _ = do("DELETE", "/api/v1/licensing/modules/lab.core", "root", "")
	require.Equal(t, 204, code)
	eventtest.RequireValidStored(t, db, licensing.EventModuleUpdated)
	eventtest.RequireValidStored(t, db, licensing.EventAssignmentStatusChanged)
}
