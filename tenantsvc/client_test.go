package tenantsvc

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/require"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/ghasi-ehealth/identity-service/core"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		url     string
		wantErr bool
	}{
		{"http", "http://tenant-service:8080", false},
		{"https with prefix and slash", "https://tenant.example/api/", false},
		{"empty", "", true},
		{"relative", "/internal", true},
		{"no scheme", "tenant-service:8080", true},
		{"other scheme", "ftp://tenant-service", true},
		{"unparsable", "http://[::1", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.url, Options{})
			if tt.wantErr {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, DefaultTimeout, c.timeout)
			require.Equal(t, DefaultRetries, c.retries)
			require.False(t, strings.HasSuffix(c.base.Path, "/"))
		})
	}
}

func TestBasePathPrefixIsKept(t *testing.T) {
	fake, srv := newFake(t)
	node := core.NewID()
	var path atomic.Value
	fake.setOverride(func(w http.ResponseWriter, r *http.Request) {
		path.Store(r.URL.Path)
		body(`{"ancestors":[]}`)(w, r)
	})
	c, err := New(srv.URL+"/tenant/", Options{HTTPClient: srv.Client()})
	require.NoError(t, err)
	require.NoError(t, callAncestors(c, node))
	require.Equal(t, "/tenant/internal/hierarchy/nodes/"+node+"/ancestors", path.Load())
}

func TestStatusMapping(t *testing.T) {
	tests := []struct {
		name     string
		handler  http.HandlerFunc
		retries  int
		wantKind core.Kind
		requests int32
	}{
		{"500 is retried once then unavailable", status(http.StatusInternalServerError), 0, core.KindUnavailable, 2},
		{"503 with retries disabled", status(http.StatusServiceUnavailable), -1, core.KindUnavailable, 1},
		{"502 with two retries", status(http.StatusBadGateway), 2, core.KindUnavailable, 3},
		{"404 is not found, not retried", status(http.StatusNotFound), 0, core.KindNotFound, 1},
		{"400 is internal, not retried", status(http.StatusBadRequest), 0, core.KindInternal, 1},
		{"403 is internal", status(http.StatusForbidden), 0, core.KindInternal, 1},
		{"429 is internal", status(http.StatusTooManyRequests), 0, core.KindInternal, 1},
		{"304 is unavailable", status(http.StatusNotModified), 0, core.KindUnavailable, 1},
		{"oversized body", body(`{"ancestors":[],"pad":"` + strings.Repeat("x", MaxResponseBytes) + `"}`), 0, core.KindUnavailable, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, srv := newFake(t)
			fake.setOverride(tt.handler)
			c, _ := newClient(t, srv, func(o *Options) { o.Retries = tt.retries })
			err := callAncestors(c, core.NewID())
			requireKind(t, err, tt.wantKind)
			require.Equal(t, tt.requests, fake.requests.Load())
		})
	}
}

func TestRetrySucceedsAfterTransientFailure(t *testing.T) {
	fake, srv := newFake(t)
	var calls atomic.Int32
	fake.setOverride(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		body(`{"ancestors":[]}`)(w, r)
	})
	c, _ := newClient(t, srv, nil)
	got, err := c.Ancestors(context.Background(), core.NewID())
	require.NoError(t, err)
	require.Empty(t, got)
	require.Equal(t, int32(2), fake.requests.Load())
}

func TestConnectionErrorIsUnavailable(t *testing.T) {
	_, srv := newFake(t)
	c, _ := newClient(t, srv, nil)
	srv.Close()
	requireKind(t, callAncestors(c, core.NewID()), core.KindUnavailable)
	_, err := c.MembershipsOfUser(context.Background(), core.NewID())
	requireKind(t, err, core.KindUnavailable)
}

func TestSlowResponseTimesOut(t *testing.T) {
	fake, srv := newFake(t)
	fake.setOverride(hang)
	const timeout = 200 * time.Millisecond
	c, _ := newClient(t, srv, func(o *Options) { o.Timeout = timeout })

	start := time.Now()
	err := callAncestors(c, core.NewID())
	elapsed := time.Since(start)
	requireKind(t, err, core.KindUnavailable)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	require.GreaterOrEqual(t, elapsed, timeout)
	// The fake answers a hung request by itself after 5 s (with a body the
	// client refuses): ending long before that means the budget ended the
	// call. That the budget covers the retry is the request count: a budget
	// per attempt would have sent a second request after the first timed out.
	require.Less(t, elapsed, 4*time.Second, "ended by the budget, not by the fake's own answer")
	require.Equal(t, int32(1), fake.requests.Load(), "no retry once the budget is spent: the budget covers the retry")
	require.Equal(t, uint32(1), c.cb.Counts().ConsecutiveFailures, "a timeout counts against the breaker")
}

