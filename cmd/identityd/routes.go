package main

import (
	"context"
	"errors"
	"net/http"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/apikey"
	"github.com/ghasi-ehealth/identity-service/core/audit"
	"github.com/ghasi-ehealth/identity-service/core/auth"
	"github.com/ghasi-ehealth/identity-service/core/exchange"
	"github.com/ghasi-ehealth/identity-service/core/licensing"
	"github.com/ghasi-ehealth/identity-service/core/mfa"
	"github.com/ghasi-ehealth/identity-service/core/serviceaccount"
	"github.com/ghasi-ehealth/identity-service/core/token"
	"github.com/ghasi-ehealth/identity-service/graph"
	"github.com/ghasi-ehealth/identity-service/httpx"
	"github.com/ghasi-ehealth/identity-service/rest"
	"github.com/ghasi-ehealth/identity-service/rpc"
)

// readiness lists the dependencies /readyz and gRPC health report on.
func (m *Main) readiness() []rest.Check {
	checks := []rest.Check{{Name: "database", Ping: m.db.Ping}}
	if m.valkey != nil {
		checks = append(checks, rest.Check{Name: "valkey", Ping: m.valkey.Ping})
	}
	if !m.bus.InProcess() {
		checks = append(checks, rest.Check{Name: "nats", Ping: m.bus.Ping})
	}
	return checks
}

// handler assembles the one listener's routes and shared middleware.
func (m *Main) handler() http.Handler {
	checks := m.readiness()
	mux := http.NewServeMux()
	rest.Mount(mux, rest.Deps{Logger: m.logger, PublicURL: m.cfg.PublicURL, Keys: m.keys, Checks: checks,
		Tenants: m.tenancy, Users: m.users, Auth: m.auth,
		MFA:      mfaEndpoints{Service: m.mfa, auth: m.auth},
		WebAuthn: m.passkeys,
		OAuth:    m.accounts, ServiceAccounts: m.accounts, APIKeys: m.apiKeys,
		Licensing: m.licensing, EffectiveLicenses: m.resolver, Access: m.access,
		Devices: m.devices, Exchange: m.exchange, Federation: m.federation})
	mux.Handle("/graphql", graph.NewHandler(&graph.Resolver{
		Keyring:        m.keys,
		Audit:          audit.NewService(m.db, m.authz),
		Directory:      m.tenancy,
		UserService:    m.users,
		MFA:            m.mfa,
		KeyService:     m.apiKeys,
		AccountService: m.accounts,
		LicenseService: m.licensing,
		Effective:      m.resolver,
		Access:         m.access,
		DeviceService:  m.devices,
		Federation:     m.federation,
	}, m.logger))
	mux.Handle("GET /metrics", m.telemetry.MetricsHandler)
	rpc.Mount(mux, rpc.Deps{APIKeys: apiKeyVerifier{m.apiKeys}, Licensing: licensingResolver{m.resolver},
		TokenExchange: tokenExchanger{m.exchange}}, rpc.Options{
		Logger:         m.logger,
		TracerProvider: m.telemetry.TracerProvider,
		Ready: func(ctx context.Context) error {
			for _, c := range checks {
				if err := c.Ping(ctx); err != nil {
					return err
				}
			}
			return nil
		},
	})
	var h http.Handler = mux
	h = httpx.Authenticate(serviceAccountScopes{Verifier: m.verifier, accounts: m.accounts}, m.apiKeys)(h)
	h = httpx.NewClientIP(m.cfg.TrustedProxies).Middleware(h)
	h = rest.Recover(m.logger)(h)
	h = httpx.RequestID(h)
	return otelhttp.NewHandler(h, "identity.http",
		otelhttp.WithTracerProvider(m.telemetry.TracerProvider),
		otelhttp.WithMeterProvider(m.telemetry.MeterProvider),
		otelhttp.WithPropagators(m.telemetry.Propagator),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return r.Method + " " + r.URL.Path }))
}

// mfaEndpoints serves the MFA REST routes: enrolment from the mfa service,
// challenge verification (which opens a session) from the auth service.
type mfaEndpoints struct {
	*mfa.Service
	auth *auth.Service
}

func (e mfaEndpoints) VerifyMFA(ctx context.Context, in auth.MFAVerifyInput) (auth.TokenResponse, error) {
	return e.auth.VerifyMFA(ctx, in)
}

// serviceAccountScopes verifies access tokens and, for service accounts,
// loads the account's scopes into the principal (the frozen claim shape
// carries none); a disabled account's tokens stop working with it.
type serviceAccountScopes struct {
	*token.Verifier
	accounts *serviceaccount.Service
}

func (v serviceAccountScopes) Verify(ctx context.Context, raw string) (*core.Principal, error) {
	p, err := v.Verifier.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	if err := v.accounts.EnrichPrincipal(ctx, p); err != nil {
		return nil, err
	}
	return p, nil
}

// apiKeyVerifier adapts the API-key service to Connect's VerifyApiKey.
type apiKeyVerifier struct{ keys *apikey.Service }

func (a apiKeyVerifier) VerifyAPIKey(ctx context.Context, key string) (rpc.APIKeyVerification, error) {
	v, err := a.keys.VerifyAPIKey(ctx, key)
	return rpc.APIKeyVerification(v), err
}

// licensingResolver adapts the authorized resolver to Connect's LicensingService.
type licensingResolver struct{ r *licensing.AuthorizedResolver }

func (x licensingResolver) EffectiveLicenses(ctx context.Context, q rpc.EffectiveLicensesQuery) ([]rpc.EffectiveModule, error) {
	mods, err := x.r.Effective(ctx, q.TenantID, q.NodeID, q.ProviderID)
	if err != nil {
		return nil, err
	}
	out := make([]rpc.EffectiveModule, len(mods))
	for i, mod := range mods {
		out[i] = rpc.EffectiveModule{Code: mod.Code, Status: string(mod.Status), Granted: mod.Granted, Scope: string(mod.Scope),
			SourceNodeID: mod.SourceNodeID, AssignmentID: mod.AssignmentID}
	}
	return out, nil
}

func (x licensingResolver) CheckModuleAccess(ctx context.Context, q rpc.ModuleAccessQuery) (rpc.ModuleAccess, error) {
	granted, status, err := x.r.CheckModuleAccess(ctx, q.TenantID, q.NodeID, q.ModuleCode)
	return rpc.ModuleAccess{Granted: granted, Status: string(status)}, err
}

// tokenExchanger adapts the Keycloak exchange to Connect's TokenService.
type tokenExchanger struct{ svc *exchange.Service }

func (t tokenExchanger) ExchangeToken(ctx context.Context, r rpc.TokenExchangeRequest) (rpc.ExchangedToken, error) {
	res, err := t.svc.Exchange(ctx, exchange.Request{GrantType: exchange.GrantType, SubjectToken: r.SubjectToken,
		SubjectTokenType: r.SubjectTokenType, Audience: r.Audience})
	var oauthErr *exchange.OAuthError
	if errors.As(err, &oauthErr) {
		return rpc.ExchangedToken{}, core.Invalid(oauthErr.Code+": "+oauthErr.Description, nil)
	}
	if err != nil {
		return rpc.ExchangedToken{}, err
	}
	return rpc.ExchangedToken{AccessToken: res.AccessToken, IssuedTokenType: exchange.TokenTypeAccessToken,
		TokenType: "Bearer", ExpiresIn: res.ExpiresIn}, nil
}
