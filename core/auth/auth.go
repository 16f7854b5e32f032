// Package auth is password login, sessions, refresh-token rotation, logout
// and the revocation of sessions and their access tokens (IDENT-US-001/002).
//
// A session is one login: it has an id (UUIDv7), an absolute lifetime
// (Config.SessionTTL, 8 h) and a chain of one-use refresh tokens. Access
// tokens issued for a session carry jti = "<sessionId>.<random>", so the
// session is recoverable from any access token (SessionIDOf) and the
// revocation set, which is keyed by session id, decides whether the token is
// still good (TokenRevocation). Tokens whose jti has no '.' (service
// accounts, later) are not bound to a session.
//
// Refresh tokens are 256 random bits, stored only as HMAC-SHA256 under
// Config.RefreshKey (keys.MasterKey.DeriveSecret(RefreshKeyLabel)). The story
// asks for argon2id; a memory-hard hash protects low-entropy secrets and adds
// nothing for a 256-bit random one, while it would cap refreshes at a few per
// second per core and compete with logins for the hashing slots.
package auth

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/core/token"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/telemetry"
)

// RefreshKeyLabel is the label the composition root passes to
// keys.MasterKey.DeriveSecret to obtain Config.RefreshKey.
const RefreshKeyLabel = "refresh-token"

// MinRefreshKeyLen is the shortest accepted Config.RefreshKey (256 bits).
const MinRefreshKeyLen = 32

// Defaults of Config (CONTRACT.md §3, §4; IDENT-US-001).
const (
	DefaultSessionTTL           = 8 * time.Hour
	DefaultIPFailureLimit       = 6
	DefaultIPFailureWindow      = 5 * time.Minute
	DefaultAccountFailureLimit  = 10
	DefaultAccountFailureWindow = 15 * time.Minute
)

// Session revocation reasons (CONTRACT.md §8, identity.session.revoked.v1).
const (
	ReasonLogout    = "logout"
	ReasonLogoutAll = "logout_all"
	ReasonReplay    = "replay"
	ReasonSuspended = user.RevokeReasonSuspended
	ReasonErased    = user.RevokeReasonErased
)

// Config tunes the service. Zero values take the defaults above.
type Config struct {
	// RefreshKey is the HMAC-SHA256 key refresh tokens are stored under
	// (at least MinRefreshKeyLen bytes): MasterKey.DeriveSecret(RefreshKeyLabel).
	RefreshKey []byte
	// SessionTTL is a session's absolute lifetime; refresh tokens live until
	// the session ends (RefreshExpiresIn counts down to it).
	SessionTTL time.Duration

	// IPFailureLimit failed logins from one client IP within IPFailureWindow
	// are allowed; the next attempt from that IP, and every one after it
	// until the window ends, gets IDENT_RATE_LIMITED (a correct password
	// included).
	IPFailureLimit  int
	IPFailureWindow time.Duration
	// AccountFailureLimit failed logins for one account (normalized email +
	// tenantId or "*") within AccountFailureWindow are allowed, from any
	// IP; then IDENT_RATE_LIMITED. Unknown emails are counted the same way.
	AccountFailureLimit  int
	AccountFailureWindow time.Duration
}

// Deps are the ports the service uses. Store, Users, Directory, Hasher,
// Issuer, Limiter and Revocations are required; the rest may be nil.
type Deps struct {
	Store       Store
	Users       Users
	Directory   Directory
	Hasher      Hasher
	Issuer      Issuer
	Limiter     core.RateLimiter
	Revocations core.RevocationSet
	// Devices, when set, revokes every device of the user on LogoutAll.
	Devices DeviceRevoker
	// SecondFactor, when set, decides after a correct password whether the
	// login needs a second factor and backs VerifyMFA (mfa.Service).
	SecondFactor SecondFactor

	Clock          core.Clock
	TracerProvider trace.TracerProvider
	Metrics        *telemetry.Metrics
	Logger         *slog.Logger
}

// Session is one login: a refresh-token family with an absolute end.
type Session struct {
	ID            string
	UserID        string
	TenantID      string
	AMR           []string
	ContextNodeID string
	IP            string
	UserAgent     string
	CreatedAt     time.Time
	ExpiresAt     time.Time
	LastUsedAt    time.Time
	RevokedAt     *time.Time
	RevokeReason  string
}

// RevokedSession identifies a session a bulk revocation ended.
type RevokedSession struct {
	ID       string
	UserID   string
	TenantID string
}

