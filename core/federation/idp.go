package federation

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/zitadel/oidc/v3/pkg/client/rp"

	"github.com/ghasi-ehealth/identity-service/core"
)

// Circuit-breaker defaults (CONTRACT.md §4: 5 consecutive failures open it;
// half-open after 30 s).
const (
	DefaultFailureThreshold = 5
	DefaultOpenTimeout      = 30 * time.Second
)

// errIdPDown marks an operation that failed because the IdP did not answer
// properly (transport error or 5xx); only these count against the breaker.
var errIdPDown = errors.New("federation: identity provider unreachable")

// errCallerGone marks an operation cut short because the caller's own
// context ended (a client that disconnected): it says nothing about the IdP
// and is neither a failure nor a success for the breaker.
var errCallerGone = errors.New("federation: caller gone")

// ErrCircuitOpen is the cause of IDENT_FEDERATION_UNAVAILABLE while a
// provider's breaker is open.
var ErrCircuitOpen = errors.New("federation: circuit open")

func unavailable(cause error) *core.Error {
	return core.Wrap(cause, core.KindUnavailable, core.CodeFederationUnavailable,
		"the identity provider is unavailable; try again later")
}

// healthProbe records, for one operation, whether any HTTP exchange with the
// IdP failed at the transport or answered 5xx. It travels in the request
// context, so the error classification never depends on error texts.
type healthProbe struct{ failed atomic.Bool }

type probeKey struct{}

func withProbe(ctx context.Context) (context.Context, *healthProbe) {
	p := &healthProbe{}
	return context.WithValue(ctx, probeKey{}, p), p
}

// probingTransport marks the probe of the request's context.
type probingTransport struct{ base http.RoundTripper }

func (t probingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil || resp.StatusCode >= http.StatusInternalServerError {
		if p, ok := req.Context().Value(probeKey{}).(*healthProbe); ok {
			p.failed.Store(true)
		}
	}
	return resp, err
}

// probingClient returns a copy of c whose transport feeds health probes.
func probingClient(c *http.Client) *http.Client {
	out := *c
	base := c.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	out.Transport = probingTransport{base: base}
	return &out
}

// relyingParty is a discovered provider, cached until its configuration changes.
type relyingParty struct {
	rp      rp.RelyingParty
	version time.Time
}

// idps holds one breaker and the last discovered relying party per provider.
type idps struct {
	threshold uint32
	timeout   time.Duration

	mu       sync.Mutex
	breakers map[string]*gobreaker.CircuitBreaker[any]
	parties  map[string]relyingParty
}

func newIdPs(threshold int, timeout time.Duration) *idps {
	if threshold <= 0 {
		threshold = DefaultFailureThreshold
	}
	if timeout <= 0 {
		timeout = DefaultOpenTimeout
	}
	return &idps{
		threshold: uint32(threshold), timeout: timeout,
		breakers: map[string]*gobreaker.CircuitBreaker[any]{},
		parties:  map[string]relyingParty{},
	}
}

func (d *idps) breaker(providerID string) *gobreaker.CircuitBreaker[any] {
	d.mu.Lock()
	defer d.mu.Unlock()
	cb, ok := d.breakers[providerID]
	if !ok {
		cb = gobreaker.NewCircuitBreaker[any](gobreaker.Settings{
			Name:        "oidc:" + providerID,
			MaxRequests: 1,
			Timeout:     d.timeout,
			ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= d.threshold },
			// Only an IdP that does not answer counts; a rejected code or
			// token is the user's problem, not the provider's.
			IsSuccessful: func(err error) bool { return err == nil || !errors.Is(err, errIdPDown) },
			IsExcluded:   func(err error) bool { return errors.Is(err, errCallerGone) },
		})
		d.breakers[providerID] = cb
	}
	return cb
}

// open reports whether the provider's breaker rejects calls right now.
func (d *idps) open(providerID string) bool {
	return d.breaker(providerID).State() == gobreaker.StateOpen
}

// callIdP runs op through the provider's breaker. op's failure is an IdP
// failure when its probe saw a transport error or a 5xx (or it timed out);
// that yields IDENT_FEDERATION_UNAVAILABLE, as does an open breaker. A
// failure after ctx itself ended (the client went away) is not counted
// either way and also yields IDENT_FEDERATION_UNAVAILABLE. Other failures
// are returned as they are.
func callIdP[T any](ctx context.Context, d *idps, providerID string, op func(ctx context.Context) (T, error)) (T, error) {
	var zero T
	out, err := d.breaker(providerID).Execute(func() (any, error) {
		pctx, probe := withProbe(ctx)
		r, err := op(pctx)
		if err != nil && ctx.Err() != nil {
			return nil, errors.Join(errCallerGone, err)
		}
		if err != nil && (probe.failed.Load() || errors.Is(err, context.DeadlineExceeded)) {
			return nil, errors.Join(errIdPDown, err)
		}
		return r, err
	})
	switch {
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		return zero, unavailable(errors.Join(ErrCircuitOpen, err))
	case errors.Is(err, errIdPDown), errors.Is(err, errCallerGone):
		return zero, unavailable(err)
	case err != nil:
		return zero, err
	}
	r, _ := out.(T) // an op returning (nil, nil) yields the zero T
	return r, nil
}

func (d *idps) cached(providerID string, version time.Time) (rp.RelyingParty, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.parties[providerID]
	if !ok || !c.version.Equal(version) {
		return nil, false
	}
	return c.rp, true
}

func (d *idps) remember(providerID string, version time.Time, r rp.RelyingParty) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.parties[providerID] = relyingParty{rp: r, version: version}
}

func (d *idps) forget(providerID string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.parties, providerID)
}
