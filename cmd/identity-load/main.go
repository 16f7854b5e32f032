// Command identity-load is a load generator for identityd. It talks to a
// running service only through its public APIs (REST, GraphQL, Connect),
// seeds its own data as the bootstrap SUPER_ADMIN (a fresh tenant per run)
// and reports throughput, latency percentiles and errors by code.
//
//	identity-load -scenario jwks -duration 10s
//	identity-load -scenario access-context -rate 500
//	identity-load -scenario login -spoof-ips   # server: IDENTITY_TRUSTED_PROXIES=127.0.0.1
//	identity-load -scenario all -json
//
// Scenarios: login, refresh, client-credentials, jwks, access-context,
// effective-licenses, mixed (see -mix), or a comma-separated list / "all".
// See docs/PERFORMANCE.md, "Load tool (cmd/identity-load)".
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"
)

// Exit statuses.
const (
	exitOK      = 0
	exitFailure = 1 // could not seed, or every request of a scenario failed
	exitUsage   = 2
)

// Defaults of the bootstrap admin: those of `make run` (Makefile, README).
const (
	defaultAdminEmail    = "admin@identity.local"
	defaultAdminPassword = "change-me-on-first-login"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := realMain(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// config is the parsed command line.
type config struct {
	URL           string
	Scenarios     []string
	Rate          float64
	Concurrency   int
	Duration      time.Duration
	Warmup        time.Duration
	Timeout       time.Duration
	AdminEmail    string
	AdminPassword string
	Users         int
	Depth         int
	Modules       int
	SpoofIPs      bool
	JSON          bool
	Mix           []mixEntry
	RPCJSON       bool
	LateThreshold time.Duration
	CPUProfile    string
	Client        string
}

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("identity-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scenario := fs.String("scenario", scJWKS, "scenario: "+strings.Join(allScenarios, "|")+", a comma-separated list, or all")
	mix := fs.String("mix", formatMix(defaultMix), "weights of the mixed scenario, op=weight,…")
	fs.StringVar(&c.URL, "url", "http://127.0.0.1:8080", "base URL of identityd")
	fs.Float64Var(&c.Rate, "rate", 0, "requests/s, open loop (latency measured from the scheduled send time, so it includes queueing); 0 = closed loop, as fast as possible")
	fs.IntVar(&c.Concurrency, "concurrency", 4*runtime.GOMAXPROCS(0), "workers (= connections)")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "measured window per scenario")
	fs.DurationVar(&c.Warmup, "warmup", 2*time.Second, "load before the measured window (not recorded)")
	fs.DurationVar(&c.Timeout, "timeout", 10*time.Second, "per-request timeout")
	fs.StringVar(&c.AdminEmail, "admin-email", envOr(getenv, "IDENTITY_BOOTSTRAP_ADMIN_EMAIL", defaultAdminEmail), "bootstrap SUPER_ADMIN email (default: $IDENTITY_BOOTSTRAP_ADMIN_EMAIL, else make run's)")
	fs.StringVar(&c.AdminPassword, "admin-password", envOr(getenv, "IDENTITY_BOOTSTRAP_ADMIN_PASSWORD", defaultAdminPassword), "bootstrap SUPER_ADMIN password (default: $IDENTITY_BOOTSTRAP_ADMIN_PASSWORD, else make run's)")
	fs.IntVar(&c.Users, "users", 50, "users seeded for login/refresh (login goes round-robin over them; refresh worker i uses user i mod N)")
	fs.IntVar(&c.Depth, "depth", 8, "depth of the seeded hierarchy chain (access-context and effective-licenses ask at its leaf)")
	fs.IntVar(&c.Modules, "modules", 25, "modules assigned at every node of the chain (depth × modules assignments)")
	fs.BoolVar(&c.SpoofIPs, "spoof-ips", false, "send X-Forwarded-For 198.18.x.y (random) so logins come from many client addresses; the server must trust the tool: IDENTITY_TRUSTED_PROXIES=127.0.0.1")
	fs.BoolVar(&c.JSON, "json", false, "print the result as JSON on stdout (progress stays on stderr)")
	fs.BoolVar(&c.RPCJSON, "rpc-json", false, "Connect calls with the JSON codec instead of binary protobuf")
	fs.DurationVar(&c.LateThreshold, "late", time.Millisecond, "open loop: a request sent more than this after its scheduled time counts as late")
	fs.StringVar(&c.Client, "client", "net", "HTTP client of the REST calls: net (net/http Transport) or raw (a lean HTTP/1.1 client: less of the shared CPU goes to the load tool; Connect always uses net/http)")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write the load tool's own CPU profile (runs only, not seeding) to this file")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: identity-load [flags]\n\nBlack-box load generator for identityd (docs/PERFORMANCE.md).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	var err error
	if c.Mix, err = parseMix(*mix); err != nil {
		return c, fmt.Errorf("-mix: %w", err)
	}
	for s := range strings.SplitSeq(*scenario, ",") {
		s = strings.TrimSpace(s)
		switch {
		case s == "all":
			c.Scenarios = append(c.Scenarios, allScenarios...)
		case isScenario(s):
			c.Scenarios = append(c.Scenarios, s)
		default:
			return c, fmt.Errorf("-scenario: unknown scenario %q (want %s or all)", s, strings.Join(allScenarios, ", "))
		}
	}
	c.URL = strings.TrimRight(c.URL, "/")
	switch {
	case !strings.HasPrefix(c.URL, "http://") && !strings.HasPrefix(c.URL, "https://"):
		return c, errors.New("-url must be an http:// or https:// URL")
	case c.Rate < 0:
		return c, errors.New("-rate must be ≥ 0")
	case c.Concurrency < 1:
		return c, errors.New("-concurrency must be ≥ 1")
	case c.Duration <= 0:
		return c, errors.New("-duration must be > 0")
	case c.Warmup < 0:
		return c, errors.New("-warmup must be ≥ 0")
	case c.Users < 1:
		return c, errors.New("-users must be ≥ 1")
	case c.Depth < 1:
		return c, errors.New("-depth must be ≥ 1")
	case c.Client != "net" && c.Client != "raw":
		return c, errors.New("-client must be net or raw")
	case c.Modules < 0 || c.Modules > 100:
		return c, errors.New("-modules must be in 0..100")
	}
	return c, nil
}

func formatMix(m []mixEntry) string {
	parts := make([]string, len(m))
	for i, e := range m {
		parts[i] = fmt.Sprintf("%s=%d", e.op, e.weight)
	}
	return strings.Join(parts, ",")
}

// report is the whole result (-json).
type report struct {
	URL         string           `json:"url"`
	StartedAt   time.Time        `json:"startedAt"`
	GoMaxProcs  int              `json:"gomaxprocs"`
	Concurrency int              `json:"concurrency"`
	SpoofIPs    bool             `json:"spoofIps"`
	Client      string           `json:"client"`
	Seed        *seedData        `json:"seed,omitempty"`
	Scenarios   []scenarioReport `json:"scenarios"`
}

type scenarioReport struct {
	Name            string          `json:"name"`
	Concurrency     int             `json:"concurrency"`
	RatePerSec      float64         `json:"ratePerSec"` // 0 = closed loop
	WarmupSeconds   float64         `json:"warmupSeconds"`
	MeasuredSeconds float64         `json:"measuredSeconds"`
	Ops             []opReport      `json:"ops"`
	Total           opReport        `json:"total"`
	OpenLoop        *openLoopReport `json:"openLoop,omitempty"`
	CPU             *cpuReport      `json:"cpu,omitempty"`
}

func realMain(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "identity-load: %v\n", err)
		return exitUsage
	}
	var logMu sync.Mutex // seeding logs from several goroutines
	logf := func(format string, a ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		fmt.Fprintf(stderr, "identity-load: "+format+"\n", a...)
	}

	api := &apiClient{base: cfg.URL, hc: newHTTPClient(cfg.Concurrency+16, cfg.Timeout), spoof: cfg.SpoofIPs}
	if cfg.Client == "raw" {
		if api.raw, err = newRawTransport(cfg.URL, cfg.Concurrency+16, cfg.Timeout); err != nil {
			logf("%v", err)
			return exitUsage
		}
	}
	if err := waitReady(ctx, api, 15*time.Second); err != nil {
		logf("%s is not ready: %v", cfg.URL, err)
		return exitFailure
	}

	rep := report{URL: cfg.URL, StartedAt: time.Now().UTC(), GoMaxProcs: runtime.GOMAXPROCS(0), Concurrency: cfg.Concurrency, SpoofIPs: cfg.SpoofIPs, Client: cfg.Client}
	plan, needSeed := planFor(cfg.Scenarios, cfg.Mix, cfg.Users, cfg.Depth, cfg.Modules)
	var seed *seedData
	if needSeed {
		admin, err := login(ctx, api, cfg.AdminEmail, cfg.AdminPassword, "")
		if err != nil {
			logf("cannot seed: admin login as %s: %v (set -admin-email/-admin-password)", cfg.AdminEmail, err)
			return exitFailure
		}
		sd := &seeder{api: api, admin: admin.AccessToken, log: logf, parallel: max(2*runtime.GOMAXPROCS(0), 4)}
		seed, err = sd.seed(ctx, plan)
		if err != nil {
			logf("cannot seed: %v", err)
			return exitFailure
		}
		logf("seeded tenant %s in %.1fs: %d users, %d nodes, %d modules, %d assignments, service account %q",
			seed.TenantSlug, seed.SeedingSeconds, len(seed.Users), len(seed.Nodes), len(seed.Modules), seed.Assignments, seed.ClientID)
		rep.Seed = seed
	}
	env := newLoadEnv(api, seed, cfg.RPCJSON, logf)
	need := map[string]bool{}
	for _, sc := range cfg.Scenarios {
		for _, m := range opsOf(sc, cfg.Mix) {
			need[m.op] = true
		}
	}
	if err := env.prepare(ctx, need); err != nil {
		logf("cannot prepare: %v", err)
		return exitFailure
	}
	if cfg.CPUProfile != "" {
		f, err := os.Create(cfg.CPUProfile)
		if err != nil {
			logf("%v", err)
			return exitUsage
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			logf("%v", err)
			return exitFailure
		}
		defer pprof.StopCPUProfile()
	}
	code := exitOK
	for _, sc := range cfg.Scenarios {
		if ctx.Err() != nil {
			break
		}
		sr, err := runScenario(ctx, env, cfg, sc)
		if err != nil {
			logf("%s: %v", sc, err)
			code = exitFailure
			continue
		}
		rep.Scenarios = append(rep.Scenarios, sr)
		if !cfg.JSON {
			printScenario(stdout, sr)
		}
		if sr.Total.Successes == 0 {
			logf("%s: every request failed", sc)
			code = exitFailure
		}
		if sr.Total.Errors["IDENT_RATE_LIMITED"] > 0 && need[scLogin] {
			logf("%s: IDENT_RATE_LIMITED: run with -spoof-ips against a server started with IDENTITY_TRUSTED_PROXIES=127.0.0.1", sc)
		}
	}
	if cfg.JSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			logf("%v", err)
			return exitFailure
		}
	}
	if ctx.Err() != nil && code == exitOK {
		code = exitFailure
	}
	return code
}

