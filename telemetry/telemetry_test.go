package telemetry

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func setup(t *testing.T, cfg Config) *Providers {
	t.Helper()
	p, err := Setup(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return p
}

func scrape(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	return rec.Body.String()
}

func TestSetupWithoutEndpoint(t *testing.T) {
	p := setup(t, Config{ServiceName: "identity-service", ServiceVersion: "test"})
	require.Nil(t, p.spanExporter, "no OTLP span exporter without an endpoint")
	require.Nil(t, p.metricExporter, "no OTLP metric exporter without an endpoint")
	require.NotNil(t, p.TracerProvider)
	require.NotNil(t, p.MeterProvider)
	require.NotNil(t, p.MetricsHandler)
	require.ElementsMatch(t, []string{"traceparent", "tracestate", "baggage"}, p.Propagator.Fields())

	// Spans still get real ids (for log correlation) though none is exported,
	// and are marked sampled: the traceparent passed on (outbox events,
	// tenant-service calls) must not make downstream services that do export
	// drop their part of the trace.
	_, span := p.Tracer().Start(context.Background(), "identity.auth.login")
	require.True(t, span.SpanContext().IsValid())
	require.True(t, span.SpanContext().IsSampled())
	span.End()

	body := scrape(t, p.MetricsHandler)
	require.Contains(t, body, `service_name="identity-service"`, "target_info carries the resource")
	require.Contains(t, body, `service_version="test"`)
	require.Contains(t, body, "go_goroutines", "runtime metrics are on the same registry")

	require.NoError(t, p.Shutdown(context.Background()))
	require.NoError(t, p.Shutdown(context.Background()), "second Shutdown returns the first result")
}

func TestOwnRegistry(t *testing.T) {
	// Two Setups in one process would collide on prometheus's default
	// registry; they must not touch it at all.
	before, err := prometheus.DefaultGatherer.Gather()
	require.NoError(t, err)
	a := setup(t, Config{ServiceName: "a"})
	b := setup(t, Config{ServiceName: "b"})
	ma, err := NewMetrics(a.MeterProvider)
	require.NoError(t, err)
	ma.DeviceBound(context.Background())

	after, err := prometheus.DefaultGatherer.Gather()
	require.NoError(t, err)
	require.Len(t, after, len(before))
	require.Contains(t, scrape(t, a.MetricsHandler), "identity_device_bind_total")
	require.NotContains(t, scrape(t, b.MetricsHandler), "identity_device_bind_total")
}

// otlpCollector records the paths of OTLP/HTTP requests it receives.
type otlpCollector struct {
	mu    sync.Mutex
	paths map[string]int
}

func (c *otlpCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	c.mu.Lock()
	c.paths[r.Method+" "+r.URL.Path]++
	c.mu.Unlock()
	// An empty protobuf message is a valid Export*ServiceResponse.
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

func (c *otlpCollector) count(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.paths[key]
}

func TestSetupWithEndpointExportsOnShutdown(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "")
	col := &otlpCollector{paths: map[string]int{}}
	srv := httptest.NewServer(col)
	defer srv.Close()

	p, err := Setup(context.Background(), Config{ServiceName: "identity-service", OTLPEndpoint: srv.URL + "/"})
	require.NoError(t, err)
	require.NotNil(t, p.spanExporter)
	require.NotNil(t, p.metricExporter)

	_, span := p.Tracer().Start(context.Background(), "identity.session.create")
	span.End()
	m, err := NewMetrics(p.MeterProvider)
	require.NoError(t, err)
	m.DeviceBound(context.Background())

	// Shutdown flushes the batch processor and the periodic reader.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, p.Shutdown(ctx))
	require.Equal(t, 1, col.count("POST /v1/traces"))
	require.GreaterOrEqual(t, col.count("POST /v1/metrics"), 1)
}

func TestSignalURL(t *testing.T) {
	t.Setenv("X_SIGNAL", "")
	require.Equal(t, "http://c:4318/v1/traces", signalURL("http://c:4318", "X_SIGNAL", "v1/traces"))
	require.Equal(t, "http://c:4318/v1/traces", signalURL("http://c:4318/", "X_SIGNAL", "v1/traces"))
	t.Setenv("X_SIGNAL", "https://other/custom")
	require.Equal(t, "https://other/custom", signalURL("http://c:4318", "X_SIGNAL", "v1/traces"))
}

func TestSetupBadResourceEnv(t *testing.T) {
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "not-a-pair")
	_, err := Setup(context.Background(), Config{ServiceName: "x"})
	require.Error(t, err)
}

func TestShutdownStopsExport(t *testing.T) {
	p, err := Setup(context.Background(), Config{ServiceName: "identity-service"})
	require.NoError(t, err)
	m, err := NewMetrics(p.MeterProvider)
	require.NoError(t, err)
	require.NoError(t, p.Shutdown(context.Background()))

	// Recording after shutdown is harmless, and /metrics still answers.
	m.DeviceBound(context.Background())
	body := scrape(t, p.MetricsHandler)
	require.NotContains(t, body, "identity_device_bind_total")
	require.Contains(t, body, "go_goroutines")
}

func TestPropagatorRoundTrip(t *testing.T) {
	p := setup(t, Config{ServiceName: "identity-service"})
	ctx, span := p.Tracer().Start(context.Background(), "identity.outbox.publish")
	defer span.End()

	carrier := propagation.MapCarrier{}
	p.Propagator.Inject(ctx, carrier)
	require.Contains(t, carrier["traceparent"], span.SpanContext().TraceID().String())
}

func TestNewMetricsNoop(t *testing.T) {
	m, err := NewMetrics(noop.NewMeterProvider())
	require.NoError(t, err)
	m.RecordLogin(context.Background(), time.Second, OutcomeSuccess)

	var nilMetrics *Metrics
	require.NotPanics(t, func() {
		ctx := context.Background()
		nilMetrics.RecordLogin(ctx, time.Second, OutcomeSuccess)
		nilMetrics.SessionRevoked(ctx, "logout")
		nilMetrics.DeviceBound(ctx)
		nilMetrics.AccessContextCacheLookup(ctx, true)
	})
}

// decodeLines parses one JSON object per line.
func decodeLines(t *testing.T, b *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(b.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &m), line)
		out = append(out, m)
	}
	return out
}

var _ slog.Handler = (*traceHandler)(nil)

func TestInstallGlobals(t *testing.T) {
	// The only test that touches otel globals; nothing else here reads them.
	p := setup(t, Config{ServiceName: "identity-service"})
	p.InstallGlobals()
	require.Same(t, p.tp, otel.GetTracerProvider())
	require.Same(t, p.mp, otel.GetMeterProvider())
	require.ElementsMatch(t, p.Propagator.Fields(), otel.GetTextMapPropagator().Fields())
}

func TestSpanExporterHook(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	p := setup(t, Config{ServiceName: "identity-service", SpanExporter: exp})
	ctx, parent := p.Tracer().Start(context.Background(), "identity.auth.login")
	_, child := p.Tracer().Start(ctx, "identity.session.create")
	child.End()
	require.Len(t, exp.GetSpans(), 1, "exported synchronously when the span ends")
	parent.End()

	spans := exp.GetSpans()
	require.Len(t, spans, 2)
	require.Equal(t, "identity.session.create", spans[0].Name)
	require.Equal(t, parent.SpanContext().SpanID(), spans[0].Parent.SpanID())
	require.Equal(t, "identity.auth.login", spans[1].Name)
}
