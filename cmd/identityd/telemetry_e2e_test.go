package main

// End-to-end tests of the telemetry DESIGN.md names (section Telemetry):
// the login trace (identity.auth.login → identity.session.create) and the
// outbox relay's identity.outbox.publish continuing it through the event's
// traceparent, on SQLite with the in-process bus and on Postgres with NATS
// JetStream; and every named metric on GET /metrics after the action that
// drives it (and not before).
//
// Spans are captured with the SDK's in-memory exporter handed to the
// service through Config.SpanExporter (a test-only hook, exported
// synchronously as each span ends).

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/ghasi-ehealth/identity-service/core/auth"
	"github.com/ghasi-ehealth/identity-service/messaging"
	"github.com/ghasi-ehealth/identity-service/messaging/eventtest"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
	"github.com/ghasi-ehealth/identity-service/telemetry"
)

// startTracedService starts a service whose spans all land in the returned
// in-memory exporter.
func startTracedService(t *testing.T, env map[string]string) (*testService, *tracetest.InMemoryExporter) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	s := startServiceWith(t, env, func(c *Config) { c.SpanExporter = exp })
	return s, exp
}

// loginTrace is what one traced password login produced.
type loginTrace struct {
	sessionID, userID string
	login, create     tracetest.SpanStub
}

// tracedLogin logs adminA in through POST /api/v1/auth/login with an
// incoming W3C traceparent and checks the span tree: the request's trace
// continues into identity.auth.login, whose child is identity.session.create.
func tracedLogin(t *testing.T, s *testService, exp *tracetest.InMemoryExporter) loginTrace {
	t.Helper()
	require.Empty(t, spansNamed(exp, auth.SpanLogin), "no login before the one under test")

	var raw [24]byte
	_, err := rand.Read(raw[:])
	require.NoError(t, err)
	callerTrace, err := trace.TraceIDFromHex(hex.EncodeToString(raw[:16]))
	require.NoError(t, err)
	callerSpan, err := trace.SpanIDFromHex(hex.EncodeToString(raw[16:]))
	require.NoError(t, err)
	header := http.Header{
		"X-Forwarded-For": {randomIP(t)},
		"Traceparent":     {fmt.Sprintf("00-%s-%s-01", callerTrace, callerSpan)},
	}
	var tr tokenResponseDoc
	s.callWith(t, http.MethodPost, "/api/v1/auth/login", "", map[string]any{"email": adminAEmail, "password": goodPassword}, header).
		decode(t, http.StatusOK, &tr)

	// Spans are exported as they end, before the response is written.
	logins := spansNamed(exp, auth.SpanLogin)
	require.Len(t, logins, 1, "one %s span per login", auth.SpanLogin)
	login := logins[0]
	require.Equal(t, callerTrace, login.SpanContext.TraceID(), "the login continues the caller's trace (W3C traceparent)")
	require.True(t, login.Parent.IsValid(), "the login span has the HTTP server span as parent")
	require.Contains(t, attrs(login), "outcome="+telemetry.OutcomeSuccess)

	var create tracetest.SpanStub
	for _, sp := range spansNamed(exp, auth.SpanSessionCreate) {
		if sp.SpanContext.TraceID() == login.SpanContext.TraceID() {
			create = sp
		}
	}
	require.True(t, create.SpanContext.IsValid(), "an %s span in the login's trace", auth.SpanSessionCreate)
	require.Equal(t, login.SpanContext.SpanID(), create.Parent.SpanID(), "%s is a child of %s", auth.SpanSessionCreate, auth.SpanLogin)
	require.Equal(t, login.SpanContext.TraceID(), create.Parent.TraceID())

	return loginTrace{sessionID: s.decodeJWT(t, tr.AccessToken).sessionID(), userID: tr.User.ID, login: login, create: create}
}

