// Package core holds the domain at the centre of identity-service: error
// kinds and codes, the principal, events, and the ports that adapters
// implement. It imports no transport, database driver or broker.
package core

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Kind is the small, closed set of failure classes. Each transport maps a Kind
// to its own status vocabulary (HTTP status, GraphQL code, Connect code).
type Kind int

const (
	KindInternal Kind = iota
	KindInvalid
	KindUnauthenticated
	KindForbidden
	KindNotFound
	KindConflict
	KindUnprocessable
	KindRateLimited
	KindUnavailable
)

func (k Kind) String() string {
	switch k {
	case KindInvalid:
		return "invalid"
	case KindUnauthenticated:
		return "unauthenticated"
	case KindForbidden:
		return "forbidden"
	case KindNotFound:
		return "not_found"
	case KindConflict:
		return "conflict"
	case KindUnprocessable:
		return "unprocessable"
	case KindRateLimited:
		return "rate_limited"
	case KindUnavailable:
		return "unavailable"
	default:
		return "internal"
	}
}

// Code is the generic contract code of kind k, which transports show for an
// Error that carries no contract code of its own (see PublicCode). A Kind
// outside the closed set is internal.
func (k Kind) Code() string {
	switch k {
	case KindInvalid, KindUnprocessable:
		// The contract has no generic 422 code; every 422 is a specific one.
		return CodeValidation
	case KindUnauthenticated:
		return CodeUnauthenticated
	case KindForbidden:
		return CodeForbidden
	case KindNotFound:
		return CodeNotFound
	case KindConflict:
		return CodeConflict
	case KindRateLimited:
		return CodeRateLimited
	case KindUnavailable:
		return CodeUnavailable
	default:
		return CodeInternal
	}
}

// ServerFault reports whether errors of kind k are the service's failure
// rather than the client's (HTTP 5xx): KindInternal, KindUnavailable and any
// Kind outside the closed set. Transports log those with their cause.
func (k Kind) ServerFault() bool {
	switch k {
	case KindInvalid, KindUnauthenticated, KindForbidden, KindNotFound, KindConflict, KindUnprocessable, KindRateLimited:
		return false
	default:
		return true
	}
}

// Contract error codes (CONTRACT.md §2). Clients match on these strings.
const (
	CodeValidation               = "IDENT_VALIDATION"
	CodeUnauthenticated          = "IDENT_UNAUTHENTICATED"
	CodeInvalidCredentials       = "IDENT_INVALID_CREDENTIALS"
	CodeRefreshReplay            = "IDENT_REFRESH_REPLAY"
	CodeMFARequired              = "IDENT_MFA_REQUIRED"
	CodeMFAInvalidCode           = "IDENT_MFA_INVALID_CODE"
	CodeMFAFailed                = "IDENT_MFA_FAILED"
	CodeForbidden                = "IDENT_FORBIDDEN"
	CodeCrossTenant              = "IDENT_CROSS_TENANT"
	CodeRegistrationDisabled     = "IDENT_REGISTRATION_DISABLED"
	CodeNotFound                 = "IDENT_NOT_FOUND"
	CodeEmailDuplicate           = "IDENT_EMAIL_DUPLICATE"
	CodeStateConflict            = "IDENT_STATE_CONFLICT"
	CodeExtIdentityMismatch      = "IDENT_EXT_IDENTITY_MISMATCH"
	CodeVerificationTokenInvalid = "IDENT_VERIFICATION_TOKEN_INVALID"
	CodeDeviceNotTrusted         = "IDENT_DEVICE_NOT_TRUSTED"
	CodeMFACredentialLimit       = "IDENT_MFA_CREDENTIAL_LIMIT"
	CodeLicAlwaysOnImmutable     = "IDENT_LIC_ALWAYS_ON_IMMUTABLE"
	CodeLicCodeImmutable         = "IDENT_LIC_CODE_IMMUTABLE"
	CodeLicDependencyNotLicensed = "IDENT_LIC_DEPENDENCY_NOT_LICENSED"
	CodeLicTerminated            = "IDENT_LIC_TERMINATED"
	CodeLicTrialRequiresEnd      = "IDENT_LIC_TRIAL_REQUIRES_END"
	CodeRateLimited              = "IDENT_RATE_LIMITED"
	CodeOverloaded               = "IDENT_OVERLOADED"
	CodeFederationUnavailable    = "IDENT_FEDERATION_UNAVAILABLE"
	CodeUnavailable              = "IDENT_UNAVAILABLE"
	CodeConflict                 = "IDENT_CONFLICT"
	CodeInternal                 = "IDENT_INTERNAL"
)

