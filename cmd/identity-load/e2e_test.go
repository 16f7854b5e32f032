package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

const (
	e2eAdminEmail    = "load-admin@example.org"
	e2eAdminPassword = "correct horse battery staple"
)

// syncBuffer collects the server's output; safe for concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func goTool(t *testing.T) string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err != nil {
		t.Skip("no go tool to build identityd with")
	}
	return p
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startIdentityd builds cmd/identityd (without -race: the server under test
// is the production build) into a temporary directory and runs it on a
// free port with SQLite, a cheap argon2id cost and the load tool trusted as
// a proxy; it returns the base URL once /readyz answers.
func startIdentityd(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "identityd")
	build := exec.Command(goTool(t), "build", "-o", bin, "github.com/ghasi-ehealth/identity-service/cmd/identityd")
	build.Env = append(os.Environ(), "GOFLAGS=")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build identityd: %s", out)

	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "IDENTITY_") && !strings.HasPrefix(kv, "OTEL_") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"IDENTITY_HTTP_ADDR="+addr,
		"IDENTITY_DATABASE_URL=sqlite://"+filepath.Join(dir, "id.db"),
		"IDENTITY_MASTER_KEY_FILE="+filepath.Join(dir, "master.key"),
		"IDENTITY_BOOTSTRAP_ADMIN_EMAIL="+e2eAdminEmail,
		"IDENTITY_BOOTSTRAP_ADMIN_PASSWORD="+e2eAdminPassword,
		"IDENTITY_ARGON2_PARAMS=m=64,t=1,p=1",
		"IDENTITY_TRUSTED_PROXIES=127.0.0.1",
		"IDENTITY_LOG_LEVEL=warn",
	)
	logs := &syncBuffer{}
	srv := exec.Command(bin, "serve")
	srv.Env, srv.Dir, srv.Stdout, srv.Stderr = env, dir, logs, logs
	require.NoError(t, srv.Start())
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	t.Cleanup(func() {
		_ = srv.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = srv.Process.Kill()
			<-exited
			t.Error("identityd did not stop within 15 s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("identityd output:\n%s", logs.String())
		}
	})

	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			t.Fatalf("identityd exited before it was ready: %v\n%s", err, logs.String())
		default:
		}
		res, err := http.Get(base + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return base
			}
		}
		require.True(t, time.Now().Before(deadline), "identityd not ready within 30 s: %v\n%s", err, logs.String())
		time.Sleep(100 * time.Millisecond)
	}
}

// runTool runs the command line in process and decodes its -json report.
func runTool(t *testing.T, args ...string) (report, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	code := realMain(ctx, append(args, "-json"), func(string) string { return "" }, &stdout, &stderr)
	require.Equal(t, exitOK, code, "stderr:\n%s", stderr.String())
	var rep report
	require.NoError(t, json.Unmarshal(stdout.Bytes(), &rep), "stdout:\n%s", stdout.String())
	return rep, stderr.String()
}

func requireClean(t *testing.T, sr scenarioReport) {
	t.Helper()
	for _, r := range append(sr.Ops, sr.Total) {
		require.Zero(t, r.Failures, "%s/%s errors: %v", sr.Name, r.Name, r.Errors)
		require.Positive(t, r.Successes, "%s/%s", sr.Name, r.Name)
		require.Positive(t, r.ThroughputPerSec, "%s/%s", sr.Name, r.Name)
		require.Positive(t, r.LatencyMs.P50, "%s/%s", sr.Name, r.Name)
		require.LessOrEqual(t, r.LatencyMs.P50, r.LatencyMs.P99, "%s/%s", sr.Name, r.Name)
		require.LessOrEqual(t, r.LatencyMs.P99, r.LatencyMs.Max, "%s/%s", sr.Name, r.Name)
	}
}

// TestEndToEnd runs every scenario for about a second, with either HTTP
// client, against a real identityd and requires zero errors and a positive
// throughput.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs identityd")
	}
	base := startIdentityd(t)
	common := []string{"-url", base, "-admin-email", e2eAdminEmail, "-admin-password", e2eAdminPassword,
		"-duration", "800ms", "-warmup", "200ms", "-concurrency", "4", "-users", "6", "-depth", "4", "-modules", "5", "-spoof-ips"}

	for _, client := range []string{"net", "raw"} {
		t.Run("closed loop, every scenario, client "+client, func(t *testing.T) {
			rep, logs := runTool(t, append(common, "-scenario", "all", "-client", client)...)
			require.Equal(t, client, rep.Client)
			require.NotNil(t, rep.Seed)
			require.Len(t, rep.Seed.Users, 6)
			require.Len(t, rep.Seed.Nodes, 4)
			require.Equal(t, 20, rep.Seed.Assignments)
			require.Equal(t, 5+3, rep.Seed.LeafModules, "the seeded modules and the three always-on ones at the leaf")
			require.NotEmpty(t, rep.Seed.ClientID)
			require.Contains(t, logs, "seeded tenant "+rep.Seed.TenantSlug)
			var names []string
			for _, sr := range rep.Scenarios {
				names = append(names, sr.Name)
				require.Nil(t, sr.OpenLoop)
				requireClean(t, sr)
				require.NotNil(t, sr.CPU)
				require.NotNil(t, sr.CPU.ServerSeconds, "process_cpu_seconds_total from /metrics")
				require.Positive(t, sr.CPU.ToolSeconds)
				if sr.Name == scMixed {
					require.Len(t, sr.Ops, len(defaultMix))
				}
			}
			require.Equal(t, allScenarios, names)
		})
	}

	t.Run("open loop", func(t *testing.T) {
		rep, _ := runTool(t, append(common, "-scenario", "access-context,effective-licenses", "-rate", "100", "-rpc-json")...)
		require.Len(t, rep.Scenarios, 2)
		for _, sr := range rep.Scenarios {
			requireClean(t, sr)
			require.NotNil(t, sr.OpenLoop)
			// Exact: the schedule is arithmetic, not timer firings (TestOpenLoopKeepsTheScheduleAndCountsDrops).
			require.Equal(t, uint64(80), sr.OpenLoop.Scheduled, "rate × 0.8 s")
			require.Equal(t, sr.OpenLoop.Scheduled, sr.OpenLoop.Sent+sr.OpenLoop.Dropped+sr.OpenLoop.Unsent)
		}
	})

	t.Run("exit status", func(t *testing.T) {
		var stderr bytes.Buffer
		noEnv := func(string) string { return "" }
		code := realMain(context.Background(), []string{"-url", base, "-scenario", "login", "-admin-password", "wrong password!"},
			noEnv, &bytes.Buffer{}, &stderr)
		require.Equal(t, exitFailure, code, "cannot seed without the admin")
		require.Contains(t, stderr.String(), "cannot seed")

		require.Equal(t, exitUsage, realMain(context.Background(), []string{"-scenario", "bogus"}, noEnv, &bytes.Buffer{}, &bytes.Buffer{}))

		// Human-readable output.
		var stdout bytes.Buffer
		code = realMain(context.Background(), []string{"-url", base, "-scenario", "jwks", "-duration", "300ms", "-warmup", "0s"},
			noEnv, &stdout, &bytes.Buffer{})
		require.Equal(t, exitOK, code)
		require.Contains(t, stdout.String(), "== jwks")
		require.Contains(t, stdout.String(), "p99")
	})
}
