// Package mfa is the second factor (IDENT-US-008): TOTP enrolment and
// confirmation, recovery codes, the login challenge (auth.SecondFactor) and
// the admin reset of a user's factors. WebAuthn credentials live in
// core/mfa/passkey behind the WebAuthn port.
//
// Login challenge. After a correct password, Challenge answers
// IDENT_MFA_REQUIRED when the user has a verified factor or the user's
// tenant has mfaRequired. The challengeId is the UUID of an mfa_challenges
// row: unguessable (122 random bits of a v4 UUID), server-side, good for
// ChallengeTTL and used once — this is what the contract's "signed" asks
// for; a server-side row can also be burned and counted, which a signed
// token could not. The challenge is burned at the MaxFailures-th failure.
//
// Restricted credential. A user of an mfaRequired tenant without a factor
// gets IDENT_MFA_REQUIRED with methods [] and enrollmentToken: a JWT of the
// token issuer with typ "mfa-enroll+jwt", 10 minutes, bound to no session.
// token.Verifier maps it to a Principal with Restricted set;
// core.RequirePrincipal refuses such a principal (IDENT_FORBIDDEN), so it
// opens only what calls core.RequireAnyPrincipal: EnrollTOTP, ConfirmTOTP
// (POST /me/mfa/totp/*), the WebAuthn registration endpoints and whoami.
// Other services verify typ at+jwt and refuse it.
package mfa

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/auth"
	"github.com/ghasi-ehealth/identity-service/core/keys"
	"github.com/ghasi-ehealth/identity-service/core/token"
)

// Settings of the second factor (IDENT-US-008).
const (
	Issuer          = "Ghasi eHealth"
	TOTPPeriod      = 30
	TOTPDigits      = 6
	TOTPSecretSize  = 20
	TOTPSkew        = 1
	RecoveryCodes   = 10
	ChallengeTTL    = 5 * time.Minute
	MaxFailures     = 3
	RecoveryKeyName = "mfa-recovery-code"
)

// Event types emitted by this package (CONTRACT.md §8).
const (
	EventEnrolled        = "identity.user.mfa_enrolled.v1"
	EventChallengeFailed = "identity.user.mfa_challenge_failed.v1"
	EventReset           = "identity.user.mfa_reset.v1"
)

// WebAuthn is the login port to WebAuthn credentials (core/mfa/passkey).
type WebAuthn interface {
	// CredentialCount returns how many verified WebAuthn credentials userID has.
	CredentialCount(ctx context.Context, userID string) (int, error)
	// BeginAssertion starts an assertion ceremony: options is {"publicKey": PublicKeyCredentialRequestOptions} JSON; state is opaque and kept with the challenge (mfa_challenges.webauthn_state).
	BeginAssertion(ctx context.Context, userID string) (options json.RawMessage, state []byte, err error)
	// FinishAssertion verifies the assertion (a PublicKeyCredential JSON) against state. A bad assertion → *core.Error code IDENT_MFA_INVALID_CODE; a sign counter that went backwards → IDENT_MFA_INVALID_CODE after it emitted identity.user.security_incident.v1 itself.
	FinishAssertion(ctx context.Context, userID string, state []byte, assertion json.RawMessage) error
}

// EnrollmentIssuer signs restricted enrolment credentials (token.Issuer).
type EnrollmentIssuer interface {
	IssueEnrollment(ctx context.Context, c token.Claims) (string, time.Time, error)
}

// Deps are the service's ports. All but WebAuthn, Clock and Logger are required.
type Deps struct {
	Store      Store
	Users      Users
	Tenants    Tenants
	Authorizer *core.Authorizer
	// Master wraps TOTP seeds (aad = factor id) and derives the recovery-code
	// HMAC key (DeriveSecret(RecoveryKeyName)).
	Master     *keys.MasterKey
	Enrollment EnrollmentIssuer
	// WebAuthn nil means no webauthn method at login.
	WebAuthn WebAuthn
	Clock    core.Clock
	Logger   *slog.Logger
}

// Service runs TOTP enrolment, the login challenge and the factor reset.
type Service struct {
	store       Store
	users       Users
	tenants     Tenants
	authz       *core.Authorizer
	master      *keys.MasterKey
	enroll      EnrollmentIssuer
	webauthn    WebAuthn
	clock       core.Clock
	log         *slog.Logger
	recoveryKey []byte
}

var _ auth.SecondFactor = (*Service)(nil)

// NewService returns the MFA service; a missing required port panics.
func NewService(d Deps) *Service {
	if d.Store == nil || d.Users == nil || d.Tenants == nil || d.Authorizer == nil || d.Master == nil || d.Enrollment == nil {
		panic("mfa.NewService: Store, Users, Tenants, Authorizer, Master and Enrollment are required")
	}
	if d.Clock == nil {
		d.Clock = core.SystemClock{}
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Service{
		store: d.Store, users: d.Users, tenants: d.Tenants, authz: d.Authorizer, master: d.Master,
		enroll: d.Enrollment, webauthn: d.WebAuthn, clock: d.Clock, log: d.Logger,
		recoveryKey: d.Master.DeriveSecret(RecoveryKeyName),
	}
}

// now is the clock's time at the databases' precision.
func (s *Service) now() time.Time { return s.clock.Now().UTC().Truncate(time.Microsecond) }

type methodData struct {
	UserID   string `json:"userId"`
	TenantID string `json:"tenantId"`
	Method   string `json:"method"`
}

type resetData struct {
	UserID   string `json:"userId"`
	TenantID string `json:"tenantId"`
	ActorID  string `json:"actorId"`
}

func methodEvent(now time.Time, typ, userID, tenantID, method string) core.Event {
	return core.NewEvent(now, typ, userID, tenantID, methodData{UserID: userID, TenantID: tenantID, Method: method})
}
