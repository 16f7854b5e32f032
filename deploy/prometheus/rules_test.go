// Package prometheus holds identity-service's Prometheus rules and the
// tests that stand in for `promtool check rules` and `promtool test rules`:
// the file parses, every PromQL expression is valid, every alert carries
// what on-call needs and links to a runbook section that exists, every
// expression selects only series identity-service documents (and so
// exports), and every alert fires on the failure it describes and stays
// quiet on a healthy service. It is a module of its own so the service's
// module does not depend on Prometheus.
package prometheus

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"
	"github.com/stretchr/testify/require"
)

const (
	rulesFile  = "identity-service.rules.yml"
	runbook    = "../../docs/OPERATIONS.md"
	metricsDoc = "../../telemetry/metrics.go"
	runbookURL = "https://github.com/ghasi-ehealth/identity-service/blob/main/docs/OPERATIONS.md#"
)

// severities are the values alert routing knows.
var severities = []string{"page", "ticket"}

// promqlParser accepts standard PromQL only (no experimental functions).
var promqlParser = parser.NewParser(parser.Options{})

func loadRules(t *testing.T) *rulefmt.RuleGroups {
	t.Helper()
	// Legacy name validation: the rules must also load on Prometheus 2.
	groups, errs := rulefmt.ParseFile(rulesFile, false, model.LegacyValidation, promqlParser, slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Error(err)
	}
	require.Empty(t, errs, "%s does not load", rulesFile)
	return groups
}

func alerts(groups *rulefmt.RuleGroups) []rulefmt.Rule {
	var out []rulefmt.Rule
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" {
				out = append(out, r)
			}
		}
	}
	return out
}

func TestRulesLoad(t *testing.T) {
	groups := loadRules(t)
	names := map[string]bool{}
	for _, r := range alerts(groups) {
		names[r.Alert] = true
	}
	for _, want := range []string{"IdentityLoginLatencyHigh", "Identity5xxRatioHigh", "IdentityOutboxRelayLagging",
		"IdentityRefreshReplayIncidents", "IdentityJWKSRotationOverdue", "IdentityRetentionFailing"} {
		require.True(t, names[want], "alert %s is missing", want)
	}
}

func TestAlertsCarryRoutingAndRunbook(t *testing.T) {
	anchors := markdownAnchors(t, runbook)
	for _, r := range alerts(loadRules(t)) {
		t.Run(r.Alert+"/"+r.Labels["severity"], func(t *testing.T) {
			require.Contains(t, severities, r.Labels["severity"], "labels.severity")
			for _, a := range []string{"summary", "description", "runbook_url"} {
				require.NotEmpty(t, strings.TrimSpace(r.Annotations[a]), "annotations.%s", a)
			}
			u := r.Annotations["runbook_url"]
			require.True(t, strings.HasPrefix(u, runbookURL), "runbook_url %q is not in docs/OPERATIONS.md", u)
			anchor := strings.TrimPrefix(u, runbookURL)
			require.True(t, anchors[anchor], "docs/OPERATIONS.md has no heading with anchor #%s", anchor)
			require.Equal(t, githubAnchor(r.Alert), anchor, "each alert links to its own section, titled with its name")
		})
	}
}

// markdownAnchors returns the anchors GitHub generates for the headings of a
// Markdown file (fenced code blocks skipped).
func markdownAnchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	src, err := os.ReadFile(path)
	require.NoError(t, err)
	anchors := map[string]bool{}
	seen := map[string]int{}
	fenced := false
	for line := range strings.SplitSeq(string(src), "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
			continue
		}
		if fenced {
			continue
		}
		m := regexp.MustCompile(`^#{1,6}\s+(.*?)\s*#*\s*$`).FindStringSubmatch(line)
		if m == nil {
			continue
		}
		a := githubAnchor(m[1])
		if n := seen[a]; n > 0 {
			anchors[fmt.Sprintf("%s-%d", a, n)] = true
		} else {
			anchors[a] = true
		}
		seen[a]++
	}
	return anchors
}

// githubAnchor is GitHub's heading slug: lower case, punctuation other than
// '-' and '_' removed, each space a '-'.
func githubAnchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

