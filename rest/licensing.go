package rest

import (
	"context"
	"net/http"
	"time"

	"github.com/ghasi-ehealth/identity-service/core/licensing"
)

// Licensing is the module catalogue and assignment lifecycle as the REST
// transport uses it (*licensing.Service implements it).
type Licensing interface {
	ListModules(ctx context.Context) ([]licensing.Module, error)
	CreateModule(ctx context.Context, in licensing.CreateModuleInput) (licensing.Module, error)
	UpdateModule(ctx context.Context, code string, in licensing.UpdateModuleInput) (licensing.Module, error)
	DeleteModule(ctx context.Context, code string) (licensing.Module, error)
	CreateAssignment(ctx context.Context, in licensing.CreateAssignmentInput) (licensing.Assignment, error)
	ChangeAssignmentStatus(ctx context.Context, id string, to licensing.Status, reason string) (licensing.Assignment, error)
	History(ctx context.Context, id string) ([]licensing.HistoryEntry, error)
}

type moduleJSON struct {
	Code         string     `json:"code"`
	Name         string     `json:"name"`
	Description  string     `json:"description"`
	DependsOn    []string   `json:"dependsOn"`
	IsAlwaysOn   bool       `json:"isAlwaysOn"`
	TerminatedAt *time.Time `json:"terminatedAt,omitempty"`
	CreatedAt    time.Time  `json:"createdAt"`
	UpdatedAt    time.Time  `json:"updatedAt"`
}

type assignmentJSON struct {
	ID            string     `json:"id"`
	TenantID      string     `json:"tenantId"`
	NodeID        string     `json:"nodeId"`
	ModuleCode    string     `json:"moduleCode"`
	Scope         string     `json:"scope"`
	Status        string     `json:"status"`
	EffectiveFrom time.Time  `json:"effectiveFrom"`
	EffectiveTo   *time.Time `json:"effectiveTo,omitempty"`
	CreatedAt     time.Time  `json:"createdAt"`
	UpdatedAt     time.Time  `json:"updatedAt"`
}

type historyJSON struct {
	FromStatus string    `json:"fromStatus"`
	ToStatus   string    `json:"toStatus"`
	Reason     string    `json:"reason"`
	ActorID    string    `json:"actorId"`
	At         time.Time `json:"at"`
}

func toModuleJSON(m licensing.Module) moduleJSON {
	deps := m.DependsOn
	if deps == nil {
		deps = []string{}
	}
	return moduleJSON{Code: m.Code, Name: m.Name, Description: m.Description, DependsOn: deps, IsAlwaysOn: m.IsAlwaysOn,
		TerminatedAt: utcPtr(m.TerminatedAt), CreatedAt: m.CreatedAt.UTC(), UpdatedAt: m.UpdatedAt.UTC()}
}

func toAssignmentJSON(a licensing.Assignment) assignmentJSON {
	return assignmentJSON{ID: a.ID, TenantID: a.TenantID, NodeID: a.NodeID, ModuleCode: a.ModuleCode, Scope: string(a.Scope),
		Status: string(a.Status), EffectiveFrom: a.EffectiveFrom.UTC(), EffectiveTo: utcPtr(a.EffectiveTo),
		CreatedAt: a.CreatedAt.UTC(), UpdatedAt: a.UpdatedAt.UTC()}
}

