package federation

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/zitadel/oidc/v3/pkg/client"
	"golang.org/x/net/idna"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/core/user"
)

// Flow defaults.
const (
	// DefaultFlowTTL is how long a started login may take at the IdP.
	DefaultFlowTTL = 10 * time.Minute
	// DefaultCodeTTL is the lifetime of a returnTo login code.
	DefaultCodeTTL = time.Minute
	// DefaultIdPTimeout bounds each call to an IdP (discovery, token, JWKS).
	DefaultIdPTimeout = 5 * time.Second
)

// Config configures a Service.
type Config struct {
	// PublicURL is IDENTITY_PUBLIC_URL; the redirect URI registered at the
	// IdP is PublicURL + "/api/v1/auth/oidc/{slug}/callback".
	PublicURL string
	// HTTPClient reaches the IdPs (httpx.NewEgressClient: refuses private
	// addresses unless IDENTITY_FEDERATION_ALLOW_PRIVATE).
	HTTPClient *http.Client
	// AllowInsecureIssuer accepts http:// issuers (local tests only; set
	// together with IDENTITY_FEDERATION_ALLOW_PRIVATE).
	AllowInsecureIssuer bool
	FlowTTL             time.Duration
	CodeTTL             time.Duration
	IdPTimeout          time.Duration
	FailureThreshold    int
	OpenTimeout         time.Duration
	Clock               core.Clock
}

// Deps are the collaborators of a Service.
type Deps struct {
	Store    Store
	Flows    FlowStore
	Sealer   Sealer
	Sessions SessionOpener
	Authz    *core.Authorizer
}

// Service configures providers and runs federated logins.
type Service struct {
	store    Store
	flows    FlowStore
	sealer   Sealer
	sessions SessionOpener
	authz    *core.Authorizer
	cfg      Config
	client   *http.Client
	idps     *idps
}

