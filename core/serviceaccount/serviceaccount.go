// Package serviceaccount is machine-to-machine identity (IDENT-US-007):
// SUPER_ADMINs create service accounts (OAuth 2.0 confidential clients),
// which obtain access tokens with the client_credentials grant at
// POST /oauth2/token (RFC 6749 §4.4).
//
// A client id is "sa_" + 20 base62 characters, globally unique (database
// constraint). A client secret is 256 random bits, shown once and stored
// only as HMAC-SHA256 under a server key derived from the master key
// (keys.MasterKey.DeriveSecret(SecretKeyLabel)); like refresh tokens, a
// memory-hard hash would add nothing for a 256-bit random secret and would
// cap the token endpoint at a few grants per second per core.
//
// Tokens keep the frozen claim shape with amr ["client"], sub = the account
// id and a jti without '.', so they are bound to no session. The token does
// not carry scopes; EnrichPrincipal loads them (cached ≤ CacheTTL) when a
// service-account token is presented.
package serviceaccount

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/scope"
	"github.com/ghasi-ehealth/identity-service/core/token"
)

// SecretKeyLabel is the label the composition root passes to
// keys.MasterKey.DeriveSecret to obtain the secret HMAC key.
const SecretKeyLabel = "service-account-secret"

// EventCreated is emitted when a service account is created (CONTRACT.md §8).
const EventCreated = "identity.service_account.created.v1"

// Defaults.
const (
	// DefaultOverlap is how long the previous secret stays valid after a rotation.
	DefaultOverlap = 24 * time.Hour
	// MaxOverlap bounds a requested overlap window.
	MaxOverlap = 30 * 24 * time.Hour
	// FailureLimit failed client authentications of one client id within
	// FailureWindow are allowed; further attempts (a correct secret
	// included) fail with invalid_client and Retry-After until the window ends.
	FailureLimit  = 20
	FailureWindow = 5 * time.Minute
	// CacheTTL bounds how stale ScopesOf may be.
	CacheTTL = 30 * time.Second
	// maxNameLen bounds a service account's display name (characters).
	maxNameLen = 200
)

// Account is a stored service account. The hashes never leave core.
type Account struct {
	ID                 string
	TenantID           string
	Name               string
	ClientID           string
	SecretHash         string
	PreviousSecretHash string
	PreviousExpiresAt  *time.Time
	Scopes             []string
	CreatedBy          string
	CreatedAt          time.Time
	DisabledAt         *time.Time
}

// Store is the service-account repository. InTx and AddEvents make a change
// and its event commit together.
type Store interface {
	core.Transactor
	core.EventSink
	// TenantExists reports whether the tenant is known.
	TenantExists(ctx context.Context, tenantID string) (bool, error)
	// InsertServiceAccount adds a; a duplicate id or client id is KindConflict.
	InsertServiceAccount(ctx context.Context, a Account) error
	// ServiceAccountByID and ServiceAccountByClientID return IDENT_NOT_FOUND when absent.
	ServiceAccountByID(ctx context.Context, id string) (Account, error)
	ServiceAccountByClientID(ctx context.Context, clientID string) (Account, error)
	// ListServiceAccounts returns the accounts of tenantID ("" = all), oldest first.
	ListServiceAccounts(ctx context.Context, tenantID string) ([]Account, error)
	// RotateServiceAccountSecret replaces the secret hash of id if it still is
	// expectHash, keeping the old one as previous until previousExpiresAt
	// (nil = no previous secret); it reports whether the row changed.
	RotateServiceAccountSecret(ctx context.Context, id, expectHash, newHash string, previousHash *string, previousExpiresAt *time.Time) (bool, error)
	// DisableServiceAccount sets disabled_at unless already set; it reports whether the row changed.
	DisableServiceAccount(ctx context.Context, id string, at time.Time) (bool, error)
}

// TokenIssuer signs access tokens (*token.Issuer).
type TokenIssuer interface {
	Issue(ctx context.Context, c token.Claims) (string, time.Time, error)
}

