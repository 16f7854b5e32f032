package rest

import (
	"context"
	"net/http"

	"github.com/ghasi-ehealth/identity-service/core/licensing"
)

// EffectiveLicenses is the authorized licensing resolver as REST uses it
// (licensing.AuthorizedResolver): tenantID "" means the caller's tenant.
type EffectiveLicenses interface {
	Effective(ctx context.Context, tenantID, nodeID, providerID string) ([]licensing.EffectiveModule, error)
}

// effectiveModuleJSON is one module of the effective set (CONTRACT.md §4).
type effectiveModuleJSON struct {
	Code         string `json:"code"`
	Status       string `json:"status"`
	Granted      bool   `json:"granted"`
	Scope        string `json:"scope"`
	SourceNodeID string `json:"sourceNodeId"`
	AssignmentID string `json:"assignmentId"`
}

type effectiveLicensesJSON struct {
	NodeID  string                `json:"nodeId"`
	Modules []effectiveModuleJSON `json:"modules"`
}

// mountInternalLicensing registers GET /internal/identity/licensing/effective
// (absolute path, service credential; the resolver authorizes).
func mountInternalLicensing(mux *http.ServeMux, errs Errors, svc EffectiveLicenses) {
	mux.HandleFunc("GET /internal/identity/licensing/effective", errs.handler(func(_ http.ResponseWriter, r *http.Request) (int, any, error) {
		q := r.URL.Query()
		nodeID := q.Get("nodeId")
		mods, err := svc.Effective(r.Context(), q.Get("tenantId"), nodeID, q.Get("providerId"))
		if err != nil {
			return 0, nil, err
		}
		out := effectiveLicensesJSON{NodeID: nodeID, Modules: make([]effectiveModuleJSON, len(mods))}
		for i, m := range mods {
			out.Modules[i] = effectiveModuleJSON{Code: m.Code, Status: string(m.Status), Granted: m.Granted,
				Scope: string(m.Scope), SourceNodeID: m.SourceNodeID, AssignmentID: m.AssignmentID}
		}
		return http.StatusOK, out, nil
	}))
}
