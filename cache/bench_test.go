package cache

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ghasi-ehealth/identity-service/core"
)

// go test -run '^$' -bench . ./cache/
func BenchmarkLimiterHit(b *testing.B) {
	ctx := context.Background()
	backends := map[string]func(b *testing.B) core.RateLimiter{
		"local":  func(*testing.B) core.RateLimiter { return NewLocalLimiter(core.SystemClock{}) },
		"valkey": func(b *testing.B) core.RateLimiter { return openTestValkey(b).Limiter() },
	}
	for name, open := range backends {
		b.Run(name, func(b *testing.B) {
			l, key := open(b), uniquePrefix(b)+"bench"
			for b.Loop() {
				if _, _, err := l.Hit(ctx, key, time.Minute); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"-parallel", func(b *testing.B) {
			l, key := open(b), uniquePrefix(b)+"bench"
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, _, err := l.Hit(ctx, key, time.Minute); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// A warm check of a session that is not revoked (the common case): on
// Valkey a client-side cache hit, so a local memory read.
func BenchmarkIsRevokedWarm(b *testing.B) {
	ctx := context.Background()
	b.Run("valkey", func(b *testing.B) {
		r := openTestValkey(b).Revocations().(valkeyRevocations)
		id := uniquePrefix(b) + "s1"
		_, _, err := r.isRevoked(ctx, id)
		require.NoError(b, err)
		_, cached, err := r.isRevoked(ctx, id)
		require.NoError(b, err)
		require.True(b, cached, "warm")
		for b.Loop() {
			if _, err := r.IsRevoked(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("valkey-parallel", func(b *testing.B) {
		r := openTestValkey(b).Revocations()
		id := uniquePrefix(b) + "s1"
		_, err := r.IsRevoked(ctx, id)
		require.NoError(b, err)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := r.IsRevoked(ctx, id); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("local", func(b *testing.B) {
		r := NewLocalRevocations(core.SystemClock{})
		for b.Loop() {
			if _, err := r.IsRevoked(ctx, "s1"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("failover-over-valkey", func(b *testing.B) {
		r := NewFailoverRevocations(openTestValkey(b).Revocations(), nil, nil)
		id := uniquePrefix(b) + "s1"
		_, err := r.IsRevoked(ctx, id)
		require.NoError(b, err)
		for b.Loop() {
			if _, err := r.IsRevoked(ctx, id); err != nil {
				b.Fatal(err)
			}
		}
	})
}
