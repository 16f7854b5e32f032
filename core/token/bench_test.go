package token_test

import (
	"context"
	"testing"

	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

func BenchmarkIssue(b *testing.B) {
	f := newFixture(b, dbtest.SQLite(b), nil)
	ctx := context.Background()
	c := userClaims()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := f.issuer.Issue(ctx, c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	f := newFixture(b, dbtest.SQLite(b), nil)
	tok := f.issue(b, userClaims())
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := f.verifier.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkVerifyReject measures the cost of refusing garbage before any
// RSA work (a flood of bad tokens must stay cheap).
func BenchmarkVerifyReject(b *testing.B) {
	f := newFixture(b, dbtest.SQLite(b), nil)
	ctx := context.Background()
	bad := "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.e30."
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.verifier.Verify(ctx, bad); err == nil {
			b.Fatal("accepted alg none")
		}
	}
}