// requireEventTraced checks that the stored envelope of eventType about
// subject carries a traceparent naming the login's trace (and the
// session.create span that wrote it), and waits for the relay's publish
// span of that event, which must belong to (or link to) the same trace.
// It returns the event's envelope.
func requireEventTraced(t *testing.T, s *testService, exp *tracetest.InMemoryExporter, lt loginTrace, eventType, subject string) messaging.Envelope {
	t.Helper()
	env := s.eventFor(t, eventType, subject)
	require.NotEmpty(t, env.TraceParent, "%s stores the traceparent of the request", eventType)
	stored := spanContextOf(t, env.TraceParent)
	require.Equal(t, lt.login.SpanContext.TraceID(), stored.TraceID(), "%s's traceparent names the login trace", eventType)
	require.Equal(t, lt.create.SpanContext.SpanID(), stored.SpanID(), "%s's traceparent names the span that wrote it, not %q",
		eventType, spanNameOf(exp, stored.SpanID()))
	require.True(t, stored.IsSampled())

	var publish tracetest.SpanStub
	require.Eventually(t, func() bool {
		for _, sp := range spansNamed(exp, messaging.PublishSpanName) {
			if attrs(sp)["messaging.message.id"] == env.ID {
				publish = sp
				return true
			}
		}
		return false
	}, 10*time.Second, 20*time.Millisecond, "the relay publishes %s (%s) with a span", eventType, env.ID)
	require.Equal(t, trace.SpanKindProducer, publish.SpanKind)
	require.Equal(t, eventType, attrs(publish)["messaging.destination.name"])
	require.True(t, tracedBy(publish, lt.login.SpanContext.TraceID(), lt.create.SpanContext.SpanID()),
		"%s of %s belongs or links to the login trace %s; parent %s, links %v",
		messaging.PublishSpanName, eventType, lt.login.SpanContext.TraceID(), publish.Parent.TraceID(), publish.Links)
	require.Equal(t, 1, s.count(t, `SELECT count(*) FROM events WHERE id = ? AND published_at IS NOT NULL`, env.ID),
		"the relay marked %s published", eventType)
	return env
}

// TestTelemetryLoginTrace: on SQLite with the in-process bus, a password
// login is one trace from the HTTP request through identity.auth.login and
// identity.session.create to the relay's identity.outbox.publish of both
// login events.
func TestTelemetryLoginTrace(t *testing.T) {
	s, exp := startTracedService(t, withTrustedProxy(baseEnv(t)))
	newWorld(t, s)
	lt := tracedLogin(t, s, exp)
	requireEventTraced(t, s, exp, lt, auth.EventSessionCreated, lt.sessionID)
	requireEventTraced(t, s, exp, lt, auth.EventLoggedIn, lt.userID)
}

// TestTelemetryTraceThroughNATS: on Postgres with NATS JetStream the
// envelope that reaches the broker still names the login's trace.
func TestTelemetryTraceThroughNATS(t *testing.T) {
	nc, err := nats.Connect(dbtest.NATSURL(), nats.Timeout(2*time.Second))
	dbtest.NeedServer(t, "NATS", err)
	defer nc.Close()
	env := withTrustedProxy(postgresEnv(t))
	env["IDENTITY_NATS_URL"] = dbtest.NATSURL()
	s, exp := startTracedService(t, env)
	newWorld(t, s)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	js, err := jetstream.New(nc)
	require.NoError(t, err)
	since := time.Now().Add(-time.Second) // see TestPostgresAndNATS
	consumer, err := js.OrderedConsumer(ctx, messaging.StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{auth.EventSessionCreated},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &since,
	})
	require.NoError(t, err)

	lt := tracedLogin(t, s, exp)
	stored := requireEventTraced(t, s, exp, lt, auth.EventSessionCreated, lt.sessionID)
	requireEventTraced(t, s, exp, lt, auth.EventLoggedIn, lt.userID)

	// Other tests share the stream; wait for this login's event.
	for {
		msg, err := consumer.Next(jetstream.FetchMaxWait(10 * time.Second))
		require.NoError(t, err, "the session.created event reaches JetStream")
		got, err := messaging.ParseEnvelope(msg.Data())
		require.NoError(t, err)
		if got.ID != stored.ID {
			continue
		}
		eventtest.RequireValid(t, msg.Data())
		require.Equal(t, stored.TraceParent, got.TraceParent, "the traceparent survives the relay to NATS")
		require.Equal(t, lt.login.SpanContext.TraceID(), spanContextOf(t, got.TraceParent).TraceID())
		break
	}
}

