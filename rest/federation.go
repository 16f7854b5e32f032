package rest

import (
	"context"
	"net/http"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/auth"
	"github.com/ghasi-ehealth/identity-service/core/federation"
)

// Federation is OIDC login through a tenant's identity provider.
type Federation interface {
	Start(ctx context.Context, in federation.StartInput) (string, error)
	Callback(ctx context.Context, in federation.CallbackInput) (federation.CallbackResult, error)
	RedeemCode(ctx context.Context, code, ip, userAgent string) (auth.TokenResponse, error)
}

func mountFederation(mux *http.ServeMux, errs Errors, svc Federation) {
	mux.HandleFunc("GET /api/v1/auth/oidc/{provider}/start", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		to, err := svc.Start(r.Context(), federation.StartInput{
			TenantID: q.Get("tenantId"), Slug: r.PathValue("provider"), ReturnTo: q.Get("returnTo"),
		})
		if err != nil {
			errs.Write(w, r, err)
			return
		}
		redirect(w, r, to)
	})
	mux.HandleFunc("GET /api/v1/auth/oidc/{provider}/callback", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		res, err := svc.Callback(r.Context(), federation.CallbackInput{
			Slug: r.PathValue("provider"), Code: q.Get("code"), State: q.Get("state"),
			Error: q.Get("error"), ErrorDescription: q.Get("error_description"),
			IP: core.ClientIPFrom(r.Context()), UserAgent: r.UserAgent(),
		})
		switch {
		case err != nil:
			errs.Write(w, r, err)
		case res.Redirect != "":
			redirect(w, r, res.Redirect)
		default:
			writeJSON(w, http.StatusOK, tokenResponseOut(*res.Tokens))
		}
	})
	mux.HandleFunc("POST /api/v1/auth/oidc/token", errs.handler(func(w http.ResponseWriter, r *http.Request) (int, any, error) {
		var in struct {
			Code string `json:"code"`
		}
		if err := DecodeJSON(w, r, &in); err != nil {
			return 0, nil, err
		}
		t, err := svc.RedeemCode(r.Context(), in.Code, core.ClientIPFrom(r.Context()), r.UserAgent())
		return http.StatusOK, tokenResponseOut(t), err
	}))
}

// redirect answers 302 to an absolute URL; never cached, no referrer leak.
func redirect(w http.ResponseWriter, r *http.Request, to string) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, to, http.StatusFound)
}
