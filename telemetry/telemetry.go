// Package telemetry sets up OpenTelemetry for identity-service: a tracer
// provider, a meter provider with a Prometheus exporter for /metrics,
// optional OTLP/HTTP export of both, the W3C propagator, a slog JSON logger
// that stamps trace ids on records, and the service's own metric
// instruments (Metrics).
//
// Nothing here touches OpenTelemetry's or Prometheus's global state unless
// asked: Setup returns the providers for explicit injection, and
// Providers.InstallGlobals publishes them for libraries that only read the
// otel globals (otelhttp and most hooks fall back to them when no provider
// option is passed). The Prometheus exporter writes to a registry of its
// own, never to prometheus.DefaultRegisterer, so two Setups (tests) do not
// collide.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// Config is what Setup needs. cmd/identityd fills it from the environment.
type Config struct {
	ServiceName    string // resource service.name, e.g. "identity-service"
	ServiceVersion string // resource service.version (build version)
	// OTLPEndpoint is the OTLP/HTTP base URL (OTEL_EXPORTER_OTLP_ENDPOINT,
	// e.g. "http://collector:4318"); "/v1/traces" and "/v1/metrics" are
	// appended as the OTLP spec says. Empty disables OTLP export; the
	// Prometheus endpoint works either way.
	OTLPEndpoint string
	// SpanExporter, when not nil, also receives every ended span through a
	// synchronous (simple) span processor, so a span is exported before
	// End returns. It is a test hook (for example tracetest's in-memory
	// exporter) with no environment variable: production leaves it nil.
	// Providers.Shutdown shuts it down with the tracer provider.
	SpanExporter sdktrace.SpanExporter
}

// Providers is what Setup built. The fields are interfaces so callers
// depend on the API only; they are backed by the OpenTelemetry SDK.
type Providers struct {
	TracerProvider trace.TracerProvider
	MeterProvider  metric.MeterProvider
	// MetricsHandler serves the Prometheus text/OpenMetrics exposition of
	// MeterProvider's metrics plus Go runtime and process metrics. Mount it
	// on /metrics.
	MetricsHandler http.Handler
	// Propagator is W3C tracecontext + baggage.
	Propagator propagation.TextMapPropagator

	tp             *sdktrace.TracerProvider
	mp             *sdkmetric.MeterProvider
	spanExporter   sdktrace.SpanExporter // nil without OTLP
	metricExporter sdkmetric.Exporter    // nil without OTLP

	shutdownOnce sync.Once
	shutdownErr  error
}