// TestTelemetryMetrics: every metric DESIGN.md names is on /metrics after
// the action that drives it, and absent (or zero) before.
func TestTelemetryMetrics(t *testing.T) {
	s := startService(t, withTrustedProxy(baseEnv(t)))
	w := newWorld(t, s)
	scope := map[string]string{"otel_scope_name": telemetry.ScopeName}
	with := func(extra map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range scope {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	success := with(map[string]string{"outcome": telemetry.OutcomeSuccess})
	logout := with(map[string]string{"reason": "logout"})

	// Before anything: none of the service's own series has a value.
	m := scrapeMetrics(t, s)
	m.requireZero(t, "identity_login_outcome_total", success)
	m.requireZero(t, "identity_login_duration_seconds_count", success)
	m.requireZero(t, "identity_session_revoke_total", logout)
	m.requireZero(t, "identity_device_bind_total", scope)
	m.requireZero(t, "identity_access_context_cache_hit_ratio", scope)

	// identity.login.duration and identity.login.outcome after a login.
	c := s.from(t)
	tr := c.mustLogin(t, adminAEmail, goodPassword, nil)
	m = scrapeMetrics(t, s)
	require.Equal(t, 1.0, m.requirePositive(t, "identity_login_outcome_total", success))
	require.Equal(t, 1.0, m.requirePositive(t, "identity_login_duration_seconds_count", success))
	m.requirePositive(t, "identity_login_duration_seconds_sum", success)
	m.requirePositive(t, "identity_login_duration_seconds_bucket", with(map[string]string{"outcome": telemetry.OutcomeSuccess, "le": "+Inf"}))
	m.requireZero(t, "identity_session_revoke_total", logout)

	// A failed login counts under its own outcome, not as a success.
	requireProblem(t, c.login(t, adminAEmail, "not the password at all", nil), http.StatusUnauthorized, "IDENT_INVALID_CREDENTIALS")
	m = scrapeMetrics(t, s)
	require.Equal(t, 1.0, m.requirePositive(t, "identity_login_outcome_total", success))
	m.requirePositive(t, "identity_login_outcome_total", with(map[string]string{"outcome": telemetry.OutcomeInvalidCredentials}))

	// identity.session.revoke.total after logout.
	res := c.do(t, http.MethodPost, "/api/v1/auth/logout", tr.AccessToken, map[string]any{"refreshToken": tr.RefreshToken})
	require.Equal(t, http.StatusNoContent, res.Status, "body: %s", res.Body)
	m = scrapeMetrics(t, s)
	require.Equal(t, 1.0, m.requirePositive(t, "identity_session_revoke_total", logout))

	// identity.device.bind.total after binding a device for offline use:
	// register, admin trust, bind-offline.
	nurse := s.createUserREST(t, w.tokA, map[string]any{"email": "nurse@clinic-a.example.org", "firstName": "N", "lastName": "Urse"})
	s.verifyEmail(t, nurse.ID, goodPassword)
	nurseTok := s.tokenFor(t, "nurse@clinic-a.example.org")
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	spki, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	require.NoError(t, err)
	var dev struct{ ID, Status string }
	s.call(t, http.MethodPost, "/api/v1/me/devices", nurseTok, map[string]any{"fingerprint": "fp-telemetry",
		"publicKey": string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: spki})), "name": "Tablet", "platform": "android"}).
		decode(t, http.StatusCreated, &dev)
	s.call(t, http.MethodPost, "/api/v1/devices/"+dev.ID+"/trust", w.tokA, nil).decode(t, http.StatusOK, &dev)
	require.Equal(t, "trusted", dev.Status)
	scrapeMetrics(t, s).requireZero(t, "identity_device_bind_total", scope)
	var binding struct{ Certificate string }
	s.call(t, http.MethodPost, "/api/v1/me/devices/"+dev.ID+"/bind-offline", nurseTok, nil).decode(t, http.StatusOK, &binding)
	require.NotEmpty(t, binding.Certificate)
	require.Equal(t, 1.0, scrapeMetrics(t, s).requirePositive(t, "identity_device_bind_total", scope))

	// identity.access_context.cache_hit_ratio after GET /me/access-context
	// twice: a miss (ratio 0), then a hit (ratio 1/2).
	var ac accessContextDoc
	s.call(t, http.MethodGet, "/api/v1/me/access-context", w.tokA, nil).decode(t, http.StatusOK, &ac)
	require.Equal(t, w.adminA.ID, ac.UserID)
	m = scrapeMetrics(t, s)
	require.Equal(t, 0.0, m.requireSeries(t, "identity_access_context_cache_hit_ratio", scope), "one miss")
	require.Equal(t, 1.0, m.requirePositive(t, "identity_access_context_cache_misses_total", scope))
	m.requireZero(t, "identity_access_context_cache_hits_total", scope)
	s.call(t, http.MethodGet, "/api/v1/me/access-context", w.tokA, nil).decode(t, http.StatusOK, &ac)
	m = scrapeMetrics(t, s)
	require.Equal(t, 0.5, m.requirePositive(t, "identity_access_context_cache_hit_ratio", scope), "one miss, one hit")
	require.Equal(t, 1.0, m.requirePositive(t, "identity_access_context_cache_hits_total", scope))
}

// --- spans ---

// spansNamed returns the exported spans called name, in the order they ended.
func spansNamed(exp *tracetest.InMemoryExporter, name string) []tracetest.SpanStub {
	var out []tracetest.SpanStub
	for _, sp := range exp.GetSpans() {
		if sp.Name == name {
			out = append(out, sp)
		}
	}
	return out
}

// spanNameOf is the name of the exported span id ("" when none).
func spanNameOf(exp *tracetest.InMemoryExporter, id trace.SpanID) string {
	for _, sp := range exp.GetSpans() {
		if sp.SpanContext.SpanID() == id {
			return sp.Name
		}
	}
	return ""
}

// attrs renders a span's attributes as key → value strings; the key
// "k=v" is also present (for Contains checks).
func attrs(sp tracetest.SpanStub) map[string]string {
	out := map[string]string{}
	for _, kv := range sp.Attributes {
		out[string(kv.Key)] = kv.Value.Emit()
		out[string(kv.Key)+"="+kv.Value.Emit()] = ""
	}
	return out
}