func TestGithubAnchor(t *testing.T) {
	require.Equal(t, "identity5xxratiohigh", githubAnchor("Identity5xxRatioHigh"))
	require.Equal(t, "health-metrics-and-logs", githubAnchor("Health, metrics and logs"))
	require.Equal(t, "identity_argon2_max_concurrency", githubAnchor("`IDENTITY_ARGON2_MAX_CONCURRENCY`"))
}

// series is what the service documents about one exported family.
type series struct {
	labels map[string]bool // documented label names
	open   bool            // the label set is open ("…")
}

var (
	docRowRE    = regexp.MustCompile(`(?m)^//\t\S.*?\s+→ (\S+)$`)
	docSeriesRE = regexp.MustCompile(`^([a-z_:]+?)(?:_\{([a-z,]+)\})?(?:\{([^}]*)\})?$`)
)

// exportedSeries reads the name tables of telemetry/metrics.go ("otel name
// → prometheus_series_{bucket,sum,count}{label,…}") and returns each series
// name the service exports with its labels.
func exportedSeries(t *testing.T) map[string]series {
	t.Helper()
	src, err := os.ReadFile(metricsDoc)
	require.NoError(t, err)
	out := map[string]series{}
	for _, row := range docRowRE.FindAllStringSubmatch(string(src), -1) {
		m := docSeriesRE.FindStringSubmatch(row[1])
		require.NotNil(t, m, "cannot read the series %q in %s", row[1], metricsDoc)
		s := series{labels: map[string]bool{}}
		for l := range strings.SplitSeq(m[3], ",") {
			switch l {
			case "":
			case "…":
				s.open = true
			default:
				s.labels[l] = true
			}
		}
		if m[2] == "" {
			out[m[1]] = s
			continue
		}
		for suffix := range strings.SplitSeq(m[2], ",") {
			sfx := s
			if suffix == "bucket" {
				sfx.labels = maps.Clone(s.labels)
				sfx.labels["le"] = true
			}
			out[m[1]+"_"+suffix] = sfx
		}
	}
	require.Contains(t, out, "identity_login_duration_seconds_bucket", "the tables of %s were not found", metricsDoc)
	return out
}

// alwaysThere are labels every scraped series has.
func alwaysThere(label string) bool {
	return label == "job" || label == "instance" || strings.HasPrefix(label, "otel_scope_")
}

func TestExpressionsSelectExportedSeries(t *testing.T) {
	exported := exportedSeries(t)
	groups := loadRules(t)
	recorded := map[string]bool{}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Record != "" {
				recorded[r.Record] = true
			}
		}
	}
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			name := r.Alert + r.Record
			expr, err := promqlParser.ParseExpr(r.Expr)
			require.NoError(t, err, name)
			selectors := 0
			parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
				vs, ok := node.(*parser.VectorSelector)
				if !ok {
					return nil
				}
				selectors++
				require.NotEmpty(t, vs.Name, "%s: select series by metric name", name)
				if recorded[vs.Name] {
					return nil
				}
				s, ok := exported[vs.Name]
				require.True(t, ok, "%s selects %s, which telemetry/metrics.go does not document as exported", name, vs.Name)
				for _, m := range vs.LabelMatchers {
					if m.Name == labels.MetricName || alwaysThere(m.Name) || s.open {
						continue
					}
					require.True(t, s.labels[m.Name], "%s matches label %q, which %s does not have", name, m.Name, vs.Name)
				}
				return nil
			})
			require.NotZero(t, selectors, name)
		}
	}
}