// Service manages service accounts and runs the client_credentials grant.
type Service struct {
	store   Store
	authz   *core.Authorizer
	issuer  TokenIssuer
	clock   core.Clock
	key     []byte
	limiter core.RateLimiter
	logger  *slog.Logger
	// dummyHash is compared against when the client is unknown, so an
	// unknown client costs the same HMAC and comparison as a known one.
	dummyHash string

	mu    sync.Mutex
	cache map[string]cacheEntry
}

// NewService returns the service. hmacKey is
// MasterKey.DeriveSecret(SecretKeyLabel) (at least 32 bytes); limiter may be
// nil (no throttling of failed client authentications); a nil clock means
// the system clock; a nil logger discards.
func NewService(store Store, authz *core.Authorizer, issuer TokenIssuer, clock core.Clock, hmacKey []byte, limiter core.RateLimiter, logger *slog.Logger) *Service {
	if clock == nil {
		clock = core.SystemClock{}
	}
	if logger == nil {
		logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if len(hmacKey) < 32 {
		panic("serviceaccount: hmacKey must be at least 32 bytes")
	}
	s := &Service{store: store, authz: authz, issuer: issuer, clock: clock, key: append([]byte(nil), hmacKey...),
		limiter: limiter, logger: logger, cache: map[string]cacheEntry{}}
	s.dummyHash = s.hashSecret(newSecret())
	return s
}

// CreateInput is POST /service-accounts.
type CreateInput struct {
	Name     string
	TenantID string
	Scopes   []string
}

// Created is a new account with its secret, which is never shown again.
type Created struct {
	Account      Account
	ClientSecret string
}

// Rotated is the outcome of RotateSecret; PreviousSecretExpiresAt is nil
// when the old secret stopped working at once (overlap 0).
type Rotated struct {
	ID                      string
	ClientSecret            string
	PreviousSecretExpiresAt *time.Time
}

// Create adds a service account of in.TenantID. SUPER_ADMIN only
// (IDENT_FORBIDDEN otherwise); IDENT_VALIDATION for a bad name (empty, over
// 200 characters, invalid UTF-8 or control characters), tenant id or scope; IDENT_NOT_FOUND for an unknown tenant. The event
// identity.service_account.created.v1 commits with the row.
func (s *Service) Create(ctx context.Context, in CreateInput) (Created, error) {
	acc, err := s.authz.RequireSuperAdmin(ctx)
	if err != nil {
		return Created{}, err
	}
	name := strings.TrimSpace(in.Name)
	fields := map[string]string{}
	switch {
	case name == "":
		fields["name"] = "is required"
	case utf8.RuneCountInString(name) > maxNameLen:
		fields["name"] = "must be at most 200 characters"
	case core.TextProblem(name, false) != "":
		fields["name"] = core.TextProblem(name, false)
	}
	if !core.ValidID(in.TenantID) {
		fields["tenantId"] = "must be a UUID"
	}
	scopes, err := scope.Normalize("scopes", in.Scopes)
	if err != nil {
		for k, v := range core.AsError(err).Fields {
			fields[k] = v
		}
	}
	if len(fields) > 0 {
		return Created{}, core.Invalid("invalid service account", fields)
	}
	now := s.clock.Now()
	secret := newSecret()
	a := Account{ID: core.NewID(), TenantID: in.TenantID, Name: name, SecretHash: s.hashSecret(secret),
		Scopes: scopes, CreatedBy: acc.Principal.ID, CreatedAt: now}
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		ok, err := s.store.TenantExists(ctx, a.TenantID)
		if err != nil {
			return err
		}
		if !ok {
			return core.NotFound("tenant")
		}
		// A client id collision is astronomically unlikely (119 bits); the
		// unique constraint catches it and a fresh id is drawn.
		for attempt := 0; ; attempt++ {
			a.ClientID = newClientID()
			err = s.store.InsertServiceAccount(ctx, a)
			if err == nil || !core.IsKind(err, core.KindConflict) || attempt == 2 {
				break
			}
		}
		if err != nil {
			return err
		}
		return s.store.AddEvents(ctx, core.NewEvent(now, EventCreated, a.ID, a.TenantID, map[string]any{
			"serviceAccountId": a.ID, "clientId": a.ClientID, "tenantId": a.TenantID,
		}))
	})
	if err != nil {
		return Created{}, err
	}
	s.logger.InfoContext(ctx, "service account created", "service_account_id", a.ID, "client_id", a.ClientID,
		"tenant_id", a.TenantID, "actor_id", acc.Principal.ID)
	return Created{Account: a, ClientSecret: secret}, nil
}

