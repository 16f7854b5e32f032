package auth_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/core/auth"
	"github.com/ghasi-ehealth/identity-service/core/password"
	"github.com/ghasi-ehealth/identity-service/core/user"
	"github.com/ghasi-ehealth/identity-service/persistence/dbtest"
)

// productionEnv is newEnv with the production argon2id cost (m=64 MiB, t=3,
// p=1) and one hashing slot per CPU, as IDENTITY_ARGON2_* default to.
func productionEnv(b *testing.B, users int) (*env, *password.Hasher) {
	e := newEnv(b, dbtest.Postgres)
	hasher := password.NewHasher(password.DefaultParams(), runtime.NumCPU(), password.DefaultAcquireTimeout)
	e.deps.Hasher = hasher
	e.svc = auth.NewService(e.deps, e.cfg)
	ta := e.tenant(b, "prod")
	for i := range users {
		e.userWith(b, ta, fmt.Sprintf("p%d@example.org", i), user.StatusActive, password.DefaultParams())
	}
	return e, hasher
}

// BenchmarkLoginVsHashRate measures login throughput against the argon2id
// verification rate on the same machine in the same run; the target is
// login ≥ 0.9 × hash rate (docs/PERFORMANCE.md). Each sub-benchmark keeps
// every CPU busy with one operation per slot.
func BenchmarkLoginVsHashRate(b *testing.B) {
	e, hasher := productionEnv(b, 16)
	encoded, err := hasher.Hash(context.Background(), goodPassword)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("argon2id-verify", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if ok, _, err := hasher.Verify(context.Background(), goodPassword, encoded); err != nil || !ok {
					b.Error("verify failed", err)
					return
				}
			}
		})
	})
	b.Run("login", func(b *testing.B) {
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := n.Add(1)
				ctx := core.WithClientIP(context.Background(), fmt.Sprintf("198.51.100.%d", i%200))
				_, err := e.svc.Login(ctx, auth.LoginInput{Email: fmt.Sprintf("p%d@example.org", i%16), Password: goodPassword})
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkLoginStorm sends 200 simultaneous logins at production cost and
// reports the process's peak resident memory (VmHWM) and how the overflow
// was answered. Target: peak RSS ≤ slots × 64 MiB + 200 MiB, overflow
// answered 503 IDENT_OVERLOADED (never an out-of-memory). Run it alone:
// go test -run '^$' -bench LoginStorm -benchtime 1x ./core/auth/
func BenchmarkLoginStorm(b *testing.B) {
	// What identityd does at start (cmd/identityd: memory budget).
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(password.MemoryBudget(password.DefaultParams(), runtime.NumCPU())))
	const accounts = 40 // ≤ 5 concurrent attempts per account, under its failure budget
	e, _ := productionEnv(b, accounts)
	for b.Loop() {
		var wg sync.WaitGroup
		var ok, overloaded, other atomic.Int64
		start := time.Now()
		for i := range 200 {
			wg.Go(func() {
				ctx := core.WithClientIP(context.Background(), fmt.Sprintf("203.0.113.%d", i))
				_, err := e.svc.Login(ctx, auth.LoginInput{Email: fmt.Sprintf("p%d@example.org", i%accounts), Password: goodPassword})
				switch core.CodeOf(err) {
				case "":
					ok.Add(1)
				case core.CodeOverloaded:
					overloaded.Add(1)
				default:
					other.Add(1)
				}
			})
		}
		wg.Wait()
		b.ReportMetric(float64(ok.Load()), "ok")
		b.ReportMetric(float64(overloaded.Load()), "overloaded-503")
		b.ReportMetric(float64(other.Load()), "other-errors")
		b.ReportMetric(time.Since(start).Seconds(), "storm-s")
	}
	b.ReportMetric(peakRSSMiB(b), "peak-RSS-MiB")
	b.ReportMetric(float64(runtime.NumCPU()*64+200), "target-MiB")
}

// peakRSSMiB reads the process's high-water resident set size (Linux).
func peakRSSMiB(b *testing.B) float64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Skip("no /proc/self/status")
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}