// TestAlertsFire evaluates the rules on synthetic series, one evaluation a
// minute as Prometheus would, and checks which alerts fire at the end.
func TestAlertsFire(t *testing.T) {
	groups := loadRules(t)
	// A healthy service: 10 req/s, all 200; 5 verified logins a minute, all
	// under 100 ms; empty outbox; a 10-day-old signing key; no incidents.
	// Another service behind the same Prometheus fails every request: its
	// otelhttp series must not count.
	healthy := map[string]string{
		"target":       `target_info{job="identity",instance="a:8080",service_name="identity-service"} 1+0x200`,
		"http":         `http_server_request_duration_seconds_count{job="identity",instance="a:8080",http_response_status_code="200"} 0+600x200`,
		"http5xx":      `http_server_request_duration_seconds_count{job="identity",instance="a:8080",http_response_status_code="500"} 0+0x200`,
		"other-target": `target_info{job="billing",instance="b:8080",service_name="billing-service"} 1+0x200`,
		"other-http":   `http_server_request_duration_seconds_count{job="billing",instance="b:8080",http_response_status_code="500"} 0+600x200`,
		"logins":       loginBuckets("success", 5, 0, 0, 0),
		"outbox":       `identity_outbox_lag_seconds{job="identity",instance="a:8080"} 0+0x200`,
		"key":          `identity_jwks_active_key_age_seconds{job="identity",instance="a:8080"} 864000+60x200`,
		"replay":       `identity_security_incident_total{job="identity",instance="a:8080",kind="refresh_replay"} 0+0x200`,
		"passkey":      `identity_security_incident_total{job="identity",instance="a:8080",kind="webauthn_counter_regression"} 0+0x200`,
		"retention":    `identity_retention_failures_total{job="identity",instance="a:8080",kind="sessions"} 0+0x400`,
	}
	for _, tc := range []struct {
		name   string
		change map[string]string
		at     time.Duration
		want   []string
	}{
		{name: "healthy", at: 2 * time.Hour},

		{name: "slow verified logins", at: 30 * time.Minute,
			change: map[string]string{"logins": loginBuckets("success", 1, 1, 1, 2) + "\n" + loginBuckets("mfa_required", 1, 0, 0, 1)},
			want:   []string{"IdentityLoginLatencyHigh/page"}},
		{name: "slow logins, but too few to tell", at: 30 * time.Minute,
			change: map[string]string{"logins": loginBuckets("success", 0.25, 0.25, 0.25, 0.25)}},
		{name: "only failed logins are slow", at: 30 * time.Minute,
			change: map[string]string{"logins": loginBuckets("success", 5, 0, 0, 0) + "\n" + loginBuckets("invalid_credentials", 0, 0, 10, 10)}},

		{name: "2 % server errors", at: 30 * time.Minute,
			change: map[string]string{"http5xx": `http_server_request_duration_seconds_count{job="identity",instance="a:8080",http_response_status_code="503"} 0+12x200`},
			want:   []string{"Identity5xxRatioHigh/page", "Identity5xxRatioHigh/ticket"}},
		{name: "0.5 % server errors for an hour", at: 75 * time.Minute,
			change: map[string]string{"http5xx": `http_server_request_duration_seconds_count{job="identity",instance="a:8080",http_response_status_code="500"} 0+3x200`},
			want:   []string{"Identity5xxRatioHigh/ticket"}},
		{name: "a few server errors", at: 30 * time.Minute, // 20 in a minute: 0.7 % of 5 minutes
			change: map[string]string{"http5xx": `http_server_request_duration_seconds_count{job="identity",instance="a:8080",http_response_status_code="500"} 0x26 20x3`}},
		{name: "a minute of total failure", at: 30 * time.Minute, // pages while in the 5-minute window
			change: map[string]string{"http5xx": `http_server_request_duration_seconds_count{job="identity",instance="a:8080",http_response_status_code="500"} 0x26 600x3`},
			want:   []string{"Identity5xxRatioHigh/page"}},
		{name: "errors at night, too few requests to page", at: 30 * time.Minute,
			change: map[string]string{
				"http":    `http_server_request_duration_seconds_count{job="identity",instance="a:8080",http_response_status_code="200"} 0+1x200`,
				"http5xx": `http_server_request_duration_seconds_count{job="identity",instance="a:8080",http_response_status_code="500"} 0x20 1x10`,
			}},

		{name: "outbox stuck for 10 minutes", at: 30 * time.Minute,
			change: map[string]string{"outbox": `identity_outbox_lag_seconds{job="identity",instance="a:8080"} 0x19 60+60x10`},
			want:   []string{"IdentityOutboxRelayLagging/page"}},
		{name: "outbox slow for 3 minutes", at: 30 * time.Minute,
			change: map[string]string{"outbox": `identity_outbox_lag_seconds{job="identity",instance="a:8080"} 0x26 90 150 210`}},

		{name: "one refresh replay", at: 30 * time.Minute,
			change: map[string]string{"replay": `identity_security_incident_total{job="identity",instance="a:8080",kind="refresh_replay"} 0x25 1x10`},
			want:   []string{"IdentityRefreshReplayIncidents/ticket"}},
		{name: "a refresh replay an hour ago", at: 90 * time.Minute,
			change: map[string]string{"replay": `identity_security_incident_total{job="identity",instance="a:8080",kind="refresh_replay"} 0x25 1x100`}},
		{name: "burst of refresh replays", at: 30 * time.Minute,
			change: map[string]string{"replay": `identity_security_incident_total{job="identity",instance="a:8080",kind="refresh_replay"} 0x24 0+10x6`},
			want:   []string{"IdentityRefreshReplayIncidents/page", "IdentityRefreshReplayIncidents/ticket"}},

		{name: "passkey counter regression", at: 30 * time.Minute,
			change: map[string]string{"passkey": `identity_security_incident_total{job="identity",instance="a:8080",kind="webauthn_counter_regression"} 0x25 1x10`},
			want:   []string{"IdentityPasskeyCounterRegression/ticket"}},

		{name: "one failed retention sweep", at: 5 * time.Hour,
			change: map[string]string{"retention": `identity_retention_failures_total{job="identity",instance="a:8080",kind="sessions"} 0x60 1x340`}},
		{name: "retention failing every hour", at: 5 * time.Hour,
			change: map[string]string{"retention": `identity_retention_failures_total{job="identity",instance="a:8080",kind="sessions"} 0x60 1x60 2x60 3x60 4x160`},
			want:   []string{"IdentityRetentionFailing/ticket"}},
		{name: "retention failures on two instances add up", at: 5 * time.Hour,
			change: map[string]string{"retention": `identity_retention_failures_total{job="identity",instance="a:8080",kind="inbox"} 0x60 1x60 2x280` + "\n" +
				`identity_retention_failures_total{job="identity",instance="c:8080",kind="inbox"} 0x150 1x250`},
			want: []string{"IdentityRetentionFailing/ticket"}},

		{name: "key 92 days old", at: 2 * time.Hour,
			change: map[string]string{"key": `identity_jwks_active_key_age_seconds{job="identity",instance="a:8080"} 7948800+60x200`}},
		{name: "key 101 days old", at: 2 * time.Hour,
			change: map[string]string{"key": `identity_jwks_active_key_age_seconds{job="identity",instance="a:8080"} 8726400+60x200`},
			want:   []string{"IdentityJWKSRotationOverdue/ticket"}},
		{name: "one instance's keyring is stale", at: 2 * time.Hour,
			change: map[string]string{"key": `identity_jwks_active_key_age_seconds{job="identity",instance="a:8080"} 864000+60x200` + "\n" +
				`identity_jwks_active_key_age_seconds{job="identity",instance="c:8080"} 8726400+60x200`},
			want: []string{"IdentityJWKSRotationOverdue/ticket"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			input := maps.Clone(healthy)
			maps.Copy(input, tc.change)
			got := evaluate(t, groups, slices.Collect(maps.Values(input)), tc.at)
			require.Equal(t, append([]string{}, tc.want...), got)
		})
	}
}