// Store is the session and refresh-token repository. Every method joins the
// transaction carried by ctx (core.Transactor), and so does AddEvents.
type Store interface {
	core.Transactor
	core.EventSink

	// InsertSession adds s.
	InsertSession(ctx context.Context, s Session) error
	// SessionByID returns the session or IDENT_NOT_FOUND (also for a
	// malformed id).
	SessionByID(ctx context.Context, id string) (Session, error)
	// TouchSession sets last_used_at = now.
	TouchSession(ctx context.Context, id string, now time.Time) error
	// RevokeSession sets revoked_at = now and revoke_reason unless the
	// session is already revoked, and reports whether it changed the row.
	RevokeSession(ctx context.Context, id, reason string, now time.Time) (bool, error)
	// RevokeUserSessions revokes every unrevoked session of userID and
	// returns those it revoked.
	RevokeUserSessions(ctx context.Context, userID, reason string, now time.Time) ([]RevokedSession, error)
	// ForgetSessionClients empties the IP and user agent of every session of
	// userID (GDPR erasure).
	ForgetSessionClients(ctx context.Context, userID string) error
	// RevokedSessionsSince returns the ids of sessions revoked at or after since.
	RevokedSessionsSince(ctx context.Context, since time.Time) ([]string, error)

	// InsertRefreshToken stores the hash of a new refresh token of sessionID.
	InsertRefreshToken(ctx context.Context, hash, sessionID string, now time.Time) error
	// ConsumeRefreshToken marks the token with hash used in ONE conditional
	// UPDATE (used_at IS NULL), so of concurrent consumers exactly one gets
	// consumed = true. It returns the token's session either way;
	// IDENT_NOT_FOUND when no token has hash.
	ConsumeRefreshToken(ctx context.Context, hash string, now time.Time) (sessionID string, consumed bool, err error)
	// RefreshTokenSession returns the session of the token with hash, or
	// IDENT_NOT_FOUND.
	RefreshTokenSession(ctx context.Context, hash string) (string, error)
}

// Users reads and updates the accounts that log in.
type Users interface {
	// UsersByEmail returns the users whose (normalized, non-empty) email is
	// email — only those of tenantID when it is not empty — at most two
	// (two already mean "ambiguous").
	UsersByEmail(ctx context.Context, email, tenantID string) ([]user.User, error)
	// UserByID returns the user, or IDENT_NOT_FOUND.
	UserByID(ctx context.Context, id string) (user.User, error)
	// UpdatePasswordHash replaces oldHash by newHash (a rehash with current
	// parameters) only while the stored hash still is oldHash, so a password
	// changed meanwhile is not overwritten, and reports whether it did.
	UpdatePasswordHash(ctx context.Context, id, oldHash, newHash string) (bool, error)
}

// Directory is the part of the tenant directory login needs: memberships
// (for tids and contextNodeId) and the ancestors of a node.
// persistence.TenancyStore implements it. When a Directory also implements
// NodeReader, a tenant-wide membership covers a root node of its tenant too
// (ancestors alone name the tenant of non-root nodes only).
type Directory interface {
	core.MembershipReader
	tenancy.Hierarchy
}

// NodeReader is optionally implemented by a Directory.
type NodeReader interface {
	// NodeByID returns the node or IDENT_NOT_FOUND.
	NodeByID(ctx context.Context, id string) (tenancy.Node, error)
}

// Hasher verifies passwords (password.Hasher). Verify and VerifyDummy run
// behind the hasher's semaphore and fail with IDENT_OVERLOADED when it is full.
type Hasher interface {
	Verify(ctx context.Context, plain, encoded string) (ok, needsRehash bool, err error)
	VerifyDummy(ctx context.Context, plain string) error
	Hash(ctx context.Context, plain string) (string, error)
}

// Issuer signs access tokens (token.Issuer).
type Issuer interface {
	Issue(ctx context.Context, c token.Claims) (string, time.Time, error)
	TTL() time.Duration
}

// DeviceRevoker revokes every device of a user (LogoutAll). It is called
// inside LogoutAll's transaction.
type DeviceRevoker interface {
	RevokeAllDevicesOfUser(ctx context.Context, userID string) error
}

