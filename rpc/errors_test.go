package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	identityv1 "github.com/ghasi-ehealth/identity-service/rpc/gen/identity/v1"
	"github.com/ghasi-ehealth/identity-service/rpc/gen/identity/v1/identityv1connect"
)

// secretCause stands for a cause that must never reach a client.
const secretCause = "pq: password authentication failed for user identity"

// TestErrorMapping runs every core.Kind through a real handler and every
// protocol: Connect code, "IDENT_X: msg" message, identity-error-code and
// retry-after metadata (headers for Connect, trailers for gRPC/gRPC-Web).
func TestErrorMapping(t *testing.T) {
	cause := errors.New(secretCause)
	cases := []struct {
		name      string
		err       error
		wantCode  connect.Code
		wantIdent string
		wantMsg   string
		wantRetry string
	}{
		{"invalid", core.InvalidField("nodeId", "must be a UUID"),
			connect.CodeInvalidArgument, core.CodeValidation, "IDENT_VALIDATION: nodeId: must be a UUID", ""},
		{"unauthenticated", core.Unauthenticated(cause),
			connect.CodeUnauthenticated, core.CodeUnauthenticated, "IDENT_UNAUTHENTICATED: authentication required", ""},
		{"invalid credentials", core.Wrap(cause, core.KindUnauthenticated, core.CodeInvalidCredentials, "invalid credentials"),
			connect.CodeUnauthenticated, core.CodeInvalidCredentials, "IDENT_INVALID_CREDENTIALS: invalid credentials", ""},
		{"forbidden", core.Forbidden("requires scope tenant:licensing:read"),
			connect.CodePermissionDenied, core.CodeForbidden, "IDENT_FORBIDDEN: requires scope tenant:licensing:read", ""},
		{"cross tenant", core.E(core.KindForbidden, core.CodeCrossTenant, "the resource belongs to another tenant"),
			connect.CodePermissionDenied, core.CodeCrossTenant, "IDENT_CROSS_TENANT: the resource belongs to another tenant", ""},
		{"not found", core.NotFound("node"),
			connect.CodeNotFound, core.CodeNotFound, "IDENT_NOT_FOUND: node not found", ""},
		{"duplicate", core.E(core.KindConflict, core.CodeEmailDuplicate, "email already registered"),
			connect.CodeAlreadyExists, core.CodeEmailDuplicate, "IDENT_EMAIL_DUPLICATE: email already registered", ""},
		{"state conflict", core.E(core.KindConflict, core.CodeStateConflict, "user is already suspended"),
			connect.CodeAlreadyExists, core.CodeStateConflict, "IDENT_STATE_CONFLICT: user is already suspended", ""},
		{"unprocessable", core.E(core.KindUnprocessable, core.CodeLicTerminated, "assignment is terminated"),
			connect.CodeFailedPrecondition, core.CodeLicTerminated, "IDENT_LIC_TERMINATED: assignment is terminated", ""},
		{"rate limited", &core.Error{Kind: core.KindRateLimited, Code: core.CodeRateLimited, Msg: "too many requests", RetryAfter: 1500 * time.Millisecond},
			connect.CodeResourceExhausted, core.CodeRateLimited, "IDENT_RATE_LIMITED: too many requests", "2"},
		{"overloaded", &core.Error{Kind: core.KindUnavailable, Code: core.CodeOverloaded, Msg: "try again", RetryAfter: time.Second, Err: cause},
			connect.CodeUnavailable, core.CodeOverloaded, "IDENT_OVERLOADED: try again", "1"},
		{"unavailable", core.Unavailable(cause),
			connect.CodeUnavailable, core.CodeUnavailable, "IDENT_UNAVAILABLE: a dependency is unavailable; try again later", ""},
		{"internal", core.Internal(cause),
			connect.CodeInternal, core.CodeInternal, "IDENT_INTERNAL: internal error", ""},
		{"wrapped core error", fmt.Errorf("resolve: %w", core.NotFound("node")),
			connect.CodeNotFound, core.CodeNotFound, "IDENT_NOT_FOUND: node not found", ""},
		{"foreign error", fmt.Errorf("query: %w", cause),
			connect.CodeInternal, core.CodeInternal, "IDENT_INTERNAL: internal error", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeCore{err: tc.err}
			srv := startServer(t, fake.deps(), Options{})
			for _, p := range protocols() {
				t.Run(p.name, func(t *testing.T) {
					tok := identityv1connect.NewTokenServiceClient(srv.client, srv.url, p.opts...)
					_, err := tok.VerifyApiKey(t.Context(), connect.NewRequest(&identityv1.VerifyApiKeyRequest{Key: "k"}))
					var ce *connect.Error
					require.ErrorAs(t, err, &ce)
					require.Equal(t, tc.wantCode, ce.Code())
					require.Equal(t, tc.wantMsg, ce.Message())
					require.Equal(t, tc.wantIdent, ce.Meta().Get(MetaErrorCode))
					require.Equal(t, tc.wantRetry, ce.Meta().Get(MetaRetryAfter))
					require.NotContains(t, err.Error(), "password authentication")
				})
			}
		})
	}
}

