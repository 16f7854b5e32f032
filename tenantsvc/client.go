// Package tenantsvc is the HTTP client for tenant-service (CONTRACT.md §7),
// the remote adapter of the tenant directory used when
// IDENTITY_TENANT_SERVICE_URL is set. Client implements core.MembershipReader
// and tenancy.Hierarchy.
//
// Every call has an overall time budget (Options.Timeout, 2 s by default)
// that also covers its retry, so a call never takes longer than the budget.
// Calls sit behind one circuit breaker (sony/gobreaker/v2) shared by both
// endpoints: after Options.BreakerFailures consecutive failed calls it opens
// and answers IDENT_UNAVAILABLE immediately, without a request, until
// Options.BreakerOpenFor has passed; then a single trial call decides
// whether it closes again.
//
// Error mapping: 404 → IDENT_NOT_FOUND; timeouts, 5xx, connection errors,
// malformed or oversized bodies and an open breaker → IDENT_UNAVAILABLE;
// any other 4xx → IDENT_INTERNAL (a bug on our side, it does not trip the
// breaker). A call abandoned by its caller (context cancelled or its
// deadline passed) returns IDENT_UNAVAILABLE wrapping the context error and
// is not counted by the breaker.
package tenantsvc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/ghasi-ehealth/identity-service/core"
)

// Defaults applied by New for zero Options fields.
const (
	DefaultTimeout         = 2 * time.Second
	DefaultRetries         = 1
	DefaultRetryBackoff    = 50 * time.Millisecond
	DefaultBreakerFailures = 5
	DefaultBreakerOpenFor  = 30 * time.Second

	// MaxResponseBytes bounds a response body; a larger body is treated
	// as malformed (IDENT_UNAVAILABLE).
	MaxResponseBytes = 1 << 20

	instrumentationName = "github.com/ghasi-ehealth/identity-service/tenantsvc"
)

// Options configures a Client. Zero values take the defaults above.
type Options struct {
	// HTTPClient sends the requests; nil means a new http.Client without a
	// client-level timeout (the per-call budget is enforced by context).
	HTTPClient *http.Client
	// Timeout is the overall budget of one call, retry included (2 s).
	Timeout time.Duration
	// Retries is how many times a failed GET is retried after a transient
	// failure (connection error, 5xx) while budget remains: 0 means the
	// default (1), a negative value disables retries.
	Retries int
	// RetryBackoff is the mean wait before a retry; the actual wait is
	// jittered uniformly in [RetryBackoff/2, 3*RetryBackoff/2) (50 ms).
	RetryBackoff time.Duration
	// BreakerFailures is the number of consecutive failed calls that opens
	// the breaker (5).
	BreakerFailures uint32
	// BreakerOpenFor is how long the breaker stays open before it lets a
	// trial call through (half-open) (30 s).
	BreakerOpenFor time.Duration
	// Logger receives breaker state changes and malformed responses; nil
	// discards them.
	Logger *slog.Logger
	// TracerProvider, when set, starts a client span per call. W3C trace
	// context headers (traceparent/tracestate) are injected from the call's
	// context either way.
	TracerProvider trace.TracerProvider
}

// Client calls tenant-service. It is safe for concurrent use.
type Client struct {
	base       *url.URL
	http       *http.Client
	timeout    time.Duration
	retries    int
	backoff    time.Duration
	log        *slog.Logger
	tracer     trace.Tracer // nil without a TracerProvider
	propagator propagation.TextMapPropagator
	cb         *gobreaker.CircuitBreaker[[]byte]
}