// Setup builds the providers. The resource carries service.name and
// service.version from cfg, the SDK's own attributes, and whatever
// OTEL_RESOURCE_ATTRIBUTES / OTEL_SERVICE_NAME add (the environment wins,
// so operators can relabel without a rebuild).
//
// With cfg.OTLPEndpoint set, spans go through a batch processor to an
// OTLP/HTTP exporter and metrics through a periodic reader to another; the
// exporters honour the standard OTEL_EXPORTER_OTLP_* variables (headers,
// timeout, compression, TLS, and the per-signal *_TRACES_ENDPOINT /
// *_METRICS_ENDPOINT, which take precedence over cfg.OTLPEndpoint). The
// sampler is the SDK default (parent-based always-on, or OTEL_TRACES_SAMPLER).
//
// Errors: building the resource or an exporter failed (for example a
// malformed OTEL_RESOURCE_ATTRIBUTES). Exporters do not connect during
// Setup, so an unreachable collector is not an error here. On error
// nothing needs shutting down.
func Setup(ctx context.Context, cfg Config) (*Providers, error) {
	res, err := newResource(ctx, cfg)
	if err != nil {
		return nil, err
	}
	p := &Providers{
		Propagator: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}

	registry := prometheus.NewRegistry()
	registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	promExporter, err := otelprom.New(otelprom.WithRegisterer(registry))
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus exporter: %w", err)
	}
	p.MetricsHandler = promhttp.HandlerFor(registry, promhttp.HandlerOpts{
		Registry:          registry, // reports scrape errors as promhttp_* metrics
		EnableOpenMetrics: true,
	})

	traceOpts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	meterOpts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(promExporter)}
	if cfg.OTLPEndpoint != "" {
		p.spanExporter, err = otlptracehttp.New(ctx,
			otlptracehttp.WithEndpointURL(signalURL(cfg.OTLPEndpoint, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "v1/traces")))
		if err != nil {
			return nil, fmt.Errorf("telemetry: otlp trace exporter: %w", err)
		}
		p.metricExporter, err = otlpmetrichttp.New(ctx,
			otlpmetrichttp.WithEndpointURL(signalURL(cfg.OTLPEndpoint, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "v1/metrics")))
		if err != nil {
			_ = p.spanExporter.Shutdown(ctx)
			return nil, fmt.Errorf("telemetry: otlp metric exporter: %w", err)
		}
		traceOpts = append(traceOpts, sdktrace.WithBatcher(p.spanExporter))
		meterOpts = append(meterOpts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(p.metricExporter)))
	}
	if cfg.SpanExporter != nil {
		traceOpts = append(traceOpts, sdktrace.WithSyncer(cfg.SpanExporter))
	}

	p.tp = sdktrace.NewTracerProvider(traceOpts...)
	p.mp = sdkmetric.NewMeterProvider(meterOpts...)
	p.TracerProvider = p.tp
	p.MeterProvider = p.mp
	return p, nil
}

// InstallGlobals makes p's tracer provider, meter provider and propagator
// the otel globals, for instrumentation that reads only those (otelhttp
// without options, bun and valkey hooks). cmd/identityd calls it once;
// tests should not, so that parallel tests keep their own providers.
func (p *Providers) InstallGlobals() {
	otel.SetTracerProvider(p.TracerProvider)
	otel.SetMeterProvider(p.MeterProvider)
	otel.SetTextMapPropagator(p.Propagator)
}

// Shutdown flushes pending spans and metrics to the OTLP exporters (if any)
// and stops the providers; ctx bounds how long that may take. After it,
// spans and measurements are dropped and MetricsHandler serves only the
// runtime metrics. Calling it again returns the first call's result.
//
// Errors: the joined flush/shutdown errors of the two providers, e.g. the
// collector could not be reached or ctx ended first.
func (p *Providers) Shutdown(ctx context.Context) error {
	p.shutdownOnce.Do(func() {
		// Traces first: spans ending during the metric flush are not
		// expected, and a slow collector should not starve the span flush.
		p.shutdownErr = errors.Join(p.tp.Shutdown(ctx), p.mp.Shutdown(ctx))
	})
	return p.shutdownErr
}

// Tracer returns the service's tracer (scope ScopeName).
func (p *Providers) Tracer() trace.Tracer { return p.TracerProvider.Tracer(ScopeName) }

func newResource(ctx context.Context, cfg Config) (*resource.Resource, error) {
	var attrs []attribute.KeyValue
	if cfg.ServiceName != "" {
		attrs = append(attrs, attribute.String("service.name", cfg.ServiceName))
	}
	if cfg.ServiceVersion != "" {
		attrs = append(attrs, attribute.String("service.version", cfg.ServiceVersion))
	}
	// Later options override earlier ones, hence env after attributes.
	res, err := resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(attrs...),
		resource.WithFromEnv(),
	)
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	return res, nil
}

// signalURL is base + "/" + path, which is how the OTLP spec derives a
// signal's URL from OTEL_EXPORTER_OTLP_ENDPOINT. An explicit exporter option
// would override the per-signal variable, so when that variable is set we
// return it instead to keep the spec's precedence. Empty counts as unset,
// as in the exporters.
func signalURL(base, signalEnv, path string) string {
	if v := strings.TrimSpace(os.Getenv(signalEnv)); v != "" {
		return v
	}
	return strings.TrimRight(base, "/") + "/" + path
}
