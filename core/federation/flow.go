package federation

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/client/rp"
	"github.com/zitadel/oidc/v3/pkg/oidc"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/auth"
	"github.com/ghasi-ehealth/identity-service/core/tenancy"
	"github.com/ghasi-ehealth/identity-service/core/user"
)

// Causes (never shown to clients) of the IDENT_INVALID_CREDENTIALS answers of
// Callback and RedeemCode; for logs and tests.
var (
	ErrUnknownState    = errors.New("federation: unknown, used or expired state")
	ErrProviderChanged = errors.New("federation: state belongs to another provider")
	ErrIdPRefused      = errors.New("federation: the IdP returned an error")
	ErrCodeRejected    = errors.New("federation: code exchange or ID token rejected")
	ErrNoEmail         = errors.New("federation: the IdP shared no usable email")
	ErrBadSubject      = errors.New("federation: the ID token's subject is empty, over 255 bytes or not printable UTF-8")
	ErrUnknownCode     = errors.New("federation: unknown, used or expired login code")
)

// StartInput begins a federated login (GET /auth/oidc/{provider}/start).
type StartInput struct {
	TenantID string
	Slug     string
	// ReturnTo, optional, must match one of the provider's ReturnURLs; the
	// callback then redirects there with a one-time login code instead of
	// answering with tokens.
	ReturnTo string
}

// flowRecord is the server side of one authorization request, kept under
// the state for FlowTTL and taken exactly once.
type flowRecord struct {
	ProviderID string `json:"providerId"`
	TenantID   string `json:"tenantId"`
	Slug       string `json:"slug"`
	Nonce      string `json:"nonce"`
	Verifier   string `json:"verifier"`
	ReturnTo   string `json:"returnTo,omitempty"`
}

// codeRecord is what a returnTo login code stands for.
type codeRecord struct {
	UserID string `json:"userId"`
}

// Namespaces of the single-use records (keys are SHA-256 of the secrets).
const (
	statePrefix = "oidc-state:"
	codePrefix  = "oidc-code:"
)

func recordKey(prefix, secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return prefix + hex.EncodeToString(sum[:])
}

// Start discovers the provider (through its breaker), stores a flow record
// under a fresh state and returns the IdP's authorization URL carrying
// client_id, redirect_uri, scope, state, nonce and an S256 code_challenge.
//
// Errors: IDENT_VALIDATION (tenantId, returnTo); IDENT_NOT_FOUND (no such
// provider in the tenant); IDENT_FEDERATION_UNAVAILABLE (circuit open or
// the IdP unreachable); IDENT_UNAVAILABLE.
func (s *Service) Start(ctx context.Context, in StartInput) (string, error) {
	if !core.ValidID(in.TenantID) {
		return "", core.InvalidField("tenantId", "must be a UUID")
	}
	if !tenancy.ValidSlug(in.Slug) { // no provider can have it; never sent to storage
		return "", core.NotFound("OIDC provider")
	}
	p, err := s.store.ProviderBySlug(ctx, in.TenantID, in.Slug)
	if err != nil {
		return "", err
	}
	if in.ReturnTo != "" && !p.allowedReturnTo(in.ReturnTo) {
		return "", core.InvalidField("returnTo", "not an allowed return URL of this provider")
	}
	if s.idps.open(p.ID) {
		return "", unavailable(ErrCircuitOpen)
	}
	party, err := s.discover(ctx, p)
	if err != nil {
		return "", err
	}
	state, nonce, verifier := core.RandomToken(32), core.RandomToken(32), core.RandomToken(32)
	rec, err := json.Marshal(flowRecord{
		ProviderID: p.ID, TenantID: p.TenantID, Slug: p.Slug,
		Nonce: nonce, Verifier: verifier, ReturnTo: in.ReturnTo,
	})
	if err != nil {
		return "", core.Internal(err)
	}
	if err := s.flows.Put(ctx, recordKey(statePrefix, state), rec, s.cfg.FlowTTL); err != nil {
		return "", err
	}
	return rp.AuthURL(state, party,
		rp.WithCodeChallenge(oidc.NewSHACodeChallenge(verifier)),
		rp.AuthURLOpt(rp.WithURLParam("nonce", nonce))), nil
}

