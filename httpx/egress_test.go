package httpx

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestIsForbiddenAddr(t *testing.T) {
	tests := []struct {
		addr      string
		forbidden bool
	}{
		// Public.
		{"8.8.8.8", false},
		{"1.1.1.1", false},
		{"100.63.255.255", false},
		{"100.128.0.0", false},
		{"172.15.255.255", false},
		{"172.32.0.0", false},
		{"2001:4860:4860::8888", false},
		{"::ffff:8.8.8.8", false},
		{"64:ff9b::808:808", false},    // NAT64 of 8.8.8.8
		{"2002:808:808::1", false},     // 6to4 of 8.8.8.8
		{"2001:0:4136:e378::1", false}, // Teredo: globally reachable

		// Loopback.
		{"127.0.0.1", true},
		{"127.255.255.254", true},
		{"::1", true},
		// Private.
		{"10.0.0.1", true},
		{"172.16.0.1", true},
		{"172.31.255.255", true},
		{"192.168.1.1", true},
		{"fc00::1", true},
		{"fd12:3456::1", true},
		// Link-local.
		{"169.254.169.254", true},
		{"fe80::1", true},
		{"fe80::1%eth0", true},
		// Unspecified, multicast, broadcast.
		{"0.0.0.0", true},
		{"::", true},
		{"224.0.0.1", true},
		{"239.255.255.250", true},
		{"ff02::1", true},
		{"ff0e::1", true},
		{"255.255.255.255", true},
		// CGNAT.
		{"100.64.0.1", true},
		{"100.127.255.255", true},
		// Other special-purpose blocks.
		{"0.1.2.3", true},
		{"192.0.0.8", true},
		{"192.0.2.1", true},
		{"198.18.0.1", true},
		{"198.51.100.1", true},
		{"203.0.113.1", true},
		{"240.0.0.1", true},
		{"100::1", true},
		{"2001:db8::1", true},
		{"fec0::1", true},
		{"64:ff9b:1::1", true},
		{"::7f00:1", true}, // IPv4-compatible 127.0.0.1
		// IPv4-mapped IPv6 forms.
		{"::ffff:127.0.0.1", true},
		{"::ffff:10.0.0.1", true},
		{"::ffff:169.254.169.254", true},
		{"::ffff:100.64.0.1", true},
		{"::ffff:0.0.0.0", true},
		// NAT64 and 6to4 forms.
		{"64:ff9b::7f00:1", true},    // 127.0.0.1
		{"64:ff9b::a9fe:a9fe", true}, // 169.254.169.254
		{"2002:a00:1::1", true},      // 10.0.0.1
		{"2002:7f00:1::1", true},     // 127.0.0.1
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			require.Equal(t, tc.forbidden, isForbiddenAddr(netip.MustParseAddr(tc.addr)))
		})
	}
	require.True(t, isForbiddenAddr(netip.Addr{}), "the zero Addr")
}

func TestDialGuard(t *testing.T) {
	guard := dialGuard(isForbiddenAddr)
	tests := []struct {
		network, address string
		forbidden        bool
	}{
		{"tcp4", "8.8.8.8:443", false},
		{"tcp6", "[2001:4860:4860::8888]:443", false},
		{"tcp4", "127.0.0.1:80", true},
		{"tcp6", "[::1]:80", true},
		{"tcp6", "[::ffff:127.0.0.1]:80", true},
		{"tcp6", "[fe80::1%eth0]:80", true},
		{"unix", "/run/socket", true}, // not an IP address: fail closed
	}
	for _, tc := range tests {
		t.Run(tc.address, func(t *testing.T) {
			err := guard(tc.network, tc.address, nil)
			if tc.forbidden {
				require.ErrorIs(t, err, ErrForbiddenAddress)
			} else {
				require.NoError(t, err)
			}
		})
	}
}

func okServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv
}

// get fetches url and returns the body of a 200 answer.
func get(c *http.Client, url string) (string, error) {
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(b), nil
}

func TestEgressClientLoopback(t *testing.T) {
	srv := okServer(t)
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	require.NoError(t, err)
	urls := map[string]string{
		"ip":   srv.URL,
		"name": "http://localhost:" + port, // refused after resolution
	}
	for name, url := range urls {
		t.Run(name, func(t *testing.T) {
			_, err := get(NewEgressClient(EgressConfig{}), url)
			require.ErrorIs(t, err, ErrForbiddenAddress)

			if name == "ip" {
				body, err := get(NewEgressClient(EgressConfig{AllowPrivate: true}), url)
				require.NoError(t, err)
				require.Equal(t, "ok", body)
			}
		})
	}
}

