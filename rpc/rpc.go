// Package rpc is the Connect RPC transport of identity-service (package
// identity.v1, CONTRACT.md §6). It serves LicensingService and TokenService
// over the Connect, gRPC and gRPC-Web protocols (binary and JSON) on the
// service's one HTTP listener, together with the gRPC health and reflection
// services.
//
// Handlers are thin: decode the request, call one core-facing interface
// (ports.go), encode the answer. Failures become Connect errors in exactly
// one place, errors.go. The package assumes the shared HTTP middleware has
// already put the caller's *core.Principal (or its authentication error)
// into the request context; it never reads credentials itself.
package rpc

import (
	"context"
	"log/slog"
	"net/http"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"go.opentelemetry.io/otel/trace"

	"github.com/ghasi-ehealth/identity-service/rpc/gen/identity/v1/identityv1connect"
)

// MaxMessageBytes caps a request message, like every other body the service
// accepts (CONTRACT.md §2: at most 1 MiB). Larger messages get
// ResourceExhausted before any handler runs.
const MaxMessageBytes = 1 << 20

// Deps are the core services behind the handlers. A nil field is allowed:
// the methods that need it answer Unimplemented, so the transport can be
// mounted before every core service exists, and token exchange can stay off
// when no upstream realm is configured.
type Deps struct {
	// Licensing backs LicensingService (both methods).
	Licensing LicensingResolver
	// TokenExchange backs TokenService.ExchangeToken.
	TokenExchange TokenExchanger
	// APIKeys backs TokenService.VerifyApiKey.
	APIKeys APIKeyVerifier
}

// Options tune cross-cutting behaviour. The zero value is usable.
type Options struct {
	// Logger receives internal errors (with their causes), panics (with
	// stacks) and failed health checks, always with the request's context so
	// trace and request ids follow. Nil discards.
	Logger *slog.Logger
	// Ready drives the gRPC health service: nil error means SERVING, any
	// error NOT_SERVING. Use the same function as /readyz. Nil means always
	// SERVING.
	Ready func(ctx context.Context) error
	// TracerProvider, when set, records one server span per identity.v1 RPC
	// carrying the Connect code. Nil records none (no OpenTelemetry globals
	// are consulted).
	TracerProvider trace.TracerProvider
}

// Mount registers on mux, at their /<package.Service>/ paths:
// identity.v1.LicensingService, identity.v1.TokenService,
// grpc.health.v1.Health, and gRPC server reflection v1 and v1alpha.
//
// The caller serves mux over HTTP/1.1 and HTTP/2 cleartext on one listener
// (http.Server with Protocols HTTP1 and UnencryptedHTTP2): gRPC, and
// streaming in general, need HTTP/2. Authentication middleware wraps mux
// outside this package.
func Mount(mux *http.ServeMux, deps Deps, opts Options) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	// Every handler: recover panics and cap message size.
	base := []connect.HandlerOption{
		connect.WithRecover(recoverPanic(log)),
		connect.WithReadMaxBytes(MaxMessageBytes),
	}

	// identity.v1 handlers also get tracing (outermost, so it sees the final
	// code) and error mapping. Interceptors added before WithRecover wrap it.
	var interceptors []connect.Interceptor
	if opts.TracerProvider != nil {
		interceptors = append(interceptors, newTracingInterceptor(opts.TracerProvider))
	}
	interceptors = append(interceptors, &errorInterceptor{log: log})
	api := append([]connect.HandlerOption{connect.WithInterceptors(interceptors...)}, base...)

	mux.Handle(identityv1connect.NewLicensingServiceHandler(
		&licensingServer{resolver: deps.Licensing}, api...))
	mux.Handle(identityv1connect.NewTokenServiceHandler(
		&tokenServer{exchanger: deps.TokenExchange, verifier: deps.APIKeys}, api...))

	mux.Handle(grpchealth.NewHandler(newReadinessChecker(opts.Ready, log,
		identityv1connect.LicensingServiceName,
		identityv1connect.TokenServiceName,
	), base...))

	// Reflection lets grpcurl, buf curl and Postman discover the API without
	// the .proto files; the schema is public (proto/ in the repository).
	reflector := grpcreflect.NewStaticReflector(
		identityv1connect.LicensingServiceName,
		identityv1connect.TokenServiceName,
		grpchealth.HealthV1ServiceName,
	)
	mux.Handle(grpcreflect.NewHandlerV1(reflector, base...))
	mux.Handle(grpcreflect.NewHandlerV1Alpha(reflector, base...))
}
