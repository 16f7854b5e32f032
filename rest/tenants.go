package rest

import (
	"context"
	"net/http"
	"time"

	"github.com/ghasi-ehealth/identity-service/core/tenancy"
)

// Tenants is the tenant directory as the REST transport uses it.
type Tenants interface {
	CreateTenant(ctx context.Context, in tenancy.CreateTenantInput) (tenancy.Tenant, error)
	UpdateTenant(ctx context.Context, id string, in tenancy.UpdateTenantInput) (tenancy.Tenant, error)
}

type tenantJSON struct {
	ID               string    `json:"id"`
	Name             string    `json:"name"`
	Slug             string    `json:"slug"`
	SelfRegistration bool      `json:"selfRegistration"`
	MFARequired      bool      `json:"mfaRequired"`
	CreatedAt        time.Time `json:"createdAt"`
	UpdatedAt        time.Time `json:"updatedAt"`
}

func tenantOut(t tenancy.Tenant) tenantJSON {
	return tenantJSON{ID: t.ID, Name: t.Name, Slug: t.Slug, SelfRegistration: t.SelfRegistration,
		MFARequired: t.MFARequired, CreatedAt: t.CreatedAt.UTC(), UpdatedAt: t.UpdatedAt.UTC()}
}

func mountTenants(mux *http.ServeMux, errs Errors, svc Tenants) {
	// POST /api/v1/tenants {name, slug, selfRegistration?, mfaRequired?} → 201 tenant (SUPER_ADMIN).
	mux.HandleFunc("POST /api/v1/tenants", errs.handler(authenticated(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		var in struct {
			Name             string `json:"name"`
			Slug             string `json:"slug"`
			SelfRegistration bool   `json:"selfRegistration"`
			MFARequired      bool   `json:"mfaRequired"`
		}
		if err := DecodeJSON(w, r, &in); err != nil {
			return 0, nil, err
		}
		t, err := svc.CreateTenant(r.Context(), tenancy.CreateTenantInput{Name: in.Name, Slug: in.Slug,
			SelfRegistration: in.SelfRegistration, MFARequired: in.MFARequired})
		return http.StatusCreated, tenantOut(t), err
	})))
	// PATCH /api/v1/tenants/{id} {selfRegistration?, mfaRequired?} → 200 tenant.
	mux.HandleFunc("PATCH /api/v1/tenants/{id}", errs.handler(authenticated(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		var in struct {
			SelfRegistration *bool `json:"selfRegistration"`
			MFARequired      *bool `json:"mfaRequired"`
		}
		if err := DecodeJSON(w, r, &in); err != nil {
			return 0, nil, err
		}
		t, err := svc.UpdateTenant(r.Context(), r.PathValue("id"), tenancy.UpdateTenantInput{
			SelfRegistration: in.SelfRegistration, MFARequired: in.MFARequired})
		return http.StatusOK, tenantOut(t), err
	})))
}
