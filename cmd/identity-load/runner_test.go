package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newWorkers(n int) []*worker {
	ws := make([]*worker, n)
	for i := range ws {
		ws[i] = &worker{id: i, rng: rand.New(rand.NewPCG(uint64(i), 7))}
	}
	return ws
}

func TestClosedLoopRecordsOnlyTheMeasuredWindow(t *testing.T) {
	var calls, failing atomic.Int64
	ops := []op{
		{name: "ok", weight: 3, do: func(context.Context, *worker) error {
			calls.Add(1)
			time.Sleep(time.Millisecond)
			return nil
		}},
		{name: "bad", weight: 1, do: func(context.Context, *worker) error {
			calls.Add(1)
			failing.Add(1)
			time.Sleep(time.Millisecond)
			return &statusError{Status: 503, Code: "IDENT_OVERLOADED"}
		}},
	}
	res := run(context.Background(), ops, newWorkers(4), runOptions{Concurrency: 4, Warmup: 150 * time.Millisecond, Duration: 300 * time.Millisecond})
	require.Nil(t, res.open)
	require.Nil(t, res.recs[0].report("ok", 0.3).ServiceMs, "closed loop: latency is the service time")
	require.InDelta(t, 0.3, res.measured.Seconds(), 1e-9)
	okRep, badRep := res.recs[0].report("ok", 0.3), res.recs[1].report("bad", 0.3)
	recorded := okRep.Requests + badRep.Requests
	require.Positive(t, okRep.Successes)
	require.Less(t, recorded, uint64(calls.Load()), "warmup requests are sent but not recorded")
	require.Equal(t, badRep.Failures, badRep.Errors["IDENT_OVERLOADED"])
	require.Zero(t, badRep.Successes)
	// Weighted 3:1.
	share := float64(okRep.Requests) / float64(recorded)
	require.InDelta(t, 0.75, share, 0.12)
	require.GreaterOrEqual(t, okRep.LatencyMs.P50, 1.0, "an op takes ≥ 1 ms")
}

func TestOpenLoopKeepsTheScheduleAndCountsDrops(t *testing.T) {
	t.Run("keeps up", func(t *testing.T) {
		ops := []op{{name: "fast", do: func(context.Context, *worker) error { return nil }}}
		start := time.Now()
		res := run(context.Background(), ops, newWorkers(2), runOptions{Concurrency: 2, Rate: 1000,
			Warmup: 100 * time.Millisecond, Duration: time.Second})
		// A lower bound only: the last send is due 1 ms before the window
		// ends, and a slow machine only makes it later.
		require.GreaterOrEqual(t, time.Since(start), 1099*time.Millisecond, "sends are spread over the run as scheduled, not made at once")
		require.NotNil(t, res.open)
		o := res.open
		// The schedule is arithmetic (send n is due at start + n/rate), not
		// timer firings: a slow machine sends late, never fewer, so the
		// count is exact.
		require.Equal(t, uint64(1000), o.Scheduled, "rate × window")
		require.Zero(t, o.Dropped)
		require.Equal(t, o.Scheduled, o.Sent+o.Unsent)
		require.Equal(t, o.Sent, res.recs[0].ok.Count())
		// How many are still in the backlog when the window closes depends
		// on the machine (a stall near the end leaves that many
		// milliseconds' worth unsent); two thirds leaves room for a 330 ms
		// stall and still fails a runner that sends half the schedule.
		require.GreaterOrEqual(t, o.Sent, o.Scheduled*2/3, "the workers keep up with the schedule")
		require.InDelta(t, 1.0, res.measured.Seconds(), 1e-9)
		tput := res.recs[0].report("fast", res.measured.Seconds()).ThroughputPerSec
		require.InDelta(t, float64(o.Sent)/1.0, tput, 1e-6, "successes over the measured window")
		require.InDelta(t, 1000, tput, 1000/3.0, "about the rate: neither several times more nor half")
	})
	t.Run("overloaded", func(t *testing.T) {
		// One worker, 20 ms per request, 500 requests/s due: the backlog
		// (capacity 5) overflows, and latency includes the queueing.
		ops := []op{{name: "slow", do: func(context.Context, *worker) error {
			time.Sleep(20 * time.Millisecond)
			return nil
		}}}
		res := run(context.Background(), ops, newWorkers(1), runOptions{Concurrency: 1, Rate: 500, QueueCap: 5,
			Duration: 300 * time.Millisecond})
		o := res.open
		require.Equal(t, uint64(150), o.Scheduled, "rate × window, exact (see above)")
		require.Positive(t, o.Dropped)
		require.Equal(t, o.Scheduled, o.Sent+o.Dropped+o.Unsent)
		require.Positive(t, o.Late)
		rep := res.recs[0].report("slow", res.measured.Seconds())
		require.Greater(t, rep.LatencyMs.Max, 40.0, "measured from the scheduled time: includes waiting")
		require.NotNil(t, rep.ServiceMs)
		// A sent request waited behind the ≈ 5 queued before it, so its
		// latency is several service times, however slow the machine;
		// service time measured from the scheduled time would equal it.
		require.Less(t, rep.ServiceMs.P50, rep.LatencyMs.P50/2, "service time: from the actual send, without the queueing")
		require.GreaterOrEqual(t, rep.ServiceMs.P50, 20.0)
		require.Greater(t, o.SendLagMaxMs, 20.0)
	})
}

func TestRunStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls atomic.Int64
	ops := []op{{name: "x", do: func(ctx context.Context, _ *worker) error {
		if calls.Add(1) == 50 {
			cancel() // the interrupt, in the middle of the run
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
			return nil
		}
	}}}
	const duration = time.Minute
	start := time.Now()
	res := run(ctx, ops, newWorkers(2), runOptions{Concurrency: 2, Duration: duration})
	// Both bounds are far from the minute an uninterrupted run takes.
	require.Less(t, time.Since(start), duration/2, "the run stops on cancel")
	require.Less(t, res.measured, duration/2, "the window ends at the cancel")
	require.Positive(t, res.measured)
	require.Zero(t, res.recs[0].failures(), "requests cut by the interrupt are not server failures")
}

func TestPickerWeights(t *testing.T) {
	p := newPicker([]op{{weight: 40}, {weight: 0}, {weight: 60}})
	rng := rand.New(rand.NewPCG(9, 9))
	counts := make([]int, 3)
	for range 100_000 {
		counts[p.pick(rng)]++
	}
	require.Zero(t, counts[1])
	require.InDelta(t, 0.4, float64(counts[0])/100_000, 0.01)
	require.Equal(t, 0, newPicker([]op{{weight: 1}}).pick(nil), "one op needs no randomness")
}

func TestErrorCode(t *testing.T) {
	connErr := connect.NewError(connect.CodePermissionDenied, errors.New("IDENT_FORBIDDEN: nope"))
	connErr.Meta().Set(metaErrorCode, "IDENT_FORBIDDEN")
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	cases := []struct {
		err  error
		want string
	}{
		{&statusError{Status: 401, Code: "IDENT_REFRESH_REPLAY"}, "IDENT_REFRESH_REPLAY"},
		{&statusError{Status: 502}, "HTTP_502"},
		{fmt.Errorf("wrapped: %w", &statusError{Status: 401, Code: "oauth:invalid_client"}), "oauth:invalid_client"},
		{&gqlError{Code: "IDENT_FORBIDDEN"}, "IDENT_FORBIDDEN"},
		{&gqlError{Message: "boom"}, "graphql_error"},
		{connErr, "IDENT_FORBIDDEN"},
		{connect.NewError(connect.CodeInternal, errors.New("x")), "connect:internal"},
		{connect.NewError(connect.CodeUnavailable, refused), "transport:connection_refused"},
		{refused, "transport:connection_refused"},
		{&net.OpError{Op: "read", Err: syscall.ECONNRESET}, "transport:connection_reset"},
		{&net.OpError{Op: "dial", Err: syscall.EADDRNOTAVAIL}, "transport:address_not_available"},
		{fmt.Errorf("Post: %w", context.DeadlineExceeded), "transport:timeout"},
		{io.ErrUnexpectedEOF, "transport:eof"},
		{&net.OpError{Op: "write", Err: errors.New("odd")}, "transport:write"},
		{errors.New("decode POST /x: invalid character"), "error:decode POST /x: invalid character"},
	}
	for _, c := range cases {
		assert.Equal(t, c.want, errorCode(c.err), "%v", c.err)
	}
}

