package telemetry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestMetricsPrometheusNames records every instrument once and checks the
// series the Prometheus exporter produces, i.e. the mapping documented at
// the Metric* constants.
func TestMetricsPrometheusNames(t *testing.T) {
	p := setup(t, Config{ServiceName: "identity-service"})
	m, err := NewMetrics(p.MeterProvider)
	require.NoError(t, err)

	// Before any lookup the ratio gauge has no value.
	require.NotContains(t, scrape(t, p.MetricsHandler), "identity_access_context_cache_hit_ratio{")

	ctx := context.Background()
	m.RecordLogin(ctx, 150*time.Millisecond, OutcomeSuccess)
	m.RecordLogin(ctx, 250*time.Millisecond, OutcomeInvalidCredentials)
	m.SessionRevoked(ctx, "logout")
	m.SessionRevoked(ctx, "replay")
	m.DeviceBound(ctx)
	m.AccessContextCacheLookup(ctx, true)
	m.AccessContextCacheLookup(ctx, true)
	m.AccessContextCacheLookup(ctx, true)
	m.AccessContextCacheLookup(ctx, false)
	m.SecurityIncidentDetected(ctx, "refresh_replay")
	m.SecurityIncidentDetected(ctx, "refresh_replay")
	m.SecurityIncidentDetected(ctx, "webauthn_counter_regression")
	m.ObserveOutbox(func(context.Context) (OutboxBacklog, error) {
		return OutboxBacklog{Pending: 3, OldestAge: 1500 * time.Millisecond}, nil
	})
	m.ObserveActiveKey(func() (time.Duration, bool) { return 90 * time.Second, true })
	m.RetentionDeleted(ctx, "sessions", 1000)
	m.RetentionDeleted(ctx, "sessions", 7)
	m.RetentionFailed(ctx, "inbox")

	body := scrape(t, p.MetricsHandler)

	// The exporter sorts labels by name and adds otel_scope_* labels.
	const scope = `otel_scope_name="` + ScopeName + `",otel_scope_schema_url="",otel_scope_version=""`
	for _, want := range []string{
		`# TYPE identity_login_duration_seconds histogram`,
		`identity_login_duration_seconds_bucket{` + scope + `,outcome="success",le="0.1"} 0`,
		`identity_login_duration_seconds_bucket{` + scope + `,outcome="success",le="0.2"} 1`,
		`identity_login_duration_seconds_bucket{` + scope + `,outcome="invalid_credentials",le="0.2"} 0`,
		`identity_login_duration_seconds_bucket{` + scope + `,outcome="invalid_credentials",le="0.3"} 1`,
		`identity_login_duration_seconds_sum{` + scope + `,outcome="success"} 0.15`,
		`identity_login_duration_seconds_count{` + scope + `,outcome="success"} 1`,

		`# TYPE identity_login_outcome_total counter`,
		`identity_login_outcome_total{` + scope + `,outcome="success"} 1`,
		`identity_login_outcome_total{` + scope + `,outcome="invalid_credentials"} 1`,

		`# TYPE identity_session_revoke_total counter`,
		`identity_session_revoke_total{` + scope + `,reason="logout"} 1`,
		`identity_session_revoke_total{` + scope + `,reason="replay"} 1`,

		`# TYPE identity_device_bind_total counter`,
		`identity_device_bind_total{` + scope + `} 1`,

		`# TYPE identity_access_context_cache_hits_total counter`,
		`identity_access_context_cache_hits_total{` + scope + `} 3`,
		`# TYPE identity_access_context_cache_misses_total counter`,
		`identity_access_context_cache_misses_total{` + scope + `} 1`,
		`# TYPE identity_access_context_cache_hit_ratio gauge`,
		`identity_access_context_cache_hit_ratio{` + scope + `} 0.75`,

		`# TYPE identity_security_incident_total counter`,
		`identity_security_incident_total{kind="refresh_replay",` + scope + `} 2`,
		`identity_security_incident_total{kind="webauthn_counter_regression",` + scope + `} 1`,

		`# TYPE identity_outbox_lag_seconds gauge`,
		`identity_outbox_lag_seconds{` + scope + `} 1.5`,
		`# TYPE identity_outbox_pending gauge`,
		`identity_outbox_pending{` + scope + `} 3`,
		`# TYPE identity_jwks_active_key_age_seconds gauge`,
		`identity_jwks_active_key_age_seconds{` + scope + `} 90`,

		`# TYPE identity_retention_deleted_total counter`,
		`identity_retention_deleted_total{kind="sessions",` + scope + `} 1007`,
		`identity_retention_deleted_total{kind="inbox",` + scope + `} 0`,
		`# TYPE identity_retention_failures_total counter`,
		`identity_retention_failures_total{kind="inbox",` + scope + `} 1`,
		`identity_retention_failures_total{kind="sessions",` + scope + `} 0`,
	} {
		// Not require.Contains: its failure message would print the
		// whole exposition for every miss.
		if !strings.Contains(body, want+"\n") {
			t.Errorf("no line %s", want)
		}
	}
	// No doubled suffixes from names that already end in total/ratio.
	require.NotContains(t, body, "total_total")
	require.NotContains(t, body, "ratio_ratio")
	// otelhttp's http.server.* instruments are not defined here.
	require.NotContains(t, body, "identity_http_server")
}

