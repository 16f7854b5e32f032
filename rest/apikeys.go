package rest

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/apikey"
)

// APIKeys is the API key lifecycle as the REST transport uses it
// (*apikey.Service implements it).
type APIKeys interface {
	Create(ctx context.Context, in apikey.CreateInput) (apikey.Created, error)
	Rotate(ctx context.Context, id string, overlap *time.Duration) (apikey.Rotated, error)
	Revoke(ctx context.Context, id string) (apikey.Key, error)
}

// createdAPIKeyJSON is the contract's POST /api-keys response; secret is the
// whole key string and appears here only.
type createdAPIKeyJSON struct {
	ID        string     `json:"id"`
	Name      string     `json:"name"`
	Prefix    string     `json:"prefix"`
	Secret    string     `json:"secret"`
	Scopes    []string   `json:"scopes"`
	TenantID  string     `json:"tenantId"`
	CreatedAt time.Time  `json:"createdAt"`
	ExpiresAt *time.Time `json:"expiresAt,omitempty"`
}

type rotatedAPIKeyJSON struct {
	ID                      string    `json:"id"`
	Secret                  string    `json:"secret"`
	PreviousSecretExpiresAt time.Time `json:"previousSecretExpiresAt"`
}

func mountAPIKeys(mux *http.ServeMux, errs Errors, svc APIKeys) {
	mux.HandleFunc("POST /api/v1/api-keys", errs.handler(authenticated(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		var in struct {
			Name      string     `json:"name"`
			Scopes    []string   `json:"scopes"`
			TenantID  string     `json:"tenantId"`
			ExpiresAt *time.Time `json:"expiresAt"`
		}
		if err := DecodeJSON(w, r, &in); err != nil {
			return 0, nil, err
		}
		c, err := svc.Create(r.Context(), apikey.CreateInput{Name: in.Name, Scopes: in.Scopes, TenantID: in.TenantID, ExpiresAt: in.ExpiresAt})
		if err != nil {
			return 0, nil, err
		}
		scopes := c.Key.Scopes
		if scopes == nil {
			scopes = []string{}
		}
		return http.StatusCreated, createdAPIKeyJSON{ID: c.Key.ID, Name: c.Key.Name, Prefix: c.Key.Prefix, Secret: c.Secret,
			Scopes: scopes, TenantID: c.Key.TenantID, CreatedAt: c.Key.CreatedAt.UTC(), ExpiresAt: utcPtr(c.Key.ExpiresAt)}, nil
	})))
	mux.HandleFunc("POST /api/v1/api-keys/{id}/rotate", errs.handler(authenticated(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		var in struct {
			OverlapSeconds *int64 `json:"overlapSeconds"`
		}
		if err := decodeOptionalJSON(w, r, &in); err != nil {
			return 0, nil, err
		}
		var overlap *time.Duration
		if in.OverlapSeconds != nil {
			n := *in.OverlapSeconds
			if maxSec := int64(apikey.MaxOverlap / time.Second); n < 0 || n > maxSec {
				return 0, nil, core.InvalidField("overlapSeconds", "must be between 0 and "+strconv.FormatInt(maxSec, 10))
			}
			d := time.Duration(n) * time.Second
			overlap = &d
		}
		rot, err := svc.Rotate(r.Context(), r.PathValue("id"), overlap)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, rotatedAPIKeyJSON{ID: rot.ID, Secret: rot.Secret, PreviousSecretExpiresAt: rot.PreviousSecretExpiresAt.UTC()}, nil
	})))
	mux.HandleFunc("DELETE /api/v1/api-keys/{id}", errs.handler(authenticated(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		_, err := svc.Revoke(r.Context(), r.PathValue("id"))
		return http.StatusNoContent, nil, err
	})))
}
