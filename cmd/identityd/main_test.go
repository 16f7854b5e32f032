package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func runCmd(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), args, envOf(env), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestCommands(t *testing.T) {
	env := baseEnv(t)
	delete(env, "IDENTITY_BOOTSTRAP_ADMIN_EMAIL")
	delete(env, "IDENTITY_BOOTSTRAP_ADMIN_PASSWORD")

	code, out, _ := runCmd(t, env, "migrate")
	require.Equal(t, exitOK, code)
	require.Contains(t, out, "up to date")
	code, _, _ = runCmd(t, env, "migrate")
	require.Equal(t, exitOK, code, "migrate is idempotent")

	code, out, errOut := runCmd(t, env, "bootstrap", "--email", "Root@Example.org", "--password", "correct horse battery")
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "created SUPER_ADMIN")
	code, out, _ = runCmd(t, env, "bootstrap", "--email", "other@example.org", "--password", "correct horse battery")
	require.Equal(t, exitOK, code)
	require.Contains(t, out, "already exists")
	code, _, errOut = runCmd(t, env, "bootstrap", "--email", "x@example.org")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "--password")

	code, out, errOut = runCmd(t, env, "keys", "rotate")
	require.Equal(t, exitOK, code, errOut)
	require.Contains(t, out, "active signing key is now")
	code, _, _ = runCmd(t, env, "keys", "list")
	require.Equal(t, exitUsage, code)

	code, _, errOut = runCmd(t, env, "frobnicate")
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "unknown command")
	code, _, errOut = runCmd(t, env)
	require.Equal(t, exitUsage, code)
	require.Contains(t, errOut, "usage: identityd")
	code, _, _ = runCmd(t, env, "--help")
	require.Equal(t, exitOK, code)
}

func TestBadConfigurationExitsWithStatus2(t *testing.T) {
	tests := map[string]string{
		"IDENTITY_MASTER_KEY":   "dG9vIHNob3J0",
		"IDENTITY_DATABASE_URL": "oracle://db",
		"IDENTITY_PUBLIC_URL":   "::not a url",
	}
	for name, value := range tests {
		t.Run(name, func(t *testing.T) {
			env := baseEnv(t)
			env[name] = value
			code, _, errOut := runCmd(t, env, "serve")
			require.Equal(t, exitUsage, code)
			lines := strings.Split(strings.TrimSpace(errOut), "\n")
			require.Len(t, lines, 1, "one clear line")
			require.True(t, strings.HasPrefix(lines[0], "identityd: "+name+": "), lines[0])
		})
	}
}

func TestServeFailsClearlyWhenDatabaseIsUnreachable(t *testing.T) {
	env := baseEnv(t)
	env["IDENTITY_DATABASE_URL"] = "postgres://postgres@127.0.0.1:1/none?connect_timeout=1"
	code, _, errOut := runCmd(t, env, "serve")
	require.Equal(t, exitFailure, code)
	require.Contains(t, errOut, "open database")
}

func TestServeDrainsOnShutdown(t *testing.T) {
	env := baseEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	env["IDENTITY_HTTP_ADDR"] = addr

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		var stdout, stderr bytes.Buffer
		done <- run(ctx, []string{"serve"}, envOf(env), &stdout, &stderr)
	}()
	require.Eventually(t, func() bool {
		res, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	}, 10*time.Second, 50*time.Millisecond)
	cancel() // what SIGTERM does through signal.NotifyContext
	select {
	case code := <-done:
		require.Equal(t, exitOK, code)
	case <-time.After(15 * time.Second):
		t.Fatal("serve did not stop")
	}
}
