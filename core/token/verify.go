package token

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/keys"
)

// maxTokenLen bounds the work an unauthenticated caller can make Verify do.
// Our tokens are well under 2 KiB even with many tenants.
const maxTokenLen = 8 << 10

// Verifier checks access tokens issued by this service.
type Verifier struct {
	keys     *keys.Service
	issuer   string
	audience string
	clock    core.Clock
	revoked  RevocationChecker
}

// NewVerifier returns a Verifier accepting tokens with iss == issuer and
// audience among aud, signed by a key published in keys. revoked may be nil
// (no revocation check); a nil clock means the system clock.
func NewVerifier(keys *keys.Service, issuer, audience string, clock core.Clock, revoked RevocationChecker) *Verifier {
	if clock == nil {
		clock = core.SystemClock{}
	}
	return &Verifier{keys: keys, issuer: issuer, audience: audience, clock: clock, revoked: revoked}
}

// Verify checks raw and returns the principal it asserts. The header is
// checked before the signature is touched: alg must be RS256 (none, HS*, ES*
// and everything else are refused), typ at+jwt (or EnrollmentType, which
// yields a Restricted principal), no crit, and kid a key the
// keyring publishes. Then the signature, iss (exact), aud (contains ours),
// exp and nbf (with Leeway), iat (not beyond Leeway in the future), and the
// presence of sub, tid and jti; finally revocation of jti.
//
// Every token failure is IDENT_UNAUTHENTICATED with one of the Err* causes.
// A failing RevocationChecker is not the token's fault: its core error passes
// through, and a foreign error becomes IDENT_UNAVAILABLE (fail closed).
func (v *Verifier) Verify(ctx context.Context, raw string) (*core.Principal, error) {
	c, restricted, err := v.parse(ctx, raw)
	if err != nil {
		return nil, core.Unauthenticated(err)
	}
	if v.revoked != nil {
		revoked, err := v.revoked.IsRevoked(ctx, c.Jti)
		if err != nil {
			var ce *core.Error
			if errors.As(err, &ce) {
				return nil, ce
			}
			return nil, core.Unavailable(err)
		}
		if revoked {
			return nil, core.Unauthenticated(ErrRevoked)
		}
	}
	p := &core.Principal{
		Type:          core.PrincipalUser,
		ID:            c.Sub,
		TenantID:      c.Tid,
		TenantIDs:     c.Tids,
		AMR:           c.Amr,
		TokenID:       c.Jti,
		ContextNodeID: c.ContextNodeID,
		ExpiresAt:     c.Exp.t,
		Restricted:    restricted,
	}
	if len(p.TenantIDs) == 0 {
		p.TenantIDs = []string{c.Tid}
	}
	if slices.Contains(c.Amr, AMRClient) {
		p.Type = core.PrincipalServiceAccount
	}
	return p, nil
}

// claimsIn is the claim set as Verify reads it.
type claimsIn struct {
	Sub           string       `json:"sub"`
	Tid           string       `json:"tid"`
	Tids          []string     `json:"tids"`
	Jti           string       `json:"jti"`
	Amr           []string     `json:"amr"`
	ContextNodeID string       `json:"context_node_id"`
	Exp           *numericDate `json:"exp"`
	Iat           *numericDate `json:"iat"`
	Nbf           *numericDate `json:"nbf"`
	Iss           string       `json:"iss"`
	Aud           audience     `json:"aud"`
}

// parse checks raw and returns its claims and whether it is a restricted
// enrolment credential (typ EnrollmentType).
func (v *Verifier) parse(ctx context.Context, raw string) (*claimsIn, bool, error) {
	c, typ, err := v.parseTyped(ctx, raw)
	if err != nil {
		return nil, false, err
	}
	return c, typ == EnrollmentType, nil
}

