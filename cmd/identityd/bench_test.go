package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkJWKSEndpoint measures one GET /.well-known/jwks.json through the
// whole middleware stack (otelhttp, request id, recover, client IP, auth)
// without the network, i.e. the server-side cost per request.
func BenchmarkJWKSEndpoint(b *testing.B) {
	s := startService(b, baseEnv(b))
	h := s.main.server.Handler
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/.well-known/jwks.json", nil))
			if rec.Code != http.StatusOK {
				b.Fatalf("status %d", rec.Code)
			}
		}
	})
}
