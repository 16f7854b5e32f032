package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// identitydCommand returns how to start identityd: the test binary itself
// (see TestHelperIdentitydProcess), or a binary built into a temp dir when
// buildBinaryEnv is 1.
func identitydCommand(t *testing.T) (string, []string) {
	t.Helper()
	if os.Getenv(buildBinaryEnv) != "1" {
		exe, err := os.Executable()
		require.NoError(t, err)
		return exe, []string{"-test.run=^TestHelperIdentitydProcess$"}
	}
	bin := filepath.Join(t.TempDir(), "identityd")
	goTool, err := exec.LookPath("go")
	require.NoError(t, err)
	began := time.Now()
	out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	t.Logf("built identityd in %s", time.Since(began))
	return bin, []string{"serve"}
}

// identitydProcess is identityd running as a child process.
type identitydProcess struct {
	t       *testing.T
	cmd     *exec.Cmd
	baseURL string
	client  *http.Client
	exited  chan struct{}
	exitErr error

	mu   sync.Mutex
	logs bytes.Buffer
}

// startIdentityd starts identityd with exactly env (plus PATH, HOME and
// TMPDIR) and waits until it logs its listening address.
func startIdentityd(t *testing.T, exe string, args []string, env map[string]string) *identitydProcess {
	t.Helper()
	cmd := exec.Command(exe, args...)
	for _, k := range []string{"PATH", "HOME", "TMPDIR"} {
		if v, ok := os.LookupEnv(k); ok {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, helperProcessEnv+"=1")
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	cmd.Stdout = io.Discard
	require.NoError(t, cmd.Start())
	p := &identitydProcess{t: t, cmd: cmd, exited: make(chan struct{}),
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.logs.WriteString(line + "\n")
			p.mu.Unlock()
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "identityd serving" {
				addr <- rec.Addr
			}
		}
		p.exitErr = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		if t.Failed() {
			t.Logf("identityd (pid %d) logs:\n%s", cmd.Process.Pid, p.logs.String())
		}
		require.NotContains(t, p.logs.String(), "DATA RACE", "identityd (pid %d) ran into a data race", cmd.Process.Pid)
	})
	select {
	case a := <-addr:
		p.baseURL = "http://" + a
	case <-p.exited:
		t.Fatalf("identityd exited at start (%v):\n%s", p.exitErr, p.logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("identityd did not start within 30 s:\n%s", p.logs.String())
	}
	return p
}

// kill9 sends SIGKILL and waits for the process to be gone.
func (p *identitydProcess) kill9() error {
	if err := p.cmd.Process.Kill(); err != nil {
		return err
	}
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		return errors.New("identityd survived SIGKILL for 10 s")
	}
	if ws, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		return fmt.Errorf("identityd ended by %v, not SIGKILL", p.exitErr)
	}
	return nil
}

// terminate sends SIGTERM and requires a clean exit.
func (p *identitydProcess) terminate() error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	select {
	case <-p.exited:
		return p.exitErr
	case <-time.After(20 * time.Second):
		return errors.New("identityd did not stop within 20 s of SIGTERM")
	}
}

// request sends a JSON request from client address ip ("" for none)
// without failing the test, so it is safe in goroutines.
func (p *identitydProcess) request(method, path, bearer, ip string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, p.baseURL+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if ip != "" {
		req.Header.Set("X-Forwarded-For", ip)
	}
	res, err := p.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	return res.StatusCode, raw, err
}

// mustJSON is request for the test goroutine: it requires status and
// decodes the body into dst (when not nil).
func (p *identitydProcess) mustJSON(t *testing.T, method, path, bearer string, body any, status int, dst any) {
	t.Helper()
	got, raw, err := p.request(method, path, bearer, "", body)
	require.NoError(t, err)
	require.Equal(t, status, got, "%s %s: %s", method, path, raw)
	if dst != nil {
		require.NoError(t, json.Unmarshal(raw, dst))
	}
}