// TestEgressClientRedirectToForbiddenAddress treats 127.0.0.2 as public and
// 127.0.0.1 as forbidden: a redirect from the first to the second is
// refused when it dials.
func TestEgressClientRedirectToForbiddenAddress(t *testing.T) {
	forbidden := okServer(t) // on 127.0.0.1
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("cannot listen on 127.0.0.2: %v", err)
	}
	public := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, forbidden.URL+"/secret", http.StatusFound)
			return
		}
		_, _ = io.WriteString(w, "public")
	}))
	_ = public.Listener.Close()
	public.Listener = ln
	public.Start()
	t.Cleanup(public.Close)

	c := newEgressClient(EgressConfig{}, func(a netip.Addr) bool { return a == netip.MustParseAddr("127.0.0.1") })

	body, err := get(c, public.URL+"/")
	require.NoError(t, err)
	require.Equal(t, "public", body)

	_, err = get(c, forbidden.URL)
	require.ErrorIs(t, err, ErrForbiddenAddress)

	_, err = get(c, public.URL+"/redirect")
	require.ErrorIs(t, err, ErrForbiddenAddress)
}

func TestEgressClientRedirectPolicy(t *testing.T) {
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if target, ok := strings.CutPrefix(r.URL.Path, "/to/"); ok {
			http.Redirect(w, r, "http://"+target, http.StatusFound)
			return
		}
		_, _ = io.WriteString(w, "secure")
	}))
	t.Cleanup(tlsSrv.Close)

	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch p := r.URL.Path; {
		case strings.HasPrefix(p, "/chain/"):
			// /chain/n redirects n times before answering.
			n, err := strconv.Atoi(strings.TrimPrefix(p, "/chain/"))
			if err != nil || n == 0 {
				_, _ = io.WriteString(w, "ok")
				return
			}
			http.Redirect(w, r, "/chain/"+strconv.Itoa(n-1), http.StatusFound)
		case strings.HasPrefix(p, "/location/"):
			w.Header().Set("Location", strings.TrimPrefix(p, "/location/"))
			w.WriteHeader(http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	httpHost := strings.TrimPrefix(srv.URL, "http://")

	c := NewEgressClient(EgressConfig{AllowPrivate: true})
	pool := x509.NewCertPool()
	pool.AddCert(tlsSrv.Certificate())
	c.Transport.(*http.Transport).TLSClientConfig.RootCAs = pool

	tests := []struct {
		name    string
		url     string
		body    string // on success
		errPart string // on failure
	}{
		{"no redirect", srv.URL + "/chain/0", "ok", ""},
		{"five redirects are followed", srv.URL + "/chain/5", "ok", ""},
		{"a sixth is not", srv.URL + "/chain/6", "", "stopped after 5 redirects"},
		{"http to https", srv.URL + "/location/" + tlsSrv.URL + "/", "secure", ""},
		{"https to http", tlsSrv.URL + "/to/" + httpHost + "/chain/0", "", "redirect from https to http refused"},
		{"file scheme", srv.URL + "/location/file:///etc/passwd", "", `unsupported scheme "file"`},
		{"ftp scheme", srv.URL + "/location/ftp://example.com/x", "", `unsupported scheme "ftp"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body, err := get(c, tc.url)
			if tc.errPart != "" {
				require.ErrorContains(t, err, tc.errPart)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.body, body)
		})
	}
}

func TestEgressClientSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  EgressConfig
		want time.Duration
	}{
		{"default timeout", EgressConfig{}, DefaultEgressTimeout},
		{"negative timeout", EgressConfig{Timeout: -time.Second}, DefaultEgressTimeout},
		{"custom timeout", EgressConfig{Timeout: 20 * time.Second, AllowPrivate: true}, 20 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewEgressClient(tc.cfg)
			require.Equal(t, tc.want, c.Timeout)
			tr, ok := c.Transport.(*http.Transport)
			require.True(t, ok)
			require.Nil(t, tr.Proxy, "environment proxies must not be used")
			require.Equal(t, tc.want, tr.ResponseHeaderTimeout)
			require.Equal(t, min(tc.want, 10*time.Second), tr.TLSHandshakeTimeout)
			require.Positive(t, tr.IdleConnTimeout)
			require.NotNil(t, c.CheckRedirect)
		})
	}
}

func TestEgressClientTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		case <-time.After(2 * DefaultEgressTimeout):
			// A client without any timeout gets an answer, and the test
			// fails instead of hanging.
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	const timeout = 100 * time.Millisecond
	c := NewEgressClient(EgressConfig{AllowPrivate: true, Timeout: timeout})
	start := time.Now()
	_, err := get(c, srv.URL)
	elapsed := time.Since(start)
	require.Error(t, err)
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "%v", err)
	require.GreaterOrEqual(t, elapsed, timeout)
	// Generous for a slow machine, and still well short of what ignoring
	// the configured timeout would take (the 5 s default).
	require.Less(t, elapsed, DefaultEgressTimeout-time.Second, "the configured timeout ended the call, not the default")
}
