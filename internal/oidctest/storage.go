package oidctest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

const (
	idTokenLifetime     = 10 * time.Minute
	accessTokenLifetime = time.Hour
)

var errNotSupported = errors.New("oidctest: not supported")

// storage is the in-memory op.Storage of a Provider. All mutable state is
// guarded by mu; values handed to the op package are copies, so the op never
// reads memory that a setter or the login handler writes concurrently.
type storage struct {
	clientID, clientSecret string
	loginURL               string // absolute URL of the login handler
	signing                signingKey

	mu            sync.Mutex
	redirectURIs  []string
	user          User
	nonceOverride string
	authRequests  map[string]*authRequest // by auth request ID
	codes         map[string]string       // code -> auth request ID; deleted on first use
	tokens        map[string]accessToken  // by access token ID
}

func newStorage(cfg Config, loginURL string, key *rsa.PrivateKey) *storage {
	return &storage{
		clientID:     cfg.ClientID,
		clientSecret: cfg.ClientSecret,
		loginURL:     loginURL,
		signing:      signingKey{id: rand.Text(), key: key},
		redirectURIs: slices.Clone(cfg.RedirectURIs),
		user:         defaultUser,
		authRequests: make(map[string]*authRequest),
		codes:        make(map[string]string),
		tokens:       make(map[string]accessToken),
	}
}

// authRequest implements op.AuthRequest. The stored value is never handed
// out; the op gets copies.
type authRequest struct {
	id       string
	req      oidc.AuthRequest
	done     bool
	user     User // the user who signed in, set when done
	authTime time.Time
}

func (a *authRequest) GetID() string                      { return a.id }
func (a *authRequest) GetACR() string                     { return "" }
func (a *authRequest) GetAMR() []string                   { return []string{"pwd"} }
func (a *authRequest) GetAudience() []string              { return []string{a.req.ClientID} }
func (a *authRequest) GetAuthTime() time.Time             { return a.authTime }
func (a *authRequest) GetClientID() string                { return a.req.ClientID }
func (a *authRequest) GetNonce() string                   { return a.req.Nonce }
func (a *authRequest) GetRedirectURI() string             { return a.req.RedirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType { return a.req.ResponseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode { return a.req.ResponseMode }
func (a *authRequest) GetScopes() []string                { return slices.Clone(a.req.Scopes) }
func (a *authRequest) GetState() string                   { return a.req.State }
func (a *authRequest) GetSubject() string                 { return a.user.Subject }
func (a *authRequest) Done() bool                         { return a.done }

func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.req.CodeChallenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: a.req.CodeChallenge, Method: a.req.CodeChallengeMethod}
}

func (a *authRequest) clone() *authRequest {
	c := *a
	c.req.Scopes = slices.Clone(a.req.Scopes)
	return &c
}

type accessToken struct {
	subject string
	user    User
	scopes  []string
	expires time.Time
}

// CreateAuthRequest stores the validated auth request. PKCE with S256 is
// mandatory: the op itself accepts requests without code_challenge and with
// the plain method, so it is enforced here; the error is redirected to the
// client's redirect_uri as invalid_request.
func (s *storage) CreateAuthRequest(_ context.Context, req *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	if req.CodeChallenge == "" {
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge required (PKCE S256)")
	}
	if req.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge_method must be S256")
	}
	a := &authRequest{id: rand.Text(), req: *req}
	a.req.Scopes = slices.Clone(req.Scopes)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.authRequests[a.id] = a
	return a.clone(), nil
}

func (s *storage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.authRequests[id]
	if !ok {
		return nil, fmt.Errorf("oidctest: auth request %q not found", id)
	}
	return a.clone(), nil
}

// AuthRequestByCode redeems a code: the code is forgotten on its first use,
// whether the exchange then succeeds or not (wrong code_verifier, wrong
// client...), so any second use answers invalid_grant. It also applies the
// nonce override.
func (s *storage) AuthRequestByCode(_ context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.codes[code]
	delete(s.codes, code)
	a := s.authRequests[id]
	if !ok || a == nil || !a.done {
		return nil, errors.New("oidctest: unknown or already used code")
	}
	c := a.clone()
	if s.nonceOverride != "" {
		c.req.Nonce = s.nonceOverride
	}
	return c, nil
}

func (s *storage) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.authRequests[id]; !ok {
		return fmt.Errorf("oidctest: auth request %q not found", id)
	}
	s.codes[code] = id
	return nil
}

func (s *storage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.authRequests, id)
	return nil
}

// completeLogin marks the auth request as authenticated by the current user.
func (s *storage) completeLogin(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.authRequests[id]
	if !ok {
		return fmt.Errorf("oidctest: auth request %q not found", id)
	}
	a.done, a.user, a.authTime = true, s.user, time.Now()
	return nil
}

func (s *storage) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	a, ok := req.(*authRequest)
	if !ok {
		return "", time.Time{}, errNotSupported
	}
	id := rand.Text()
	exp := time.Now().Add(accessTokenLifetime)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[id] = accessToken{subject: a.user.Subject, user: a.user, scopes: a.GetScopes(), expires: exp}
	return id, exp, nil
}

