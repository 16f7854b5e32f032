package httpx

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// Outbound calls to third-party identity providers (discovery documents,
// JWKS, token endpoints) go to URLs that tenant administrators configure,
// and discovery documents name further URLs that the IdP chooses. Without
// a guard, whoever controls such a URL can make this service send requests
// into its own network — cloud metadata endpoints (169.254.169.254), admin
// ports on loopback, databases and brokers on private addresses — and read
// or time the answers (server-side request forgery).
//
// The guard sits in the dialer, not in URL validation: net.Dialer.Control
// runs after name resolution, for the very IP address about to be
// connected, so it cannot be bypassed by a host name that resolves to a
// private address, by a DNS answer that changes between a check and the
// connection (DNS rebinding), by odd spellings of an address in a URL
// (decimal, octal, IPv4-mapped IPv6), or by a redirect (every redirect
// dials through the same dialer, and the re-used idle connections were
// all guarded when they were opened). The resolver's own DNS traffic does
// not use this dialer, so a resolver on a private address keeps working.

// DefaultEgressTimeout is EgressConfig.Timeout when it is not set.
const DefaultEgressTimeout = 5 * time.Second

// maxEgressRedirects is how many redirects one call follows at most.
const maxEgressRedirects = 5

// ErrForbiddenAddress is wrapped in the error of a call whose connection
// was refused because the address is not public (see NewEgressClient);
// test with errors.Is.
var ErrForbiddenAddress = errors.New("httpx: egress to a non-public address is forbidden")

// EgressConfig configures NewEgressClient.
type EgressConfig struct {
	// AllowPrivate turns the address guard off, for development and tests
	// where the IdP runs on loopback or a private network. Never set it in
	// production unless the IdPs are internal and their configuration is
	// trusted.
	AllowPrivate bool
	// Timeout bounds a whole call including redirects and reading the
	// body, and each connection attempt; DefaultEgressTimeout when ≤ 0.
	Timeout time.Duration
}

// NewEgressClient returns the HTTP client for calls to third-party identity
// providers:
//
//   - Unless cfg.AllowPrivate, a connection to an address that is not
//     public fails with an error wrapping ErrForbiddenAddress: loopback,
//     private (RFC 1918, IPv6 ULA fc00::/7), link-local (169.254.0.0/16,
//     fe80::/10), unspecified, multicast and broadcast, shared address
//     space (CGNAT 100.64.0.0/10), the other special-purpose blocks that
//     are not globally reachable (0.0.0.0/8, 192.0.0.0/24, documentation
//     and benchmarking ranges, 240.0.0.0/4, IPv4-compatible ::/96,
//     discard 100::/64, 2001:db8::/32, site-local fec0::/10, local-use
//     NAT64 64:ff9b:1::/48), and IPv4-mapped, NAT64 (64:ff9b::/96) and
//     6to4 (2002::/16) forms of forbidden IPv4 addresses.
//   - Redirects: at most 5, only to http and https URLs, and never from
//     https down to http (the IdP's answers would then travel in clear).
//     Each redirect target is guarded like the first request.
//   - No proxy: environment proxies (HTTP_PROXY, HTTPS_PROXY) are ignored,
//     since a proxy would dial on our behalf and the address guard would
//     then only see the proxy.
//   - cfg.Timeout bounds the whole call, every connection attempt and the
//     wait for response headers; TLS handshakes take at most 10 s (and
//     within the call's timeout). Idle connections are kept 30 s, below
//     the idle timeouts of common load balancers, so a pooled connection
//     is rarely one the IdP side is closing. Response headers are limited
//     to 64 KiB.
//
// Otherwise the transport has http.DefaultTransport's settings (HTTP/2,
// keep-alives, pool sizes). Callers should still bound the bodies they read.
func NewEgressClient(cfg EgressConfig) *http.Client {
	forbidden := isForbiddenAddr
	if cfg.AllowPrivate {
		forbidden = nil
	}
	return newEgressClient(cfg, forbidden)
}

