package rest

import (
	"context"
	"net/http"
	"time"

	"github.com/ghasi-ehealth/identity-service/core/device"
)

// Devices is the device lifecycle as the REST transport uses it
// (*device.Service implements it).
type Devices interface {
	Register(ctx context.Context, in device.RegisterInput) (device.Device, error)
	List(ctx context.Context) ([]device.Device, error)
	Trust(ctx context.Context, id string) (device.Device, error)
	BindOffline(ctx context.Context, id string) (device.Binding, error)
	Revoke(ctx context.Context, id string) (device.Device, error)
	CACertificatePEM(ctx context.Context) ([]byte, error)
	CRL(ctx context.Context) ([]byte, error)
}

// deviceJSON is the contract's device (CONTRACT.md §4).
type deviceJSON struct {
	ID          string           `json:"id"`
	UserID      string           `json:"userId"`
	TenantID    string           `json:"tenantId"`
	Fingerprint string           `json:"fingerprint"`
	Name        string           `json:"name"`
	Platform    string           `json:"platform"`
	Status      string           `json:"status"`
	TrustedAt   *time.Time       `json:"trustedAt"`
	Certificate *certificateJSON `json:"certificate,omitempty"`
}

type certificateJSON struct {
	SerialNumber string     `json:"serialNumber"`
	ExpiresAt    time.Time  `json:"expiresAt"`
	RevokedAt    *time.Time `json:"revokedAt"`
}

type bindingJSON struct {
	Certificate  string    `json:"certificate"`
	SerialNumber string    `json:"serialNumber"`
	ExpiresAt    time.Time `json:"expiresAt"`
}

func deviceOut(d device.Device) deviceJSON {
	out := deviceJSON{ID: d.ID, UserID: d.UserID, TenantID: d.TenantID, Fingerprint: d.Fingerprint, Name: d.Name,
		Platform: d.Platform, Status: string(d.Status), TrustedAt: utcPtr(d.TrustedAt)}
	if c := d.Certificate; c != nil {
		out.Certificate = &certificateJSON{SerialNumber: c.SerialNumber, ExpiresAt: c.ExpiresAt.UTC(), RevokedAt: utcPtr(c.RevokedAt)}
	}
	return out
}

func mountDevices(mux *http.ServeMux, errs Errors, svc Devices) {
	mux.HandleFunc("POST /api/v1/me/devices", errs.handler(authenticated(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		var in struct {
			Fingerprint string `json:"fingerprint"`
			PublicKey   string `json:"publicKey"`
			Name        string `json:"name"`
			Platform    string `json:"platform"`
		}
		if err := DecodeJSON(w, r, &in); err != nil {
			return 0, nil, err
		}
		d, err := svc.Register(r.Context(), device.RegisterInput{Fingerprint: in.Fingerprint, PublicKeyPEM: in.PublicKey,
			Name: in.Name, Platform: in.Platform})
		if err != nil {
			return 0, nil, err
		}
		return http.StatusCreated, deviceOut(d), nil
	})))
	mux.HandleFunc("GET /api/v1/me/devices", errs.handler(authenticated(func(_ http.ResponseWriter, r *http.Request) (int, any, error) {
		ds, err := svc.List(r.Context())
		if err != nil {
			return 0, nil, err
		}
		items := make([]deviceJSON, len(ds))
		for i, d := range ds {
			items[i] = deviceOut(d)
		}
		return http.StatusOK, map[string]any{"items": items}, nil
	})))
	mux.HandleFunc("POST /api/v1/devices/{id}/trust", errs.handler(authenticated(func(_ http.ResponseWriter, r *http.Request) (int, any, error) {
		d, err := svc.Trust(r.Context(), r.PathValue("id"))
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, deviceOut(d), nil
	})))
	mux.HandleFunc("POST /api/v1/me/devices/{id}/bind-offline", errs.handler(authenticated(func(_ http.ResponseWriter, r *http.Request) (int, any, error) {
		b, err := svc.BindOffline(r.Context(), r.PathValue("id"))
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, bindingJSON{Certificate: b.CertificatePEM, SerialNumber: b.SerialNumber, ExpiresAt: b.ExpiresAt.UTC()}, nil
	})))
	mux.HandleFunc("DELETE /api/v1/me/devices/{id}", errs.handler(authenticated(func(_ http.ResponseWriter, r *http.Request) (int, any, error) {
		_, err := svc.Revoke(r.Context(), r.PathValue("id"))
		return http.StatusNoContent, nil, err
	})))
	mux.HandleFunc("GET /devices/ca.pem", rawHandler(errs, "application/x-pem-file", "public, max-age=3600", svc.CACertificatePEM))
	mux.HandleFunc("GET /devices/crl", rawHandler(errs, "application/pkix-crl", "public, max-age=60", svc.CRL))
}

// rawHandler serves a public, non-JSON document.
func rawHandler(errs Errors, contentType, cacheControl string, get func(context.Context) ([]byte, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := get(r.Context())
		if err != nil {
			errs.Write(w, r, err)
			return
		}
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Cache-Control", cacheControl)
		_, _ = w.Write(b)
	}
}
