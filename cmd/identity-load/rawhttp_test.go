package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestRawTransportAgainstNetHTTPServer(t *testing.T) {
	big := strings.Repeat("x", 50_000) // larger than net/http's buffer: chunked
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/small":
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"keys":[{"kid":"a"}]}`)
		case "/big":
			_ = json.NewEncoder(w).Encode(map[string]string{"blob": big})
		case "/echo":
			body, _ := io.ReadAll(r.Body)
			_ = json.NewEncoder(w).Encode(map[string]string{
				"method": r.Method, "body": string(body), "ct": r.Header.Get("Content-Type"),
				"auth": r.Header.Get("Authorization"), "xff": r.Header.Get("X-Forwarded-For"), "basic": r.Header.Get("X-Extra")})
		case "/problem":
			w.Header().Set("Content-Type", "application/problem+json")
			w.Header().Set("Retry-After", "2")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"code":"IDENT_OVERLOADED","detail":"busy"}`)
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
		case "/close":
			w.Header().Set("Connection", "close")
			_, _ = io.WriteString(w, `{"ok":true}`)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Config.IdleTimeout = 100 * time.Millisecond
	srv.Start()
	defer srv.Close()

	rt, err := newRawTransport(srv.URL, 4, 5*time.Second)
	require.NoError(t, err)
	api := &apiClient{base: srv.URL, raw: rt, spoof: true}
	ctx := context.Background()

	var small struct {
		Keys []struct{ Kid string }
	}
	for range 20 {
		require.NoError(t, api.do(ctx, request{method: http.MethodGet, path: "/small"}, &small))
		require.Equal(t, "a", small.Keys[0].Kid)
	}
	require.Equal(t, int64(1), conns.Load(), "one kept-alive connection for sequential requests")

	var blob map[string]string
	require.NoError(t, api.do(ctx, request{method: http.MethodGet, path: "/big"}, &blob))
	require.Equal(t, big, blob["blob"], "chunked body reassembled")
	require.NoError(t, api.do(ctx, request{method: http.MethodGet, path: "/small"}, nil), "the connection is still in sync after a chunked body")

	var echo map[string]string
	require.NoError(t, api.do(ctx, request{method: http.MethodPost, path: "/echo", bearer: "tok", body: []byte("a=b"),
		contentType: "application/x-www-form-urlencoded", header: [][2]string{{"X-Extra", "1"}}}, &echo))
	require.Equal(t, map[string]string{"method": "POST", "body": "a=b", "ct": "application/x-www-form-urlencoded",
		"auth": "Bearer tok", "basic": "1", "xff": echo["xff"]}, echo)
	require.True(t, strings.HasPrefix(echo["xff"], "198.18."), echo["xff"])

	err = api.do(ctx, request{method: http.MethodGet, path: "/problem"}, nil)
	var se *statusError
	require.ErrorAs(t, err, &se)
	require.Equal(t, 503, se.Status)
	require.Equal(t, "IDENT_OVERLOADED", se.Code)
	require.Equal(t, 2*time.Second, se.RetryAfter)

	require.NoError(t, api.do(ctx, request{method: http.MethodDelete, path: "/nocontent"}, nil))

	before := conns.Load()
	require.NoError(t, api.do(ctx, request{method: http.MethodGet, path: "/close"}, nil))
	require.NoError(t, api.do(ctx, request{method: http.MethodGet, path: "/small"}, nil))
	require.Equal(t, before+1, conns.Load(), "Connection: close is honoured: a new connection afterwards")

	// The server drops the idle connection; the next request notices the
	// stale connection and goes out again on a new one.
	time.Sleep(300 * time.Millisecond)
	before = conns.Load()
	require.NoError(t, api.do(ctx, request{method: http.MethodPost, path: "/echo", body: []byte(`{}`)}, &echo))
	require.Equal(t, before+1, conns.Load())
}

// TestRawTransportMalformedAnswers feeds hand-written responses.
func TestRawTransportMalformedAnswers(t *testing.T) {
	answers := map[string]string{
		"/http10":     "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}",
		"/eof-body":   "HTTP/1.1 200 OK\r\n\r\n{\"a\":1}",
		"/garbage":    "SMTP ready\r\n",
		"/bad-length": "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
		"/bad-chunk":  "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"/trailers":   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2;ext=1\r\n{}\r\n0\r\nX-T: 1\r\n\r\n",
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					path := strings.Fields(line)[1]
					for { // skip headers
						h, err := r.ReadString('\n')
						if err != nil || h == "\r\n" {
							break
						}
					}
					_, _ = io.WriteString(c, answers[path])
					if path != "/trailers" {
						return
					}
				}
			}()
		}
	}()
	rt, err := newRawTransport("http://"+l.Addr().String(), 2, 2*time.Second)
	require.NoError(t, err)
	ctx := context.Background()
	var m map[string]int
	require.NoError(t, rt.do(ctx, request{method: "GET", path: "/http10"}, "", &m))
	require.NoError(t, rt.do(ctx, request{method: "GET", path: "/eof-body"}, "", &m))
	require.Equal(t, 1, m["a"])
	require.NoError(t, rt.do(ctx, request{method: "GET", path: "/trailers"}, "", &m))
	require.NoError(t, rt.do(ctx, request{method: "GET", path: "/trailers"}, "", &m), "connection reusable after trailers")
	require.ErrorContains(t, rt.do(ctx, request{method: "GET", path: "/garbage"}, "", nil), "malformed status line")
	require.ErrorContains(t, rt.do(ctx, request{method: "GET", path: "/bad-length"}, "", nil), "Content-Length")
	require.ErrorContains(t, rt.do(ctx, request{method: "GET", path: "/bad-chunk"}, "", nil), "chunk size")

	_, err = newRawTransport("https://example.org", 1, time.Second)
	require.Error(t, err)
}