// runScenario prepares fresh workers and runs one scenario.
func runScenario(ctx context.Context, env *loadEnv, cfg config, name string) (scenarioReport, error) {
	entries := opsOf(name, cfg.Mix)
	need := map[string]bool{}
	ops := make([]op, len(entries))
	for i, e := range entries {
		need[e.op] = true
		ops[i] = env.op(e.op, e.weight)
	}
	workers := make([]*worker, cfg.Concurrency)
	for i := range workers {
		workers[i] = &worker{id: i, rng: rand.New(rand.NewPCG(rand.Uint64(), uint64(i)))}
	}
	if err := env.prepareWorkers(ctx, workers, need); err != nil {
		return scenarioReport{}, err
	}
	mode := "closed loop (max)"
	if cfg.Rate > 0 {
		mode = fmt.Sprintf("open loop at %g/s", cfg.Rate)
	}
	env.log("%s: %d workers, %s, warmup %s, measuring %s", name, cfg.Concurrency, mode, cfg.Warmup, cfg.Duration)
	// CPU is sampled when the measured window starts and when the run ends
	// (the window plus the last requests' completion).
	var cpuStart cpuSample
	sampled := make(chan struct{})
	timer := time.AfterFunc(cfg.Warmup, func() {
		defer close(sampled)
		cpuStart = takeCPUSample(ctx, env.api)
	})
	res := run(ctx, ops, workers, runOptions{Concurrency: cfg.Concurrency, Rate: cfg.Rate, Warmup: cfg.Warmup,
		Duration: cfg.Duration, LateThreshold: cfg.LateThreshold})
	cpuEnd := takeCPUSample(ctx, env.api)
	if !timer.Stop() {
		<-sampled
	} else {
		close(sampled)
		cpuStart.at = time.Time{}
	}
	secs := res.measured.Seconds()
	sr := scenarioReport{Name: name, Concurrency: cfg.Concurrency, RatePerSec: cfg.Rate, WarmupSeconds: cfg.Warmup.Seconds(),
		MeasuredSeconds: secs, OpenLoop: res.open}
	var total recorder
	for i, e := range entries {
		r := res.recs[i].report(e.op, secs)
		if name == scMixed {
			r.Weight = e.weight
		}
		sr.Ops = append(sr.Ops, r)
		total.merge(&res.recs[i])
	}
	sr.Total = total.report("total", secs)
	if !cpuStart.at.IsZero() {
		sr.CPU = cpuBetween(cpuStart, cpuEnd, sr.Total.Requests)
	}
	return sr, nil
}