func TestBreaker(t *testing.T) {
	fake, srv := newFake(t)
	fake.setOverride(status(http.StatusInternalServerError))
	// openFor is long enough that the checks made while the breaker is
	// open are done before it half-opens, even on a stalled machine; the
	// waits for half-open poll, so the test takes about 2 × openFor. The
	// budget is long so that an open breaker that waited for it instead of
	// answering at once would be far outside the bound checked below.
	const openFor = 2 * time.Second
	c, logs := newClient(t, srv, func(o *Options) { o.BreakerOpenFor = openFor; o.Timeout = 30 * time.Second })
	node := core.NewID()

	var opened time.Time
	for i := range DefaultBreakerFailures {
		if i == DefaultBreakerFailures-1 {
			opened = time.Now() // before the call that opens the breaker
		}
		requireKind(t, callAncestors(c, node), core.KindUnavailable)
	}
	require.Equal(t, int32(2*DefaultBreakerFailures), fake.requests.Load(), "each failed call retried once")
	require.Equal(t, gobreaker.StateOpen, c.cb.State())
	require.Contains(t, logs.String(), "circuit breaker state changed")

	// Open: the 6th call answers at once without a request, on any endpoint.
	start := time.Now()
	err := callAncestors(c, node)
	require.Less(t, time.Since(start), time.Second, "answered without waiting (the budget is 30 s)")
	require.Equal(t, int32(2*DefaultBreakerFailures), fake.requests.Load(), "no request while open")
	requireKind(t, err, core.KindUnavailable)
	require.Equal(t, core.CodeUnavailable, core.CodeOf(err))
	require.ErrorIs(t, err, gobreaker.ErrOpenState)
	_, err = c.MembershipsOfUser(context.Background(), core.NewID())
	require.ErrorIs(t, err, gobreaker.ErrOpenState)
	require.Equal(t, int32(2*DefaultBreakerFailures), fake.requests.Load())

	// Half-open after the delay, not before: a failed trial opens it again.
	requireHalfOpenAfter(t, c, opened, openFor)
	reopened := time.Now()
	requireKind(t, callAncestors(c, node), core.KindUnavailable)
	require.Equal(t, gobreaker.StateOpen, c.cb.State())
	before := fake.requests.Load()
	require.ErrorIs(t, callAncestors(c, node), gobreaker.ErrOpenState)
	require.Equal(t, before, fake.requests.Load())

	// Half-open again: a successful trial closes it.
	fake.setOverride(nil)
	fake.setAncestors(node, `{"nodeId":"`+node+`","ancestors":[]}`)
	requireHalfOpenAfter(t, c, reopened, openFor)
	require.NoError(t, callAncestors(c, node))
	require.Equal(t, gobreaker.StateClosed, c.cb.State())
	require.NoError(t, callAncestors(c, node))
}

// requireHalfOpenAfter waits for c's breaker to turn half-open and requires
// that this happened no earlier than openFor after since (a time taken
// before the call that opened it).
func requireHalfOpenAfter(t *testing.T, c *Client, since time.Time, openFor time.Duration) {
	t.Helper()
	require.Eventually(t, func() bool { return c.cb.State() == gobreaker.StateHalfOpen },
		openFor+10*time.Second, 10*time.Millisecond, "the breaker half-opens after BreakerOpenFor")
	require.GreaterOrEqual(t, time.Since(since), openFor, "the breaker stayed open for BreakerOpenFor")
}

func TestAnswersDoNotTripTheBreaker(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
	}{
		{"404", status(http.StatusNotFound)},
		{"400", status(http.StatusBadRequest)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, srv := newFake(t)
			fake.setOverride(tt.handler)
			c, _ := newClient(t, srv, func(o *Options) { o.BreakerFailures = 2 })
			for range 5 {
				require.Error(t, callAncestors(c, core.NewID()))
			}
			require.Equal(t, gobreaker.StateClosed, c.cb.State())
			require.Equal(t, int32(5), fake.requests.Load())
		})
	}
}

func TestBreakerThresholdIsConfigurable(t *testing.T) {
	fake, srv := newFake(t)
	fake.setOverride(status(http.StatusInternalServerError))
	c, _ := newClient(t, srv, func(o *Options) { o.BreakerFailures = 2; o.Retries = -1 })
	require.Error(t, callAncestors(c, core.NewID()))
	require.Equal(t, gobreaker.StateClosed, c.cb.State())
	require.Error(t, callAncestors(c, core.NewID()))
	require.Equal(t, gobreaker.StateOpen, c.cb.State())
	require.Equal(t, int32(2), fake.requests.Load())
}