func (v *Verifier) parseTyped(ctx context.Context, raw string) (*claimsIn, string, error) {
	if len(raw) == 0 || len(raw) > maxTokenLen {
		return nil, "", ErrMalformed
	}
	dot1 := strings.IndexByte(raw, '.')
	if dot1 < 0 {
		return nil, "", ErrMalformed
	}
	dot2 := strings.IndexByte(raw[dot1+1:], '.')
	if dot2 < 0 {
		return nil, "", ErrMalformed
	}
	dot2 += dot1 + 1
	signingInput, sigPart := raw[:dot2], raw[dot2+1:]

	hb, err := decodeSegment(raw[:dot1])
	if err != nil {
		return nil, "", err
	}
	var h header
	if err := json.Unmarshal(hb, &h); err != nil {
		return nil, "", fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	if h.Alg != keys.AlgRS256 {
		return nil, "", ErrAlgorithm
	}
	typ := Type
	switch {
	case strings.EqualFold(h.Typ, Type) || strings.EqualFold(h.Typ, "application/"+Type):
	case strings.EqualFold(h.Typ, EnrollmentType) || strings.EqualFold(h.Typ, "application/"+EnrollmentType):
		typ = EnrollmentType
	default:
		return nil, "", ErrType
	}
	if h.Crit != nil {
		return nil, "", ErrCritical
	}
	// VerificationKey, not PublicKey: a kid this instance has not loaded
	// yet may come from a rotation on another instance.
	pub, ok := v.keys.VerificationKey(ctx, h.Kid)
	if !ok {
		return nil, "", ErrUnknownKey
	}

	sig, err := decodeSegment(sigPart) // rejects a third dot, too
	if err != nil {
		return nil, "", err
	}
	if err := verifyRS256(pub, signingInput, sig); err != nil {
		return nil, "", err
	}

	pb, err := decodeSegment(raw[dot1+1 : dot2])
	if err != nil {
		return nil, "", err
	}
	var c claimsIn
	if err := json.Unmarshal(pb, &c); err != nil {
		return nil, "", fmt.Errorf("%w: claims: %v", ErrMalformed, err)
	}
	return &c, typ, v.check(&c)
}

func verifyRS256(pub *rsa.PublicKey, signingInput string, sig []byte) error {
	if len(sig) != pub.Size() {
		return ErrSignature
	}
	sum := sha256.Sum256([]byte(signingInput))
	if rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig) != nil {
		return ErrSignature
	}
	return nil
}

func (v *Verifier) check(c *claimsIn) error {
	if c.Iss != v.issuer {
		return ErrIssuer
	}
	if !slices.Contains(c.Aud, v.audience) {
		return ErrAudience
	}
	if c.Exp == nil || c.Iat == nil {
		return ErrMissingClaim
	}
	now := v.clock.Now()
	if !now.Before(c.Exp.t.Add(Leeway)) {
		return ErrExpired
	}
	if c.Nbf != nil && now.Add(Leeway).Before(c.Nbf.t) {
		return ErrNotYetValid
	}
	if c.Iat.t.After(now.Add(Leeway)) {
		return ErrIssuedInFuture
	}
	if c.Sub == "" || c.Tid == "" || c.Jti == "" {
		return ErrMissingClaim
	}
	return nil
}

// decodeSegment decodes one base64url (unpadded) segment strictly: only the
// URL alphabet (the standard decoder would skip CR/LF) and zero trailing
// bits, so each token has exactly one spelling.
func decodeSegment(s string) ([]byte, error) {
	if s == "" {
		return nil, ErrMalformed
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return nil, ErrMalformed
		}
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, ErrMalformed
	}
	return b, nil
}

// audience is aud as a single string or an array (RFC 7519 §4.1.3).
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*a = audience{s}
		return nil
	}
	var ss []string
	if err := json.Unmarshal(b, &ss); err != nil {
		return err
	}
	*a = ss
	return nil
}

// numericDate is seconds since the epoch, possibly fractional (RFC 7519 §2).
type numericDate struct{ t time.Time }

// maxNumericDate keeps conversions exact and far from overflow (year ~33658).
const maxNumericDate = 1e12

func (d *numericDate) UnmarshalJSON(b []byte) error {
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return errors.New("invalid NumericDate")
	}
	sec, frac := math.Modf(f)
	d.t = time.Unix(int64(sec), int64(frac*1e9)).UTC()
	return nil
}