// TestErrorLogging checks what is logged, at which level, and that the
// request's context (here: its principal) reaches the logger.
func TestErrorLogging(t *testing.T) {
	principal := &core.Principal{Type: core.PrincipalAPIKey, ID: "key-7", TenantID: "t"}
	cases := []struct {
		name      string
		err       error
		wantLevel slog.Level
		wantMsg   string // "" = nothing logged
	}{
		{"foreign error", errors.New(secretCause), slog.LevelError, "rpc: unexpected error"},
		{"core internal", core.Internal(errors.New(secretCause)), slog.LevelError, "rpc: internal error"},
		{"core unavailable", core.Unavailable(errors.New(secretCause)), slog.LevelWarn, "rpc: dependency unavailable"},
		{"client error", core.Forbidden("no"), 0, ""},
		{"canceled", context.Canceled, 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			log, logs := newCaptureLog()
			fake := &fakeCore{err: tc.err}
			srv := startServer(t, fake.deps(), Options{Logger: log}, withPrincipal(principal))
			tok := identityv1connect.NewTokenServiceClient(srv.client, srv.url)
			_, err := tok.VerifyApiKey(t.Context(), connect.NewRequest(&identityv1.VerifyApiKeyRequest{Key: "k"}))
			require.Error(t, err)

			recs := logs.all()
			if tc.wantMsg == "" {
				require.Empty(t, recs)
				return
			}
			require.Len(t, recs, 1)
			require.Equal(t, tc.wantLevel, recs[0].level)
			require.Equal(t, tc.wantMsg, recs[0].msg)
			require.Equal(t, identityv1connect.TokenServiceVerifyApiKeyProcedure, recs[0].attrs["procedure"])
			require.Contains(t, recs[0].attrs["error"], secretCause, "the cause goes to the log")
			require.Same(t, principal, recs[0].principal, "logged with the request's context")
		})
	}
}

// TestContextErrors checks that abandoned or timed-out work keeps its own
// Connect code instead of becoming Internal.
func TestContextErrors(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want connect.Code
	}{
		{context.Canceled, connect.CodeCanceled},
		{fmt.Errorf("query: %w", context.DeadlineExceeded), connect.CodeDeadlineExceeded},
	} {
		t.Run(tc.want.String(), func(t *testing.T) {
			srv := startServer(t, (&fakeCore{err: tc.err}).deps(), Options{})
			lic := identityv1connect.NewLicensingServiceClient(srv.client, srv.url, connect.WithGRPC())
			_, err := lic.CheckModuleAccess(t.Context(), connect.NewRequest(&identityv1.CheckModuleAccessRequest{}))
			require.Equal(t, tc.want, connect.CodeOf(err))
		})
	}
}

// TestConnectErrorPassesThrough checks that a handler's own Connect error
// keeps its code and message.
func TestConnectErrorPassesThrough(t *testing.T) {
	own := connect.NewError(connect.CodeOutOfRange, errors.New("page out of range"))
	srv := startServer(t, (&fakeCore{err: own}).deps(), Options{})
	lic := identityv1connect.NewLicensingServiceClient(srv.client, srv.url)
	_, err := lic.GetEffectiveLicenses(t.Context(), connect.NewRequest(&identityv1.GetEffectiveLicensesRequest{}))
	var ce *connect.Error
	require.ErrorAs(t, err, &ce)
	require.Equal(t, connect.CodeOutOfRange, ce.Code())
	require.Equal(t, "page out of range", ce.Message())
}

// TestPanicRecovered checks that a panicking handler answers Internal with
// the generic message on every protocol, and that the panic is logged with
// its stack and the request's context.
func TestPanicRecovered(t *testing.T) {
	principal := &core.Principal{Type: core.PrincipalServiceAccount, ID: "sa-1"}
	log, logs := newCaptureLog()
	fake := &fakeCore{panicValue: "nil map write in " + secretCause}
	srv := startServer(t, fake.deps(), Options{Logger: log}, withPrincipal(principal))

	for _, p := range protocols() {
		t.Run(p.name, func(t *testing.T) {
			lic := identityv1connect.NewLicensingServiceClient(srv.client, srv.url, p.opts...)
			_, err := lic.GetEffectiveLicenses(t.Context(), connect.NewRequest(&identityv1.GetEffectiveLicensesRequest{}))
			var ce *connect.Error
			require.ErrorAs(t, err, &ce)
			require.Equal(t, connect.CodeInternal, ce.Code())
			require.Equal(t, "IDENT_INTERNAL: internal error", ce.Message())
			require.Equal(t, core.CodeInternal, ce.Meta().Get(MetaErrorCode))
			require.NotContains(t, err.Error(), "password")
			require.NotContains(t, err.Error(), "goroutine")
		})
	}

	recs := logs.all()
	require.Len(t, recs, len(protocols()), "one log line per panic, not one per layer")
	for _, r := range recs {
		require.Equal(t, "rpc: handler panicked", r.msg)
		require.Contains(t, r.attrs["panic"], secretCause)
		require.Contains(t, r.attrs["stack"], "fakeCore")
		require.Same(t, principal, r.principal)
	}
}

