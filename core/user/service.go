package user

import (
	"context"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/ghasi-ehealth/identity-service/core"
)

// DefaultVerificationTTL is how long an email-verification token is valid.
const DefaultVerificationTTL = 24 * time.Hour

// VerifyEmailPath is the path, under Config.PublicURL, of the endpoint that
// redeems a verification token; verificationUrl is PublicURL + this path +
// "?token=<token>".
const VerifyEmailPath = "/api/v1/auth/verify-email"

// TokenKeyLabel is the label the composition root passes to
// keys.MasterKey.DeriveSecret to obtain Config.TokenKey.
const TokenKeyLabel = "email-verification-token"

// MinTokenKeyLen is the shortest accepted Config.TokenKey (256 bits).
const MinTokenKeyLen = 32

// Config configures the user service.
type Config struct {
	// PublicURL is IDENTITY_PUBLIC_URL, an absolute http(s) URL; verification
	// links are built from it.
	PublicURL string
	// TokenKey is the HMAC-SHA256 key under which verification tokens are
	// stored (at least 32 bytes).
	TokenKey []byte
	// VerificationTTL is the lifetime of a verification token; ≤ 0 means
	// DefaultVerificationTTL.
	VerificationTTL time.Duration
}

// Service runs the user lifecycle: admin creation, self-registration, email
// verification, reads, suspension, reactivation and GDPR erasure. Every
// authorization decision is made here, so all transports agree.
//
// Users returned by Service methods never carry PasswordHash.
type Service struct {
	store     Store
	authz     *core.Authorizer
	hasher    PasswordHasher
	policy    PasswordPolicy
	sessions  SessionRevoker
	clock     core.Clock
	publicURL string
	tokenKey  []byte
	ttl       time.Duration
}

// NewService returns the user service. policy may be nil (then only the
// 8..128 code point rule applies), sessions nil means NoSessions and clock
// nil means core.SystemClock. A missing store, authorizer or hasher, a
// TokenKey shorter than MinTokenKeyLen or a PublicURL that is not an
// absolute http(s) URL is a wiring bug and panics.
func NewService(store Store, authz *core.Authorizer, hasher PasswordHasher, policy PasswordPolicy,
	sessions SessionRevoker, clock core.Clock, cfg Config) *Service {
	if store == nil || authz == nil || hasher == nil {
		panic("user.NewService: store, authorizer and hasher are required")
	}
	if len(cfg.TokenKey) < MinTokenKeyLen {
		panic("user.NewService: TokenKey must be at least 32 bytes")
	}
	base, err := url.Parse(cfg.PublicURL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		panic("user.NewService: PublicURL must be an absolute http(s) URL")
	}
	if sessions == nil {
		sessions = NoSessions{}
	}
	if clock == nil {
		clock = core.SystemClock{}
	}
	ttl := cfg.VerificationTTL
	if ttl <= 0 {
		ttl = DefaultVerificationTTL
	}
	return &Service{
		store: store, authz: authz, hasher: hasher, policy: policy, sessions: sessions, clock: clock,
		publicURL: strings.TrimRight(cfg.PublicURL, "/"),
		tokenKey:  append([]byte(nil), cfg.TokenKey...),
		ttl:       ttl,
	}
}

// now is the clock's time at the databases' precision (microseconds), so a
// value returned before and after a round trip is the same.
func (s *Service) now() time.Time { return s.clock.Now().UTC().Truncate(time.Microsecond) }

// checkPassword applies the policy (its CheckFor with the account's email and
// names when it has one), or the 8..128 code point rule without a policy.
func (s *Service) checkPassword(plain string, context ...string) error {
	if p, ok := s.policy.(ContextPasswordPolicy); ok {
		return p.CheckFor(plain, context...)
	}
	if s.policy != nil {
		return s.policy.Check(plain)
	}
	if n := utf8.RuneCountInString(plain); n < 8 || n > 128 {
		return core.InvalidField("password", "must be 8 to 128 characters")
	}
	return nil
}

// public strips what must not leave core.
func public(u User) User {
	u.PasswordHash = ""
	return u
}

// isSelf reports whether the caller is the user id.
func isSelf(acc *core.Access, id string) bool {
	return acc.Principal != nil && acc.Principal.Type == core.PrincipalUser && acc.Principal.ID == id
}

// lookup returns user id, or IDENT_NOT_FOUND (also for a malformed id).
func (s *Service) lookup(ctx context.Context, id string) (User, error) {
	if !core.ValidID(id) {
		return User{}, core.NotFound("user")
	}
	u, err := s.store.UserByID(ctx, id)
	if core.IsKind(err, core.KindNotFound) {
		return User{}, core.NotFound("user")
	}
	return u, err
}

// mayAdminister applies CONTRACT.md §2 to a user resource: SUPER_ADMIN and
// TENANT_ADMIN of the user's tenant pass; a TENANT_ADMIN of another tenant
// gets IDENT_CROSS_TENANT; anyone else gets IDENT_NOT_FOUND for someone
// else's record and IDENT_FORBIDDEN for their own.
func mayAdminister(acc *core.Access, u User) error {
	err := acc.CanAdminister(u.TenantID)
	if err == nil || acc.SuperAdmin || len(acc.AdminOf) > 0 {
		return err
	}
	if isSelf(acc, u.ID) {
		return core.Forbidden("requires TENANT_ADMIN of the user's tenant")
	}
	return core.NotFound("user")
}

// adminTarget authenticates the caller, loads user id and checks that the
// caller may administer it. Errors: IDENT_UNAUTHENTICATED, IDENT_NOT_FOUND,
// IDENT_CROSS_TENANT, IDENT_FORBIDDEN.
func (s *Service) adminTarget(ctx context.Context, id string) (*core.Access, User, error) {
	acc, err := s.authz.Load(ctx)
	if err != nil {
		return nil, User{}, err
	}
	u, err := s.lookup(ctx, id)
	if err != nil {
		return nil, User{}, err
	}
	if err := mayAdminister(acc, u); err != nil {
		return nil, User{}, err
	}
	return acc, u, nil
}

func errEmailDuplicate() *core.Error {
	return core.E(core.KindConflict, core.CodeEmailDuplicate, "a user with this email already exists in the tenant")
}

func errStateConflict(from Status, action string) *core.Error {
	return core.E(core.KindConflict, core.CodeStateConflict, "cannot "+action+" a user who is "+string(from))
}
