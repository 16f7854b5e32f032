// Package passkey is the WebAuthn second factor (IDENT-US-009): registration
// of up to MaxCredentials credentials per user through
// /me/mfa/webauthn/register/options and /me/mfa/webauthn/register, and the
// assertion half of /auth/mfa/verify (BeginAssertion, FinishAssertion), which
// core/mfa drives through its WebAuthn port. Verification is go-webauthn's:
// origin, RP ID, challenge, signature and sign counter.
package passkey

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/telemetry"
)

// MaxCredentials is the number of verified WebAuthn credentials a user may
// hold (MFA invariant); registering one more is IDENT_MFA_CREDENTIAL_LIMIT.
const MaxCredentials = 5

// CeremonyTTL is how long registration options stay usable.
const CeremonyTTL = 5 * time.Minute

// DefaultRPDisplayName is the relying party name shown by authenticators.
const DefaultRPDisplayName = "Ghasi eHealth"

// Method is the mfa_enrolled method and the factor type in mfa_factors.
const Method = "webauthn"

// Event types and incident kind emitted by this package (CONTRACT.md §8).
const (
	EventMFAEnrolled             = "identity.user.mfa_enrolled.v1"
	EventSecurityIncident        = "identity.user.security_incident.v1"
	IncidentCounterRegression    = "webauthn_counter_regression"
	maxCredentialJSONBytes       = 1 << 20
	invalidCredentialDescription = "invalid credential"
)

// Config is the relying party (IDENTITY_WEBAUTHN_RP_ID,
// IDENTITY_WEBAUTHN_ORIGINS).
type Config struct {
	// RPID is the relying party id, a registrable domain such as
	// identity.ghasi-ehealth.af (or localhost in development).
	RPID string
	// RPOrigins are the origins (scheme://host[:port]) clients may run at.
	RPOrigins []string
	// RPDisplayName defaults to DefaultRPDisplayName.
	RPDisplayName string
}

// Account is the user as the ceremonies need it.
type Account struct {
	ID        string
	TenantID  string
	Email     string
	FirstName string
	LastName  string
}

// Credential is a verified WebAuthn credential (an mfa_factors row of type
// webauthn).
type Credential struct {
	FactorID        string
	UserID          string
	CredentialID    []byte
	PublicKey       []byte // COSE key
	SignCount       uint32
	AAGUID          []byte
	Transports      []string
	AttestationType string
	CreatedAt       time.Time
	VerifiedAt      time.Time
	LastUsedAt      *time.Time
	// BackupEligible is fixed by the authenticator at registration (a synced
	// passkey, not a device-bound key); nil for credentials registered before
	// it was kept, until their next accepted assertion records it.
	BackupEligible *bool
	// BackupState tells whether the credential is backed up (synced) as of
	// its last registration or assertion.
	BackupState bool
}

// Flags are the backup flags an authenticator reported in one ceremony.
type Flags struct {
	BackupEligible, BackupState bool
}

// Ceremony is a pending registration: the go-webauthn session data of the
// options handed out, usable once until ExpiresAt.
type Ceremony struct {
	ID        string
	UserID    string
	State     []byte
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Store is the persistence the service needs. InTx and AddEvents follow
// core.Transactor and core.EventSink.
type Store interface {
	core.Transactor
	core.EventSink
	// PasskeyAccount returns the user, or IDENT_NOT_FOUND.
	PasskeyAccount(ctx context.Context, userID string) (Account, error)
	// PasskeyCredentials returns the user's verified WebAuthn credentials,
	// oldest first.
	PasskeyCredentials(ctx context.Context, userID string) ([]Credential, error)
	// CountPasskeys counts the user's verified WebAuthn credentials.
	CountPasskeys(ctx context.Context, userID string) (int, error)
	// LockPasskeys serialises credential inserts of one user until the
	// transaction of ctx ends (it locks the user's row).
	LockPasskeys(ctx context.Context, userID string) error
	// InsertPasskey stores c; KindConflict when its credential id exists.
	InsertPasskey(ctx context.Context, c Credential) error
	// AdvancePasskeyCounter sets sign_count to count, last_used_at to now
	// and backup_state to flags.BackupState (backup_eligible too while it is
	// unknown) in one conditional UPDATE that matches only while the stored
	// count is lower (or both are 0) and reports whether it matched.
	AdvancePasskeyCounter(ctx context.Context, factorID string, count uint32, flags Flags, now time.Time) (bool, error)
	// InsertPasskeyCeremony stores a registration ceremony.
	InsertPasskeyCeremony(ctx context.Context, c Ceremony) error
	// ConsumePasskeyCeremony marks the ceremony id of userID used in one
	// conditional UPDATE (unused and unexpired at now) and returns its
	// state; IDENT_NOT_FOUND when it is unknown, someone else's, used or
	// expired.
	ConsumePasskeyCeremony(ctx context.Context, id, userID string, now time.Time) ([]byte, error)
}

// Factor is a registered credential as the API shows it.
type Factor struct {
	ID         string
	VerifiedAt time.Time
}

// Service runs the WebAuthn ceremonies.
type Service struct {
	store   Store
	clock   core.Clock
	wa      *webauthn.WebAuthn
	metrics *telemetry.Metrics
}

// NewService validates cfg and returns the service.
func NewService(store Store, clock core.Clock, cfg Config) (*Service, error) {
	if store == nil || clock == nil {
		return nil, errors.New("passkey: store and clock are required")
	}
	rpID := strings.TrimSpace(cfg.RPID)
	if rpID == "" {
		return nil, errors.New("passkey: the relying party id (IDENTITY_WEBAUTHN_RP_ID) is empty")
	}
	if len(cfg.RPOrigins) == 0 {
		return nil, errors.New("passkey: no relying party origin (IDENTITY_WEBAUTHN_ORIGINS)")
	}
	origins := make([]string, 0, len(cfg.RPOrigins))
	for _, o := range cfg.RPOrigins {
		o = strings.TrimSpace(o)
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("passkey: origin %q is not scheme://host[:port]", o)
		}
		origins = append(origins, strings.TrimSuffix(o, "/"))
	}
	name := strings.TrimSpace(cfg.RPDisplayName)
	if name == "" {
		name = DefaultRPDisplayName
	}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:                  rpID,
		RPDisplayName:         name,
		RPOrigins:             origins,
		AttestationPreference: protocol.PreferNoAttestation,
	})
	if err != nil {
		return nil, fmt.Errorf("passkey: %w", err)
	}
	return &Service{store: store, clock: clock, wa: wa}, nil
}

