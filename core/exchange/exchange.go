// Package exchange trades an upstream (Keycloak) access token for a platform
// access token, per RFC 8693 (CONTRACT.md §4 POST /auth/keycloak/token-exchange,
// §6 TokenService.ExchangeToken, story IDENT-US-011).
//
// Errors come in two families, which the transports render differently:
//
//   - *OAuthError for problems with the shape of the request (RFC 8693 §2.2.2
//     / RFC 6749 §5.2 bodies {"error","error_description"}, HTTP 400):
//     wrong or missing grant_type (unsupported_grant_type; also when the
//     exchange is disabled because no upstream issuer is configured), a
//     missing subject_token or a subject_token_type other than access_token
//     (invalid_request), an audience other than the platform's (invalid_target).
//   - core errors for everything about the credential itself: a bad, expired
//     or foreign upstream token, an unknown, unverified-email, already-linked
//     or inactive user are all IDENT_INVALID_CREDENTIALS (401, problem+json,
//     as the contract's row says); dependency failures are IDENT_UNAVAILABLE.
package exchange

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/token"
	"github.com/ghasi-ehealth/identity-service/core/user"
)

// RFC 8693 identifiers.
const (
	// GrantType is the only grant_type the endpoint accepts.
	GrantType = "urn:ietf:params:oauth:grant-type:token-exchange"
	// TokenTypeAccessToken is the accepted subject_token_type and the
	// issued_token_type of every answer.
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
)

// OAuth error codes used by OAuthError.
const (
	ErrInvalidRequest       = "invalid_request"
	ErrUnsupportedGrantType = "unsupported_grant_type"
	ErrInvalidTarget        = "invalid_target"
)

// OAuthError is a request-shape failure in RFC 6749 / 8693 terms: the
// transport renders {"error": Code, "error_description": Description} with
// Status (always 400 here).
type OAuthError struct {
	Code        string
	Description string
	Status      int
}

func (e *OAuthError) Error() string { return "token exchange: " + e.Code + ": " + e.Description }

func badRequest(code, desc string) *OAuthError {
	return &OAuthError{Code: code, Description: desc, Status: http.StatusBadRequest}
}

// Request is an RFC 8693 token-exchange request. Audience is optional.
type Request struct {
	GrantType        string
	SubjectToken     string
	SubjectTokenType string
	Audience         string
}

// Result is the issued platform access token; ExpiresIn is its lifetime
// rounded up to whole seconds (the wire unit). Its issued_token_type is
// TokenTypeAccessToken and its token_type "Bearer".
type Result struct {
	AccessToken string
	ExpiresIn   time.Duration
}

// Identity is what a verified upstream token asserts about its subject.
type Identity struct {
	// Subject is the upstream sub (stored as users.keycloak_user_id).
	Subject       string
	Email         string
	EmailVerified bool
}

// UpstreamVerifier verifies an upstream access token. Errors: a core error of
// kind unavailable when the upstream keys cannot be obtained; any other error
// means the token is not acceptable.
type UpstreamVerifier interface {
	Verify(ctx context.Context, raw string) (Identity, error)
}

// Store reads and links users. The finders return IDENT_NOT_FOUND when there
// is no single match.
type Store interface {
	// UserByKeycloakID returns the user linked to upstream subject sub, in any tenant.
	UserByKeycloakID(ctx context.Context, sub string) (user.User, error)
	// UserByEmailInTenant returns the user of tenantID with the (normalized) email.
	UserByEmailInTenant(ctx context.Context, email, tenantID string) (user.User, error)
	// SetKeycloakUserID links userID to sub unless it is linked to another
	// subject already, and reports whether the link now holds.
	SetKeycloakUserID(ctx context.Context, userID, sub string) (bool, error)
}

// TenantLookup resolves the configured tenant reference (a UUID id or a
// slug) to a tenant id, or IDENT_NOT_FOUND.
type TenantLookup interface {
	TenantIDByRef(ctx context.Context, ref string) (string, error)
}

// Issuer signs platform access tokens (*token.Issuer).
type Issuer interface {
	Issue(ctx context.Context, c token.Claims) (string, time.Time, error)
}

// MembershipReader gives the memberships for the token's tids.
type MembershipReader = core.MembershipReader

// Config configures a Service.
type Config struct {
	// TenantRef is IDENTITY_KEYCLOAK_TENANT_ID: the tenant (id or slug) in
	// which users are matched by email. It is resolved per request, so the
	// tenant may be created after start. Empty disables matching by email
	// (users already linked by sub are still found).
	TenantRef string
	// Audience is the platform audience; a request naming another audience
	// is invalid_target. Empty accepts any requested audience.
	Audience string
	// Clock defaults to the system clock.
	Clock core.Clock
}

// Service performs token exchanges.
type Service struct {
	store    Store
	tenants  TenantLookup
	issuer   Issuer
	dir      MembershipReader
	upstream UpstreamVerifier
	cfg      Config
}

// NewService returns the exchange service. A nil upstream means the exchange
// is disabled (IDENTITY_KEYCLOAK_ISSUER empty): every request is then
// unsupported_grant_type.
func NewService(store Store, tenants TenantLookup, issuer Issuer, dir MembershipReader, upstream UpstreamVerifier, cfg Config) *Service {
	if cfg.Clock == nil {
		cfg.Clock = core.SystemClock{}
	}
	return &Service{store: store, tenants: tenants, issuer: issuer, dir: dir, upstream: upstream, cfg: cfg}
}

// Enabled reports whether an upstream issuer is configured.
func (s *Service) Enabled() bool { return s != nil && s.upstream != nil }

