package mfa

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/ghasi-ehealth/identity-service/core"
)

// Enrollment is the answer of POST /me/mfa/totp/enroll.
type Enrollment struct {
	FactorID string
	// OTPAuthURI is the Key URI (otpauth://totp/…; SHA1, 6 digits, 30 s,
	// issuer "Ghasi eHealth", account = the user's email).
	OTPAuthURI string
	// VerifiedAt is always nil: the factor awaits its first code.
	VerifiedAt *time.Time
}

// Confirmation is the answer of POST /me/mfa/totp/confirm. RecoveryCodes
// are shown this once; only their HMAC is stored.
type Confirmation struct {
	FactorID      string
	VerifiedAt    time.Time
	RecoveryCodes []string
}

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// EnrollTOTP starts a TOTP enrolment for the caller (restricted enrolment
// credentials are accepted): a new 20-byte seed, stored wrapped by the
// master key (aad = factor id). An earlier enrolment that was not confirmed
// is replaced. Errors: IDENT_UNAUTHENTICATED; IDENT_FORBIDDEN (not a user);
// IDENT_STATE_CONFLICT when the caller already has a verified TOTP factor
// (an admin reset removes it); IDENT_UNAVAILABLE.
func (s *Service) EnrollTOTP(ctx context.Context) (Enrollment, error) {
	p, err := requireUser(ctx)
	if err != nil {
		return Enrollment{}, err
	}
	u, err := s.users.UserByID(ctx, p.ID)
	if core.IsKind(err, core.KindNotFound) {
		return Enrollment{}, core.Unauthenticated(nil)
	}
	if err != nil {
		return Enrollment{}, err
	}
	seed := make([]byte, TOTPSecretSize)
	if _, err := rand.Read(seed); err != nil {
		return Enrollment{}, core.Internal(err)
	}
	key, err := totp.Generate(totp.GenerateOpts{
		Issuer: Issuer, AccountName: u.Email, Period: TOTPPeriod, SecretSize: TOTPSecretSize, Secret: seed,
		Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1,
	})
	if err != nil {
		return Enrollment{}, core.Internal(err)
	}
	now := s.now()
	f := Factor{ID: core.NewID(), UserID: u.ID, Type: TypeTOTP, CreatedAt: now}
	if f.SecretWrapped, err = s.master.Wrap(seed, []byte(f.ID)); err != nil {
		return Enrollment{}, core.Internal(err)
	}
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		fs, err := s.store.FactorsOfUser(ctx, u.ID)
		if err != nil {
			return err
		}
		if verifiedTOTP(fs) != nil {
			return core.E(core.KindConflict, core.CodeStateConflict, "a verified TOTP factor exists; an admin must reset it first")
		}
		if err := s.store.DeleteUnverifiedTOTP(ctx, u.ID, ""); err != nil {
			return err
		}
		return s.store.InsertFactor(ctx, f)
	})
	if err != nil {
		return Enrollment{}, err
	}
	return Enrollment{FactorID: f.ID, OTPAuthURI: key.URL()}, nil
}

// ConfirmTOTP verifies the first code of the caller's pending TOTP
// enrolment (±1 time step; each code once, also under concurrency) and then,
// in one transaction, marks the factor verified, removes other pending
// enrolments, replaces the recovery codes with RecoveryCodes new ones and
// emits identity.user.mfa_enrolled.v1. Restricted credentials are accepted.
// Errors: IDENT_UNAUTHENTICATED; IDENT_FORBIDDEN; IDENT_STATE_CONFLICT (no
// pending enrolment); IDENT_VALIDATION fields.code "invalid code" (wrong or
// replayed code); IDENT_UNAVAILABLE.
func (s *Service) ConfirmTOTP(ctx context.Context, code string) (Confirmation, error) {
	p, err := requireUser(ctx)
	if err != nil {
		return Confirmation{}, err
	}
	fs, err := s.store.FactorsOfUser(ctx, p.ID)
	if err != nil {
		return Confirmation{}, err
	}
	f := pendingTOTP(fs)
	if f == nil {
		return Confirmation{}, core.E(core.KindConflict, core.CodeStateConflict, "no TOTP enrolment awaits confirmation")
	}
	now := s.now()
	step, ok, err := s.matchCode(*f, code, now)
	if err != nil {
		return Confirmation{}, err
	}
	invalid := core.Invalid("invalid code", map[string]string{"code": "invalid code"})
	if !ok {
		return Confirmation{}, invalid
	}
	codes, hashes := s.newRecoveryCodes()
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		advanced, err := s.store.AdvanceTOTPStep(ctx, f.ID, step, now)
		if err != nil {
			return err
		}
		if !advanced {
			return invalid // the code was used already
		}
		verified, err := s.store.MarkFactorVerified(ctx, f.ID, now)
		if err != nil {
			return err
		}
		if !verified {
			return core.E(core.KindConflict, core.CodeStateConflict, "the TOTP factor is already confirmed")
		}
		if err := s.store.DeleteUnverifiedTOTP(ctx, p.ID, f.ID); err != nil {
			return err
		}
		if err := s.store.ReplaceRecoveryCodes(ctx, p.ID, hashes, now); err != nil {
			return err
		}
		return s.store.AddEvents(ctx, methodEvent(now, EventEnrolled, p.ID, p.TenantID, TypeTOTP))
	})
	if err != nil {
		return Confirmation{}, err
	}
	return Confirmation{FactorID: f.ID, VerifiedAt: now, RecoveryCodes: codes}, nil
}

// matchCode reports whether code is f's code at the time step of now or one
// step either side, and which step matched. Only digits of the right length
// are considered; the comparison is constant-time.
func (s *Service) matchCode(f Factor, code string, now time.Time) (int64, bool, error) {
	if len(code) != TOTPDigits || !allDigits(code) {
		return 0, false, nil
	}
	seed, err := s.master.Unwrap(f.SecretWrapped, []byte(f.ID))
	if err != nil {
		return 0, false, core.Internal(err)
	}
	secret := b32.EncodeToString(seed)
	cur := now.Unix() / TOTPPeriod
	var (
		match int64
		found bool
	)
	for step := cur - TOTPSkew; step <= cur+TOTPSkew; step++ {
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*TOTPPeriod, 0), totp.ValidateOpts{
			Period: TOTPPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1,
		})
		if err != nil {
			return 0, false, core.Internal(err)
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && !found {
			match, found = step, true
		}
	}
	return match, found, nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// verifiedTOTP returns the verified TOTP factor of fs, if any.
func verifiedTOTP(fs []Factor) *Factor {
	for i := range fs {
		if fs[i].Type == TypeTOTP && fs[i].VerifiedAt != nil {
			return &fs[i]
		}
	}
	return nil
}

// pendingTOTP returns the newest unconfirmed TOTP factor of fs, if any.
func pendingTOTP(fs []Factor) *Factor {
	for i := len(fs) - 1; i >= 0; i-- {
		if fs[i].Type == TypeTOTP && fs[i].VerifiedAt == nil {
			return &fs[i]
		}
	}
	return nil
}

// requireUser is the caller, restricted enrolment credentials included; it
// must be a user.
func requireUser(ctx context.Context) (*core.Principal, error) {
	p, err := core.RequireAnyPrincipal(ctx)
	if err != nil {
		return nil, err
	}
	if p.Type != core.PrincipalUser {
		return nil, core.Forbidden("only users have second factors")
	}
	return p, nil
}