// WithMetrics sets the instruments that count security incidents (nil, the
// default, counts nothing) and returns s. Call it during wiring.
func (s *Service) WithMetrics(m *telemetry.Metrics) *Service {
	s.metrics = m
	return s
}

// waUser adapts an account and its credentials to webauthn.User. The user
// handle is the user id (a UUID: opaque, no personal data).
type waUser struct {
	acc   Account
	creds []webauthn.Credential
}

func (u waUser) WebAuthnID() []byte { return []byte(u.acc.ID) }

func (u waUser) WebAuthnName() string {
	if u.acc.Email != "" {
		return u.acc.Email
	}
	return u.acc.ID
}

func (u waUser) WebAuthnDisplayName() string {
	if n := strings.TrimSpace(u.acc.FirstName + " " + u.acc.LastName); n != "" {
		return n
	}
	return u.WebAuthnName()
}

func (u waUser) WebAuthnCredentials() []webauthn.Credential { return u.creds }

// toLibrary converts stored credentials for go-webauthn, which refuses an
// assertion whose backup-eligible flag differs from the credential's. A
// credential registered before the flag was kept takes it from the response
// being verified (responseBE), once.
func toLibrary(creds []Credential, responseBE bool) []webauthn.Credential {
	out := make([]webauthn.Credential, 0, len(creds))
	for _, c := range creds {
		transports := make([]protocol.AuthenticatorTransport, 0, len(c.Transports))
		for _, t := range c.Transports {
			transports = append(transports, protocol.AuthenticatorTransport(t))
		}
		backupEligible := responseBE
		if c.BackupEligible != nil {
			backupEligible = *c.BackupEligible
		}
		out = append(out, webauthn.Credential{
			ID:              c.CredentialID,
			PublicKey:       c.PublicKey,
			AttestationType: c.AttestationType,
			Transport:       transports,
			Flags:           webauthn.CredentialFlags{UserPresent: true, BackupEligible: backupEligible, BackupState: c.BackupState},
			Authenticator:   webauthn.Authenticator{AAGUID: c.AAGUID, SignCount: c.SignCount},
		})
	}
	return out
}

// userPrincipal returns the caller, who must be a user; restricted
// (MFA-enrolment) credentials are accepted.
func userPrincipal(ctx context.Context) (*core.Principal, error) {
	p, err := core.RequireAnyPrincipal(ctx)
	if err != nil {
		return nil, err
	}
	if p.Type != core.PrincipalUser || !core.ValidID(p.ID) {
		return nil, core.Forbidden("only users can register a WebAuthn credential")
	}
	return p, nil
}

func limitError() error {
	return core.E(core.KindUnprocessable, core.CodeMFACredentialLimit,
		fmt.Sprintf("a user may register at most %d WebAuthn credentials", MaxCredentials))
}

func invalidAssertion(cause error) error {
	return core.Wrap(cause, core.KindUnauthenticated, core.CodeMFAInvalidCode, "the WebAuthn assertion was not accepted")
}

type enrolledData struct {
	UserID   string `json:"userId"`
	TenantID string `json:"tenantId"`
	Method   string `json:"method"`
}

type incidentData struct {
	UserID    string `json:"userId"`
	TenantID  string `json:"tenantId"`
	Kind      string `json:"kind"`
	SessionID string `json:"sessionId"`
	IP        string `json:"ip"`
}
