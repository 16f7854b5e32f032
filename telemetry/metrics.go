package telemetry

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// ScopeName is the instrumentation scope of the service's own spans and
// metrics (Prometheus shows it as the otel_scope_name label).
const ScopeName = "github.com/ghasi-ehealth/identity-service"

// OpenTelemetry instrument names (DESIGN.md "Telemetry") and the Prometheus
// series the exporter in Setup derives from them. The exporter replaces
// dots with underscores, appends the unit ("s" → "_seconds") and, for
// counters, "_total" unless the name already ends in it; the gauge's unit
// "1" adds "_ratio" unless the name already ends in it. Every series also
// carries otel_scope_name (and version/schema_url) labels.
//
//	identity.login.duration                   → identity_login_duration_seconds_{bucket,sum,count}{outcome}
//	identity.login.outcome                    → identity_login_outcome_total{outcome}
//	identity.session.revoke.total             → identity_session_revoke_total{reason}
//	identity.device.bind.total                → identity_device_bind_total
//	identity.access_context.cache.hits        → identity_access_context_cache_hits_total
//	identity.access_context.cache.misses      → identity_access_context_cache_misses_total
//	identity.access_context.cache_hit_ratio   → identity_access_context_cache_hit_ratio
const (
	MetricLoginDuration           = "identity.login.duration"
	MetricLoginOutcome            = "identity.login.outcome"
	MetricSessionRevoke           = "identity.session.revoke.total"
	MetricDeviceBind              = "identity.device.bind.total"
	MetricAccessContextCacheHits  = "identity.access_context.cache.hits"
	MetricAccessContextCacheMiss  = "identity.access_context.cache.misses"
	MetricAccessContextCacheRatio = "identity.access_context.cache_hit_ratio"
)

// Attribute keys. Their values must come from small fixed sets (the
// constants below, the contract's revocation reasons), never from user
// input, or every distinct value becomes a new time series.
const (
	AttrOutcome = attribute.Key("outcome")
	AttrReason  = attribute.Key("reason")
)

// Login outcomes for RecordLogin.
const (
	OutcomeSuccess            = "success"
	OutcomeInvalidCredentials = "invalid_credentials"
	OutcomeMFARequired        = "mfa_required"
	OutcomeRateLimited        = "rate_limited"
	OutcomeOverloaded         = "overloaded"
	OutcomeError              = "error"
)

// loginBuckets (seconds) centre on an argon2id verify (~0.1–0.3 s) and
// reach the 2 s hashing-slot wait; the SDK default buckets (0…10000) are
// meant for milliseconds and would put every login in the first three.
var loginBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10}

// Metrics holds the service's own instruments. The HTTP server metrics
// (http.server.*) come from otelhttp and are not here.
//
// The access-context cache hit ratio is a pair of counters plus a gauge:
// the counters are what dashboards and alerts should use (the ratio over a
// window is rate(hits) / (rate(hits) + rate(misses))), because a ratio
// cannot be aggregated across instances or over time. The gauge
// identity.access_context.cache_hit_ratio exists because DESIGN.md names it;
// it reports hits / (hits + misses) since process start and is absent until
// the first lookup.
//
// All methods are safe for concurrent use and do nothing on a nil
// *Metrics, so services can run (and be tested) without telemetry.
type Metrics struct {
	LoginDuration              metric.Float64Histogram
	LoginOutcome               metric.Int64Counter
	SessionRevoke              metric.Int64Counter
	DeviceBind                 metric.Int64Counter
	AccessContextCacheHit      metric.Int64Counter
	AccessContextCacheMiss     metric.Int64Counter
	AccessContextCacheHitRatio metric.Float64ObservableGauge

	// Totals for the ratio gauge; the SDK gives no way to read a counter.
	hits, misses atomic.Int64
}

// NewMetrics creates the instruments on mp (use Providers.MeterProvider, or
// a noop provider in tests). The error is the joined instrument-creation
// errors from the SDK (for example an invalid name), which means a bug.
func NewMetrics(mp metric.MeterProvider) (*Metrics, error) {
	meter := mp.Meter(ScopeName)
	m := &Metrics{}
	var err, e error

	m.LoginDuration, e = meter.Float64Histogram(MetricLoginDuration,
		metric.WithDescription("Duration of password logins, by outcome."),
		metric.WithUnit("s"),
		metric.WithExplicitBucketBoundaries(loginBuckets...))
	err = errors.Join(err, e)
	m.LoginOutcome, e = meter.Int64Counter(MetricLoginOutcome,
		metric.WithDescription("Login attempts, by outcome."))
	err = errors.Join(err, e)
	m.SessionRevoke, e = meter.Int64Counter(MetricSessionRevoke,
		metric.WithDescription("Sessions revoked, by reason (logout, logout_all, replay, suspended, erased)."))
	err = errors.Join(err, e)
	m.DeviceBind, e = meter.Int64Counter(MetricDeviceBind,
		metric.WithDescription("Devices bound for offline use (certificates issued)."))
	err = errors.Join(err, e)
	m.AccessContextCacheHit, e = meter.Int64Counter(MetricAccessContextCacheHits,
		metric.WithDescription("Access-context cache lookups answered from the cache."))
	err = errors.Join(err, e)
	m.AccessContextCacheMiss, e = meter.Int64Counter(MetricAccessContextCacheMiss,
		metric.WithDescription("Access-context cache lookups that had to compute the context."))
	err = errors.Join(err, e)
	m.AccessContextCacheHitRatio, e = meter.Float64ObservableGauge(MetricAccessContextCacheRatio,
		metric.WithDescription("Access-context cache hits / lookups since process start; prefer the hit and miss counters."),
		metric.WithUnit("1"),
		metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
			h, ms := m.hits.Load(), m.misses.Load()
			if h+ms > 0 {
				o.Observe(float64(h) / float64(h+ms))
			}
			return nil
		}))
	err = errors.Join(err, e)

	if err != nil {
		return nil, err
	}
	return m, nil
}

// RecordLogin records one login attempt: its duration and its outcome
// (one of the Outcome constants).
func (m *Metrics) RecordLogin(ctx context.Context, d time.Duration, outcome string) {
	if m == nil {
		return
	}
	attrs := metric.WithAttributes(AttrOutcome.String(outcome))
	m.LoginDuration.Record(ctx, d.Seconds(), attrs)
	m.LoginOutcome.Add(ctx, 1, attrs)
}

// SessionRevoked counts one revoked session; reason is the contract's
// revocation reason (logout, logout_all, replay, suspended, erased).
func (m *Metrics) SessionRevoked(ctx context.Context, reason string) {
	if m == nil {
		return
	}
	m.SessionRevoke.Add(ctx, 1, metric.WithAttributes(AttrReason.String(reason)))
}

// DeviceBound counts one device bound for offline use.
func (m *Metrics) DeviceBound(ctx context.Context) {
	if m == nil {
		return
	}
	m.DeviceBind.Add(ctx, 1)
}

// AccessContextCacheLookup counts one access-context cache lookup.
func (m *Metrics) AccessContextCacheLookup(ctx context.Context, hit bool) {
	if m == nil {
		return
	}
	if hit {
		m.hits.Add(1)
		m.AccessContextCacheHit.Add(ctx, 1)
		return
	}
	m.misses.Add(1)
	m.AccessContextCacheMiss.Add(ctx, 1)
}