// List returns the service accounts of tenantID. A SUPER_ADMIN may ask for
// any tenant or all ("" ); a TENANT_ADMIN (or a service credential with
// tenant:service_accounts:read) reads its own tenant ("" means it) and gets
// IDENT_CROSS_TENANT for another.
func (s *Service) List(ctx context.Context, tenantID string) ([]Account, error) {
	acc, err := s.authz.Load(ctx)
	if err != nil {
		return nil, err
	}
	if !acc.SuperAdmin {
		if tenantID == "" {
			tenantID = acc.Principal.TenantID
		}
		p := acc.Principal
		serviceRead := p.Type != core.PrincipalUser && p.HasScope(scope.ServiceAccountsRead) && p.TenantID == tenantID
		if !serviceRead {
			if err := acc.CanAdminister(tenantID); err != nil {
				return nil, err
			}
		}
	}
	if tenantID != "" && !core.ValidID(tenantID) {
		return nil, core.InvalidField("tenantId", "must be a UUID")
	}
	return s.store.ListServiceAccounts(ctx, tenantID)
}

// RotateSecret issues a new secret for account id. The previous secret
// stays valid for overlap (nil = DefaultOverlap, 0 = ends now, at most
// MaxOverlap). SUPER_ADMIN only; IDENT_NOT_FOUND for an unknown id;
// IDENT_STATE_CONFLICT for a disabled account or a concurrent rotation.
func (s *Service) RotateSecret(ctx context.Context, id string, overlap *time.Duration) (Rotated, error) {
	if _, err := s.authz.RequireSuperAdmin(ctx); err != nil {
		return Rotated{}, err
	}
	window := DefaultOverlap
	if overlap != nil {
		window = *overlap
	}
	if window < 0 || window > MaxOverlap {
		return Rotated{}, core.InvalidField("overlapSeconds", "must be between 0 and 2592000")
	}
	if !core.ValidID(id) {
		return Rotated{}, core.NotFound("service account")
	}
	a, err := s.store.ServiceAccountByID(ctx, id)
	if err != nil {
		return Rotated{}, err
	}
	if a.DisabledAt != nil {
		return Rotated{}, core.E(core.KindConflict, core.CodeStateConflict, "the service account is disabled")
	}
	secret := newSecret()
	out := Rotated{ID: a.ID, ClientSecret: secret}
	var prev *string
	if window > 0 {
		until := s.clock.Now().Add(window).UTC()
		out.PreviousSecretExpiresAt = &until
		prev = &a.SecretHash
	}
	changed, err := s.store.RotateServiceAccountSecret(ctx, a.ID, a.SecretHash, s.hashSecret(secret), prev, out.PreviousSecretExpiresAt)
	if err != nil {
		return Rotated{}, err
	}
	if !changed {
		return Rotated{}, core.E(core.KindConflict, core.CodeStateConflict, "the secret was rotated concurrently; retry")
	}
	s.logger.InfoContext(ctx, "service account secret rotated", "service_account_id", a.ID, "client_id", a.ClientID)
	return out, nil
}

// Disable stops account id from obtaining tokens; its tokens already
// issued are refused by EnrichPrincipal once the cache entry expires
// (≤ CacheTTL; at once on this instance). SUPER_ADMIN only; repeating it is
// not an error.
func (s *Service) Disable(ctx context.Context, id string) (Account, error) {
	if _, err := s.authz.RequireSuperAdmin(ctx); err != nil {
		return Account{}, err
	}
	if !core.ValidID(id) {
		return Account{}, core.NotFound("service account")
	}
	if _, err := s.store.DisableServiceAccount(ctx, id, s.clock.Now()); err != nil {
		return Account{}, err
	}
	s.forget(id)
	return s.store.ServiceAccountByID(ctx, id)
}
