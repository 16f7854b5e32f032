package user

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"net/url"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
)

// verificationTokenBytes is the randomness of a verification token (256 bits).
const verificationTokenBytes = 32

// VerifyInput redeems an email-verification token (POST /auth/verify-email).
type VerifyInput struct {
	Token string
	// Password sets the first password of a user created without one; it
	// must be absent for a user who already has a password.
	Password *string
}

// newVerificationToken draws a fresh token for userID and returns its stored
// record (hash only) and the verification link carrying the token.
func (s *Service) newVerificationToken(userID string, now time.Time) (VerificationToken, string) {
	token := core.RandomToken(verificationTokenBytes)
	// Whole seconds, so the stored expiry and the RFC 3339 value in the
	// event are the same instant.
	expires := now.Add(s.ttl).Truncate(time.Second)
	rec := VerificationToken{
		ID: core.NewID(), UserID: userID, TokenHash: s.tokenHash(token), ExpiresAt: expires, CreatedAt: now,
	}
	link := s.publicURL + VerifyEmailPath + "?" + url.Values{"token": {token}}.Encode()
	return rec, link
}

// tokenHash is the hex HMAC-SHA256 of token under the token key.
func (s *Service) tokenHash(token string) string {
	mac := hmac.New(sha256.New, s.tokenKey)
	mac.Write([]byte(token))
	return hex.EncodeToString(mac.Sum(nil))
}

func errTokenInvalid() *core.Error {
	return core.E(core.KindUnprocessable, core.CodeVerificationTokenInvalid,
		"the verification token is invalid, expired or already used")
}

// VerifyEmail redeems a verification token: the pending_verification user
// becomes active (setting the first password when the user has none) and
// identity.user.email_verified.v1 is emitted. The token is consumed by one
// conditional UPDATE in the same transaction as the status change, so of
// concurrent redemptions of one token exactly one succeeds. A new password
// is hashed before the transaction. No principal is needed.
//
// Errors: IDENT_VALIDATION (field token when empty; field password when the
// user has no password and none is given, when the policy rejects it, or
// when one is given for a user who already has a password);
// IDENT_VERIFICATION_TOKEN_INVALID (Kind Unprocessable, 422) for an unknown,
// forged, used or expired token, or a user no longer pending verification;
// IDENT_OVERLOADED; IDENT_UNAVAILABLE.
func (s *Service) VerifyEmail(ctx context.Context, in VerifyInput) (User, error) {
	if in.Token == "" {
		return User{}, core.InvalidField("token", "required")
	}
	if raw, err := base64.RawURLEncoding.DecodeString(in.Token); err != nil || len(raw) != verificationTokenBytes {
		return User{}, errTokenInvalid()
	}
	hash := s.tokenHash(in.Token)
	tok, err := s.store.VerificationTokenByHash(ctx, hash)
	if core.IsKind(err, core.KindNotFound) {
		return User{}, errTokenInvalid()
	}
	if err != nil {
		return User{}, err
	}
	if tok.UsedAt != nil || !s.now().Before(tok.ExpiresAt) {
		return User{}, errTokenInvalid()
	}
	u, err := s.lookup(ctx, tok.UserID)
	if core.IsKind(err, core.KindNotFound) {
		return User{}, errTokenInvalid()
	}
	if err != nil {
		return User{}, err
	}
	if u.Status != StatusPendingVerification {
		return User{}, errTokenInvalid()
	}
	var newHash string
	switch {
	case u.PasswordHash == "" && in.Password == nil:
		return User{}, core.InvalidField("password", "required: this account has no password yet")
	case u.PasswordHash != "" && in.Password != nil:
		return User{}, core.InvalidField("password", "this account already has a password")
	case in.Password != nil:
		if err := s.checkPassword(*in.Password, u.Email, u.FirstName, u.LastName); err != nil {
			return User{}, err
		}
		if newHash, err = s.hasher.Hash(ctx, *in.Password); err != nil {
			return User{}, err
		}
	}
	var out User
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		now := s.now()
		ok, err := s.store.RedeemVerificationToken(ctx, hash, now)
		if err != nil {
			return err
		}
		if !ok {
			return errTokenInvalid()
		}
		// Conditional on the state read above (still pending, password
		// presence unchanged); a mismatch means the user changed meanwhile.
		if ok, err = s.store.ActivateUser(ctx, u.ID, newHash, now); err != nil {
			return err
		}
		if !ok {
			return errTokenInvalid()
		}
		if out, err = s.store.UserByID(ctx, u.ID); err != nil {
			return err
		}
		return s.store.AddEvents(ctx, emailVerifiedEvent(now, out))
	})
	if err != nil {
		return User{}, err
	}
	return public(out), nil
}
