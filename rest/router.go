package rest

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/ghasi-ehealth/identity-service/core"
)

// Deps are the core services the REST transport calls.
type Deps struct {
	Logger            *slog.Logger
	PublicURL         string
	Keys              JWKSource
	Checks            []Check
	Tenants           Tenants
	Users             Users
	Auth              Auth
	MFA               MFA
	WebAuthn          WebAuthnRegistration
	OAuth             OAuthTokens
	ServiceAccounts   ServiceAccounts
	APIKeys           APIKeys
	Licensing         Licensing
	EffectiveLicenses EffectiveLicenses
	Access            AccessContexts
	Devices           Devices
	Exchange          TokenExchange
	Federation        Federation
}

// Mount registers the REST routes on mux. Routes of later capabilities are
// added here as they arrive; anything unknown under the mux's catch-all
// answers 404 problem+json.
func Mount(mux *http.ServeMux, d Deps) {
	errs := Errors{Logger: d.Logger}
	mux.HandleFunc("GET /healthz", healthz)
	mux.HandleFunc("GET /readyz", readyz(d.Checks))
	mux.HandleFunc("GET /.well-known/jwks.json", jwks(d.Keys))
	mux.HandleFunc("GET /.well-known/openid-configuration", openIDConfiguration(d.PublicURL))
	if d.Tenants != nil {
		mountTenants(mux, errs, d.Tenants)
	}
	if d.Auth != nil {
		mountAuth(mux, errs, d.Auth)
	}
	if d.MFA != nil {
		mountMFA(mux, errs, d.MFA)
	}
	if d.WebAuthn != nil {
		mountWebAuthn(mux, errs, d.WebAuthn)
	}
	if d.OAuth != nil {
		mountOAuth(mux, errs, d.OAuth)
	}
	if d.ServiceAccounts != nil {
		mountServiceAccounts(mux, errs, d.ServiceAccounts)
	}
	if d.APIKeys != nil {
		mountAPIKeys(mux, errs, d.APIKeys)
	}
	if d.Licensing != nil {
		mountLicensing(mux, errs, d.Licensing)
	}
	if d.EffectiveLicenses != nil {
		mountInternalLicensing(mux, errs, d.EffectiveLicenses)
	}
	if d.Access != nil {
		mountAccess(mux, errs, d.Access)
	}
	if d.Devices != nil {
		mountDevices(mux, errs, d.Devices)
	}
	if d.Exchange != nil {
		mountExchange(mux, errs, d.Exchange)
	}
	if d.Federation != nil {
		mountFederation(mux, errs, d.Federation)
	}
	if d.Users != nil {
		mountUsers(mux, errs, d.Users)
	}
	mux.HandleFunc("/", fallback(mux, errs))
}

// fallback answers requests no route matched: 405 with Allow when the path
// exists for other methods, else 404, both as problem+json. (A catch-all
// pattern hides the mux's own 405, so the other methods are probed.)
func fallback(mux *http.ServeMux, errs Errors) http.HandlerFunc {
	methods := []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
	return func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range methods {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := mux.Handler(probe); pattern != "/" && pattern != "" {
				allow = append(allow, m)
			}
		}
		if len(allow) == 0 {
			errs.Write(w, r, core.NotFound("route "+r.Method+" "+r.URL.Path))
			return
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeProblem(w, r, http.StatusMethodNotAllowed,
			core.E(core.KindInvalid, core.CodeValidation, "method "+r.Method+" is not allowed on "+r.URL.Path))
	}
}
