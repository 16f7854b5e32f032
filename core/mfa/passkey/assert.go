package passkey

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/ghasi-ehealth/identity-service/core"
)

// CredentialCount returns how many verified WebAuthn credentials userID has
// (0 for a malformed id). Errors: IDENT_UNAVAILABLE.
func (s *Service) CredentialCount(ctx context.Context, userID string) (int, error) {
	if !core.ValidID(userID) {
		return 0, nil
	}
	return s.store.CountPasskeys(ctx, userID)
}

// BeginAssertion starts an assertion for userID (a login challenge) and
// returns {"publicKey": PublicKeyCredentialRequestOptions} allowing the
// user's credentials, and the server-side state (go-webauthn SessionData as
// JSON) that FinishAssertion needs. Keeping the state, its expiry and its
// single use is the caller's (the login challenge's) business.
// Errors: IDENT_NOT_FOUND when the user has no credential; IDENT_UNAVAILABLE.
func (s *Service) BeginAssertion(ctx context.Context, userID string) (json.RawMessage, []byte, error) {
	if !core.ValidID(userID) {
		return nil, nil, core.NotFound("user")
	}
	acc, err := s.store.PasskeyAccount(ctx, userID)
	if err != nil {
		return nil, nil, err
	}
	creds, err := s.store.PasskeyCredentials(ctx, userID)
	if err != nil {
		return nil, nil, err
	}
	if len(creds) == 0 {
		return nil, nil, core.NotFound("WebAuthn credential")
	}
	assertion, session, err := s.wa.BeginLogin(waUser{acc: acc, creds: toLibrary(creds, false)},
		webauthn.WithUserVerification(protocol.VerificationPreferred))
	if err != nil {
		return nil, nil, core.Internal(err)
	}
	state, err := json.Marshal(session)
	if err != nil {
		return nil, nil, core.Internal(err)
	}
	options, err := json.Marshal(struct {
		PublicKey protocol.PublicKeyCredentialRequestOptions `json:"publicKey"`
	}{assertion.Response})
	if err != nil {
		return nil, nil, core.Internal(err)
	}
	return options, state, nil
}

// FinishAssertion verifies the client's assertion JSON against state (from
// BeginAssertion for the same user): origin, RP ID, challenge, credential
// ownership, signature, sign counter and backup-eligible flag (fixed at
// registration). On success the credential's sign_count, last_used_at and
// backup state advance in one conditional UPDATE. A counter
// that did not increase (unless it is 0 on both sides) marks a possibly
// cloned authenticator: identity.user.security_incident.v1 (kind
// webauthn_counter_regression, sessionId "") is committed in its own
// transaction and the assertion is refused. Call it outside a transaction,
// or the incident shares the caller's fate.
// Errors: IDENT_MFA_INVALID_CODE (401) for anything not accepted;
// IDENT_UNAVAILABLE.
func (s *Service) FinishAssertion(ctx context.Context, userID string, state []byte, assertion json.RawMessage) error {
	if !core.ValidID(userID) {
		return invalidAssertion(errors.New("malformed user id"))
	}
	var session webauthn.SessionData
	if err := json.Unmarshal(state, &session); err != nil || session.Challenge == "" {
		return invalidAssertion(errors.New("unusable assertion state"))
	}
	if !bytes.Equal(session.UserID, []byte(userID)) {
		return invalidAssertion(errors.New("assertion state of another user"))
	}
	if len(assertion) == 0 || len(assertion) > maxCredentialJSONBytes {
		return invalidAssertion(errors.New("empty or oversized assertion"))
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(assertion)
	if err != nil {
		return invalidAssertion(err)
	}
	acc, err := s.store.PasskeyAccount(ctx, userID)
	if core.IsKind(err, core.KindNotFound) {
		return invalidAssertion(err)
	}
	if err != nil {
		return err
	}
	creds, err := s.store.PasskeyCredentials(ctx, userID)
	if err != nil {
		return err
	}
	user := waUser{acc: acc, creds: toLibrary(creds, parsed.Response.AuthenticatorData.Flags.HasBackupEligible())}
	cred, err := s.wa.ValidateLogin(user, session, parsed)
	if err != nil {
		return invalidAssertion(err)
	}
	var factorID string
	for _, c := range creds {
		if bytes.Equal(c.CredentialID, cred.ID) {
			factorID = c.FactorID
			break
		}
	}
	if factorID == "" {
		return invalidAssertion(errors.New("verified credential not found"))
	}
	if !cred.Authenticator.CloneWarning {
		flags := parsed.Response.AuthenticatorData.Flags
		advanced, err := s.store.AdvancePasskeyCounter(ctx, factorID, parsed.Response.AuthenticatorData.Counter,
			Flags{BackupEligible: flags.HasBackupEligible(), BackupState: flags.HasBackupState()}, s.clock.Now())
		if err != nil {
			return err
		}
		if advanced {
			return nil
		}
		// A concurrent assertion moved the counter to or past this one.
	}
	if err := s.counterRegression(ctx, acc); err != nil {
		return err
	}
	return invalidAssertion(errors.New("sign counter did not increase"))
}

// counterRegression records the incident in its own transaction and, once
// it committed, counts it (identity.security_incident.total).
func (s *Service) counterRegression(ctx context.Context, acc Account) error {
	now := s.clock.Now()
	err := s.store.InTx(ctx, func(ctx context.Context) error {
		return s.store.AddEvents(ctx, core.NewEvent(now, EventSecurityIncident, acc.ID, acc.TenantID, incidentData{
			UserID: acc.ID, TenantID: acc.TenantID, Kind: IncidentCounterRegression, SessionID: "", IP: core.ClientIPFrom(ctx),
		}))
	})
	if err == nil {
		s.metrics.SecurityIncidentDetected(ctx, IncidentCounterRegression)
	}
	return err
}
