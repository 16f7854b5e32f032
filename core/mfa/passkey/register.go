package passkey

import (
	"context"
	"encoding/json"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/google/uuid"

	"github.com/ghasi-ehealth/identity-service/core"
)

// ceremonyID derives the ceremony's row id from its challenge, so the
// registration response (whose client data carries the challenge) finds its
// ceremony by primary key without a column for the challenge.
func ceremonyID(challenge string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte("urn:ghasi-ehealth:identity:webauthn-ceremony:"+challenge)).String()
}

// RegisterOptions starts a registration for the calling user (restricted
// MFA-enrolment credentials accepted) and returns {"publicKey":
// PublicKeyCredentialCreationOptions}: discoverable credentials preferred
// (passkeys), user verification preferred, the user's credentials excluded.
// The ceremony is stored for CeremonyTTL and is good for one Register.
// Errors: IDENT_UNAUTHENTICATED; IDENT_FORBIDDEN for a non-user principal;
// IDENT_MFA_CREDENTIAL_LIMIT (422) at MaxCredentials; IDENT_UNAVAILABLE.
func (s *Service) RegisterOptions(ctx context.Context) (json.RawMessage, error) {
	p, err := userPrincipal(ctx)
	if err != nil {
		return nil, err
	}
	acc, err := s.store.PasskeyAccount(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	creds, err := s.store.PasskeyCredentials(ctx, p.ID)
	if err != nil {
		return nil, err
	}
	if len(creds) >= MaxCredentials {
		return nil, limitError()
	}
	user := waUser{acc: acc, creds: toLibrary(creds, false)}
	exclude := make([]protocol.CredentialDescriptor, 0, len(user.creds))
	for i := range user.creds {
		exclude = append(exclude, user.creds[i].Descriptor())
	}
	creation, session, err := s.wa.BeginRegistration(user,
		webauthn.WithExclusions(exclude),
		webauthn.WithAuthenticatorSelection(protocol.AuthenticatorSelection{
			ResidentKey:        protocol.ResidentKeyRequirementPreferred,
			RequireResidentKey: protocol.ResidentKeyNotRequired(),
			UserVerification:   protocol.VerificationPreferred,
		}))
	if err != nil {
		return nil, core.Internal(err)
	}
	state, err := json.Marshal(session)
	if err != nil {
		return nil, core.Internal(err)
	}
	now := s.clock.Now()
	if err := s.store.InsertPasskeyCeremony(ctx, Ceremony{
		ID: ceremonyID(session.Challenge), UserID: acc.ID, State: state, CreatedAt: now, ExpiresAt: now.Add(CeremonyTTL),
	}); err != nil {
		return nil, err
	}
	out, err := json.Marshal(struct {
		PublicKey protocol.PublicKeyCredentialCreationOptions `json:"publicKey"`
	}{creation.Response})
	if err != nil {
		return nil, core.Internal(err)
	}
	return out, nil
}

// Register finishes a registration with the PublicKeyCredential JSON the
// client returned. The ceremony named by the challenge in its client data is
// consumed first, in one conditional UPDATE, so a challenge is good for one
// attempt whatever its outcome. The library then checks origin, RP ID,
// challenge, attestation and signature; the credential limit is re-checked
// under a lock on the user row in the transaction that stores the credential
// and its identity.user.mfa_enrolled.v1 event.
// Errors: IDENT_UNAUTHENTICATED; IDENT_FORBIDDEN (non-user principal);
// IDENT_VALIDATION (400) for a malformed or unverifiable credential and for
// a challenge that is unknown, expired or already used;
// IDENT_MFA_CREDENTIAL_LIMIT (422); IDENT_CONFLICT (409) when the credential
// is already registered; IDENT_UNAVAILABLE.
func (s *Service) Register(ctx context.Context, credentialJSON json.RawMessage) (Factor, error) {
	p, err := userPrincipal(ctx)
	if err != nil {
		return Factor{}, err
	}
	if len(credentialJSON) == 0 || len(credentialJSON) > maxCredentialJSONBytes {
		return Factor{}, core.Invalid(invalidCredentialDescription, nil)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(credentialJSON)
	if err != nil {
		return Factor{}, invalidCredential(err)
	}
	now := s.clock.Now()
	state, err := s.store.ConsumePasskeyCeremony(ctx, ceremonyID(parsed.Response.CollectedClientData.Challenge), p.ID, now)
	if core.IsKind(err, core.KindNotFound) {
		return Factor{}, core.Invalid("the registration challenge is unknown, expired or already used; request new options",
			map[string]string{"challenge": "unknown, expired or already used"})
	}
	if err != nil {
		return Factor{}, err
	}
	var session webauthn.SessionData
	if err := json.Unmarshal(state, &session); err != nil {
		return Factor{}, core.Internal(err)
	}
	acc, err := s.store.PasskeyAccount(ctx, p.ID)
	if err != nil {
		return Factor{}, err
	}
	cred, err := s.wa.CreateCredential(waUser{acc: acc}, session, parsed)
	if err != nil {
		return Factor{}, invalidCredential(err)
	}
	transports := make([]string, 0, len(cred.Transport))
	for _, t := range cred.Transport {
		transports = append(transports, string(t))
	}
	c := Credential{
		FactorID: core.NewID(), UserID: acc.ID, CredentialID: cred.ID, PublicKey: cred.PublicKey,
		SignCount: cred.Authenticator.SignCount, AAGUID: cred.Authenticator.AAGUID, Transports: transports,
		AttestationType: cred.AttestationType, CreatedAt: now, VerifiedAt: now,
		BackupEligible: &cred.Flags.BackupEligible, BackupState: cred.Flags.BackupState,
	}
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		if err := s.store.LockPasskeys(ctx, acc.ID); err != nil {
			return err
		}
		n, err := s.store.CountPasskeys(ctx, acc.ID)
		if err != nil {
			return err
		}
		if n >= MaxCredentials {
			return limitError()
		}
		if err := s.store.InsertPasskey(ctx, c); err != nil {
			if core.IsKind(err, core.KindConflict) {
				return core.Wrap(err, core.KindConflict, core.CodeConflict, "this credential is already registered")
			}
			return err
		}
		return s.store.AddEvents(ctx, core.NewEvent(now, EventMFAEnrolled, acc.ID, acc.TenantID,
			enrolledData{UserID: acc.ID, TenantID: acc.TenantID, Method: Method}))
	})
	if err != nil {
		return Factor{}, err
	}
	return Factor{ID: c.FactorID, VerifiedAt: now}, nil
}

func invalidCredential(cause error) error {
	e := core.Invalid(invalidCredentialDescription, nil)
	e.Err = cause
	return e
}