func TestLoginBucketsAreSeconds(t *testing.T) {
	p := setup(t, Config{ServiceName: "identity-service"})
	m, err := NewMetrics(p.MeterProvider)
	require.NoError(t, err)
	m.RecordLogin(context.Background(), 2*time.Second, OutcomeOverloaded)

	body := scrape(t, p.MetricsHandler)
	for _, le := range loginBuckets {
		require.Contains(t, body, fmt.Sprintf(`le="%g"`, le))
	}
	require.NotContains(t, body, `le="10000"`, "not the SDK's millisecond defaults")
}

// TestObservedGauges: the outbox and signing-key gauges are absent until a
// source is registered, report its value at each scrape, call the outbox
// source once per scrape with a deadline, and are absent while it fails.
func TestObservedGauges(t *testing.T) {
	p := setup(t, Config{ServiceName: "identity-service"})
	m, err := NewMetrics(p.MeterProvider)
	require.NoError(t, err)

	body := scrape(t, p.MetricsHandler)
	for _, kind := range SecurityIncidentKinds {
		require.Regexp(t, `(?m)^identity_security_incident_total\{kind="`+kind+`",[^}]*\} 0$`, body,
			"every kind starts at 0 so the first incident is an increase")
	}
	for _, kind := range RetentionKinds {
		for _, family := range []string{"identity_retention_deleted_total", "identity_retention_failures_total"} {
			require.Regexp(t, `(?m)^`+family+`\{kind="`+kind+`",[^}]*\} 0$`, body,
				"every kind starts at 0 so the first failure is an increase")
		}
	}
	for _, name := range []string{"identity_outbox_lag_seconds{", "identity_outbox_pending{", "identity_jwks_active_key_age_seconds{"} {
		require.NotContains(t, body, name, "no source registered yet")
	}

	// The callbacks run during scrape, which returns after they did, so the
	// test may change these between scrapes without a lock.
	var (
		calls   int
		backlog OutboxBacklog
		fail    error
	)
	m.ObserveOutbox(func(ctx context.Context) (OutboxBacklog, error) {
		calls++
		deadline, ok := ctx.Deadline()
		require.True(t, ok, "the source runs under a deadline")
		require.LessOrEqual(t, time.Until(deadline), sourceTimeout)
		return backlog, fail
	})
	keyAge, keyLoaded := -time.Second, true // a clock step back must not go negative
	m.ObserveActiveKey(func() (time.Duration, bool) { return keyAge, keyLoaded })

	body = scrape(t, p.MetricsHandler)
	require.Equal(t, 1, calls, "one query serves both outbox gauges")
	require.Regexp(t, `(?m)^identity_outbox_lag_seconds\{[^}]*\} 0$`, body, "nothing pending reads as 0")
	require.Regexp(t, `(?m)^identity_outbox_pending\{[^}]*\} 0$`, body)
	require.Regexp(t, `(?m)^identity_jwks_active_key_age_seconds\{[^}]*\} 0$`, body)

	backlog = OutboxBacklog{Pending: 250, OldestAge: 75 * time.Second}
	keyAge = 100 * 24 * time.Hour
	body = scrape(t, p.MetricsHandler)
	require.Regexp(t, `(?m)^identity_outbox_lag_seconds\{[^}]*\} 75$`, body)
	require.Regexp(t, `(?m)^identity_outbox_pending\{[^}]*\} 250$`, body)
	require.Regexp(t, `(?m)^identity_jwks_active_key_age_seconds\{[^}]*\} 8\.64e\+06$`, body)

	fail = errors.New("database down")
	keyLoaded = false
	body = scrape(t, p.MetricsHandler)
	require.NotContains(t, body, "identity_outbox_lag_seconds{", "a failed read is absent, not 0")
	require.NotContains(t, body, "identity_outbox_pending{")
	require.NotContains(t, body, "identity_jwks_active_key_age_seconds{")
	require.NotContains(t, body, "promhttp_metric_handler_errors_total{cause=\"gathering\"} 1",
		"a failing source does not fail the scrape")

	m.ObserveOutbox(nil)
	m.ObserveActiveKey(nil)
	before := calls
	body = scrape(t, p.MetricsHandler)
	require.Equal(t, before, calls, "nil unregisters the source")
	require.NotContains(t, body, "identity_outbox_lag_seconds{")
}

