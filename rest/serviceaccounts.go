package rest

import (
	"context"
	"net/http"
	"time"

	"github.com/ghasi-ehealth/identity-service/core/serviceaccount"
)

// ServiceAccounts is service-account administration as REST uses it.
type ServiceAccounts interface {
	Create(ctx context.Context, in serviceaccount.CreateInput) (serviceaccount.Created, error)
	List(ctx context.Context, tenantID string) ([]serviceaccount.Account, error)
	RotateSecret(ctx context.Context, id string, overlap *time.Duration) (serviceaccount.Rotated, error)
}

// serviceAccountJSON is a service account in lists (never a secret).
type serviceAccountJSON struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	ClientID   string     `json:"clientId"`
	TenantID   string     `json:"tenantId"`
	Scopes     []string   `json:"scopes"`
	CreatedAt  time.Time  `json:"createdAt"`
	DisabledAt *time.Time `json:"disabledAt,omitempty"`
}

func serviceAccountOut(a serviceaccount.Account) serviceAccountJSON {
	return serviceAccountJSON{ID: a.ID, Name: a.Name, ClientID: a.ClientID, TenantID: a.TenantID,
		Scopes: a.Scopes, CreatedAt: a.CreatedAt.UTC(), DisabledAt: utcPtr(a.DisabledAt)}
}

// createdServiceAccountJSON is the 201 body of POST /service-accounts; the
// secret appears here only (CONTRACT.md §4).
type createdServiceAccountJSON struct {
	ID           string   `json:"id"`
	Name         string   `json:"name"`
	ClientID     string   `json:"clientId"`
	ClientSecret string   `json:"clientSecret"`
	Scopes       []string `json:"scopes"`
	TenantID     string   `json:"tenantId"`
}

type rotatedSecretJSON struct {
	ID                      string     `json:"id"`
	ClientSecret            string     `json:"clientSecret"`
	PreviousSecretExpiresAt *time.Time `json:"previousSecretExpiresAt"`
}

func mountServiceAccounts(mux *http.ServeMux, errs Errors, svc ServiceAccounts) {
	mux.HandleFunc("POST /api/v1/service-accounts", errs.handler(authenticated(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		var in struct {
			Name     string   `json:"name"`
			TenantID string   `json:"tenantId"`
			Scopes   []string `json:"scopes"`
		}
		if err := DecodeJSON(w, r, &in); err != nil {
			return 0, nil, err
		}
		c, err := svc.Create(r.Context(), serviceaccount.CreateInput{Name: in.Name, TenantID: in.TenantID, Scopes: in.Scopes})
		if err != nil {
			return 0, nil, err
		}
		a := c.Account
		w.Header().Set("Pragma", "no-cache")
		return http.StatusCreated, createdServiceAccountJSON{ID: a.ID, Name: a.Name, ClientID: a.ClientID,
			ClientSecret: c.ClientSecret, Scopes: a.Scopes, TenantID: a.TenantID}, nil
	})))
	mux.HandleFunc("GET /api/v1/service-accounts", errs.handler(authenticated(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		accounts, err := svc.List(r.Context(), r.URL.Query().Get("tenantId"))
		if err != nil {
			return 0, nil, err
		}
		items := make([]serviceAccountJSON, 0, len(accounts))
		for _, a := range accounts {
			items = append(items, serviceAccountOut(a))
		}
		return http.StatusOK, newList(items, ""), nil
	})))
	mux.HandleFunc("POST /api/v1/service-accounts/{id}/rotate-secret", errs.handler(authenticated(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		var in struct {
			OverlapSeconds *int64 `json:"overlapSeconds"`
		}
		if r.ContentLength != 0 {
			if err := DecodeJSON(w, r, &in); err != nil {
				return 0, nil, err
			}
		}
		var overlap *time.Duration
		if in.OverlapSeconds != nil {
			d := time.Duration(*in.OverlapSeconds) * time.Second
			if *in.OverlapSeconds < 0 || *in.OverlapSeconds > int64(serviceaccount.MaxOverlap/time.Second) {
				d = -1 // rejected by the service with its field message
			}
			overlap = &d
		}
		out, err := svc.RotateSecret(r.Context(), r.PathValue("id"), overlap)
		if err != nil {
			return 0, nil, err
		}
		w.Header().Set("Pragma", "no-cache")
		return http.StatusOK, rotatedSecretJSON{ID: out.ID, ClientSecret: out.ClientSecret,
			PreviousSecretExpiresAt: utcPtr(out.PreviousSecretExpiresAt)}, nil
	})))
}
