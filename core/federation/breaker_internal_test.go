package federation

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
)

func (f *fixture) breakerState(p Provider) gobreaker.State {
	return f.svc.idps.breaker(p.ID).State()
}

// Discovery answering 503 counts against the provider's breaker: five
// failures open it, then Start answers at once without the IdP; after
// OpenTimeout one trial call goes through and its success closes it.
func TestStartBreakerOpensAndRecovers(t *testing.T) {
	f := newFixture(t)
	p := f.seedProvider(t, f.tenantA, "okta", f.idp.issuer())
	in := StartInput{TenantID: f.tenantA, Slug: "okta"}
	f.idp.discoveryStatus.Store(http.StatusServiceUnavailable)

	for i := range DefaultFailureThreshold {
		require.Equal(t, gobreaker.StateClosed, f.breakerState(p), "call %d", i)
		_, err := f.svc.Start(context.Background(), in)
		requireCode(t, core.CodeFederationUnavailable, err)
		require.ErrorIs(t, err, errIdPDown)
		require.NotErrorIs(t, err, ErrCircuitOpen)
	}
	require.Equal(t, int32(DefaultFailureThreshold), f.idp.discoveryHits.Load())
	require.Equal(t, gobreaker.StateOpen, f.breakerState(p))

	// Open: refused without contacting the IdP, even once it is back.
	f.idp.discoveryStatus.Store(0)
	for range 3 {
		_, err := f.svc.Start(context.Background(), in)
		requireCode(t, core.CodeFederationUnavailable, err)
		require.ErrorIs(t, err, ErrCircuitOpen)
	}
	require.Equal(t, int32(DefaultFailureThreshold), f.idp.discoveryHits.Load())
	require.Zero(t, f.flows.len(), "no flow is started")

	// Half-open after OpenTimeout: the trial call reaches the IdP and closes it.
	time.Sleep(2 * f.svc.idps.timeout)
	require.Equal(t, gobreaker.StateHalfOpen, f.breakerState(p))
	to, err := f.svc.Start(context.Background(), in)
	require.NoError(t, err)
	require.NotEmpty(t, to)
	require.Equal(t, int32(DefaultFailureThreshold+1), f.idp.discoveryHits.Load())
	require.Equal(t, gobreaker.StateClosed, f.breakerState(p))

	// Closed again: every Start reaches the IdP.
	_, err = f.svc.Start(context.Background(), in)
	require.NoError(t, err)
	require.Equal(t, int32(DefaultFailureThreshold+2), f.idp.discoveryHits.Load())
}

// A failed half-open trial opens the breaker again at once.
func TestStartBreakerHalfOpenFailureReopens(t *testing.T) {
	f := newFixture(t)
	p := f.seedProvider(t, f.tenantA, "okta", f.idp.issuer())
	in := StartInput{TenantID: f.tenantA, Slug: "okta"}
	f.idp.discoveryStatus.Store(http.StatusBadGateway)
	for range DefaultFailureThreshold {
		_, err := f.svc.Start(context.Background(), in)
		requireCode(t, core.CodeFederationUnavailable, err)
	}
	require.Equal(t, gobreaker.StateOpen, f.breakerState(p))

	time.Sleep(2 * f.svc.idps.timeout)
	_, err := f.svc.Start(context.Background(), in)
	requireCode(t, core.CodeFederationUnavailable, err)
	require.Equal(t, int32(DefaultFailureThreshold+1), f.idp.discoveryHits.Load(), "the trial reached the IdP")
	require.Equal(t, gobreaker.StateOpen, f.breakerState(p))

	_, err = f.svc.Start(context.Background(), in)
	require.ErrorIs(t, err, ErrCircuitOpen)
	require.Equal(t, int32(DefaultFailureThreshold+1), f.idp.discoveryHits.Load())
}