func (s *storage) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, errNotSupported
}

func (s *storage) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, op.ErrInvalidRefreshToken
}

func (s *storage) TerminateSession(context.Context, string, string) error { return nil }

func (s *storage) RevokeToken(_ context.Context, tokenOrTokenID, _, _ string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tokens, tokenOrTokenID)
	return nil
}

func (s *storage) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

func (s *storage) SigningKey(context.Context) (op.SigningKey, error) { return &s.signing, nil }

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{&publicKey{s.signing}}, nil
}

func (s *storage) GetClientByClientID(_ context.Context, clientID string) (op.Client, error) {
	if clientID != s.clientID {
		return nil, fmt.Errorf("oidctest: unknown client %q", clientID)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return &client{id: s.clientID, redirectURIs: slices.Clone(s.redirectURIs), loginURL: s.loginURL}, nil
}

func (s *storage) AuthorizeClientIDSecret(_ context.Context, clientID, clientSecret string) error {
	idOK := subtle.ConstantTimeCompare([]byte(clientID), []byte(s.clientID)) == 1
	secretOK := subtle.ConstantTimeCompare([]byte(clientSecret), []byte(s.clientSecret)) == 1
	if !idOK || !secretOK {
		return errors.New("oidctest: invalid client credentials")
	}
	return nil
}

// SetUserinfoFromScopes is deprecated in the op contract; the ID token
// claims come from SetUserinfoFromRequest.
func (s *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest (op.CanSetUserinfoFromRequest) fills the user claims
// of the ID token from the user who signed in for the auth request.
func (s *storage) SetUserinfoFromRequest(_ context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	a, ok := req.(*authRequest)
	if !ok {
		return errNotSupported
	}
	setUserinfo(info, a.user, scopes)
	return nil
}

// SetUserinfoFromToken serves the userinfo endpoint.
func (s *storage) SetUserinfoFromToken(_ context.Context, info *oidc.UserInfo, tokenID, subject, _ string) error {
	s.mu.Lock()
	t, ok := s.tokens[tokenID]
	s.mu.Unlock()
	if !ok || t.subject != subject || time.Now().After(t.expires) {
		return errors.New("oidctest: invalid access token")
	}
	setUserinfo(info, t.user, t.scopes)
	return nil
}

func (s *storage) SetIntrospectionFromToken(context.Context, *oidc.IntrospectionResponse, string, string, string) error {
	return errNotSupported
}

func (s *storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errNotSupported
}

func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errNotSupported
}

func (s *storage) Health(context.Context) error { return nil }

// setUserinfo sets the claims of u allowed by scopes. sub must always be set:
// oidc.IDTokenClaims.SetUserInfo copies it over the ID token's sub.
func setUserinfo(info *oidc.UserInfo, u User, scopes []string) {
	info.Subject = u.Subject
	for _, scope := range scopes {
		switch scope {
		case oidc.ScopeEmail:
			info.Email = u.Email
			info.EmailVerified = oidc.Bool(u.EmailVerified)
			if !u.EmailVerified {
				// email_verified is omitempty in oidc.UserInfoEmail; a real
				// IdP sends an explicit false.
				info.AppendClaims("email_verified", false)
			}
		case oidc.ScopeProfile:
			info.GivenName = u.GivenName
			info.FamilyName = u.FamilyName
			info.Name = strings.TrimSpace(u.GivenName + " " + u.FamilyName)
		}
	}
}

// client is the single confidential web client of a Provider.
type client struct {
	id           string
	redirectURIs []string
	loginURL     string
}

func (c *client) GetID() string                       { return c.id }
func (c *client) RedirectURIs() []string              { return c.redirectURIs }
func (c *client) PostLogoutRedirectURIs() []string    { return nil }
func (c *client) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) GrantTypes() []oidc.GrantType         { return []oidc.GrantType{oidc.GrantTypeCode} }
func (c *client) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeBearer }
func (c *client) IDTokenLifetime() time.Duration       { return idTokenLifetime }
func (c *client) DevMode() bool                        { return false }
func (c *client) IsScopeAllowed(string) bool           { return false }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *client) ClockSkew() time.Duration             { return 0 }

// AuthMethod is client_secret_basic; the op also accepts the secret in the
// form (client_secret_post) for such a client, and Config.AuthMethodPost
// makes discovery advertise both.
func (c *client) AuthMethod() oidc.AuthMethod { return oidc.AuthMethodBasic }

func (c *client) LoginURL(id string) string {
	return c.loginURL + "?" + url.Values{"authRequestID": {id}}.Encode()
}

func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(scopes []string) []string { return scopes }
}

func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(scopes []string) []string { return scopes }
}

// signingKey is the RS256 key of a Provider (op.SigningKey).
type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *signingKey) Key() any                                    { return k.key }
func (k *signingKey) ID() string                                  { return k.id }

// publicKey is the public half of signingKey, published by the JWKS endpoint (op.Key).
type publicKey struct{ signingKey }

func (k *publicKey) ID() string                         { return k.id }
func (k *publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *publicKey) Use() string                        { return "sig" }
func (k *publicKey) Key() any                           { return &k.key.PublicKey }
