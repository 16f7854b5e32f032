package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/token"
)

// BenchmarkAccessContextHTTP measures GET /api/v1/me/access-context through
// the whole handler stack in process, at the leaf of a depth-8 chain with
// 200 license assignments, for a user whose tenant-wide membership covers
// it. "cold" invalidates every cached context (and the effective-license
// sets) before each call; "warm" is a cache hit.
func BenchmarkAccessContextHTTP(b *testing.B) {
	for _, d := range []struct {
		name string
		env  func(testing.TB) map[string]string
	}{{"sqlite", baseEnv}, {"postgres", postgresEnv}, {"postgres+valkey", postgresValkeyEnv}} {
		b.Run(d.name, func(b *testing.B) {
			s := startService(b, d.env(b))
			tenantID, leaf, _ := licensingBenchFixture(b, s)
			ctx := context.Background()
			var adminID string
			if err := s.main.db.Bun().QueryRowContext(ctx, "SELECT id FROM users WHERE email = ?", testAdminEmail).Scan(&adminID); err != nil {
				b.Fatal(err)
			}
			if err := s.main.directory.AddMembership(ctx, core.Membership{UserID: adminID, TenantID: tenantID, Roles: []string{"DOCTOR"}}); err != nil {
				b.Fatal(err)
			}
			bearer, _, err := s.main.issuer.Issue(ctx, token.Claims{Subject: adminID, TenantID: tenantID, AMR: []string{token.AMRPassword}})
			if err != nil {
				b.Fatal(err)
			}
			h := s.main.server.Handler
			path := "/api/v1/me/access-context?nodeId=" + leaf
			call := func(b *testing.B) {
				req := httptest.NewRequest(http.MethodGet, path, nil)
				req.Header.Set("Authorization", "Bearer "+bearer)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
			b.Run("cold", func(b *testing.B) {
				b.ReportAllocs()
				loopTimed(b, func() { s.main.licensing.OnChange("") }, func() { call(b) })
			})
			b.Run("warm", func(b *testing.B) {
				call(b)
				b.ReportAllocs()
				loopTimed(b, nil, func() { call(b) })
			})
		})
	}
}
