package telemetry

import (
	"context"
	"fmt"
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
