package rpc

import (
	"context"
	"time"
)

// The interfaces below are what the Connect handlers need from core. They
// take and return plain Go structs, not generated proto types, so core never
// imports the transport and the handlers stay a decode–call–encode shim.
//
// Authorization is the implementation's job, not the handler's: every method
// receives the request context, which carries the *core.Principal (or the
// authentication error) put there by the shared HTTP middleware; the
// implementation calls core.RequirePrincipal and checks the scope the
// contract names, so REST, GraphQL and Connect cannot disagree. Errors should
// be *core.Error; anything else is reported to the client as an internal
// error.

// LicensingResolver answers licensing questions for platform services
// (identity.v1.LicensingService). Callers need a service credential with the
// scope tenant:licensing:read.
type LicensingResolver interface {
	// EffectiveLicenses returns every module whose licence reaches the node.
	EffectiveLicenses(ctx context.Context, q EffectiveLicensesQuery) ([]EffectiveModule, error)
	// CheckModuleAccess tells whether one module is usable at the node. An
	// unlicensed or unknown module is a normal answer (Granted false), not an
	// error.
	CheckModuleAccess(ctx context.Context, q ModuleAccessQuery) (ModuleAccess, error)
}

// TokenExchanger trades an upstream (Keycloak) access token for a platform
// access token, per RFC 8693. The subject token is the credential: no caller
// principal is required.
type TokenExchanger interface {
	ExchangeToken(ctx context.Context, req TokenExchangeRequest) (ExchangedToken, error)
}

// APIKeyVerifier checks an API key presented to another platform service.
// Callers need a service credential with the scope tenant:api_keys:verify.
type APIKeyVerifier interface {
	// VerifyAPIKey reports on key. An unknown, revoked or expired key is a
	// normal answer (Valid false), not an error.
	VerifyAPIKey(ctx context.Context, key string) (APIKeyVerification, error)
}

// EffectiveLicensesQuery names the node whose effective modules are wanted.
type EffectiveLicensesQuery struct {
	TenantID string
	NodeID   string
	// ProviderID is optional ("" when the question is about the node alone).
	ProviderID string
}

// EffectiveModule is one module as seen from the queried node.
type EffectiveModule struct {
	Code string
	// Status of the winning assignment: active, trial, suspended, terminated.
	Status  string
	Granted bool
	// Scope of the winning assignment: exact or inherit_down.
	Scope string
	// SourceNodeID is the node holding the winning assignment.
	SourceNodeID string
	AssignmentID string
}

// ModuleAccessQuery names the node and the module to check.
type ModuleAccessQuery struct {
	TenantID   string
	NodeID     string
	ModuleCode string
}

// ModuleAccess is the verdict for one module; Status is "" when no
// assignment reaches the node.
type ModuleAccess struct {
	Granted bool
	Status  string
}

// TokenExchangeRequest is the RFC 8693 request.
type TokenExchangeRequest struct {
	SubjectToken     string
	SubjectTokenType string
	// Audience is optional ("" means the configured platform audience).
	Audience string
}

// ExchangedToken is the issued platform token.
type ExchangedToken struct {
	AccessToken     string
	IssuedTokenType string
	TokenType       string
	// ExpiresIn is the token's lifetime; the wire carries whole seconds.
	ExpiresIn time.Duration
}

// APIKeyVerification is the verdict on an API key; only a valid key fills
// the other fields.
type APIKeyVerification struct {
	Valid    bool
	KeyID    string
	TenantID string
	Scopes   []string
}