// loginBuckets is the login histogram of one outcome with the given logins
// per minute in each latency band: ≤ 0.1 s, 0.1–0.3 s, 0.3–0.5 s, > 0.5 s.
func loginBuckets(outcome string, fast, medium, slow, slowest float64) string {
	var lines []string
	cum := 0.0
	for i, le := range []string{"0.1", "0.3", "0.5", "+Inf"} {
		cum += []float64{fast, medium, slow, slowest}[i]
		lines = append(lines, fmt.Sprintf(`identity_login_duration_seconds_bucket{job="identity",instance="a:8080",outcome=%q,le=%q} 0+%gx200`, outcome, le, cum))
	}
	lines = append(lines, fmt.Sprintf(`identity_login_duration_seconds_count{job="identity",instance="a:8080",outcome=%q} 0+%gx200`, outcome, cum))
	return strings.Join(lines, "\n")
}

// evaluate loads the series (promqltest "load 1m" syntax: a line per series,
// its first value at time 0) and runs every rule once a minute up to
// `at` as Prometheus's rule manager would: recording rules write their
// results back, alerting rules fire once active for their `for`. It returns
// the alerts firing at `at` as "name/severity", sorted.
func evaluate(t *testing.T, groups *rulefmt.RuleGroups, seriesLines []string, at time.Duration) []string {
	t.Helper()
	db := memSeries{}
	for line := range strings.SplitSeq(strings.Join(seriesLines, "\n"), "\n") {
		lset, values, err := promqlParser.ParseSeriesDesc(line)
		require.NoError(t, err, line)
		for i, v := range values {
			if !v.Omitted {
				db.add(lset, time.Duration(i)*time.Minute, v.Value)
			}
		}
	}
	engine := promql.NewEngine(promql.EngineOpts{
		MaxSamples:    1_000_000,
		Timeout:       time.Minute,
		LookbackDelta: 5 * time.Minute,
		Parser:        promqlParser,
	})
	t.Cleanup(func() { _ = engine.Close() })
	ctx := context.Background()
	queryable := &storage.MockQueryable{MockQuerier: &storage.MockQuerier{SelectMockFunction: db.selectSeries}}
	query := func(expr string, ts time.Time) promql.Vector {
		q, err := engine.NewInstantQuery(ctx, queryable, nil, expr, ts)
		require.NoError(t, err)
		defer q.Close()
		res := q.Exec(ctx)
		require.NoError(t, res.Err, expr)
		vec, err := res.Vector()
		require.NoError(t, err, expr)
		return vec
	}

	type key struct{ group, rule int }
	activeSince := map[key]map[string]time.Time{} // alert → label set → active since
	var firing []string
	for ts := epoch; !ts.After(epoch.Add(at)); ts = ts.Add(time.Minute) {
		firing = firing[:0]
		for gi, g := range groups.Groups {
			for ri, r := range g.Rules {
				vec := query(r.Expr, ts)
				if r.Record != "" {
					for _, s := range vec {
						db.add(labels.NewBuilder(s.Metric).Set(labels.MetricName, r.Record).Labels(), ts.Sub(epoch), s.F)
					}
					continue
				}
				k := key{gi, ri}
				active := map[string]time.Time{}
				for _, s := range vec {
					id := s.Metric.DropMetricName().String()
					since, ok := activeSince[k][id]
					if !ok {
						since = ts
					}
					active[id] = since
					if ts.Sub(since) >= time.Duration(r.For) {
						firing = append(firing, r.Alert+"/"+r.Labels["severity"])
					}
				}
				activeSince[k] = active
			}
		}
	}
	slices.Sort(firing)
	return append([]string{}, slices.Compact(firing)...)
}

