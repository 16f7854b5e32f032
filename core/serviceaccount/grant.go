package serviceaccount

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/token"
)

// GrantClientCredentials is the only grant type the token endpoint serves.
const GrantClientCredentials = "client_credentials"

// RFC 6749 §5.2 error codes.
const (
	ErrInvalidRequest       = "invalid_request"
	ErrInvalidClient        = "invalid_client"
	ErrUnsupportedGrantType = "unsupported_grant_type"
	ErrInvalidScope         = "invalid_scope"
)

// OAuthError is a token-endpoint failure in RFC 6749 terms: the transport
// renders {"error": Code, "error_description": Description} with Status
// (400 or 401) and, when RetryAfter is set, a Retry-After header.
type OAuthError struct {
	Code        string
	Description string
	Status      int
	RetryAfter  time.Duration
}

func (e *OAuthError) Error() string { return "oauth2: " + e.Code + ": " + e.Description }

// InvalidRequest is a malformed token request (HTTP 400).
func InvalidRequest(desc string) *OAuthError {
	return &OAuthError{Code: ErrInvalidRequest, Description: desc, Status: 400}
}

// InvalidClient is a failed client authentication (HTTP 401).
func InvalidClient(desc string) *OAuthError {
	return &OAuthError{Code: ErrInvalidClient, Description: desc, Status: 401}
}

// ClientCredentialsInput is a token request; Scope is an optional
// space-separated subset of the account's scopes.
type ClientCredentialsInput struct {
	GrantType    string
	ClientID     string
	ClientSecret string
	Scope        string
}

// TokenGrant is a successful token response. Scope is the space-separated
// scope the token carries: always every scope of the account, since the
// frozen claim shape has no scope claim and services learn the scopes from
// the account (EnrichPrincipal).
type TokenGrant struct {
	AccessToken string
	ExpiresIn   time.Duration
	Scope       string
}

const badClient = "client authentication failed"

// ClientCredentials runs the client_credentials grant (RFC 6749 §4.4).
// Failures are *OAuthError: invalid_request (no grant_type), unsupported
// grant_type, invalid_client (no credentials, unknown client, wrong secret,
// disabled account, or too many failures for the client id: then with
// RetryAfter), invalid_scope (a requested scope the account lacks).
// Dependency failures are core errors (IDENT_UNAVAILABLE, IDENT_INTERNAL).
func (s *Service) ClientCredentials(ctx context.Context, in ClientCredentialsInput) (TokenGrant, error) {
	switch {
	case in.GrantType == "":
		return TokenGrant{}, InvalidRequest("grant_type is required")
	case in.GrantType != GrantClientCredentials:
		return TokenGrant{}, &OAuthError{Code: ErrUnsupportedGrantType, Status: 400,
			Description: "only grant_type=client_credentials is supported"}
	case in.ClientID == "" || in.ClientSecret == "":
		return TokenGrant{}, InvalidClient("client credentials are required (client_secret_basic or client_secret_post)")
	}
	if err := s.checkThrottle(ctx, in.ClientID); err != nil {
		return TokenGrant{}, err
	}
	a, ok, err := s.authenticate(ctx, in.ClientID, in.ClientSecret)
	if err != nil {
		return TokenGrant{}, err
	}
	if !ok {
		s.countFailure(ctx, in.ClientID)
		s.logger.InfoContext(ctx, "client authentication failed", "client_id", safeClientID(in.ClientID))
		return TokenGrant{}, InvalidClient(badClient)
	}
	if in.Scope != "" {
		for _, sc := range strings.Fields(in.Scope) {
			if !slices.Contains(a.Scopes, sc) {
				return TokenGrant{}, &OAuthError{Code: ErrInvalidScope, Status: 400,
					Description: "scope not granted to this client: " + sc}
			}
		}
	}
	now := s.clock.Now()
	raw, exp, err := s.issuer.Issue(ctx, token.Claims{
		Subject: a.ID, TenantID: a.TenantID, TenantIDs: []string{a.TenantID},
		AMR: []string{token.AMRClient}, ID: core.RandomToken(16), IssuedAt: now,
	})
	if err != nil {
		return TokenGrant{}, err
	}
	s.remember(a)
	return TokenGrant{AccessToken: raw, ExpiresIn: exp.Sub(now.Truncate(time.Second)), Scope: strings.Join(a.Scopes, " ")}, nil
}

// authenticate finds the client and checks the secret against the current
// and (within the overlap window) the previous hash. Unknown or malformed
// client ids cost the same HMAC and comparison as known ones.
func (s *Service) authenticate(ctx context.Context, clientID, secret string) (Account, bool, error) {
	got := s.hashSecret(secret)
	if !wellFormedClientID(clientID) || len(secret) != secretLen {
		secretMatches(got, s.dummyHash)
		return Account{}, false, nil
	}
	a, err := s.store.ServiceAccountByClientID(ctx, clientID)
	if core.IsKind(err, core.KindNotFound) {
		secretMatches(got, s.dummyHash)
		return Account{}, false, nil
	}
	if err != nil {
		return Account{}, false, err
	}
	current := secretMatches(got, a.SecretHash)
	previous := secretMatches(got, a.PreviousSecretHash) && a.PreviousExpiresAt != nil && s.clock.Now().Before(*a.PreviousExpiresAt)
	if (!current && !previous) || a.DisabledAt != nil {
		return Account{}, false, nil
	}
	return a, true, nil
}

// throttleKey keys the failure counter by a digest of the client id, so
// attacker-chosen strings never reach the limiter's backend verbatim.
func throttleKey(clientID string) string {
	sum := sha256.Sum256([]byte(clientID))
	return "oauth2:client:" + hex.EncodeToString(sum[:16])
}

// checkThrottle refuses a client id with FailureLimit failures in the
// current window. A limiter failure does not block the grant (fail open:
// the secret is 256 bits, so throttling is defence in depth, not the guard).
func (s *Service) checkThrottle(ctx context.Context, clientID string) error {
	if s.limiter == nil {
		return nil
	}
	n, resetIn, err := s.limiter.Peek(ctx, throttleKey(clientID))
	if err != nil {
		s.logger.WarnContext(ctx, "client throttle unavailable", "error", err)
		return nil
	}
	if n >= FailureLimit {
		e := InvalidClient("too many failed client authentications; retry later")
		e.RetryAfter = max(resetIn, time.Second)
		return e
	}
	return nil
}

func (s *Service) countFailure(ctx context.Context, clientID string) {
	if s.limiter == nil {
		return
	}
	if _, _, err := s.limiter.Hit(ctx, throttleKey(clientID), FailureWindow); err != nil {
		s.logger.WarnContext(ctx, "client throttle unavailable", "error", err)
	}
}

// safeClientID is clientID as logs may carry it: only well-formed ids.
func safeClientID(clientID string) string {
	if wellFormedClientID(clientID) {
		return clientID
	}
	return "(malformed)"
}
