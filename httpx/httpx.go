// Package httpx is the HTTP plumbing shared by the three transports (REST,
// GraphQL, Connect) on the one listener: request ids, client IPs, credential
// verification and panic recovery. It decides nothing about authorization;
// it only puts what it learnt into the request context for core.
package httpx

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/ghasi-ehealth/identity-service/core"
)

// RequestIDHeader carries the correlation id (CONTRACT.md §2).
const RequestIDHeader = "X-Request-Id"

// RequestID echoes a sane client-sent X-Request-Id or generates one, sets it
// on the response and puts it on the context.
func RequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get(RequestIDHeader)
		if !validRequestID(id) {
			id = core.NewID()
		}
		w.Header().Set(RequestIDHeader, id)
		next.ServeHTTP(w, r.WithContext(core.WithRequestID(r.Context(), id)))
	})
}

// validRequestID accepts up to 128 visible ASCII characters, so a client
// cannot inject header or log content through the echo.
func validRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x21 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// ClientIP resolves the caller's address. X-Forwarded-For is believed only
// when the direct peer is a trusted proxy; then the right-most address that
// is not itself a trusted proxy is the client.
type ClientIP struct {
	trusted []netip.Prefix
}

// ParseTrustedProxies parses a comma-separated CIDR list (IDENTITY_TRUSTED_PROXIES).
func ParseTrustedProxies(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(list, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if !strings.Contains(part, "/") {
			addr, err := netip.ParseAddr(part)
			if err != nil {
				return nil, err
			}
			out = append(out, netip.PrefixFrom(addr, addr.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// NewClientIP returns a resolver trusting the given proxy prefixes.
func NewClientIP(trusted []netip.Prefix) *ClientIP { return &ClientIP{trusted: trusted} }

// Middleware puts the resolved client IP on the request context.
func (c *ClientIP) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(core.WithClientIP(r.Context(), c.Resolve(r))))
	})
}

// Resolve returns the client IP of r.
func (c *ClientIP) Resolve(r *http.Request) string {
	peer := remoteAddr(r.RemoteAddr)
	if !peer.IsValid() {
		return r.RemoteAddr
	}
	if !c.isTrusted(peer) {
		return peer.String()
	}
	hops := r.Header.Values("X-Forwarded-For")
	var addrs []string
	for _, h := range hops {
		addrs = append(addrs, strings.Split(h, ",")...)
	}
	for i := len(addrs) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(addrs[i]))
		if err != nil {
			break // a forged or garbled hop: stop believing the chain here
		}
		a = a.Unmap()
		if !c.isTrusted(a) {
			return a.String()
		}
		peer = a
	}
	return peer.String()
}

func (c *ClientIP) isTrusted(a netip.Addr) bool {
	for _, p := range c.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func remoteAddr(s string) netip.Addr {
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		host = s
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

// TokenVerifier verifies an access JWT into a principal.
type TokenVerifier interface {
	Verify(ctx context.Context, raw string) (*core.Principal, error)
}

// APIKeyAuthenticator verifies an X-API-Key value into a principal.
type APIKeyAuthenticator interface {
	AuthenticateAPIKey(ctx context.Context, key string) (*core.Principal, error)
}

// Authenticate verifies the request's credential, if any, and records the
// principal (or the verification failure) on the context. It never rejects
// a request itself: an operation that needs a principal asks core, which
// reports the failure, so each transport renders it in its own format and
// public endpoints stay reachable with a stale token.
func Authenticate(tokens TokenVerifier, apiKeys APIKeyAuthenticator) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx := r.Context()
			if authz := r.Header.Get("Authorization"); authz != "" {
				scheme, raw, _ := strings.Cut(authz, " ")
				switch {
				case !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(raw) == "":
					ctx = core.WithAuthError(ctx, core.Unauthenticated(nil))
				default:
					p, err := tokens.Verify(ctx, strings.TrimSpace(raw))
					if err != nil {
						ctx = core.WithAuthError(ctx, err)
					} else {
						ctx = core.WithPrincipal(ctx, p)
					}
				}
			} else if key := r.Header.Get("X-API-Key"); key != "" {
				if apiKeys == nil {
					ctx = core.WithAuthError(ctx, core.Unauthenticated(nil))
				} else if p, err := apiKeys.AuthenticateAPIKey(ctx, key); err != nil {
					ctx = core.WithAuthError(ctx, err)
				} else {
					ctx = core.WithPrincipal(ctx, p)
				}
			}
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}