func TestNilMetrics(t *testing.T) {
	var m *Metrics
	require.NotPanics(t, func() {
		ctx := context.Background()
		m.SecurityIncidentDetected(ctx, "refresh_replay")
		m.ObserveOutbox(func(context.Context) (OutboxBacklog, error) { return OutboxBacklog{}, nil })
		m.ObserveActiveKey(func() (time.Duration, bool) { return 0, true })
		m.RetentionDeleted(ctx, "sessions", 3)
		m.RetentionFailed(ctx, "sessions")
	})
}

// documentedRow is one line of the name tables in metrics.go's doc comment.
type documentedRow struct {
	family string   // e.g. identity_login_duration_seconds
	labels []string // documented label names, without the open-set "…"
}

var (
	docRowRE    = regexp.MustCompile(`(?m)^//\t\S.*?\s+→ (\S+)$`)
	docSeriesRE = regexp.MustCompile(`^([a-z_:]+?)(_\{[a-z,]+\})?(\{[^}]*\})?$`)
)

// documentedRows parses the tables of metrics.go (deploy/prometheus's rules
// test reads them the same way).
func documentedRows(t *testing.T) []documentedRow {
	t.Helper()
	src, err := os.ReadFile("metrics.go")
	require.NoError(t, err)
	var rows []documentedRow
	for _, m := range docRowRE.FindAllStringSubmatch(string(src), -1) {
		parts := docSeriesRE.FindStringSubmatch(m[1])
		require.NotNil(t, parts, "unparsable series %q", m[1])
		row := documentedRow{family: parts[1]}
		for l := range strings.SplitSeq(strings.Trim(parts[3], "{}"), ",") {
			if l != "" && l != "…" {
				row.labels = append(row.labels, l)
			}
		}
		rows = append(rows, row)
	}
	require.NotEmpty(t, rows)
	return rows
}

// TestDocumentedSeries: the identity_* rows of the doc comment are exactly
// the families the exporter serves, with exactly the documented labels
// (besides otel_scope_* and a histogram's le).
func TestDocumentedSeries(t *testing.T) {
	p := setup(t, Config{ServiceName: "identity-service"})
	m, err := NewMetrics(p.MeterProvider)
	require.NoError(t, err)
	ctx := context.Background()
	m.RecordLogin(ctx, time.Second, OutcomeSuccess)
	m.SessionRevoked(ctx, "logout")
	m.SecurityIncidentDetected(ctx, "refresh_replay")
	m.DeviceBound(ctx)
	m.AccessContextCacheLookup(ctx, true)
	m.AccessContextCacheLookup(ctx, false)
	m.ObserveOutbox(func(context.Context) (OutboxBacklog, error) { return OutboxBacklog{}, nil })
	m.ObserveActiveKey(func() (time.Duration, bool) { return time.Hour, true })
	m.RetentionDeleted(ctx, "sessions", 2)
	m.RetentionFailed(ctx, "inbox")
	body := scrape(t, p.MetricsHandler)

	served := map[string]bool{}
	for _, mt := range regexp.MustCompile(`(?m)^# TYPE (identity_\S+) `).FindAllStringSubmatch(body, -1) {
		served[mt[1]] = true
	}
	documented := map[string]bool{}
	sample := regexp.MustCompile(`(?m)^([a-z_:]+)\{([^}]*)\} `)
	for _, row := range documentedRows(t) {
		if !strings.HasPrefix(row.family, "identity_") {
			continue
		}
		documented[row.family] = true
		want := slices.Sorted(slices.Values(row.labels))
		seen := false
		for _, s := range sample.FindAllStringSubmatch(body, -1) {
			if s[1] != row.family && strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(s[1], "_bucket"), "_sum"), "_count") != row.family {
				continue
			}
			seen = true
			var got []string
			for kv := range strings.SplitSeq(s[2], ",") {
				name, _, _ := strings.Cut(kv, "=")
				if name != "le" && !strings.HasPrefix(name, "otel_scope_") {
					got = append(got, name)
				}
			}
			slices.Sort(got)
			require.Equal(t, want, got, "labels of %s", s[1])
		}
		require.True(t, seen, "documented %s is not served", row.family)
	}
	require.Equal(t, served, documented, "every served identity_* family is documented and vice versa")
}