// NewService returns the federation service.
func NewService(d Deps, cfg Config) *Service {
	if cfg.FlowTTL <= 0 {
		cfg.FlowTTL = DefaultFlowTTL
	}
	if cfg.CodeTTL <= 0 {
		cfg.CodeTTL = DefaultCodeTTL
	}
	if cfg.IdPTimeout <= 0 {
		cfg.IdPTimeout = DefaultIdPTimeout
	}
	if cfg.Clock == nil {
		cfg.Clock = core.SystemClock{}
	}
	base := cfg.HTTPClient
	if base == nil {
		base = &http.Client{Timeout: cfg.IdPTimeout}
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	return &Service{
		store: d.Store, flows: d.Flows, sealer: d.Sealer, sessions: d.Sessions, authz: d.Authz,
		cfg: cfg, client: probingClient(base), idps: newIdPs(cfg.FailureThreshold, cfg.OpenTimeout),
	}
}

// ProviderInput configures a tenant's provider (GraphQL OidcProviderInput).
type ProviderInput struct {
	TenantID            string
	Slug                string
	Issuer              string
	ClientID            string
	ClientSecret        string
	Scopes              []string
	AllowedEmailDomains []string
	ReturnURLs          []string
}

// maxSecretLen bounds client secrets (they are sealed and stored).
const maxSecretLen = 1024

// ConfigureProvider creates or replaces the tenant's provider with in.Slug.
// The issuer's discovery document is fetched and must name the same issuer
// and the authorization, token and JWKS endpoints. The client secret is
// sealed by the master key.
//
// Authorization: TENANT_ADMIN of the tenant or SUPER_ADMIN.
// Errors: IDENT_UNAUTHENTICATED; IDENT_CROSS_TENANT / IDENT_FORBIDDEN;
// IDENT_VALIDATION with Fields (tenantId, slug, issuer, clientId,
// clientSecret, scopes, allowedEmailDomains, returnUrls; issuer also when
// discovery fails); IDENT_NOT_FOUND for an unknown tenant; IDENT_UNAVAILABLE.
func (s *Service) ConfigureProvider(ctx context.Context, in ProviderInput) (Provider, error) {
	acc, err := s.authz.Load(ctx)
	if err != nil {
		return Provider{}, err
	}
	if in.TenantID == "" {
		in.TenantID = acc.Principal.TenantID
	}
	if err := acc.CanAdminister(in.TenantID); err != nil {
		return Provider{}, err
	}
	p, err := s.validateProvider(in)
	if err != nil {
		return Provider{}, err
	}
	if err := s.checkDiscovery(ctx, p.Issuer); err != nil {
		return Provider{}, err
	}
	p.ClientSecret, err = s.sealer.Wrap([]byte(in.ClientSecret), secretAAD(p.TenantID, p.Slug))
	if err != nil {
		return Provider{}, core.Internal(err)
	}
	now := s.cfg.Clock.Now().UTC().Truncate(time.Microsecond)
	p.ID, p.CreatedAt, p.UpdatedAt = core.NewID(), now, now
	stored, err := s.store.UpsertProvider(ctx, p)
	if err != nil {
		return Provider{}, err
	}
	s.idps.forget(stored.ID)
	return stored, nil
}

// secretAAD binds a sealed client secret to its provider's tenant and slug.
func secretAAD(tenantID, slug string) []byte {
	return []byte("oidc-client-secret:" + tenantID + "/" + slug)
}

func (s *Service) validateProvider(in ProviderInput) (Provider, error) {
	p := Provider{
		TenantID: in.TenantID, Slug: strings.TrimSpace(in.Slug),
		Issuer: strings.TrimSpace(in.Issuer), ClientID: strings.TrimSpace(in.ClientID),
	}
	fields := map[string]string{}
	if !core.ValidID(p.TenantID) {
		fields["tenantId"] = "must be a UUID"
	}
	if !tenancy.ValidSlug(p.Slug) { // provider slugs follow the tenant slug rules
		fields["slug"] = "1 to 63 lower-case letters, digits or '-', not at either end"
	}
	if reason := s.issuerProblem(p.Issuer); reason != "" {
		fields["issuer"] = reason
	}
	if p.ClientID == "" || len(p.ClientID) > 255 || !printableASCII(p.ClientID) {
		fields["clientId"] = "required, at most 255 printable ASCII characters"
	}
	if in.ClientSecret == "" || len(in.ClientSecret) > maxSecretLen {
		fields["clientSecret"] = "required, at most 1024 characters"
	}
	var reason string
	if p.Scopes, reason = normalizeScopes(in.Scopes); reason != "" {
		fields["scopes"] = reason
	}
	if p.AllowedEmailDomains, reason = normalizeDomains(in.AllowedEmailDomains); reason != "" {
		fields["allowedEmailDomains"] = reason
	}
	if p.ReturnURLs, reason = normalizeReturnURLs(in.ReturnURLs); reason != "" {
		fields["returnUrls"] = reason
	}
	if len(fields) > 0 {
		return Provider{}, core.Invalid("invalid OIDC provider", fields)
	}
	return p, nil
}

func (s *Service) issuerProblem(issuer string) string {
	u, err := url.Parse(issuer)
	switch {
	case err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "":
		return "must be an absolute URL without credentials, query or fragment"
	case u.Scheme == "https":
		return ""
	case u.Scheme == "http" && s.cfg.AllowInsecureIssuer:
		return ""
	default:
		return "must be an https URL"
	}
}

// normalizeScopes returns the scopes with "openid" first, deduplicated;
// empty means openid, email and profile.
func normalizeScopes(in []string) ([]string, string) {
	if len(in) == 0 {
		return []string{"openid", "email", "profile"}, ""
	}
	out := []string{"openid"}
	for _, sc := range in {
		sc = strings.TrimSpace(sc)
		if sc == "" || len(sc) > 100 || !printableASCII(sc) || strings.ContainsAny(sc, " \"\\") {
			return nil, "each scope is a non-empty token without spaces or quotes"
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	if len(out) > 20 {
		return nil, "at most 20 scopes"
	}
	return out, ""
}

// Bounds of a provider's lists: they are stored with it and scanned on every
// federated login.
const (
	maxEmailDomains = 100
	maxReturnURLs   = 20
	maxReturnURLLen = 2048
)

func normalizeDomains(in []string) ([]string, string) {
	if len(in) > maxEmailDomains {
		return nil, "at most 100 domains"
	}
	out := []string{}
	for _, d := range in {
		d, ok := asciiDomain(strings.TrimSpace(d))
		if !ok || !validDomain(d) {
			return nil, "each entry is a domain name such as example.org or café.af"
		}
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return out, ""
}

// asciiDomain returns d in the lower-case ASCII (xn--) form DNS uses, so an
// internationalised domain matches however it was written; ok is false for
// a name IDNA refuses.
func asciiDomain(d string) (string, bool) {
	if core.TextProblem(d, false) != "" { // IDNA would turn a bad byte into U+FFFD
		return "", false
	}
	a, err := idna.Lookup.ToASCII(d)
	return strings.ToLower(a), err == nil && a != ""
}

// validDomain reports whether d (lower case) is a DNS name of at least two
// labels: letters, digits and inner hyphens, labels of 1 to 63, 253 in all.
func validDomain(d string) bool {
	labels := strings.Split(d, ".")
	if len(d) > 253 || len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}

func normalizeReturnURLs(in []string) ([]string, string) {
	if len(in) > maxReturnURLs {
		return nil, "at most 20 return URLs"
	}
	out := []string{}
	for _, raw := range in {
		u, err := url.Parse(strings.TrimSpace(raw))
		if len(raw) > maxReturnURLLen || !utf8.ValidString(raw) || err != nil || u.Scheme == "" || u.Fragment != "" || u.RawQuery != "" || u.User != nil ||
			(u.Host == "" && (u.Scheme == "http" || u.Scheme == "https")) || scriptScheme(u.Scheme) {
			return nil, "each entry is an absolute URL (https, or an app scheme) without query, fragment or credentials"
		}
		if !slices.Contains(out, u.String()) {
			out = append(out, u.String())
		}
	}
	return out, ""
}

// scriptScheme reports URL schemes a browser would execute or read locally.
func scriptScheme(scheme string) bool {
	switch strings.ToLower(scheme) {
	case "javascript", "vbscript", "data", "file", "blob":
		return true
	}
	return false
}

// printableASCII reports whether s holds only printable ASCII (RFC 6749
// scope-token and client_id alphabets are subsets).
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// checkDiscovery fetches the issuer's discovery document and checks it.
func (s *Service) checkDiscovery(ctx context.Context, issuer string) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.IdPTimeout)
	defer cancel()
	doc, err := client.Discover(ctx, issuer, s.client)
	if err != nil {
		return core.Invalid("invalid OIDC provider", map[string]string{"issuer": "discovery failed: " + discoveryReason(err)})
	}
	if doc.AuthorizationEndpoint == "" || doc.TokenEndpoint == "" || doc.JwksURI == "" {
		return core.Invalid("invalid OIDC provider", map[string]string{"issuer": "discovery document lacks authorization_endpoint, token_endpoint or jwks_uri"})
	}
	return nil
}

// discoveryReason is a short, safe explanation for an admin.
func discoveryReason(err error) string {
	var uerr *url.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded): // before *url.Error, which wraps it
		return "the issuer did not answer in time"
	case errors.As(err, &uerr):
		return "the issuer could not be reached or is not allowed (" + uerr.Err.Error() + ")"
	default:
		return "the document is missing, invalid or names another issuer"
	}
}