// TokenResponse is what login and refresh return (CONTRACT.md §3).
// ExpiresIn is the access token's remaining life; RefreshExpiresIn the time
// until the session's absolute end (the refresh token is good until then).
type TokenResponse struct {
	AccessToken      string
	RefreshToken     string
	ExpiresIn        time.Duration
	RefreshExpiresIn time.Duration
	// User never carries PasswordHash.
	User user.User
}

// Service runs login, refresh, logout and revocation.
type Service struct {
	store       Store
	users       Users
	dir         Directory
	hasher      Hasher
	issuer      Issuer
	limiter     core.RateLimiter
	revocations core.RevocationSet
	devices     DeviceRevoker
	mfa         SecondFactor
	clock       core.Clock
	tracer      trace.Tracer
	metrics     *telemetry.Metrics
	log         *slog.Logger
	cfg         Config
	refreshKey  []byte
}

// NewService returns the auth service. A missing required port or a
// RefreshKey shorter than MinRefreshKeyLen is a wiring bug and panics.
func NewService(deps Deps, cfg Config) *Service {
	if deps.Store == nil || deps.Users == nil || deps.Directory == nil || deps.Hasher == nil ||
		deps.Issuer == nil || deps.Limiter == nil || deps.Revocations == nil {
		panic("auth.NewService: Store, Users, Directory, Hasher, Issuer, Limiter and Revocations are required")
	}
	if len(cfg.RefreshKey) < MinRefreshKeyLen {
		panic("auth.NewService: RefreshKey must be at least 32 bytes")
	}
	if deps.Clock == nil {
		deps.Clock = core.SystemClock{}
	}
	if deps.TracerProvider == nil {
		deps.TracerProvider = noop.NewTracerProvider()
	}
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cfg = withDefaults(cfg)
	return &Service{
		store: deps.Store, users: deps.Users, dir: deps.Directory, hasher: deps.Hasher, issuer: deps.Issuer,
		limiter: deps.Limiter, revocations: deps.Revocations, devices: deps.Devices, mfa: deps.SecondFactor, clock: deps.Clock,
		tracer: deps.TracerProvider.Tracer(telemetry.ScopeName), metrics: deps.Metrics, log: deps.Logger,
		cfg: cfg, refreshKey: append([]byte(nil), cfg.RefreshKey...),
	}
}

func withDefaults(cfg Config) Config {
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = DefaultSessionTTL
	}
	if cfg.IPFailureLimit <= 0 {
		cfg.IPFailureLimit = DefaultIPFailureLimit
	}
	if cfg.IPFailureWindow <= 0 {
		cfg.IPFailureWindow = DefaultIPFailureWindow
	}
	if cfg.AccountFailureLimit <= 0 {
		cfg.AccountFailureLimit = DefaultAccountFailureLimit
	}
	if cfg.AccountFailureWindow <= 0 {
		cfg.AccountFailureWindow = DefaultAccountFailureWindow
	}
	return cfg
}

// now is the clock's time at the databases' precision (microseconds).
func (s *Service) now() time.Time { return s.clock.Now().UTC().Truncate(time.Microsecond) }

// revocationTTL is how long a revoked session stays in the revocation set:
// as long as an access token issued before the revocation can still pass
// verification (its lifetime plus the verifier's leeway).
func (s *Service) revocationTTL() time.Duration { return s.issuer.TTL() + token.Leeway }

// public strips what must not leave core.
func public(u user.User) user.User {
	u.PasswordHash = ""
	return u
}

// errInvalidCredentials is the one answer to every failed login.
func errInvalidCredentials(cause error) *core.Error {
	return core.Wrap(cause, core.KindUnauthenticated, core.CodeInvalidCredentials, "invalid email or password")
}

func errReplay() *core.Error {
	return core.E(core.KindUnauthenticated, core.CodeRefreshReplay,
		"the refresh token was already used; the session has been revoked")
}

// Causes (never shown) of the IDENT_UNAUTHENTICATED errors of Refresh, and of
// the IDENT_INVALID_CREDENTIALS errors of Login; for logs and tests.
var (
	ErrUnknownRefreshToken = errors.New("auth: unknown refresh token")
	ErrSessionRevoked      = errors.New("auth: session revoked")
	ErrSessionExpired      = errors.New("auth: session expired")
	ErrUserInactive        = errors.New("auth: user not active")
	ErrUnknownUser         = errors.New("auth: no single user with this email")
	ErrWrongPassword       = errors.New("auth: wrong password")
	ErrContextNode         = errors.New("auth: context node outside the user's memberships")
)
