// Package errtest is the independent oracle the transports' fuzz tests
// check their error mapping against: what a client must see for a core
// error, written from CONTRACT.md §2 rather than by calling the code under
// test (core.Error.PublicCode).
package errtest

import (
	"regexp"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
)

// genericCode is the contract's code of each kind for an error without a
// contract code of its own; any other kind is IDENT_INTERNAL.
var genericCode = map[core.Kind]string{
	core.KindInvalid:         core.CodeValidation,
	core.KindUnauthenticated: core.CodeUnauthenticated,
	core.KindForbidden:       core.CodeForbidden,
	core.KindNotFound:        core.CodeNotFound,
	core.KindConflict:        core.CodeConflict,
	core.KindUnprocessable:   core.CodeValidation,
	core.KindRateLimited:     core.CodeRateLimited,
	core.KindUnavailable:     core.CodeUnavailable,
}

var contractCode = regexp.MustCompile(`^IDENT_[A-Z0-9_]+$`)

// WantCode is the code a client must see for e: its own code when it is a
// well-formed contract code, else its kind's generic one.
func WantCode(e *core.Error) string {
	if contractCode.MatchString(e.Code) {
		return e.Code
	}
	if c, ok := genericCode[e.Kind]; ok {
		return c
	}
	return core.CodeInternal
}

// CeilSeconds is d in whole seconds, rounded up: a client told to wait this
// long never retries too early.
func CeilSeconds(d time.Duration) int64 {
	s := int64(d / time.Second)
	if d%time.Second != 0 {
		s++
	}
	return s
}

// ClientFault reports whether kind is a failure of the client's request
// (4xx); every other kind is a server fault the transports must log.
func ClientFault(kind core.Kind) bool {
	_, known := genericCode[kind]
	return known && kind != core.KindUnavailable
}
