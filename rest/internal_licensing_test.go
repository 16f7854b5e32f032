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
	"github.com/ghasi-ehealth/identity-service/core/licensing"
)

type fakeEffective struct{ tenant, node, provider string }

func (f *fakeEffective) Effective(ctx context.Context, tenantID, nodeID, providerID string) ([]licensing.EffectiveModule, error) {
	if _, err := core.RequirePrincipal(ctx); err != nil {
		return nil, err
	}
	f.tenant, f.node, f.provider = tenantID, nodeID, providerID
	return []licensing.EffectiveModule{{Code: "ehr.core", Status: licensing.StatusActive, Granted: true, Scope: licensing.ScopeInheritDown},
		{Code: "lab", Status: licensing.StatusSuspended, Scope: licensing.ScopeExact, SourceNodeID: "n1", AssignmentID: "a1"}}, nil
}

func TestInternalLicensingEffective(t *testing.T) {
	fake := &fakeEffective{}
	mux := http.NewServeMux()
	mountInternalLicensing(mux, Errors{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, fake)

	req := httptest.NewRequest(http.MethodGet, "/internal/identity/licensing/effective?nodeId=n1&tenantId=t1&providerId=p1", nil)
	req = req.WithContext(core.WithPrincipal(req.Context(), &core.Principal{Type: core.PrincipalServiceAccount, TenantID: "t1"}))
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code)
	require.Equal(t, [3]string{"t1", "n1", "p1"}, [3]string{fake.tenant, fake.node, fake.provider})
	var body map[string]any
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	require.Equal(t, map[string]any{"nodeId": "n1", "modules": []any{
		map[string]any{"code": "ehr.core", "status": "active", "granted": true, "scope": "inherit_down", "sourceNodeId": "", "assignmentId": ""},
		map[string]any{"code": "lab", "status": "suspended", "granted": false, "scope": "exact", "sourceNodeId": "n1", "assignmentId": "a1"},
	}}, body)

	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/internal/identity/licensing/effective?nodeId=n1", nil))
	require.Equal(t, http.StatusUnauthorized, rec.Code)
	require.Equal(t, "application/problem+json", rec.Header().Get("Content-Type"))
}