func TestReadStatusError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/problem":
			w.Header().Set("Content-Type", "application/problem+json")
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"type":"https://errors.ghasi-ehealth.af/IDENT_RATE_LIMITED","status":429,"code":"IDENT_RATE_LIMITED","detail":"slow down"}`)
		case "/oauth":
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"invalid_client","error_description":"bad secret"}`)
		case "/plain":
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, "upstream\nbroken")
		default:
			_, _ = io.WriteString(w, `{"accessToken":"a","refreshToken":"r","expiresIn":900}`)
		}
	}))
	defer srv.Close()
	api := &apiClient{base: srv.URL, hc: newHTTPClient(4, 5*time.Second), spoof: true}
	ctx := context.Background()

	err := api.do(ctx, request{method: http.MethodGet, path: "/problem"}, nil)
	var se *statusError
	require.ErrorAs(t, err, &se)
	require.Equal(t, 429, se.Status)
	require.Equal(t, "IDENT_RATE_LIMITED", se.Code)
	require.Equal(t, 3*time.Second, se.RetryAfter)
	ok, wait := retryable(err)
	require.True(t, ok)
	require.Equal(t, 3*time.Second, wait)

	err = api.do(ctx, request{method: http.MethodPost, path: "/oauth", body: []byte("grant_type=x")}, nil)
	require.Equal(t, "oauth:invalid_client", errorCode(err))
	ok, _ = retryable(err)
	require.False(t, ok)

	err = api.do(ctx, request{method: http.MethodGet, path: "/plain"}, nil)
	require.Equal(t, "HTTP_502", errorCode(err))
	require.Contains(t, err.Error(), "upstream broken")

	var tok tokenResponse
	require.NoError(t, api.do(ctx, request{method: http.MethodGet, path: "/"}, &tok))
	require.Equal(t, "r", tok.RefreshToken)
}

func TestWithRetry(t *testing.T) {
	n := 0
	err := withRetry(context.Background(), 3, func() error {
		n++
		return &statusError{Status: 503, Code: "IDENT_OVERLOADED", RetryAfter: time.Millisecond}
	})
	require.Equal(t, 3, n)
	require.Equal(t, "IDENT_OVERLOADED", errorCode(err))

	n = 0
	err = withRetry(context.Background(), 3, func() error {
		n++
		return &statusError{Status: 409, Code: "IDENT_EMAIL_DUPLICATE"}
	})
	require.Equal(t, 1, n, "a conflict is not retried")
	require.Error(t, err)
}

func TestSpoofIPIsInTheBenchmarkingRange(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for range 1000 {
		ip := net.ParseIP(spoofIP(rng))
		require.NotNil(t, ip)
		_, bench, _ := net.ParseCIDR("198.18.0.0/15")
		require.True(t, bench.Contains(ip), ip)
	}
	require.True(t, strings.HasPrefix(spoofIP(nil), "198.18."))
}

func TestParseFlags(t *testing.T) {
	noEnv := func(string) string { return "" }
	c, err := parseFlags(nil, noEnv, io.Discard)
	require.NoError(t, err)
	require.Equal(t, "http://127.0.0.1:8080", c.URL)
	require.Equal(t, []string{scJWKS}, c.Scenarios)
	require.Equal(t, defaultAdminEmail, c.AdminEmail)
	require.Equal(t, defaultAdminPassword, c.AdminPassword)
	require.Equal(t, defaultMix, c.Mix)
	require.Equal(t, 8, c.Depth)
	require.Equal(t, 50, c.Users)

	env := func(k string) string {
		return map[string]string{"IDENTITY_BOOTSTRAP_ADMIN_EMAIL": "root@x.org"}[k]
	}
	c, err = parseFlags([]string{"-scenario", "login, refresh", "-url", "http://h:1/", "-mix", "jwks=1,login=0,refresh=2"}, env, io.Discard)
	require.NoError(t, err)
	require.Equal(t, []string{scLogin, scRefresh}, c.Scenarios)
	require.Equal(t, "http://h:1", c.URL)
	require.Equal(t, "root@x.org", c.AdminEmail)
	require.Equal(t, []mixEntry{{scJWKS, 1}, {scRefresh, 2}}, c.Mix)

	c, err = parseFlags([]string{"-scenario", "all"}, noEnv, io.Discard)
	require.NoError(t, err)
	require.Equal(t, allScenarios, c.Scenarios)

	for _, bad := range [][]string{
		{"-scenario", "nope"}, {"-rate", "-1"}, {"-concurrency", "0"}, {"-duration", "0s"}, {"-url", "localhost:8080"},
		{"-mix", "jwks=x"}, {"-mix", "mixed=1"}, {"-mix", "jwks=0"}, {"-mix", "jwks=1,jwks=2"}, {"-users", "0"}, {"extra"},
	} {
		_, err := parseFlags(bad, noEnv, io.Discard)
		require.Error(t, err, "%v", bad)
	}
}

