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
// "1" adds "_ratio" unless the name already ends in it, and a unit in
// braces ("{event}") adds nothing. Every series also carries
// otel_scope_name (and version/schema_url) labels, and Prometheus adds job
// and instance when it scrapes.
//
//	identity.login.duration                   → identity_login_duration_seconds_{bucket,sum,count}{outcome}
//	identity.login.outcome                    → identity_login_outcome_total{outcome}
//	identity.session.revoke.total             → identity_session_revoke_total{reason}
//	identity.security_incident.total          → identity_security_incident_total{kind}
//	identity.device.bind.total                → identity_device_bind_total
//	identity.access_context.cache.hits        → identity_access_context_cache_hits_total
//	identity.access_context.cache.misses      → identity_access_context_cache_misses_total
//	identity.access_context.cache_hit_ratio   → identity_access_context_cache_hit_ratio
//	identity.outbox.lag                       → identity_outbox_lag_seconds
//	identity.outbox.pending                   → identity_outbox_pending
//	identity.jwks.active_key_age              → identity_jwks_active_key_age_seconds
//	identity.retention.deleted                → identity_retention_deleted_total{kind}
//	identity.retention.failures               → identity_retention_failures_total{kind}
//
// The same endpoint serves series this package does not define: otelhttp's
// server instruments (cmd/identityd wraps the whole listener), the resource
// as target_info, and the Go runtime and process collectors (go_*,
// process_*, not listed). Labels ending in "…" are an open set.
//
//	http.server.request.duration              → http_server_request_duration_seconds_{bucket,sum,count}{http_request_method,http_response_status_code,network_protocol_name,network_protocol_version,server_address,server_port,url_scheme,…}
//	http.server.request.body.size             → http_server_request_body_size_bytes_{bucket,sum,count}{http_request_method,http_response_status_code,…}
//	http.server.response.body.size            → http_server_response_body_size_bytes_{bucket,sum,count}{http_request_method,http_response_status_code,…}
//	(resource attributes)                     → target_info{service_name,service_version,…}
//
// Both tables are read by tests: telemetry's checks the identity_* rows
// against what the exporter serves, and deploy/prometheus/rules_test.go
// allows alerting rules to select only the series (and labels) listed here,
// so renaming an instrument without updating the rules fails the build.
const (
	MetricLoginDuration           = "identity.login.duration"
	MetricLoginOutcome            = "identity.login.outcome"
	MetricSessionRevoke           = "identity.session.revoke.total"
	MetricSecurityIncident        = "identity.security_incident.total"
	MetricDeviceBind              = "identity.device.bind.total"
	MetricAccessContextCacheHits  = "identity.access_context.cache.hits"
	MetricAccessContextCacheMiss  = "identity.access_context.cache.misses"
	MetricAccessContextCacheRatio = "identity.access_context.cache_hit_ratio"
	MetricOutboxLag               = "identity.outbox.lag"
	MetricOutboxPending           = "identity.outbox.pending"
	MetricJWKSActiveKeyAge        = "identity.jwks.active_key_age"
	MetricRetentionDeleted        = "identity.retention.deleted"
	MetricRetentionFailures       = "identity.retention.failures"
)

