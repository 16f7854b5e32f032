package rest

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/access"
	"github.com/ghasi-ehealth/identity-service/core/licensing"
	"github.com/ghasi-ehealth/identity-service/httpx"
)

// stubAccess answers by nodeId: "" tenant level, "f" a facility (stale),
// "x" forbidden, "down" unavailable.
type stubAccess struct{}

func (stubAccess) AccessContext(ctx context.Context, nodeID string) (access.Context, error) {
	p, err := core.RequirePrincipal(ctx)
	if err != nil {
		return access.Context{}, err
	}
	ms := []core.Membership{{UserID: p.ID, TenantID: "t1", Roles: []string{"TENANT_ADMIN"}},
		{UserID: p.ID, TenantID: "t1", NodeID: "f", Roles: nil}}
	switch nodeID {
	case "":
		return access.Context{UserID: p.ID, TenantID: "t1", Roles: []string{"TENANT_ADMIN"}, Memberships: ms,
			EffectiveModules: []licensing.EffectiveModule{{Code: "ehr.core", Status: licensing.StatusActive, Granted: true,
				Scope: licensing.ScopeInheritDown}}}, nil
	case "f":
		return access.Context{UserID: p.ID, TenantID: "t1", NodeID: "f", Memberships: ms, Stale: true,
			EffectiveModules: []licensing.EffectiveModule{{Code: "ehr.lab", Status: licensing.StatusTrial, Granted: true,
				Scope: licensing.ScopeExact, SourceNodeID: "f", AssignmentID: "a"}}}, nil
	case "x":
		return access.Context{}, core.Forbidden("the node is outside the user's memberships")
	default:
		return access.Context{}, core.Unavailable(nil)
	}
}

func TestAccessContextRoute(t *testing.T) {
	tokens := bearerPrincipals{"u": {Type: core.PrincipalUser, ID: "u1", TenantID: "t1"}}
	mux := http.NewServeMux()
	mountAccess(mux, Errors{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, stubAccess{})
	srv := httptest.NewServer(httpx.Authenticate(tokens, nil)(mux))
	t.Cleanup(srv.Close)
	get := func(query, cred string) (int, map[string]any) {
		req, err := http.NewRequest(http.MethodGet, srv.URL+"/api/v1/me/access-context"+query, nil)
		require.NoError(t, err)
		if cred != "" {
			req.Header.Set("Authorization", "Bearer "+cred)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var body map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
		return resp.StatusCode, body
	}

	status, body := get("", "u")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, map[string]any{
		"userId": "u1", "tenantId": "t1", "nodeId": nil, "roles": []any{"TENANT_ADMIN"},
		"memberships": []any{
			map[string]any{"tenantId": "t1", "nodeId": nil, "roles": []any{"TENANT_ADMIN"}},
			map[string]any{"tenantId": "t1", "nodeId": "f", "roles": []any{}},
		},
		"effectiveModules": []any{map[string]any{"code": "ehr.core", "status": "active", "sourceNodeId": nil, "scope": "inherit_down"}},
	}, body)

	status, body = get("?nodeId=f", "u")
	require.Equal(t, http.StatusOK, status)
	require.Equal(t, "f", body["nodeId"])
	require.Equal(t, []any{}, body["roles"])
	require.Equal(t, true, body["stale"])
	require.Equal(t, []any{map[string]any{"code": "ehr.lab", "status": "trial", "sourceNodeId": "f", "scope": "exact"}},
		body["effectiveModules"])

	status, body = get("?nodeId=x", "u")
	require.Equal(t, http.StatusForbidden, status)
	require.Equal(t, core.CodeForbidden, body["code"])
	status, body = get("?nodeId=down", "u")
	require.Equal(t, http.StatusServiceUnavailable, status)
	require.Equal(t, core.CodeUnavailable, body["code"])
	status, body = get("", "")
	require.Equal(t, http.StatusUnauthorized, status)
	require.Equal(t, core.CodeUnauthenticated, body["code"])
}
