package rest

import (
	"context"
	"net/http"

	"github.com/ghasi-ehealth/identity-service/core/access"
)

// AccessContexts answers the caller's access context (*access.Service
// implements it).
type AccessContexts interface {
	AccessContext(ctx context.Context, nodeID string) (access.Context, error)
}

type accessContextJSON struct {
	UserID           string                 `json:"userId"`
	TenantID         string                 `json:"tenantId"`
	NodeID           *string                `json:"nodeId"`
	Roles            []string               `json:"roles"`
	Memberships      []accessMembershipJSON `json:"memberships"`
	EffectiveModules []accessModuleJSON     `json:"effectiveModules"`
	Stale            bool                   `json:"stale,omitempty"`
}

type accessMembershipJSON struct {
	TenantID string   `json:"tenantId"`
	NodeID   *string  `json:"nodeId"`
	Roles    []string `json:"roles"`
}

type accessModuleJSON struct {
	Code         string  `json:"code"`
	Status       string  `json:"status"`
	SourceNodeID *string `json:"sourceNodeId"`
	Scope        string  `json:"scope"`
}

// nullable maps "" to a JSON null.
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func toAccessContextJSON(c access.Context) accessContextJSON {
	out := accessContextJSON{UserID: c.UserID, TenantID: c.TenantID, NodeID: nullable(c.NodeID), Roles: nonNil(c.Roles),
		Memberships:      make([]accessMembershipJSON, 0, len(c.Memberships)),
		EffectiveModules: make([]accessModuleJSON, 0, len(c.EffectiveModules)), Stale: c.Stale}
	for _, m := range c.Memberships {
		out.Memberships = append(out.Memberships, accessMembershipJSON{TenantID: m.TenantID, NodeID: nullable(m.NodeID),
			Roles: nonNil(m.Roles)})
	}
	for _, m := range c.EffectiveModules {
		out.EffectiveModules = append(out.EffectiveModules, accessModuleJSON{Code: m.Code, Status: string(m.Status),
			SourceNodeID: nullable(m.SourceNodeID), Scope: string(m.Scope)})
	}
	return out
}

// mountAccess serves GET /api/v1/me/access-context?nodeId= (CONTRACT.md §4,
// IDENT-US-012). nodeId and sourceNodeId are null when absent; "stale":
// true appears only on a cached context served while the directory is down.
func mountAccess(mux *http.ServeMux, errs Errors, svc AccessContexts) {
	mux.HandleFunc("GET /api/v1/me/access-context", errs.handler(func(_ http.ResponseWriter, r *http.Request) (int, any, error) {
		c, err := svc.AccessContext(r.Context(), r.URL.Query().Get("nodeId"))
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, toAccessContextJSON(c), nil
	}))
}