// Attribute keys. Their values must come from small fixed sets (the
// constants below, the contract's revocation reasons), never from user
// input, or every distinct value becomes a new time series.
const (
	AttrOutcome = attribute.Key("outcome")
	AttrReason  = attribute.Key("reason")
	AttrKind    = attribute.Key("kind")
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

// SecurityIncidentKinds are the kinds of identity.user.security_incident.v1
// (docs/EVENT_SCHEMAS.md), the values of the kind label. NewMetrics starts
// each at 0, so the first incident after a restart is an increase() rather
// than a new series Prometheus takes as its baseline. The emitting packages
// (core/auth, core/mfa/passkey) own the constants; their tests check that
// they are listed here.
var SecurityIncidentKinds = []string{"refresh_replay", "webauthn_counter_regression"}

// RetentionKinds are the kinds of record the retention sweeper deletes
// (core/retention, whose tests check this list against its own), the
// values of the kind label of identity.retention.*. NewMetrics starts both
// counters at 0 for each, so the first failure is an increase().
var RetentionKinds = []string{"refresh_tokens", "sessions", "verification_tokens", "mfa_challenges", "webauthn_ceremonies", "inbox"}

// loginBuckets (seconds) centre on an argon2id verify (~0.1–0.3 s) and
// reach the 2 s hashing-slot wait; the SDK default buckets (0…10000) are
// meant for milliseconds and would put every login in the first three.
var loginBuckets = []float64{0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10}

// sourceTimeout bounds one call of an OutboxSource during a collection, so
// a slow database delays a /metrics scrape by at most this much.
const sourceTimeout = 2 * time.Second

// OutboxBacklog is what the outbox gauges report.
type OutboxBacklog struct {
	// Pending counts the events not yet published.
	Pending int64
	// OldestAge is how long the oldest of them has been waiting; zero when
	// there are none.
	OldestAge time.Duration
}

// OutboxSource reads the outbox backlog. The gauges call it once per
// collection (each /metrics scrape, each OTLP export) with a context bounded
// by sourceTimeout, so it should be cheap (a few indexed queries).
type OutboxSource func(ctx context.Context) (OutboxBacklog, error)

// KeyAgeSource reports how long the active signing key has been active;
// ok is false when there is none (keyring not loaded). It is called once per
// collection and should read memory only.
type KeyAgeSource func() (age time.Duration, ok bool)

// Metrics holds the service's own instruments. The HTTP server metrics
// (http.server.*) come from otelhttp and are not here.
//
// The outbox and signing-key gauges are observed at collection time from
// sources the composition root registers (ObserveOutbox, ObserveActiveKey);
// until then, and whenever the outbox source fails, they report nothing
// (the series are absent rather than a misleading zero).
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
	SecurityIncident           metric.Int64Counter
	OutboxLag                  metric.Float64ObservableGauge
	OutboxPending              metric.Int64ObservableGauge
	JWKSActiveKeyAge           metric.Float64ObservableGauge
	RetentionDeletedRows       metric.Int64Counter
	RetentionFailure           metric.Int64Counter

	// Totals for the ratio gauge; the SDK gives no way to read a counter.
	hits, misses atomic.Int64
	// Sources of the observable gauges (nil until registered).
	outbox atomic.Pointer[OutboxSource]
	keyAge atomic.Pointer[KeyAgeSource]
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
	m.SecurityIncident, e = kindCounter(meter, MetricSecurityIncident, SecurityIncidentKinds,
		metric.WithDescription("Security incidents detected (identity.user.security_incident.v1), by kind (refresh_replay, webauthn_counter_regression)."))
	err = errors.Join(err, e)
	m.OutboxLag, e = meter.Float64ObservableGauge(MetricOutboxLag,
		metric.WithDescription("Age of the oldest outbox event not yet published to the event bus; 0 when none is pending."),
		metric.WithUnit("s"))
	err = errors.Join(err, e)
	m.OutboxPending, e = meter.Int64ObservableGauge(MetricOutboxPending,
		metric.WithDescription("Outbox events not yet published to the event bus."),
		metric.WithUnit("{event}"))
	err = errors.Join(err, e)
	m.JWKSActiveKeyAge, e = meter.Float64ObservableGauge(MetricJWKSActiveKeyAge,
		metric.WithDescription("Time since the active JWT signing key was activated (rotation promotes the next key)."),
		metric.WithUnit("s"),
		metric.WithFloat64Callback(func(_ context.Context, o metric.Float64Observer) error {
			if src := m.keyAge.Load(); src != nil {
				if age, ok := (*src)(); ok {
					o.Observe(max(age, 0).Seconds())
				}
			}
			return nil
		}))
	err = errors.Join(err, e)
	m.RetentionDeletedRows, e = kindCounter(meter, MetricRetentionDeleted, RetentionKinds,
		metric.WithDescription("Rows the retention sweeper deleted, by kind (the table)."),
		metric.WithUnit("{row}"))
	err = errors.Join(err, e)
	m.RetentionFailure, e = kindCounter(meter, MetricRetentionFailures, RetentionKinds,
		metric.WithDescription("Retention sweeps of one kind that failed (left for the next sweep), by kind."))
	err = errors.Join(err, e)
	if err != nil {
		return nil, err
	}
	// One callback for both outbox gauges, so a collection reads the
	// source once.
	_, err = meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		src := m.outbox.Load()
		if src == nil {
			return nil
		}
		ctx, cancel := context.WithTimeout(ctx, sourceTimeout)
		defer cancel()
		b, err := (*src)(ctx)
		if err != nil {
			// Absent beats a stale or zero value; the database outage
			// behind it shows on /readyz and in the relay's own logs.
			return nil
		}
		o.ObserveFloat64(m.OutboxLag, max(b.OldestAge, 0).Seconds())
		o.ObserveInt64(m.OutboxPending, b.Pending)
		return nil
	}, m.OutboxLag, m.OutboxPending)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// ObserveOutbox makes the outbox gauges (identity.outbox.lag and
// identity.outbox.pending) report what src returns at each collection; a
// later call replaces src, nil stops reporting. Every instance sharing a
// database reports the same backlog, so alert on max() across instances.
func (m *Metrics) ObserveOutbox(src OutboxSource) {
	if m == nil {
		return
	}
	if src == nil {
		m.outbox.Store(nil)
		return
	}
	m.outbox.Store(&src)
}

// ObserveActiveKey makes identity.jwks.active_key_age report what src
// returns at each collection; a later call replaces src, nil stops
// reporting.
func (m *Metrics) ObserveActiveKey(src KeyAgeSource) {
	if m == nil {
		return
	}
	if src == nil {
		m.keyAge.Store(nil)
		return
	}
	m.keyAge.Store(&src)
}

// SecurityIncidentDetected counts one committed
// identity.user.security_incident.v1; kind is the event's kind, one of
// SecurityIncidentKinds.
func (m *Metrics) SecurityIncidentDetected(ctx context.Context, kind string) {
	if m == nil {
		return
	}
	m.SecurityIncident.Add(ctx, 1, metric.WithAttributes(AttrKind.String(kind)))
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

// RetentionDeleted counts n rows of kind (one of RetentionKinds) deleted
// by the retention sweeper.
func (m *Metrics) RetentionDeleted(ctx context.Context, kind string, n int) {
	if m == nil {
		return
	}
	m.RetentionDeletedRows.Add(ctx, int64(n), metric.WithAttributes(AttrKind.String(kind)))
}

// RetentionFailed counts one failed retention sweep of kind (one of
// RetentionKinds).
func (m *Metrics) RetentionFailed(ctx context.Context, kind string) {
	if m == nil {
		return
	}
	m.RetentionFailure.Add(ctx, 1, metric.WithAttributes(AttrKind.String(kind)))
}

// kindCounter creates a counter with a kind attribute and adds 0 for each
// of kinds, so every series exists (and rate() works) before the first event.
func kindCounter(meter metric.Meter, name string, kinds []string, opts ...metric.Int64CounterOption) (metric.Int64Counter, error) {
	c, err := meter.Int64Counter(name, opts...)
	if err != nil {
		return c, err
	}
	for _, kind := range kinds {
		c.Add(context.Background(), 0, metric.WithAttributes(AttrKind.String(kind)))
	}
	return c, nil
}
