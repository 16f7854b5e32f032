package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"connectrpc.com/connect"

	"github.com/ghasi-ehealth/identity-service/core"
)

// This file is the one place where failures become Connect errors
// (DESIGN.md "Errors"; CONTRACT.md §2): the Connect code follows the
// core.Kind, the message is "IDENT_X: <safe message>", and the IDENT code is
// repeated in the metadata key identity-error-code so clients branch on it
// without parsing text. The cause (core.Error.Err) is logged, never sent.

// Metadata keys set on every error that leaves an identity.v1 handler. For
// the Connect protocol's unary calls they travel as HTTP headers, for gRPC
// and gRPC-Web as trailers; connect-go clients see them in Error.Meta().
const (
	MetaErrorCode  = "identity-error-code"
	MetaRetryAfter = "retry-after"
)

// kindToConnect maps each core.Kind to its Connect code; a Kind outside the
// closed set is Internal. An error without a contract code of its own shows
// its kind's generic code (core.Error.PublicCode), which core never intends;
// it keeps the mapping total.
//
// KindConflict (HTTP 409) becomes AlreadyExists for duplicates and for state
// conflicts (IDENT_STATE_CONFLICT) alike. Connect's other 409 code, Aborted,
// means "a concurrency conflict, retry the sequence" in gRPC's guidance, and
// clients and proxies retry it automatically — wrong for a transition that
// will fail again until the state changes. FailedPrecondition is already
// taken by KindUnprocessable (422). One Kind, one code keeps the mapping
// predictable; identity-error-code tells the two kinds of conflict apart.
func kindToConnect(k core.Kind) connect.Code {
	switch k {
	case core.KindInvalid:
		return connect.CodeInvalidArgument
	case core.KindUnauthenticated:
		return connect.CodeUnauthenticated
	case core.KindForbidden:
		return connect.CodePermissionDenied
	case core.KindNotFound:
		return connect.CodeNotFound
	case core.KindConflict:
		return connect.CodeAlreadyExists
	case core.KindUnprocessable:
		return connect.CodeFailedPrecondition
	case core.KindRateLimited:
		return connect.CodeResourceExhausted
	case core.KindUnavailable:
		return connect.CodeUnavailable
	default:
		return connect.CodeInternal
	}
}

// toConnectError renders a core error for the client: code, safe message and
// metadata. The cause is deliberately left out.
func toConnectError(e *core.Error) *connect.Error {
	code := e.PublicCode()
	msg := code
	if e.Msg != "" {
		msg = code + ": " + e.Msg
	}
	ce := connect.NewError(kindToConnect(e.Kind), errors.New(msg))
	ce.Meta().Set(MetaErrorCode, code)
	if secs := retryAfterSeconds(e.RetryAfter); secs > 0 {
		ce.Meta().Set(MetaRetryAfter, strconv.FormatInt(secs, 10))
	}
	return ce
}

// retryAfterSeconds rounds up, so a client never retries too early, and is
// at least 1 for any positive d (Retry-After: 0 would invite an immediate
// retry); 0 means none.
func retryAfterSeconds(d time.Duration) int64 { return core.RetryAfterSeconds(d) }

// errorInterceptor translates every error a handler returns. It runs inside
// the tracing interceptor, so spans see the final code, and outside
// connect.WithRecover, whose result is already a *connect.Error.
type errorInterceptor struct {
	log *slog.Logger
}

func (i *errorInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		res, err := next(ctx, req)
		if err != nil {
			return nil, i.translate(ctx, req.Spec(), err)
		}
		return res, nil
	}
}

// WrapStreamingClient leaves client calls alone: this interceptor is only
// installed on handlers.
func (i *errorInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

// WrapStreamingHandler gives streaming methods the same mapping; identity.v1
// has none today, but a future one must not leak causes.
func (i *errorInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		if err := next(ctx, conn); err != nil {
			return i.translate(ctx, conn.Spec(), err)
		}
		return nil
	}
}

// translate maps err to the error the client receives and logs what the
// client will not see. Matching is by type (errors.As), never by text.
func (i *errorInterceptor) translate(ctx context.Context, spec connect.Spec, err error) error {
	var coreErr *core.Error
	if errors.As(err, &coreErr) {
		switch {
		case coreErr.Kind == core.KindUnavailable:
			i.log.WarnContext(ctx, "rpc: dependency unavailable",
				"procedure", spec.Procedure, "code", coreErr.PublicCode(), "error", err)
		case coreErr.Kind.ServerFault(): // internal, or a Kind outside the closed set
			i.log.ErrorContext(ctx, "rpc: internal error",
				"procedure", spec.Procedure, "code", coreErr.PublicCode(), "error", err)
		}
		return toConnectError(coreErr)
	}
	// A handler's own Connect error (e.g. Unimplemented for a missing
	// dependency) is already in client form. Adapters that call other
	// services must translate those services' errors into core errors, so
	// nothing foreign arrives here as a *connect.Error.
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce
	}
	// A request the client abandoned or let time out is not a server fault;
	// keep the code the client expects and do not log it as an error.
	switch {
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, errors.New("request canceled"))
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, errors.New("deadline exceeded"))
	}
	i.log.ErrorContext(ctx, "rpc: unexpected error",
		"procedure", spec.Procedure, "error", err)
	return toConnectError(core.Internal(err))
}

// recoverPanic is the connect.WithRecover handler: it logs the panic with its
// stack and answers Internal with the generic message, so no panic value or
// stack reaches the client.
func recoverPanic(log *slog.Logger) func(context.Context, connect.Spec, http.Header, any) error {
	return func(ctx context.Context, spec connect.Spec, _ http.Header, v any) error {
		log.ErrorContext(ctx, "rpc: handler panicked",
			"procedure", spec.Procedure,
			"panic", fmt.Sprint(v),
			"stack", string(debug.Stack()))
		return toConnectError(core.Internal(nil))
	}
}

// unimplemented answers a method whose core dependency was not wired into
// this server (Deps field nil).
func unimplemented(spec connect.Spec, what string) *connect.Error {
	return connect.NewError(connect.CodeUnimplemented,
		fmt.Errorf("%s is not available: %s is not configured on this server", spec.Procedure, what))
}