// newEgressClient is NewEgressClient with the address classification as a
// parameter (nil: every address is allowed), so tests can guard loopback
// servers selectively.
func newEgressClient(cfg EgressConfig, forbidden func(netip.Addr) bool) *http.Client {
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultEgressTimeout
	}
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	if forbidden != nil {
		dialer.Control = dialGuard(forbidden)
	}
	transport := &http.Transport{
		Proxy:                  nil, // see NewEgressClient
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           100,
		MaxIdleConnsPerHost:    10,
		IdleConnTimeout:        30 * time.Second,
		TLSHandshakeTimeout:    min(timeout, 10*time.Second),
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12},
		ExpectContinueTimeout:  time.Second,
		ResponseHeaderTimeout:  timeout,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{Transport: transport, CheckRedirect: checkEgressRedirect, Timeout: timeout}
}

// dialGuard returns a net.Dialer.Control that refuses connections to the
// addresses forbidden reports. It fails closed: an address it cannot parse
// is refused.
func dialGuard(forbidden func(netip.Addr) bool) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("%w: %s %q is not an IP address", ErrForbiddenAddress, network, address)
		}
		if forbidden(ap.Addr()) {
			return fmt.Errorf("%w: %s", ErrForbiddenAddress, address)
		}
		return nil
	}
}

// checkEgressRedirect is the redirect policy of NewEgressClient.
func checkEgressRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxEgressRedirects {
		return fmt.Errorf("httpx: stopped after %d redirects", maxEgressRedirects)
	}
	switch req.URL.Scheme {
	case "http", "https":
	default:
		return fmt.Errorf("httpx: redirect to unsupported scheme %q", req.URL.Scheme)
	}
	if len(via) > 0 && via[len(via)-1].URL.Scheme == "https" && req.URL.Scheme == "http" {
		return errors.New("httpx: redirect from https to http refused")
	}
	return nil
}

var (
	// forbiddenV4 are the IPv4 blocks not covered by netip's predicates
	// that are not globally reachable (IANA special-purpose registry).
	forbiddenV4 = []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
		netip.MustParsePrefix("100.64.0.0/10"),   // shared address space (CGNAT)
		netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
		netip.MustParsePrefix("192.0.2.0/24"),    // documentation (TEST-NET-1)
		netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
		netip.MustParsePrefix("198.51.100.0/24"), // documentation (TEST-NET-2)
		netip.MustParsePrefix("203.0.113.0/24"),  // documentation (TEST-NET-3)
		netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and broadcast
	}
	// forbiddenV6 are the same for IPv6.
	forbiddenV6 = []netip.Prefix{
		netip.MustParsePrefix("::/96"),          // IPv4-compatible (deprecated)
		netip.MustParsePrefix("64:ff9b:1::/48"), // local-use NAT64
		netip.MustParsePrefix("100::/64"),       // discard-only
		netip.MustParsePrefix("2001:db8::/32"),  // documentation
		netip.MustParsePrefix("fec0::/10"),      // site-local (deprecated)
	}
	// nat64 and sixToFour embed an IPv4 address that decides.
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// isForbiddenAddr reports whether a is not a public unicast address (see
// NewEgressClient for the list). Invalid addresses are forbidden.
func isForbiddenAddr(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	if !a.IsValid() || !a.IsGlobalUnicast() || a.IsPrivate() {
		// IsGlobalUnicast is false for loopback, link-local, multicast,
		// unspecified and the IPv4 broadcast address.
		return true
	}
	blocked := forbiddenV6
	if a.Is4() {
		blocked = forbiddenV4
	}
	for _, p := range blocked {
		if p.Contains(a) {
			return true
		}
	}
	if a.Is6() {
		b := a.As16()
		switch {
		case nat64.Contains(a):
			return isForbiddenAddr(netip.AddrFrom4([4]byte(b[12:16])))
		case sixToFour.Contains(a):
			return isForbiddenAddr(netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	return false
}
