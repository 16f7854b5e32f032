package main

import (
	"slices"
	"testing"
	"time"
)

// loopTimed runs op for every iteration of b and reports the p50 and p99
// latency of one op (ms) next to the mean; setup runs before each op,
// outside the percentiles (but inside ns/op).
func loopTimed(b *testing.B, setup, op func()) {
	b.Helper()
	var took []time.Duration
	for b.Loop() {
		if setup != nil {
			setup()
		}
		t0 := time.Now()
		op()
		took = append(took, time.Since(t0))
	}
	if len(took) == 0 {
		return
	}
	slices.Sort(took)
	at := func(q float64) float64 {
		return float64(took[min(len(took)-1, int(q*float64(len(took))))].Microseconds()) / 1000
	}
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
}
