package token

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/keys"
)

var errNoSubject = errors.New("token: Issue needs a subject and a tenant")

// Issuer signs access tokens with the keyring's active key.
type Issuer struct {
	keys     *keys.Service
	issuer   string
	audience string
	clock    core.Clock
	ttl      time.Duration
}

// NewIssuer returns an Issuer for iss = issuer (IDENTITY_PUBLIC_URL) and
// aud = audience. ttl <= 0 means DefaultTTL; a nil clock means the system clock.
func NewIssuer(keys *keys.Service, issuer, audience string, clock core.Clock, ttl time.Duration) *Issuer {
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	if clock == nil {
		clock = core.SystemClock{}
	}
	return &Issuer{keys: keys, issuer: issuer, audience: audience, clock: clock, ttl: ttl}
}

// TTL is the lifetime Issue gives tokens without an explicit expiry.
func (i *Issuer) TTL() time.Duration { return i.ttl }

// Issue signs an access token for c. Zero IssuedAt means now and zero
// ExpiresAt means IssuedAt + TTL; an empty ID gets a fresh UUIDv7; empty
// TenantIDs become [TenantID]. Times are whole seconds (NumericDate), and the
// returned expiresAt is the exp written into the token. Errors: internal when
// Subject or TenantID is empty (a caller bug) or the keyring is not loaded.
func (i *Issuer) Issue(ctx context.Context, c Claims) (token string, expiresAt time.Time, err error) {
	return i.issue(c, Type, i.ttl)
}

// IssueEnrollment signs a restricted MFA-enrolment credential for c (typ
// EnrollmentType, see there): the same claims as Issue, with a zero
// ExpiresAt meaning IssuedAt + EnrollmentTTL. It is bound to no session.
func (i *Issuer) IssueEnrollment(ctx context.Context, c Claims) (token string, expiresAt time.Time, err error) {
	return i.issue(c, EnrollmentType, EnrollmentTTL)
}

func (i *Issuer) issue(c Claims, typ string, ttl time.Duration) (token string, expiresAt time.Time, err error) {
	if c.Subject == "" || c.TenantID == "" {
		return "", time.Time{}, core.Internal(errNoSubject)
	}
	signer, err := i.keys.Signer()
	if err != nil {
		return "", time.Time{}, err
	}
	iat := c.IssuedAt
	if iat.IsZero() {
		iat = i.clock.Now()
	}
	exp := c.ExpiresAt
	if exp.IsZero() {
		exp = iat.Add(ttl)
	}
	wc := wireClaims{
		Sub:           c.Subject,
		Tid:           c.TenantID,
		Tids:          c.TenantIDs,
		Jti:           c.ID,
		Amr:           c.AMR,
		ContextNodeID: c.ContextNodeID,
		Exp:           exp.Unix(),
		Iat:           iat.Unix(),
		Iss:           i.issuer,
		Aud:           i.audience,
	}
	if len(wc.Tids) == 0 {
		wc.Tids = []string{c.TenantID}
	}
	if wc.Jti == "" {
		wc.Jti = core.NewID()
	}
	if wc.Amr == nil {
		wc.Amr = []string{}
	}
	hdr, err := json.Marshal(wireHeader{Alg: keys.AlgRS256, Kid: signer.KID(), Typ: typ})
	if err != nil {
		return "", time.Time{}, core.Internal(err)
	}
	payload, err := json.Marshal(wc)
	if err != nil {
		return "", time.Time{}, core.Internal(err)
	}
	enc := base64.RawURLEncoding
	hl, pl := enc.EncodedLen(len(hdr)), enc.EncodedLen(len(payload))
	buf := make([]byte, hl+1+pl, hl+1+pl+1+enc.EncodedLen(256))
	enc.Encode(buf, hdr)
	buf[hl] = '.'
	enc.Encode(buf[hl+1:], payload)
	sig, err := signer.SignRS256(buf)
	if err != nil {
		return "", time.Time{}, core.Internal(err)
	}
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return string(buf), time.Unix(wc.Exp, 0).UTC(), nil
}