func TestPlanFor(t *testing.T) {
	p, seed := planFor([]string{scJWKS}, defaultMix, 50, 8, 25)
	require.False(t, seed, "jwks needs no seeding (and no admin)")
	require.Zero(t, p)

	p, seed = planFor([]string{scAccessContext}, defaultMix, 50, 8, 25)
	require.True(t, seed)
	require.Equal(t, seedPlan{Users: 1, Nodes: true, Depth: 8, Modules: 25}, p)

	p, _ = planFor([]string{scClientCredentials}, defaultMix, 50, 8, 25)
	require.Equal(t, seedPlan{ServiceAcct: true}, p)

	p, _ = planFor([]string{scMixed}, defaultMix, 50, 6, 10)
	require.Equal(t, seedPlan{Users: 50, Nodes: true, Depth: 6, Modules: 10, ServiceAcct: true}, p)
}

func TestParallelDoStopsAtTheFirstError(t *testing.T) {
	var ran atomic.Int64
	err := parallelDo(context.Background(), 1000, 4, func(_ context.Context, i int) error {
		ran.Add(1)
		if i == 10 {
			return errors.New("boom")
		}
		return nil
	})
	require.EqualError(t, err, "boom")
	require.Less(t, ran.Load(), int64(1000))

	ran.Store(0)
	require.NoError(t, parallelDo(context.Background(), 50, 8, func(context.Context, int) error { ran.Add(1); return nil }))
	require.Equal(t, int64(50), ran.Load())
	require.NoError(t, parallelDo(context.Background(), 0, 8, func(context.Context, int) error { return errors.New("never") }))
}

func TestTokenSourceRenewsInTheBackground(t *testing.T) {
	var n atomic.Int64
	fail := atomic.Bool{}
	// Renewal is due after 2/3 of the 600 ms lifetime (400 ms).
	ts, err := newTokenSource(context.Background(), func(context.Context) (string, time.Duration, error) {
		if fail.Load() {
			return "", 0, errors.New("login refused")
		}
		return fmt.Sprintf("tok%d", n.Add(1)), 600 * time.Millisecond, nil
	})
	require.NoError(t, err)
	require.Equal(t, "tok1", ts.token())
	time.Sleep(450 * time.Millisecond)
	require.Equal(t, "tok1", ts.token(), "the caller is not held up: it gets the current token")
	require.Eventually(t, func() bool { return ts.token() != "tok1" }, 2*time.Second, 5*time.Millisecond)
	// Renewals fail from here on. A renewal the Eventually's last call
	// started may still be running with the old flag: wait it out (it holds
	// mu), so no renewal after this point succeeds.
	fail.Store(true)
	ts.mu.Lock()
	ts.mu.Unlock() //nolint:staticcheck // an empty critical section waits for a renewal in flight
	cur := ts.token()
	time.Sleep(450 * time.Millisecond)
	require.Equal(t, cur, ts.token(), "a failed renewal keeps the old token")
	time.Sleep(50 * time.Millisecond)
	require.Equal(t, cur, ts.token())

	_, err = newTokenSource(context.Background(), func(context.Context) (string, time.Duration, error) {
		return "", 0, errors.New("no")
	})
	require.Error(t, err)

	ok, _ := retryable(&gqlError{Code: "IDENT_UNAVAILABLE"})
	require.True(t, ok)
	ok, _ = retryable(&gqlError{Code: "IDENT_FORBIDDEN"})
	require.False(t, ok)
	ok, _ = retryable(&net.OpError{Op: "dial", Err: syscall.ECONNREFUSED})
	require.True(t, ok)
	require.Equal(t, "HTTP 429 IDENT_RATE_LIMITED: slow", (&statusError{Status: 429, Code: "IDENT_RATE_LIMITED", Detail: "slow"}).Error())
}