// An IdP that cannot be reached at all counts like a 5xx.
func TestStartBreakerUnreachableIdP(t *testing.T) {
	f := newFixture(t)
	down := newFakeIdP(t, false)
	down.srv.Close()
	p := f.seedProvider(t, f.tenantA, "okta", down.issuer())
	in := StartInput{TenantID: f.tenantA, Slug: "okta"}
	for range DefaultFailureThreshold {
		_, err := f.svc.Start(context.Background(), in)
		requireCode(t, core.CodeFederationUnavailable, err)
		require.ErrorIs(t, err, errIdPDown)
	}
	require.Equal(t, gobreaker.StateOpen, f.breakerState(p))
	_, err := f.svc.Start(context.Background(), in)
	requireCode(t, core.CodeFederationUnavailable, err)
	require.ErrorIs(t, err, ErrCircuitOpen)
}

// Breakers are per provider: one IdP down does not block another.
func TestStartBreakerIsPerProvider(t *testing.T) {
	f := newFixture(t)
	down := newFakeIdP(t, false)
	down.discoveryStatus.Store(http.StatusServiceUnavailable)
	bad := f.seedProvider(t, f.tenantA, "down", down.issuer())
	good := f.seedProvider(t, f.tenantA, "up", f.idp.issuer())
	for range DefaultFailureThreshold {
		_, err := f.svc.Start(context.Background(), StartInput{TenantID: f.tenantA, Slug: "down"})
		requireCode(t, core.CodeFederationUnavailable, err)
	}
	require.Equal(t, gobreaker.StateOpen, f.breakerState(bad))
	_, err := f.svc.Start(context.Background(), StartInput{TenantID: f.tenantA, Slug: "up"})
	require.NoError(t, err)
	require.Equal(t, gobreaker.StateClosed, f.breakerState(good))
}

// FailureThreshold configures how many failures open the breaker.
func TestStartBreakerThreshold(t *testing.T) {
	f := newFixtureWith(t, func(c *Config) { c.FailureThreshold = 2 })
	p := f.seedProvider(t, f.tenantA, "okta", f.idp.issuer())
	f.idp.discoveryStatus.Store(http.StatusInternalServerError)
	for range 2 {
		_, err := f.svc.Start(context.Background(), StartInput{TenantID: f.tenantA, Slug: "okta"})
		requireCode(t, core.CodeFederationUnavailable, err)
	}
	require.Equal(t, gobreaker.StateOpen, f.breakerState(p))
}

// A discovery document that answers (200) but is unusable makes Start
// unavailable, yet the IdP answered: it does not open the breaker.
func TestStartWrongDiscoveryDocumentDoesNotTrip(t *testing.T) {
	cases := map[string]func(idp *fakeIdP){
		"issuer mismatch": func(idp *fakeIdP) { idp.wrongIssuer.Store(true) },
		"404":             func(idp *fakeIdP) { idp.discoveryStatus.Store(http.StatusNotFound) },
	}
	for name, setup := range cases {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			p := f.seedProvider(t, f.tenantA, "okta", f.idp.issuer())
			setup(f.idp)
			for range 2 * DefaultFailureThreshold {
				_, err := f.svc.Start(context.Background(), StartInput{TenantID: f.tenantA, Slug: "okta"})
				requireCode(t, core.CodeFederationUnavailable, err)
				require.NotErrorIs(t, err, errIdPDown)
				require.NotErrorIs(t, err, ErrCircuitOpen)
			}
			require.Equal(t, int32(2*DefaultFailureThreshold), f.idp.discoveryHits.Load())
			require.Equal(t, gobreaker.StateClosed, f.breakerState(p))
		})
	}
}

// --- callIdP directly -------------------------------------------------------

var errUser = errors.New("invalid_grant: the code is wrong")

func TestCallIdPOtherFailuresDoNotCount(t *testing.T) {
	d := newIdPs(3, time.Hour)
	for range 10 {
		_, err := callIdP(context.Background(), d, "p1", func(context.Context) (int, error) { return 0, errUser })
		require.ErrorIs(t, err, errUser)
		require.NotErrorIs(t, err, errIdPDown)
		require.NotEqual(t, core.CodeFederationUnavailable, core.CodeOf(err))
	}
	require.False(t, d.open("p1"))
	require.Equal(t, gobreaker.StateClosed, d.breaker("p1").State())
	require.Zero(t, d.breaker("p1").Counts().ConsecutiveFailures)
}