var epoch = time.Unix(0, 0).UTC()

// memSeries is an in-memory series store for the PromQL engine (the TSDB
// would pull half of Prometheus's dependencies into this module).
type memSeries map[string]*memEntry

type memEntry struct {
	lset    labels.Labels
	samples []chunks.Sample
}

// add appends a sample at offset from the epoch; a series' offsets must grow.
func (m memSeries) add(lset labels.Labels, offset time.Duration, v float64) {
	k := lset.String()
	e, ok := m[k]
	if !ok {
		e = &memEntry{lset: lset}
		m[k] = e
	}
	e.samples = append(e.samples, floatSample{t: epoch.Add(offset).UnixMilli(), f: v})
}

// selectSeries is storage.Querier.Select: every series matching all
// matchers, sorted by labels.
func (m memSeries) selectSeries(_ bool, _ *storage.SelectHints, matchers ...*labels.Matcher) storage.SeriesSet {
	var out []storage.Series
	for _, k := range slices.Sorted(maps.Keys(m)) {
		e := m[k]
		if !slices.ContainsFunc(matchers, func(mt *labels.Matcher) bool { return !mt.Matches(e.lset.Get(mt.Name)) }) {
			out = append(out, storage.NewListSeries(e.lset, slices.Clone(e.samples)))
		}
	}
	slices.SortFunc(out, func(a, b storage.Series) int { return labels.Compare(a.Labels(), b.Labels()) })
	return &seriesSet{series: out, i: -1}
}

type seriesSet struct {
	series []storage.Series
	i      int
}

func (s *seriesSet) Next() bool                      { s.i++; return s.i < len(s.series) }
func (s *seriesSet) At() storage.Series              { return s.series[s.i] }
func (*seriesSet) Err() error                        { return nil }
func (*seriesSet) Warnings() annotations.Annotations { return nil }

type floatSample struct {
	t int64
	f float64
}

func (s floatSample) T() int64                    { return s.t }
func (floatSample) ST() int64                     { return 0 }
func (s floatSample) F() float64                  { return s.f }
func (floatSample) H() *histogram.Histogram       { return nil }
func (floatSample) FH() *histogram.FloatHistogram { return nil }
func (floatSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s floatSample) Copy() chunks.Sample         { return s }
