package rpc

import (
	"context"
	"strings"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// tracerName identifies this package's spans (instrumentation scope).
const tracerName = "github.com/ghasi-ehealth/identity-service/rpc"

// tracingInterceptor records one server span per RPC. The HTTP middleware's
// span cannot tell a failed gRPC call from a good one (both are HTTP 200);
// this span carries the Connect code. It is a child of whatever span the
// request context holds, so the lead's otelhttp wiring propagates traceparent.
type tracingInterceptor struct {
	tracer trace.Tracer
}

func newTracingInterceptor(tp trace.TracerProvider) *tracingInterceptor {
	return &tracingInterceptor{tracer: tp.Tracer(tracerName)}
}

func (t *tracingInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		ctx, span := t.start(ctx, req.Spec(), req.Peer())
		defer span.End()
		res, err := next(ctx, req)
		t.finish(span, err)
		return res, err
	}
}

// WrapStreamingClient leaves client calls alone: this interceptor is only
// installed on handlers.
func (t *tracingInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (t *tracingInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		ctx, span := t.start(ctx, conn.Spec(), conn.Peer())
		defer span.End()
		err := next(ctx, conn)
		t.finish(span, err)
		return err
	}
}

// start opens the span with the OpenTelemetry RPC semantic-convention
// attributes; the name is "package.Service/Method".
func (t *tracingInterceptor) start(ctx context.Context, spec connect.Spec, peer connect.Peer) (context.Context, trace.Span) {
	name := strings.TrimPrefix(spec.Procedure, "/")
	service, method, _ := strings.Cut(name, "/")
	return t.tracer.Start(ctx, name,
		trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(
			attribute.String("rpc.system", "connect_rpc"),
			attribute.String("rpc.service", service),
			attribute.String("rpc.method", method),
			attribute.String("rpc.connect_rpc.protocol", peer.Protocol),
		))
}

// finish records the outcome. Per the RPC conventions a server span is only
// marked as an error for server-side faults; a client's bad request is a
// normal outcome for the server and only gets the code attribute.
func (t *tracingInterceptor) finish(span trace.Span, err error) {
	if err == nil {
		return
	}
	code := connect.CodeOf(err)
	span.SetAttributes(attribute.String("rpc.connect_rpc.error_code", code.String()))
	switch code {
	case connect.CodeUnknown, connect.CodeDeadlineExceeded, connect.CodeUnimplemented,
		connect.CodeInternal, connect.CodeUnavailable, connect.CodeDataLoss:
		span.SetStatus(codes.Error, code.String())
	}
}