// TestToConnectErrorEdges covers core errors that core does not normally
// build: no code, no message, a Kind outside the closed set.
func TestToConnectErrorEdges(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in       *core.Error
		wantCode connect.Code
		wantMsg  string
		wantMeta string
	}{
		{"no code", &core.Error{Kind: core.KindConflict, Msg: "taken"}, connect.CodeAlreadyExists, "IDENT_CONFLICT: taken", core.CodeConflict},
		{"no message", &core.Error{Kind: core.KindNotFound, Code: core.CodeNotFound}, connect.CodeNotFound, "IDENT_NOT_FOUND", core.CodeNotFound},
		{"unknown kind", &core.Error{Kind: core.Kind(99), Code: "IDENT_X", Msg: "m"}, connect.CodeInternal, "IDENT_X: m", "IDENT_X"},
		{"unprocessable without code", &core.Error{Kind: core.KindUnprocessable, Msg: "m"}, connect.CodeFailedPrecondition, "IDENT_VALIDATION: m", core.CodeValidation},
		{"sub-second retry", &core.Error{Kind: core.KindRateLimited, Code: core.CodeRateLimited, RetryAfter: time.Millisecond}, connect.CodeResourceExhausted, "IDENT_RATE_LIMITED", core.CodeRateLimited},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ce := toConnectError(tc.in)
			require.Equal(t, tc.wantCode, ce.Code())
			require.Equal(t, tc.wantMsg, ce.Message())
			require.Equal(t, tc.wantMeta, ce.Meta().Get(MetaErrorCode))
		})
	}
	require.EqualValues(t, 1, retryAfterSeconds(time.Millisecond))
	require.EqualValues(t, 60, retryAfterSeconds(time.Minute))
	require.EqualValues(t, 61, retryAfterSeconds(time.Minute+time.Nanosecond))
}

// stubConn is a streaming handler connection that only knows its Spec and
// Peer; the streaming wrappers need nothing else.
type stubConn struct {
	connect.StreamingHandlerConn
	spec connect.Spec
}

func (c stubConn) Spec() connect.Spec { return c.spec }
func (c stubConn) Peer() connect.Peer { return connect.Peer{Protocol: connect.ProtocolGRPC} }

// TestErrorInterceptorStreaming covers the streaming path, which identity.v1
// does not use yet but a future streaming method would.
func TestErrorInterceptorStreaming(t *testing.T) {
	log, logs := newCaptureLog()
	i := &errorInterceptor{log: log}
	conn := stubConn{spec: connect.Spec{Procedure: "/identity.v1.X/Stream", StreamType: connect.StreamTypeServer}}

	err := i.WrapStreamingHandler(func(context.Context, connect.StreamingHandlerConn) error {
		return core.Internal(errors.New(secretCause))
	})(t.Context(), conn)
	require.Equal(t, connect.CodeInternal, connect.CodeOf(err))
	require.NotContains(t, err.Error(), secretCause)
	require.Len(t, logs.all(), 1)

	err = i.WrapStreamingHandler(func(context.Context, connect.StreamingHandlerConn) error { return nil })(t.Context(), conn)
	require.NoError(t, err)

	client := func(context.Context, connect.Spec) connect.StreamingClientConn { return nil }
	require.NotNil(t, i.WrapStreamingClient(client))
}

// TestEveryMethodMapsErrors checks that each handler hands its port's error
// to the mapping rather than answering with partial data.
func TestEveryMethodMapsErrors(t *testing.T) {
	srv := startServer(t, (&fakeCore{err: core.NotFound("node")}).deps(), Options{})
	ctx := t.Context()
	lic := identityv1connect.NewLicensingServiceClient(srv.client, srv.url)
	tok := identityv1connect.NewTokenServiceClient(srv.client, srv.url)
	for name, call := range map[string]func() error{
		"GetEffectiveLicenses": func() error {
			_, err := lic.GetEffectiveLicenses(ctx, connect.NewRequest(&identityv1.GetEffectiveLicensesRequest{}))
			return err
		},
		"CheckModuleAccess": func() error {
			_, err := lic.CheckModuleAccess(ctx, connect.NewRequest(&identityv1.CheckModuleAccessRequest{}))
			return err
		},
		"ExchangeToken": func() error {
			_, err := tok.ExchangeToken(ctx, connect.NewRequest(&identityv1.ExchangeTokenRequest{}))
			return err
		},
		"VerifyApiKey": func() error {
			_, err := tok.VerifyApiKey(ctx, connect.NewRequest(&identityv1.VerifyApiKeyRequest{}))
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			err := call()
			var ce *connect.Error
			require.ErrorAs(t, err, &ce)
			require.Equal(t, connect.CodeNotFound, ce.Code())
			require.Equal(t, core.CodeNotFound, ce.Meta().Get(MetaErrorCode))
		})
	}
}
