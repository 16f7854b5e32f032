package federation

import (
	"context"
	"net/http"
	"testing"

	"github.com/ghasi-ehealth/identity-service/core"
)

// BenchmarkStartCircuitOpen measures how fast Start refuses while the
// provider's circuit is open (target: well under 10 ms; CONTRACT.md §4).
// The provider lookup is the in-memory fake, so this is the service's own
// cost; docs/PERFORMANCE.md has the figure through HTTP and SQLite.
func BenchmarkStartCircuitOpen(b *testing.B) {
	f := newFixture(b)
	f.seedProvider(b, f.tenantA, "okta", f.idp.issuer())
	in := StartInput{TenantID: f.tenantA, Slug: "okta"}
	f.idp.discoveryStatus.Store(http.StatusServiceUnavailable)
	for range DefaultFailureThreshold {
		_, _ = f.svc.Start(context.Background(), in)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := f.svc.Start(context.Background(), in); core.CodeOf(err) != core.CodeFederationUnavailable {
			b.Fatalf("want IDENT_FEDERATION_UNAVAILABLE, got %v", err)
		}
	}
}
