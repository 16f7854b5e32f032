package serviceaccount_test

import (
	"context"
	"testing"

	"github.com/ghasi-ehealth/identity-service/core/scope"
	"github.com/ghasi-ehealth/identity-service/core/serviceaccount"
	"github.com/ghasi-ehealth/identity-service/core/serviceaccount/satest"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

// BenchmarkClientCredentials measures the client_credentials grant on
// Postgres: client lookup by client_id (prepared), HMAC check and RS256
// signing, 8 goroutines per GOMAXPROCS. Throughput = 1e9 / ns/op grants
// per second (target ≥ 600/s on 2 cores).
func BenchmarkClientCredentials(b *testing.B) {
	for name, open := range map[string]dbtest.Opener{"postgres": dbtest.Postgres, "sqlite": dbtest.SQLite} {
		b.Run(name, func(b *testing.B) {
			e := satest.New(b, open)
			c := e.Create(b, e.Tenant(b, "bench"), scope.LicensingRead)
			in := serviceaccount.ClientCredentialsInput{GrantType: serviceaccount.GrantClientCredentials,
				ClientID: c.Account.ClientID, ClientSecret: c.ClientSecret}
			b.SetParallelism(8)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				for pb.Next() {
					if _, err := e.Svc.ClientCredentials(ctx, in); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "grants/s")
		})
	}
}