func waitReady(ctx context.Context, api *apiClient, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		err := api.do(ctx, request{method: http.MethodGet, path: "/readyz"}, nil)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func fmtMs(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0fms", v)
	case v >= 10:
		return fmt.Sprintf("%.1fms", v)
	default:
		return fmt.Sprintf("%.2fms", v)
	}
}

// printScenario writes the human-readable table of one scenario.
func printScenario(w io.Writer, sr scenarioReport) {
	mode := "closed loop"
	if sr.RatePerSec > 0 {
		mode = fmt.Sprintf("open loop %g/s", sr.RatePerSec)
	}
	fmt.Fprintf(w, "\n== %s  (%d workers, %s, measured %.1fs after %.1fs warmup; latency of successful requests)\n",
		sr.Name, sr.Concurrency, mode, sr.MeasuredSeconds, sr.WarmupSeconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operation\trequests\tok\tfailed\tok/s\tmean\tp50\tp95\tp99\tmax\t")
	rows := sr.Ops
	if len(sr.Ops) > 1 {
		rows = append(append([]opReport{}, sr.Ops...), sr.Total)
	}
	for _, r := range rows {
		name := r.Name
		if r.Weight > 0 {
			name = fmt.Sprintf("%s (%d%%)", r.Name, r.Weight)
		}
		l := r.LatencyMs
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.1f\t%s\t%s\t%s\t%s\t%s\t\n", name, r.Requests, r.Successes, r.Failures,
			r.ThroughputPerSec, fmtMs(l.Mean), fmtMs(l.P50), fmtMs(l.P95), fmtMs(l.P99), fmtMs(l.Max))
	}
	_ = tw.Flush()
	if sr.RatePerSec > 0 {
		fmt.Fprintln(w, "latency is measured from the scheduled send time (includes waiting for a worker and the tool's timer lag); service time from the actual send:")
		for _, r := range rows {
			if s := r.ServiceMs; s != nil {
				fmt.Fprintf(w, "  %s service time: mean %s p50 %s p95 %s p99 %s max %s\n", r.Name,
					fmtMs(s.Mean), fmtMs(s.P50), fmtMs(s.P95), fmtMs(s.P99), fmtMs(s.Max))
			}
		}
	}
	for _, r := range sr.Ops {
		if len(r.Errors) == 0 {
			continue
		}
		var parts []string
		for _, c := range errorCodes(r.Errors) {
			parts = append(parts, fmt.Sprintf("%s=%d", c, r.Errors[c]))
		}
		fmt.Fprintf(w, "errors %s: %s\n", r.Name, strings.Join(parts, " "))
	}
	if c := sr.CPU; c != nil {
		fmt.Fprintf(w, "cpu over %.1fs on %d cores:", c.WindowSeconds, c.Cores)
		cores := func(s float64) string { return fmt.Sprintf("%.2f cores", s/c.WindowSeconds) }
		if c.ServerSeconds != nil {
			fmt.Fprintf(w, " server %s", cores(*c.ServerSeconds))
			if c.ServerMicrosPerRequest != nil {
				fmt.Fprintf(w, " (%.0f µs/request)", *c.ServerMicrosPerRequest)
			}
			fmt.Fprint(w, ",")
		}
		fmt.Fprintf(w, " load tool %s", cores(c.ToolSeconds))
		if c.OtherSeconds != nil {
			fmt.Fprintf(w, ", other processes %s", cores(*c.OtherSeconds))
		}
		if c.MachineBusySeconds != nil {
			fmt.Fprintf(w, ", idle %s", cores(max(float64(c.Cores)*c.WindowSeconds-*c.MachineBusySeconds, 0)))
		}
		fmt.Fprintln(w)
	}
	if o := sr.OpenLoop; o != nil {
		fmt.Fprintf(w, "schedule: %d due, %d sent, %d dropped (backlog full), %d unsent at the end, %d late (>%gms); send lag p50 %s p99 %s max %s\n",
			o.Scheduled, o.Sent, o.Dropped, o.Unsent, o.Late, o.LateThresholdMs, fmtMs(o.SendLagP50Ms), fmtMs(o.SendLagP99Ms), fmtMs(o.SendLagMaxMs))
	}
}