// discover runs discovery through the breaker and caches the relying party.
func (s *Service) discover(ctx context.Context, p Provider) (rp.RelyingParty, error) {
	secret, err := s.sealer.Unwrap(p.ClientSecret, secretAAD(p.TenantID, p.Slug))
	if err != nil {
		return nil, core.Internal(err)
	}
	party, err := callIdP(ctx, s.idps, p.ID, func(ctx context.Context) (rp.RelyingParty, error) {
		ctx, cancel := context.WithTimeout(ctx, s.cfg.IdPTimeout)
		defer cancel()
		return rp.NewRelyingPartyOIDC(ctx, p.Issuer, p.ClientID, string(secret), s.RedirectURI(p.Slug), p.Scopes,
			rp.WithHTTPClient(s.client),
			rp.WithVerifierOpts(rp.WithNonce(nonceFrom), rp.WithIssuedAtOffset(30*time.Second)))
	})
	if err != nil {
		if core.CodeOf(err) == core.CodeFederationUnavailable {
			return nil, err
		}
		// Discovery answered but with a wrong document: as unusable as down.
		return nil, unavailable(err)
	}
	s.idps.remember(p.ID, p.UpdatedAt, party)
	return party, nil
}

// RedirectURI is the callback URL of the provider with slug, to register at the IdP.
func (s *Service) RedirectURI(slug string) string {
	return s.cfg.PublicURL + "/api/v1/auth/oidc/" + url.PathEscape(slug) + "/callback"
}

type nonceKey struct{}

func nonceFrom(ctx context.Context) string {
	n, _ := ctx.Value(nonceKey{}).(string)
	return n
}

// CallbackInput is the IdP's redirect back (GET /auth/oidc/{provider}/callback).
type CallbackInput struct {
	Slug             string
	Code             string
	State            string
	Error            string
	ErrorDescription string
	IP               string
	UserAgent        string
}

// CallbackResult is either tokens or, for a flow started with returnTo, the
// URL to redirect the browser to (returnTo with a one-time `code`).
type CallbackResult struct {
	Tokens   *auth.TokenResponse
	Redirect string
}

// Callback completes a federated login: the state's flow record is taken
// (once), the code is exchanged with the PKCE verifier, the ID token is
// verified (signature, iss, aud, exp, nonce), and the IdP account is linked
// or provisioned. Then a session with amr ["fed"] is opened, or a login code
// is issued for the flow's returnTo.
//
// Errors: IDENT_VALIDATION (state or code missing);
// IDENT_INVALID_CREDENTIALS (unknown/used/expired state, an IdP error, a
// rejected code or ID token, no email, an inactive user);
// IDENT_FORBIDDEN (email domain not allowed for the provider);
// IDENT_EXT_IDENTITY_MISMATCH (the IdP account is linked to a user of
// another tenant); IDENT_EMAIL_DUPLICATE (a user with the email exists and
// the IdP has not verified it, so it is not linked);
// IDENT_FEDERATION_UNAVAILABLE; IDENT_UNAVAILABLE.
func (s *Service) Callback(ctx context.Context, in CallbackInput) (CallbackResult, error) {
	if in.State == "" {
		return CallbackResult{}, core.InvalidField("state", "required")
	}
	if in.Code == "" && in.Error == "" {
		return CallbackResult{}, core.InvalidField("code", "required")
	}
	flow, err := s.takeFlow(ctx, in.State)
	if err != nil {
		return CallbackResult{}, err
	}
	if flow.Slug != in.Slug {
		return CallbackResult{}, invalidCredentials(ErrProviderChanged)
	}
	if in.Error != "" {
		return CallbackResult{}, invalidCredentials(errors.Join(ErrIdPRefused, errors.New(in.Error+": "+in.ErrorDescription)))
	}
	p, err := s.store.ProviderByID(ctx, flow.ProviderID)
	if err != nil {
		if core.IsKind(err, core.KindNotFound) {
			return CallbackResult{}, invalidCredentials(ErrProviderChanged)
		}
		return CallbackResult{}, err
	}
	if s.idps.open(p.ID) {
		return CallbackResult{}, unavailable(ErrCircuitOpen)
	}
	c, err := s.exchange(ctx, p, flow, in.Code)
	if err != nil {
		return CallbackResult{}, err
	}
	if !core.ValidSubject(c.Subject) {
		return CallbackResult{}, invalidCredentials(ErrBadSubject)
	}
	if !user.ValidEmail(c.Email) {
		return CallbackResult{}, invalidCredentials(ErrNoEmail)
	}
	if !p.allowedEmail(c.Email) {
		return CallbackResult{}, core.Forbidden("this identity provider may not sign in emails of that domain")
	}
	if flow.ReturnTo != "" {
		return s.loginCode(ctx, p, c, flow.ReturnTo)
	}
	var tokens auth.TokenResponse
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		userID, err := s.link(ctx, p, c)
		if err != nil {
			return err
		}
		tokens, err = s.sessions.OpenFederatedSession(ctx, userID, in.IP, in.UserAgent)
		return err
	})
	if err != nil {
		return CallbackResult{}, err
	}
	return CallbackResult{Tokens: &tokens}, nil
}