func TestCallIdPProbeMarksFailures(t *testing.T) {
	d := newIdPs(3, time.Hour)
	markProbe := func(ctx context.Context) (string, error) {
		p, ok := ctx.Value(probeKey{}).(*healthProbe)
		require.True(t, ok, "op gets a context with a probe")
		p.failed.Store(true)
		return "", errors.New("boom")
	}
	for i := range 3 {
		require.False(t, d.open("p1"), "call %d", i)
		_, err := callIdP(context.Background(), d, "p1", markProbe)
		requireCode(t, core.CodeFederationUnavailable, err)
		require.ErrorIs(t, err, errIdPDown)
	}
	require.True(t, d.open("p1"))
	called := false
	_, err := callIdP(context.Background(), d, "p1", func(context.Context) (string, error) {
		called = true
		return "ok", nil
	})
	requireCode(t, core.CodeFederationUnavailable, err)
	require.ErrorIs(t, err, ErrCircuitOpen)
	require.False(t, called, "an open breaker never runs op")
	require.False(t, d.open("p2"), "other providers are not affected")
}

// A probe marked by a call that still succeeds is no failure.
func TestCallIdPMarkedButSuccessful(t *testing.T) {
	d := newIdPs(1, time.Hour)
	got, err := callIdP(context.Background(), d, "p1", func(ctx context.Context) (string, error) {
		ctx.Value(probeKey{}).(*healthProbe).failed.Store(true)
		return "discovered", nil
	})
	require.NoError(t, err)
	require.Equal(t, "discovered", got)
	require.False(t, d.open("p1"))
}

func TestCallIdPTimeoutCounts(t *testing.T) {
	d := newIdPs(2, time.Hour)
	for range 2 {
		_, err := callIdP(context.Background(), d, "p1", func(ctx context.Context) (int, error) {
			ctx, cancel := context.WithTimeout(ctx, time.Millisecond)
			defer cancel()
			<-ctx.Done()
			return 0, ctx.Err()
		})
		requireCode(t, core.CodeFederationUnavailable, err)
		require.ErrorIs(t, err, context.DeadlineExceeded)
	}
	require.True(t, d.open("p1"))
}

// A caller that goes away mid-call (its context canceled, with the probe
// marked by the aborted round trip) counts neither way.
func TestCallIdPCallerGoneDoesNotCount(t *testing.T) {
	d := newIdPs(2, time.Hour)
	for range 5 {
		ctx, cancel := context.WithCancel(context.Background())
		_, err := callIdP(ctx, d, "p1", func(ctx context.Context) (int, error) {
			ctx.Value(probeKey{}).(*healthProbe).failed.Store(true)
			cancel()
			return 0, ctx.Err()
		})
		requireCode(t, core.CodeFederationUnavailable, err)
		require.ErrorIs(t, err, errCallerGone)
		require.NotErrorIs(t, err, errIdPDown)
	}
	require.False(t, d.open("p1"))
	require.Zero(t, d.breaker("p1").Counts().ConsecutiveFailures)
	require.Zero(t, d.breaker("p1").Counts().ConsecutiveSuccesses)
}