func TestContextCancellation(t *testing.T) {
	t.Run("cancelled while waiting", func(t *testing.T) {
		fake, srv := newFake(t)
		arrived := make(chan struct{}, 1)
		fake.setOverride(func(w http.ResponseWriter, r *http.Request) {
			select {
			case arrived <- struct{}{}:
			default:
			}
			hang(w, r)
		})
		c, _ := newClient(t, srv, func(o *Options) { o.Timeout = 30 * time.Second; o.BreakerFailures = 1 })
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			// Cancel once the request is waiting at the fake.
			select {
			case <-arrived:
				cancel()
			case <-ctx.Done():
			}
		}()

		start := time.Now()
		_, err := c.Ancestors(ctx, core.NewID())
		// Neither the 30 s budget nor the fake's own answer after 5 s ended it.
		require.Less(t, time.Since(start), 4*time.Second, "the cancellation ends the call")
		requireKind(t, err, core.KindUnavailable)
		require.ErrorIs(t, err, context.Canceled)
		require.Equal(t, int32(1), fake.requests.Load(), "no retry for a cancelled call")
		require.Equal(t, gobreaker.StateClosed, c.cb.State(), "a cancelled call is not a failure")
	})

	t.Run("caller deadline shorter than the budget", func(t *testing.T) {
		fake, srv := newFake(t)
		fake.setOverride(hang)
		c, _ := newClient(t, srv, func(o *Options) { o.Timeout = 2 * time.Second; o.BreakerFailures = 1 })
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := c.MembershipsOfUser(ctx, core.NewID())
		requireKind(t, err, core.KindUnavailable)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.Equal(t, gobreaker.StateClosed, c.cb.State())
	})

	t.Run("already cancelled makes no request", func(t *testing.T) {
		fake, srv := newFake(t)
		c, _ := newClient(t, srv, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := c.NodeTenantID(ctx, core.NewID())
		requireKind(t, err, core.KindUnavailable)
		require.ErrorIs(t, err, context.Canceled)
		require.Zero(t, fake.requests.Load())
	})
}

func TestTraceContextIsForwarded(t *testing.T) {
	parentTP := sdktrace.NewTracerProvider()
	t.Cleanup(func() { _ = parentTP.Shutdown(context.Background()) })

	tests := []struct {
		name       string
		withTP     bool
		withParent bool
	}{
		{"client span under the caller's span", true, true},
		{"client span as a new root", true, false},
		{"no tracer provider: the caller's context is forwarded", false, true},
		{"nothing to forward", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake, srv := newFake(t)
			node := core.NewID()
			fake.setAncestors(node, `{"nodeId":"`+node+`","ancestors":[]}`)
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
			t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			c, _ := newClient(t, srv, func(o *Options) {
				if tt.withTP {
					o.TracerProvider = tp
				}
			})

			ctx := context.Background()
			var parent trace.SpanContext
			if tt.withParent {
				var span trace.Span
				ctx, span = parentTP.Tracer("test").Start(ctx, "caller")
				defer span.End()
				parent = span.SpanContext()
			}
			_, err := c.Ancestors(ctx, node)
			require.NoError(t, err)

			traceparent := fake.lastHeader().Get("traceparent")
			if !tt.withTP && !tt.withParent {
				require.Empty(t, traceparent)
				return
			}
			parts := strings.Split(traceparent, "-")
			require.Len(t, parts, 4, "traceparent %q", traceparent)
			if tt.withParent {
				require.Equal(t, parent.TraceID().String(), parts[1])
			}
			if !tt.withTP {
				require.Equal(t, parent.SpanID().String(), parts[2])
				return
			}
			spans := rec.Ended()
			require.Len(t, spans, 1)
			require.Equal(t, "tenantsvc.Ancestors", spans[0].Name())
			require.Equal(t, trace.SpanKindClient, spans[0].SpanKind())
			require.Equal(t, spans[0].SpanContext().TraceID().String(), parts[1])
			require.Equal(t, spans[0].SpanContext().SpanID().String(), parts[2])
		})
	}
}

func TestFailedCallMarksSpan(t *testing.T) {
	fake, srv := newFake(t)
	fake.setOverride(status(http.StatusInternalServerError))
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	c, _ := newClient(t, srv, func(o *Options) { o.TracerProvider = tp })
	require.Error(t, callAncestors(c, core.NewID()))
	spans := rec.Ended()
	require.Len(t, spans, 1)
	require.Equal(t, core.CodeUnavailable, spans[0].Status().Description)
}
