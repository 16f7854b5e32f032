package httpx_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/httpx"
)

func TestRequestID(t *testing.T) {
	tests := []struct {
		name, sent string
		echoed     bool
	}{
		{"generated when absent", "", false},
		{"echoed when sane", "abc-123", true},
		{"replaced when it has spaces", "a b", false},
		{"replaced when too long", string(make([]byte, 129)), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var seen string
			h := httpx.RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen = core.RequestIDFrom(r.Context())
			}))
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			if tc.sent != "" {
				req.Header.Set(httpx.RequestIDHeader, tc.sent)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			got := rec.Header().Get(httpx.RequestIDHeader)
			require.Equal(t, seen, got)
			if tc.echoed {
				require.Equal(t, tc.sent, got)
			} else {
				require.True(t, core.ValidID(got), got)
			}
		})
	}
}

func TestClientIP(t *testing.T) {
	trusted, err := httpx.ParseTrustedProxies("10.0.0.0/8, 192.168.1.1")
	require.NoError(t, err)
	resolver := httpx.NewClientIP(trusted)
	tests := []struct {
		name, remote, xff, want string
	}{
		{"direct peer", "203.0.113.7:5555", "", "203.0.113.7"},
		{"untrusted peer's XFF ignored", "203.0.113.7:5555", "1.2.3.4", "203.0.113.7"},
		{"trusted proxy's XFF believed", "10.1.2.3:80", "198.51.100.9", "198.51.100.9"},
		{"right-most untrusted hop wins", "10.1.2.3:80", "6.6.6.6, 198.51.100.9, 192.168.1.1", "198.51.100.9"},
		{"garbage hop stops the chain", "10.1.2.3:80", "198.51.100.9, nonsense", "10.1.2.3"},
		{"ipv6 peer", "[2001:db8::1]:443", "", "2001:db8::1"},
		{"all hops trusted", "10.1.2.3:80", "10.9.9.9", "10.9.9.9"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.RemoteAddr = tc.remote
			if tc.xff != "" {
				req.Header.Set("X-Forwarded-For", tc.xff)
			}
			require.Equal(t, tc.want, resolver.Resolve(req))
			var seen string
			resolver.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				seen = core.ClientIPFrom(r.Context())
			})).ServeHTTP(httptest.NewRecorder(), req)
			require.Equal(t, tc.want, seen)
		})
	}
	_, err = httpx.ParseTrustedProxies("10.0.0.0/33")
	require.Error(t, err)
	_, err = httpx.ParseTrustedProxies("not-an-ip")
	require.Error(t, err)
}

type fakeVerifier struct{}

func (fakeVerifier) Verify(_ context.Context, raw string) (*core.Principal, error) {
	if raw == "good" {
		return &core.Principal{Type: core.PrincipalUser, ID: "u1"}, nil
	}
	return nil, core.Unauthenticated(errors.New("bad token"))
}

type fakeKeys struct{}

func (fakeKeys) AuthenticateAPIKey(_ context.Context, key string) (*core.Principal, error) {
	if key == "k-good" {
		return &core.Principal{Type: core.PrincipalAPIKey, ID: "k1"}, nil
	}
	return nil, core.Unauthenticated(nil)
}

func TestAuthenticate(t *testing.T) {
	tests := []struct {
		name     string
		header   map[string]string
		apiKeys  httpx.APIKeyAuthenticator
		wantID   string
		wantCode string
	}{
		{"no credential", nil, fakeKeys{}, "", core.CodeUnauthenticated},
		{"good bearer", map[string]string{"Authorization": "Bearer good"}, fakeKeys{}, "u1", ""},
		{"lower-case scheme", map[string]string{"Authorization": "bearer good"}, fakeKeys{}, "u1", ""},
		{"bad bearer", map[string]string{"Authorization": "Bearer bad"}, fakeKeys{}, "", core.CodeUnauthenticated},
		{"basic scheme", map[string]string{"Authorization": "Basic Zm9vOmJhcg=="}, fakeKeys{}, "", core.CodeUnauthenticated},
		{"empty bearer", map[string]string{"Authorization": "Bearer "}, fakeKeys{}, "", core.CodeUnauthenticated},
		{"good api key", map[string]string{"X-API-Key": "k-good"}, fakeKeys{}, "k1", ""},
		{"bad api key", map[string]string{"X-API-Key": "k-bad"}, fakeKeys{}, "", core.CodeUnauthenticated},
		{"api keys not wired", map[string]string{"X-API-Key": "k-good"}, nil, "", core.CodeUnauthenticated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p *core.Principal
			var err error
			h := httpx.Authenticate(fakeVerifier{}, tc.apiKeys)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				p, err = core.RequirePrincipal(r.Context())
			}))
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			h.ServeHTTP(httptest.NewRecorder(), req)
			if tc.wantCode != "" {
				require.Equal(t, tc.wantCode, core.CodeOf(err))
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.wantID, p.ID)
		})
	}
}