// tracedBy reports whether sp continues traceID under spanID, as its
// parent or through one of its links.
func tracedBy(sp tracetest.SpanStub, traceID trace.TraceID, spanID trace.SpanID) bool {
	if sp.Parent.TraceID() == traceID && sp.Parent.SpanID() == spanID {
		return true
	}
	for _, l := range sp.Links {
		if l.SpanContext.TraceID() == traceID && l.SpanContext.SpanID() == spanID {
			return true
		}
	}
	return false
}

// spanContextOf parses a W3C traceparent.
func spanContextOf(t *testing.T, traceparent string) trace.SpanContext {
	t.Helper()
	ctx := propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier{"traceparent": traceparent})
	sc := trace.SpanContextFromContext(ctx)
	require.True(t, sc.IsValid(), "valid traceparent %q", traceparent)
	return sc
}

// --- metrics ---

// promSample is one line of the Prometheus text exposition.
type promSample struct {
	name   string
	labels map[string]string
	value  float64
}

type promSamples []promSample

// scrapeMetrics reads GET /metrics (text format 0.0.4) into samples.
func scrapeMetrics(t *testing.T, s *testService) promSamples {
	t.Helper()
	res, err := http.Get(s.baseURL + "/metrics")
	require.NoError(t, err)
	defer res.Body.Close()
	require.Equal(t, http.StatusOK, res.StatusCode)
	body, err := io.ReadAll(res.Body)
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(res.Header.Get("Content-Type"), "text/plain"), res.Header.Get("Content-Type"))
	var out promSamples
	for line := range strings.SplitSeq(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		sm, err := parsePromLine(line)
		require.NoError(t, err, "line %q", line)
		out = append(out, sm)
	}
	require.NotEmpty(t, out)
	return out
}

// parsePromLine parses `name{l="v",…} value [timestamp]`; label values may
// contain the escapes \\, \" and \n, and commas, braces or spaces.
func parsePromLine(line string) (promSample, error) {
	sm := promSample{labels: map[string]string{}}
	i := strings.IndexAny(line, "{ ")
	if i <= 0 {
		return sm, fmt.Errorf("no metric name")
	}
	sm.name, line = line[:i], line[i:]
	if line[0] == '{' {
		line = line[1:]
		for {
			line = strings.TrimLeft(line, " ,")
			if strings.HasPrefix(line, "}") {
				line = line[1:]
				break
			}
			eq := strings.Index(line, `="`)
			if eq <= 0 {
				return sm, fmt.Errorf("malformed label at %q", line)
			}
			name := line[:eq]
			line = line[eq+2:]
			var v strings.Builder
			closed := false
			for j := 0; j < len(line); j++ {
				switch c := line[j]; {
				case c == '\\' && j+1 < len(line):
					j++
					switch line[j] {
					case 'n':
						v.WriteByte('\n')
					default:
						v.WriteByte(line[j])
					}
				case c == '"':
					line, closed = line[j+1:], true
				default:
					v.WriteByte(c)
				}
				if closed {
					break
				}
			}
			if !closed {
				return sm, fmt.Errorf("unterminated label value of %s", name)
			}
			sm.labels[name] = v.String()
		}
	}
	fields := strings.Fields(line)
	if len(fields) < 1 || len(fields) > 2 {
		return sm, fmt.Errorf("expected value [timestamp], got %q", line)
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return sm, err
	}
	sm.value = v
	return sm, nil
}

// matching returns the samples of name whose labels include want.
func (ss promSamples) matching(name string, want map[string]string) []promSample {
	var out []promSample
outer:
	for _, sm := range ss {
		if sm.name != name {
			continue
		}
		for k, v := range want {
			if sm.labels[k] != v {
				continue outer
			}
		}
		out = append(out, sm)
	}
	return out
}

// requireSeries requires exactly one series of name with labels and returns its value.
func (ss promSamples) requireSeries(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	got := ss.matching(name, labels)
	require.Len(t, got, 1, "one series %s%v on /metrics; series of that name: %v", name, labels, ss.matching(name, nil))
	return got[0].value
}

// requirePositive requires exactly one series of name with labels, with a
// value above zero, and returns the value.
func (ss promSamples) requirePositive(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	v := ss.requireSeries(t, name, labels)
	require.Greater(t, v, 0.0, "%s%v", name, labels)
	return v
}

// requireZero requires every series of name with labels to be absent or zero.
func (ss promSamples) requireZero(t *testing.T, name string, labels map[string]string) {
	t.Helper()
	for _, sm := range ss.matching(name, labels) {
		require.Zero(t, sm.value, "%s%v before the action that drives it", name, sm.labels)
	}
}