func (s *Service) takeFlow(ctx context.Context, state string) (flowRecord, error) {
	raw, ok, err := s.flows.Take(ctx, recordKey(statePrefix, state))
	if err != nil {
		return flowRecord{}, err
	}
	var flow flowRecord
	if !ok || json.Unmarshal(raw, &flow) != nil {
		return flowRecord{}, invalidCredentials(ErrUnknownState)
	}
	return flow, nil
}

// claims is what the service uses of a verified ID token.
type claims struct {
	Issuer, Subject, Email, GivenName, FamilyName string
	EmailVerified                                 bool
}

// exchange redeems the code with the flow's verifier and verifies the ID
// token against the flow's nonce, all through the provider's breaker.
func (s *Service) exchange(ctx context.Context, p Provider, flow flowRecord, code string) (claims, error) {
	party, ok := s.idps.cached(p.ID, p.UpdatedAt)
	if !ok {
		var err error
		if party, err = s.discover(ctx, p); err != nil {
			return claims{}, err
		}
	}
	tokens, err := callIdP(ctx, s.idps, p.ID, func(ctx context.Context) (*oidc.Tokens[*oidc.IDTokenClaims], error) {
		ctx, cancel := context.WithTimeout(context.WithValue(ctx, nonceKey{}, flow.Nonce), s.cfg.IdPTimeout)
		defer cancel()
		return rp.CodeExchange[*oidc.IDTokenClaims](ctx, code, party, rp.WithCodeVerifier(flow.Verifier))
	})
	if err != nil {
		if core.CodeOf(err) == core.CodeFederationUnavailable {
			return claims{}, err
		}
		return claims{}, invalidCredentials(errors.Join(ErrCodeRejected, err))
	}
	id := tokens.IDTokenClaims
	return claims{
		Issuer: id.Issuer, Subject: id.Subject, Email: user.NormalizeEmail(id.Email),
		EmailVerified: bool(id.EmailVerified), GivenName: id.GivenName, FamilyName: id.FamilyName,
	}, nil
}

// loginCode links or provisions the user and hands out a one-time code
// (CodeTTL) for the flow's returnTo, redeemed by RedeemCode.
func (s *Service) loginCode(ctx context.Context, p Provider, c claims, returnTo string) (CallbackResult, error) {
	var userID string
	err := s.store.InTx(ctx, func(ctx context.Context) error {
		var err error
		userID, err = s.link(ctx, p, c)
		return err
	})
	if err != nil {
		return CallbackResult{}, err
	}
	code := core.RandomToken(32)
	rec, err := json.Marshal(codeRecord{UserID: userID})
	if err != nil {
		return CallbackResult{}, core.Internal(err)
	}
	if err := s.flows.Put(ctx, recordKey(codePrefix, code), rec, s.cfg.CodeTTL); err != nil {
		return CallbackResult{}, err
	}
	u, err := url.Parse(returnTo)
	if err != nil {
		return CallbackResult{}, core.Internal(err)
	}
	q := u.Query()
	q.Set("code", code)
	u.RawQuery = q.Encode()
	return CallbackResult{Redirect: u.String()}, nil
}

// RedeemCode exchanges a login code from a returnTo redirect for tokens
// (POST /auth/oidc/token), once.
// Errors: IDENT_VALIDATION (code missing); IDENT_INVALID_CREDENTIALS
// (unknown, used or expired code; inactive user); IDENT_UNAVAILABLE.
func (s *Service) RedeemCode(ctx context.Context, code, ip, userAgent string) (auth.TokenResponse, error) {
	code = strings.TrimSpace(code)
	if code == "" {
		return auth.TokenResponse{}, core.InvalidField("code", "required")
	}
	raw, ok, err := s.flows.Take(ctx, recordKey(codePrefix, code))
	if err != nil {
		return auth.TokenResponse{}, err
	}
	var rec codeRecord
	if !ok || json.Unmarshal(raw, &rec) != nil {
		return auth.TokenResponse{}, invalidCredentials(ErrUnknownCode)
	}
	var tokens auth.TokenResponse
	err = s.store.InTx(ctx, func(ctx context.Context) error {
		var err error
		tokens, err = s.sessions.OpenFederatedSession(ctx, rec.UserID, ip, userAgent)
		return err
	})
	return tokens, err
}

func invalidCredentials(cause error) *core.Error {
	return core.Wrap(cause, core.KindUnauthenticated, core.CodeInvalidCredentials, "the federated login was not accepted")
}
