// Package token issues and verifies the platform's access tokens
// (CONTRACT.md §3): RS256 JWS compact serialization with header
// {"alg":"RS256","kid":…,"typ":"at+jwt"} and exactly the claims sub, tid,
// tids, jti, amr, context_node_id (when set), exp, iat, iss, aud.
//
// Signing and verification use crypto/rsa directly on the keyring's keys:
// the format is fixed and narrow, so a hand-written parser is both stricter
// (one algorithm, one type, our keys only) and faster than a general JOSE
// library on the per-request path.
package token

import (
	"context"
	"errors"
	"time"
)

// DefaultTTL is the access-token lifetime (CONTRACT.md §3).
const DefaultTTL = 15 * time.Minute

// Leeway is the clock skew tolerated on exp, nbf and iat.
const Leeway = 30 * time.Second

// Type is the JWS typ header of access tokens (RFC 9068).
const Type = "at+jwt"

// EnrollmentType is the JWS typ header of restricted MFA-enrolment
// credentials (IssueEnrollment): same key, claims and verification as an
// access token, but Verify maps it to a Principal with Restricted set, which
// core.RequirePrincipal refuses, so it opens only the operations that call
// core.RequireAnyPrincipal (the /me/mfa/* enrolment endpoints and whoami).
// Other platform services verify typ at+jwt and refuse it outright.
const EnrollmentType = "mfa-enroll+jwt"

// EnrollmentTTL is the lifetime of an enrolment credential.
const EnrollmentTTL = 10 * time.Minute

// AMR values (CONTRACT.md §3).
const (
	AMRPassword = "pwd"
	AMROTP      = "otp"
	AMRWebAuthn = "webauthn"
	AMRFed      = "fed"
	AMRExchange = "exch"
	// AMRClient marks a service-account (client credentials) token.
	AMRClient = "client"
)

// Claims is what an access token asserts.
type Claims struct {
	Subject   string
	TenantID  string
	TenantIDs []string
	// ID is the jti, the handle for revocation.
	ID            string
	AMR           []string
	ContextNodeID string
	IssuedAt      time.Time
	ExpiresAt     time.Time
}

// RevocationChecker answers whether a token id has been revoked (its session
// was logged out, replayed, suspended or erased).
type RevocationChecker interface {
	IsRevoked(ctx context.Context, tokenID string) (bool, error)
}

// Causes carried (as Err) by the IDENT_UNAUTHENTICATED errors of Verify; test
// them with errors.Is. They are for logs and tests, never shown to clients.
var (
	ErrMalformed      = errors.New("token: malformed")
	ErrAlgorithm      = errors.New("token: algorithm not allowed")
	ErrType           = errors.New("token: not an access token (typ)")
	ErrCritical       = errors.New("token: unsupported critical header")
	ErrUnknownKey     = errors.New("token: unknown or unpublished kid")
	ErrSignature      = errors.New("token: bad signature")
	ErrIssuer         = errors.New("token: wrong issuer")
	ErrAudience       = errors.New("token: wrong audience")
	ErrExpired        = errors.New("token: expired")
	ErrNotYetValid    = errors.New("token: not yet valid")
	ErrIssuedInFuture = errors.New("token: issued in the future")
	ErrMissingClaim   = errors.New("token: required claim missing")
	ErrRevoked        = errors.New("token: revoked")
)

// header is the JOSE header as Verify reads it.
type header struct {
	Alg  string `json:"alg"`
	Kid  string `json:"kid"`
	Typ  string `json:"typ"`
	Crit []any  `json:"crit"`
}

// wireHeader is the JOSE header as Issue writes it (member order fixed).
type wireHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ"`
}

// wireClaims is the frozen claim set F01 as Issue writes it.
type wireClaims struct {
	Sub           string   `json:"sub"`
	Tid           string   `json:"tid"`
	Tids          []string `json:"tids"`
	Jti           string   `json:"jti"`
	Amr           []string `json:"amr"`
	ContextNodeID string   `json:"context_node_id,omitempty"`
	Exp           int64    `json:"exp"`
	Iat           int64    `json:"iat"`
	Iss           string   `json:"iss"`
	Aud           string   `json:"aud"`
}
