package rpc

import (
	"context"
	"errors"
	"testing"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/ghasi-ehealth/identity-service/core"
	identityv1 "github.com/ghasi-ehealth/identity-service/rpc/gen/identity/v1"
	"github.com/ghasi-ehealth/identity-service/rpc/gen/identity/v1/identityv1connect"
)

func newRecorder(t *testing.T) (*tracetest.SpanRecorder, trace.TracerProvider) {
	t.Helper()
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return rec, tp
}

func attrs(kv []attribute.KeyValue) map[string]string {
	m := make(map[string]string, len(kv))
	for _, a := range kv {
		m[string(a.Key)] = a.Value.Emit()
	}
	return m
}

// TestTracing checks one server span per RPC, named after the procedure,
// with the RPC attributes, the Connect code on failure, and error status
// only for server-side faults.
func TestTracing(t *testing.T) {
	cases := []struct {
		name       string
		err        error
		wantCode   string // "" = no error attribute
		wantStatus codes.Code
	}{
		{"ok", nil, "", codes.Unset},
		{"client fault", core.NotFound("key"), "not_found", codes.Unset},
		{"server fault", errors.New("boom"), "internal", codes.Error},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec, tp := newRecorder(t)
			srv := startServer(t, (&fakeCore{err: tc.err}).deps(), Options{TracerProvider: tp})
			tok := identityv1connect.NewTokenServiceClient(srv.client, srv.url, connect.WithGRPC())
			_, _ = tok.VerifyApiKey(t.Context(), connect.NewRequest(&identityv1.VerifyApiKeyRequest{Key: "k"}))

			spans := rec.Ended()
			require.Len(t, spans, 1)
			s := spans[0]
			require.Equal(t, "identity.v1.TokenService/VerifyApiKey", s.Name())
			require.Equal(t, trace.SpanKindServer, s.SpanKind())
			a := attrs(s.Attributes())
			require.Equal(t, "connect_rpc", a["rpc.system"])
			require.Equal(t, "identity.v1.TokenService", a["rpc.service"])
			require.Equal(t, "VerifyApiKey", a["rpc.method"])
			require.Equal(t, connect.ProtocolGRPC, a["rpc.connect_rpc.protocol"])
			require.Equal(t, tc.wantCode, a["rpc.connect_rpc.error_code"])
			require.Equal(t, tc.wantStatus, s.Status().Code)
		})
	}
}

// TestTracingStreaming covers the streaming wrapper directly.
func TestTracingStreaming(t *testing.T) {
	rec, tp := newRecorder(t)
	ti := newTracingInterceptor(tp)
	conn := stubConn{spec: connect.Spec{Procedure: "/identity.v1.X/Watch", StreamType: connect.StreamTypeServer}}

	err := ti.WrapStreamingHandler(func(ctx context.Context, _ connect.StreamingHandlerConn) error {
		require.True(t, trace.SpanFromContext(ctx).SpanContext().IsValid(), "handler runs inside the span")
		return connect.NewError(connect.CodeUnavailable, errors.New("x"))
	})(t.Context(), conn)
	require.Error(t, err)

	spans := rec.Ended()
	require.Len(t, spans, 1)
	require.Equal(t, "identity.v1.X/Watch", spans[0].Name())
	require.Equal(t, codes.Error, spans[0].Status().Code)
	require.Equal(t, "unavailable", attrs(spans[0].Attributes())["rpc.connect_rpc.error_code"])

	client := func(context.Context, connect.Spec) connect.StreamingClientConn { return nil }
	require.NotNil(t, ti.WrapStreamingClient(client))
}