// New returns a Client for the tenant-service at baseURL (an absolute http
// or https URL; a path prefix is kept).
func New(baseURL string, opts Options) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("tenantsvc: invalid base URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("tenantsvc: base URL %q must be an absolute http(s) URL", baseURL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawPath, u.RawQuery, u.Fragment = "", "", ""

	c := &Client{
		base:       u,
		http:       opts.HTTPClient,
		timeout:    opts.Timeout,
		retries:    opts.Retries,
		backoff:    opts.RetryBackoff,
		log:        opts.Logger,
		propagator: propagation.TraceContext{},
	}
	if c.http == nil {
		c.http = &http.Client{}
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	switch {
	case c.retries == 0:
		c.retries = DefaultRetries
	case c.retries < 0:
		c.retries = 0
	}
	if c.backoff <= 0 {
		c.backoff = DefaultRetryBackoff
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("component", "tenantsvc")
	if opts.TracerProvider != nil {
		c.tracer = opts.TracerProvider.Tracer(instrumentationName)
	}
	failures := opts.BreakerFailures
	if failures == 0 {
		failures = DefaultBreakerFailures
	}
	openFor := opts.BreakerOpenFor
	if openFor <= 0 {
		openFor = DefaultBreakerOpenFor
	}
	c.cb = gobreaker.NewCircuitBreaker[[]byte](gobreaker.Settings{
		Name:        "tenant-service",
		MaxRequests: 1,
		Timeout:     openFor,
		ReadyToTrip: func(counts gobreaker.Counts) bool {
			return counts.ConsecutiveFailures >= failures
		},
		IsSuccessful: breakerSuccess,
		IsExcluded:   func(err error) bool { return errors.As(err, new(*callerGoneError)) },
		OnStateChange: func(name string, from, to gobreaker.State) {
			c.log.Warn("circuit breaker state changed", "breaker", name, "from", from.String(), "to", to.String())
		},
	})
	return c, nil
}

// callerGoneError marks a call abandoned by its caller; the breaker ignores it.
type callerGoneError struct{ err error }

func (e *callerGoneError) Error() string { return "tenantsvc: call abandoned: " + e.err.Error() }
func (e *callerGoneError) Unwrap() error { return e.err }

// breakerSuccess reports whether err leaves tenant-service healthy in the
// breaker's eyes: an answer (even 404 or another 4xx) is a success.
func breakerSuccess(err error) bool {
	return err == nil || core.IsKind(err, core.KindNotFound) || core.IsKind(err, core.KindInternal)
}

// get performs GET path (already escaped) behind the breaker with retries,
// and hands a 2xx body to decode inside the breaker so that a malformed body
// counts as a failure. what names the resource for IDENT_NOT_FOUND.
func (c *Client) get(ctx context.Context, op, path, what string, decode func([]byte) error) error {
	if err := ctx.Err(); err != nil {
		return core.Unavailable(&callerGoneError{err: err})
	}
	if c.tracer != nil {
		var span trace.Span
		ctx, span = c.tracer.Start(ctx, "tenantsvc."+op,
			trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(
				attribute.String("http.request.method", http.MethodGet),
				attribute.String("server.address", c.base.Host),
				attribute.String("url.path", c.base.Path+path),
			))
		defer span.End()
		err := c.execute(ctx, op, path, what, decode)
		if err != nil && !core.IsKind(err, core.KindNotFound) {
			span.RecordError(err)
			span.SetStatus(codes.Error, core.CodeOf(err))
		}
		return err
	}
	return c.execute(ctx, op, path, what, decode)
}

func (c *Client) execute(ctx context.Context, op, path, what string, decode func([]byte) error) error {
	_, err := c.cb.Execute(func() ([]byte, error) {
		body, err := c.fetch(ctx, path, what)
		if err != nil {
			return nil, err
		}
		if err := decode(body); err != nil {
			c.log.WarnContext(ctx, "malformed tenant-service response", "op", op, "path", path, "error", err)
			return nil, core.Unavailable(fmt.Errorf("tenantsvc: malformed response from %s: %w", path, err))
		}
		return body, nil
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		return core.Unavailable(fmt.Errorf("tenantsvc: %w", err))
	}
	var ce *core.Error
	if errors.As(err, &ce) {
		return ce
	}
	return core.Unavailable(err)
}

// fetch runs the attempts of one call within the call's time budget.
func (c *Client) fetch(ctx context.Context, path, what string) ([]byte, error) {
	callCtx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var lastErr error
	for attempt := 0; attempt <= c.retries; attempt++ {
		if attempt > 0 {
			if !c.wait(callCtx) {
				break
			}
		}
		body, retry, err := c.attempt(callCtx, path, what)
		if err == nil {
			return body, nil
		}
		lastErr = err
		if !retry || callCtx.Err() != nil {
			break
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, core.Unavailable(&callerGoneError{err: err})
	}
	if callCtx.Err() != nil {
		return nil, core.Unavailable(fmt.Errorf("tenantsvc: no answer within %s: %w", c.timeout, lastErrOr(lastErr, callCtx.Err())))
	}
	return nil, lastErr
}

func lastErrOr(err, fallback error) error {
	if err != nil {
		return err
	}
	return fallback
}

// wait sleeps the jittered backoff; it reports false when ctx ends first or
// the remaining budget cannot cover the wait.
func (c *Client) wait(ctx context.Context) bool {
	d := c.backoff/2 + rand.N(c.backoff)
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= d {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// attempt sends one GET; retry reports whether the failure is transient.
func (c *Client) attempt(ctx context.Context, path, what string) (body []byte, retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+path, nil)
	if err != nil {
		return nil, false, core.Internal(fmt.Errorf("tenantsvc: build request: %w", err))
	}
	req.Header.Set("Accept", "application/json")
	c.propagator.Inject(ctx, propagation.HeaderCarrier(req.Header))

	resp, err := c.http.Do(req)
	if err != nil {
		return nil, true, core.Unavailable(fmt.Errorf("tenantsvc: GET %s: %w", path, err))
	}
	defer resp.Body.Close()
	limited := io.LimitReader(resp.Body, MaxResponseBytes+1)

	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
		b, err := io.ReadAll(limited)
		if err != nil {
			return nil, true, core.Unavailable(fmt.Errorf("tenantsvc: read %s: %w", path, err))
		}
		if len(b) > MaxResponseBytes {
			return nil, false, core.Unavailable(fmt.Errorf("tenantsvc: response from %s exceeds %d bytes", path, MaxResponseBytes))
		}
		return b, false, nil
	case code == http.StatusNotFound:
		drain(limited)
		return nil, false, core.NotFound(what)
	case code >= 500:
		drain(limited)
		return nil, true, core.Unavailable(fmt.Errorf("tenantsvc: GET %s: status %d", path, code))
	case code >= 400:
		drain(limited)
		return nil, false, core.Internal(fmt.Errorf("tenantsvc: GET %s: status %d", path, code))
	default:
		drain(limited)
		return nil, false, core.Unavailable(fmt.Errorf("tenantsvc: GET %s: unexpected status %d", path, code))
	}
}

// drain reads what is left of a (bounded) body so the connection is reused.
func drain(r io.Reader) { _, _ = io.Copy(io.Discard, r) }