// allowedEmail reports whether email (normalized) may sign in through p.
func (p Provider) allowedEmail(email string) bool {
	if len(p.AllowedEmailDomains) == 0 {
		return true
	}
	at := strings.LastIndexByte(email, '@')
	if at <= 0 {
		return false
	}
	domain, ok := asciiDomain(email[at+1:])
	if !ok {
		return false
	}
	// Providers saved before domains were stored in ASCII may hold a
	// Unicode name: compare in the ASCII form on both sides.
	return slices.ContainsFunc(p.AllowedEmailDomains, func(d string) bool {
		a, ok := asciiDomain(d)
		return ok && a == domain
	})
}

// allowedReturnTo reports whether raw matches an allow-listed return URL
// (same scheme, host and path; any query).
func (p Provider) allowedReturnTo(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Fragment != "" || u.User != nil {
		return false
	}
	u.RawQuery = ""
	return slices.Contains(p.ReturnURLs, u.String())
}

// userFromClaims builds a JIT-provisioned user of tenantID.
func userFromClaims(tenantID string, c claims, now time.Time) user.User {
	first, last := user.NormalizeName(c.GivenName), user.NormalizeName(c.FamilyName)
	if !user.ValidName(first) {
		first = user.NormalizeName(strings.SplitN(c.Email, "@", 2)[0])
		if !user.ValidName(first) {
			first = "User"
		}
	}
	if !user.ValidName(last) {
		last = "-"
	}
	return user.User{
		ID: core.NewID(), TenantID: tenantID, Email: c.Email, FirstName: first, LastName: last,
		Status: user.StatusActive, CreatedAt: now, UpdatedAt: now,
	}
}