// Causes (never shown to clients) of the IDENT_INVALID_CREDENTIALS errors of
// Exchange; for logs and tests.
var (
	ErrUpstreamToken = errors.New("exchange: upstream token rejected")
	ErrUnknownUser   = errors.New("exchange: no user for the upstream subject")
	ErrUnverified    = errors.New("exchange: upstream email not verified")
	ErrLinked        = errors.New("exchange: user linked to another upstream subject")
	ErrUserInactive  = errors.New("exchange: user not active")
	// ErrSubject: the upstream sub cannot be stored as keycloak_user_id
	// (core.ValidSubject).
	ErrSubject = errors.New("exchange: upstream sub is not a storable identifier")
)

func invalidCredentials(cause error) *core.Error {
	return core.Wrap(cause, core.KindUnauthenticated, core.CodeInvalidCredentials, "the subject token was not accepted")
}

// Exchange verifies req.SubjectToken against the upstream issuer, finds the
// user (by linked sub, else by verified email in the configured tenant, then
// linking the sub) and issues a platform access token with amr ["exch"],
// bound to no session. Errors: *OAuthError (see the package doc),
// IDENT_INVALID_CREDENTIALS, IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (s *Service) Exchange(ctx context.Context, req Request) (Result, error) {
	switch {
	case req.GrantType == "":
		return Result{}, badRequest(ErrInvalidRequest, "grant_type is required")
	case req.GrantType != GrantType:
		return Result{}, badRequest(ErrUnsupportedGrantType, "grant_type must be "+GrantType)
	case !s.Enabled():
		return Result{}, badRequest(ErrUnsupportedGrantType, "token exchange is not enabled on this server")
	case req.SubjectToken == "":
		return Result{}, badRequest(ErrInvalidRequest, "subject_token is required")
	case req.SubjectTokenType != TokenTypeAccessToken:
		return Result{}, badRequest(ErrInvalidRequest, "subject_token_type must be "+TokenTypeAccessToken)
	case req.Audience != "" && s.cfg.Audience != "" && req.Audience != s.cfg.Audience:
		return Result{}, badRequest(ErrInvalidTarget, "the only audience available is "+s.cfg.Audience)
	}
	id, err := s.upstream.Verify(ctx, req.SubjectToken)
	if err != nil {
		if ce := core.AsError(err); ce.Kind == core.KindUnavailable {
			return Result{}, ce
		}
		return Result{}, invalidCredentials(errors.Join(ErrUpstreamToken, err))
	}
	if !core.ValidSubject(id.Subject) {
		return Result{}, invalidCredentials(errors.Join(ErrUpstreamToken, ErrSubject))
	}
	u, err := s.match(ctx, id)
	if err != nil {
		return Result{}, err
	}
	if u.Status != user.StatusActive {
		return Result{}, invalidCredentials(ErrUserInactive)
	}
	ms, err := s.dir.MembershipsOfUser(ctx, u.ID)
	if err != nil {
		return Result{}, err
	}
	now := s.cfg.Clock.Now()
	at, exp, err := s.issuer.Issue(ctx, token.Claims{
		Subject: u.ID, TenantID: u.TenantID, TenantIDs: core.TenantIDs(u.TenantID, ms),
		AMR: []string{token.AMRExchange}, IssuedAt: now,
	})
	if err != nil {
		return Result{}, err
	}
	return Result{AccessToken: at, ExpiresIn: ceilSecond(exp.Sub(now))}, nil
}

// match finds the user of id: by linked sub first, else by verified email in
// the configured tenant, linking the sub on success.
func (s *Service) match(ctx context.Context, id Identity) (user.User, error) {
	u, err := s.store.UserByKeycloakID(ctx, id.Subject)
	if err == nil {
		return u, nil
	}
	if core.CodeOf(err) != core.CodeNotFound {
		return user.User{}, err
	}
	email := user.NormalizeEmail(id.Email)
	if !user.ValidEmail(email) || s.cfg.TenantRef == "" {
		// No address at all, or one no account can have (a NUL byte or
		// invalid UTF-8 among them): never looked up.
		return user.User{}, invalidCredentials(ErrUnknownUser)
	}
	if !id.EmailVerified {
		return user.User{}, invalidCredentials(ErrUnverified)
	}
	tenantID, err := s.tenants.TenantIDByRef(ctx, s.cfg.TenantRef)
	if core.CodeOf(err) == core.CodeNotFound {
		return user.User{}, invalidCredentials(errors.Join(ErrUnknownUser, err))
	}
	if err != nil {
		return user.User{}, err
	}
	u, err = s.store.UserByEmailInTenant(ctx, email, tenantID)
	if core.CodeOf(err) == core.CodeNotFound {
		return user.User{}, invalidCredentials(ErrUnknownUser)
	}
	if err != nil {
		return user.User{}, err
	}
	if u.Status != user.StatusActive {
		// Do not link an account that cannot sign in.
		return user.User{}, invalidCredentials(ErrUserInactive)
	}
	ok, err := s.store.SetKeycloakUserID(ctx, u.ID, id.Subject)
	if err != nil {
		if core.AsError(err).Kind == core.KindConflict {
			return user.User{}, invalidCredentials(errors.Join(ErrLinked, err))
		}
		return user.User{}, err
	}
	if !ok {
		return user.User{}, invalidCredentials(ErrLinked)
	}
	return u, nil
}

// ceilSecond rounds d up to whole seconds.
func ceilSecond(d time.Duration) time.Duration {
	if r := d % time.Second; r != 0 {
		d += time.Second - r
	}
	return d
}