// Only one trial call runs while half-open; a success closes the breaker.
func TestCallIdPHalfOpen(t *testing.T) {
	d := newIdPs(1, 20*time.Millisecond)
	fail := func(ctx context.Context) (int, error) {
		ctx.Value(probeKey{}).(*healthProbe).failed.Store(true)
		return 0, errors.New("503")
	}
	_, err := callIdP(context.Background(), d, "p1", fail)
	requireCode(t, core.CodeFederationUnavailable, err)
	require.True(t, d.open("p1"))
	time.Sleep(50 * time.Millisecond)
	require.False(t, d.open("p1"), "half-open lets a trial through")

	release := make(chan struct{})
	done := make(chan error)
	go func() {
		_, err := callIdP(context.Background(), d, "p1", func(context.Context) (int, error) {
			<-release
			return 1, nil
		})
		done <- err
	}()
	require.Eventually(t, func() bool { return d.breaker("p1").Counts().Requests == 1 }, time.Second, time.Millisecond)
	_, err = callIdP(context.Background(), d, "p1", func(context.Context) (int, error) { return 2, nil })
	requireCode(t, core.CodeFederationUnavailable, err)
	require.ErrorIs(t, err, ErrCircuitOpen, "a second call during the trial is refused")
	require.ErrorIs(t, err, gobreaker.ErrTooManyRequests)
	close(release)
	require.NoError(t, <-done)
	require.Equal(t, gobreaker.StateClosed, d.breaker("p1").State())
}

// A non-IdP failure of the half-open trial shows the IdP answered: it
// closes the breaker.
func TestCallIdPHalfOpenOtherFailureCloses(t *testing.T) {
	d := newIdPs(1, 20*time.Millisecond)
	_, _ = callIdP(context.Background(), d, "p1", func(ctx context.Context) (int, error) {
		ctx.Value(probeKey{}).(*healthProbe).failed.Store(true)
		return 0, errors.New("503")
	})
	require.True(t, d.open("p1"))
	time.Sleep(50 * time.Millisecond)
	_, err := callIdP(context.Background(), d, "p1", func(context.Context) (int, error) { return 0, errUser })
	require.ErrorIs(t, err, errUser)
	require.Equal(t, gobreaker.StateClosed, d.breaker("p1").State())
}

// The probing transport marks transport errors and 5xx answers of requests
// carrying a probe, and nothing else.
func TestProbingTransport(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/500":
			w.WriteHeader(http.StatusInternalServerError)
		case "/503":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/400":
			w.WriteHeader(http.StatusBadRequest)
		case "/404":
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()

	c := probingClient(&http.Client{Timeout: 2 * time.Second})
	cases := []struct {
		url    string
		failed bool
	}{
		{srv.URL + "/ok", false},
		{srv.URL + "/400", false},
		{srv.URL + "/404", false},
		{srv.URL + "/500", true},
		{srv.URL + "/503", true},
		{down.URL + "/ok", true},
	}
	for _, tc := range cases {
		t.Run(tc.url, func(t *testing.T) {
			ctx, probe := withProbe(context.Background())
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, tc.url, nil)
			require.NoError(t, err)
			resp, err := c.Do(req)
			if err == nil {
				_ = resp.Body.Close()
			}
			require.Equal(t, tc.failed, probe.failed.Load())

			// Without a probe in the context nothing breaks.
			req, err = http.NewRequestWithContext(context.Background(), http.MethodGet, tc.url, nil)
			require.NoError(t, err)
			resp, err = c.Do(req)
			if err == nil {
				_ = resp.Body.Close()
			}
		})
	}
}

func TestIdPsPartyCache(t *testing.T) {
	d := newIdPs(0, 0)
	require.Equal(t, uint32(DefaultFailureThreshold), d.threshold)
	require.Equal(t, DefaultOpenTimeout, d.timeout)

	v1, v2 := fedT0, fedT0.Add(time.Second)
	_, ok := d.cached("p1", v1)
	require.False(t, ok)
	d.remember("p1", v1, nil)
	_, ok = d.cached("p1", v1)
	require.True(t, ok)
	_, ok = d.cached("p1", v2)
	require.False(t, ok, "another configuration version is not served from cache")
	_, ok = d.cached("p2", v1)
	require.False(t, ok)
	d.forget("p1")
	_, ok = d.cached("p1", v1)
	require.False(t, ok)
	require.Same(t, d.breaker("p1"), d.breaker("p1"), "one breaker per provider")
}