// mountLicensing serves the catalogue and assignment routes of CONTRACT.md
// §4. DELETE /licensing/modules/{code} terminates the module and answers 204.
func mountLicensing(mux *http.ServeMux, errs Errors, svc Licensing) {
	mux.HandleFunc("GET /api/v1/licensing/modules", errs.handler(authenticated(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		ms, err := svc.ListModules(r.Context())
		if err != nil {
			return 0, nil, err
		}
		items := make([]moduleJSON, 0, len(ms))
		for _, m := range ms {
			items = append(items, toModuleJSON(m))
		}
		return http.StatusOK, newList(items, ""), nil
	})))
	mux.HandleFunc("POST /api/v1/licensing/modules", errs.handler(authenticated(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		var in struct {
			Code        string   `json:"code"`
			Name        string   `json:"name"`
			Description string   `json:"description"`
			DependsOn   []string `json:"dependsOn"`
			IsAlwaysOn  bool     `json:"isAlwaysOn"`
		}
		if err := DecodeJSON(w, r, &in); err != nil {
			return 0, nil, err
		}
		m, err := svc.CreateModule(r.Context(), licensing.CreateModuleInput{Code: in.Code, Name: in.Name, Description: in.Description,
			DependsOn: in.DependsOn, IsAlwaysOn: in.IsAlwaysOn})
		if err != nil {
			return 0, nil, err
		}
		return http.StatusCreated, toModuleJSON(m), nil
	})))
	mux.HandleFunc("PATCH /api/v1/licensing/modules/{code}", errs.handler(authenticated(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		var in struct {
			Code        *string   `json:"code"`
			Name        *string   `json:"name"`
			Description *string   `json:"description"`
			DependsOn   *[]string `json:"dependsOn"`
			IsAlwaysOn  *bool     `json:"isAlwaysOn"`
		}
		if err := DecodeJSON(w, r, &in); err != nil {
			return 0, nil, err
		}
		m, err := svc.UpdateModule(r.Context(), r.PathValue("code"), licensing.UpdateModuleInput{Code: in.Code, Name: in.Name,
			Description: in.Description, DependsOn: in.DependsOn, IsAlwaysOn: in.IsAlwaysOn})
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, toModuleJSON(m), nil
	})))
	mux.HandleFunc("DELETE /api/v1/licensing/modules/{code}", errs.handler(authenticated(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		_, err := svc.DeleteModule(r.Context(), r.PathValue("code"))
		return http.StatusNoContent, nil, err
	})))
	mux.HandleFunc("POST /api/v1/licensing/assignments", errs.handler(authenticated(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		var in struct {
			TenantID      string     `json:"tenantId"`
			NodeID        string     `json:"nodeId"`
			ModuleCode    string     `json:"moduleCode"`
			Scope         string     `json:"scope"`
			Status        string     `json:"status"`
			EffectiveFrom *time.Time `json:"effectiveFrom"`
			EffectiveTo   *time.Time `json:"effectiveTo"`
		}
		if err := DecodeJSON(w, r, &in); err != nil {
			return 0, nil, err
		}
		a, err := svc.CreateAssignment(r.Context(), licensing.CreateAssignmentInput{TenantID: in.TenantID, NodeID: in.NodeID,
			ModuleCode: in.ModuleCode, Scope: licensing.Scope(in.Scope), Status: licensing.Status(in.Status),
			EffectiveFrom: in.EffectiveFrom, EffectiveTo: in.EffectiveTo})
		if err != nil {
			return 0, nil, err
		}
		return http.StatusCreated, toAssignmentJSON(a), nil
	})))
	mux.HandleFunc("PATCH /api/v1/licensing/assignments/{id}/status", errs.handler(authenticated(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		var in struct {
			Status string `json:"status"`
			Reason string `json:"reason"`
		}
		if err := DecodeJSON(w, r, &in); err != nil {
			return 0, nil, err
		}
		a, err := svc.ChangeAssignmentStatus(r.Context(), r.PathValue("id"), licensing.Status(in.Status), in.Reason)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, toAssignmentJSON(a), nil
	})))
	mux.HandleFunc("GET /api/v1/licensing/assignments/{id}/history", errs.handler(authenticated(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		h, err := svc.History(r.Context(), r.PathValue("id"))
		if err != nil {
			return 0, nil, err
		}
		items := make([]historyJSON, 0, len(h))
		for _, x := range h {
			items = append(items, historyJSON{FromStatus: string(x.FromStatus), ToStatus: string(x.ToStatus), Reason: x.Reason,
				ActorID: x.ActorID, At: x.At.UTC()})
		}
		return http.StatusOK, newList(items, ""), nil
	})))
}