// Error is the one error type that crosses the core boundary. Msg is safe to
// show to a client; Err is the cause and is never shown.
type Error struct {
	Kind Kind
	Code string
	Msg  string
	Err  error

	// Fields names invalid input fields and why (IDENT_VALIDATION).
	Fields map[string]string
	// RetryAfter is set for rate limiting and overload.
	RetryAfter time.Duration
	// Extra carries contract members such as challengeId and methods.
	Extra map[string]any
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Msg, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Msg)
}

func (e *Error) Unwrap() error { return e.Err }

// PublicCode is the contract code a transport shows for e: e.Code when it is
// one (IDENT_ followed by capitals, digits and underscores), else the generic
// code of e's kind. Core always sets a contract code; the fallback keeps every
// transport's mapping total and its headers and metadata well-formed.
func (e *Error) PublicCode() string {
	if isContractCode(e.Code) {
		return e.Code
	}
	return e.Kind.Code()
}

func isContractCode(c string) bool {
	rest, ok := strings.CutPrefix(c, "IDENT_")
	if !ok || rest == "" {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if b := rest[i]; !('A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '_') {
			return false
		}
	}
	return true
}

// RetryAfterSeconds is d in whole seconds for a Retry-After header or member:
// rounded up, so a client never retries too early (hence at least 1 for any
// positive d, as Retry-After: 0 would invite an immediate retry), and 0 for
// d <= 0 (no Retry-After). Integer arithmetic: no overflow or float rounding
// even for the largest Duration.
func RetryAfterSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	s := int64(d / time.Second)
	if d%time.Second != 0 {
		s++
	}
	return s
}

// E builds an Error of the given kind and code.
func E(kind Kind, code, msg string) *Error {
	return &Error{Kind: kind, Code: code, Msg: msg}
}

// Wrap builds an Error that keeps cause for logs but shows only msg.
func Wrap(cause error, kind Kind, code, msg string) *Error {
	return &Error{Kind: kind, Code: code, Msg: msg, Err: cause}
}

// Internal wraps an unexpected failure; clients see a generic message.
func Internal(cause error) *Error {
	return Wrap(cause, KindInternal, CodeInternal, "internal error")
}

// Unavailable wraps a dependency failure (database, cache, broker).
func Unavailable(cause error) *Error {
	return Wrap(cause, KindUnavailable, CodeUnavailable, "a dependency is unavailable; try again later")
}

// Invalid reports invalid input; fields maps field names to reasons.
func Invalid(msg string, fields map[string]string) *Error {
	return &Error{Kind: KindInvalid, Code: CodeValidation, Msg: msg, Fields: fields}
}

// InvalidField is Invalid for a single field.
func InvalidField(field, reason string) *Error {
	return Invalid(field+": "+reason, map[string]string{field: reason})
}

// NotFound reports a resource that does not exist in the caller's reach.
func NotFound(what string) *Error {
	return E(KindNotFound, CodeNotFound, what+" not found")
}

// Unauthenticated reports a missing or invalid credential.
func Unauthenticated(cause error) *Error {
	return Wrap(cause, KindUnauthenticated, CodeUnauthenticated, "authentication required")
}

// Forbidden reports a principal that lacks a role or scope.
func Forbidden(msg string) *Error {
	return E(KindForbidden, CodeForbidden, msg)
}

// AsError returns err as *Error; anything else becomes an internal error.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return Internal(err)
}

// KindOf returns the Kind of err (KindInternal for foreign errors).
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindInternal
}

// CodeOf returns the contract code of err ("" for nil).
func CodeOf(err error) string {
	if err == nil {
		return ""
	}
	return AsError(err).Code
}

// IsKind reports whether err is a core Error of kind k.
func IsKind(err error, k Kind) bool {
	var e *Error
	return errors.As(err, &e) && e.Kind == k
}
