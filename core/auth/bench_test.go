package auth_test

import (
	"context"
	"fmt"
	"github.com/ghasi-ehealth/identity-service/core/token"
	"sync/atomic"
	"testing"

	"github.com/ghasi-ehealth/identity-service/core/auth"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

// BenchmarkRefresh measures one refresh-token rotation on Postgres: the
// conditional consume, the session and user reads, the new token's insert
// and the access-token signature, in one transaction.
func BenchmarkRefresh(b *testing.B) {
	e := newEnv(b, dbtest.Postgres)
	ta := e.tenant(b, "a")
	const users = 64
	for i := range users {
		e.user(b, ta, fmt.Sprintf("u%d@example.org", i), user.StatusActive)
	}
	ctx := ipCtx("192.0.2.1")

	// The RS256 signing rate on this machine, measured in the same run: the
	// refresh target is ≥ 0.5 × this (docs/PERFORMANCE.md).
	b.Run("rs256-sign-parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, _, err := e.issuer.Issue(context.Background(), token.Claims{Subject: "s", TenantID: "t"}); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})

	b.Run("sequential", func(b *testing.B) {
		rt := e.login(b, "u0@example.org", "192.0.2.1").RefreshToken
		b.ReportAllocs()
		for b.Loop() {
			resp, err := e.svc.Refresh(ctx, rt)
			if err != nil {
				b.Fatal(err)
			}
			rt = resp.RefreshToken
		}
	})

	b.Run("parallel", func(b *testing.B) {
		var next atomic.Int32
		b.ReportAllocs()
		// More workers than cores hide the database round trip, as many
		// concurrent clients do.
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			// Each worker rotates its own session's chain.
			n := next.Add(1)
			email := fmt.Sprintf("u%d@example.org", n%users)
			// One client IP per worker: a burst of simultaneous logins from one
			// address counts against its failure budget until each succeeds.
			resp, err := e.svc.Login(ipCtx(fmt.Sprintf("192.0.2.%d", 10+n)), auth.LoginInput{Email: email, Password: goodPassword})
			if err != nil {
				b.Error(err)
				return
			}
			rt := resp.RefreshToken
			for pb.Next() {
				resp, err := e.svc.Refresh(context.Background(), rt)
				if err != nil {
					b.Error(err)
					return
				}
				rt = resp.RefreshToken
			}
		})
	})
}
