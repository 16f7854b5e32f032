package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBucketsCoverEveryValueWithinOnePercent(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	check := func(v uint64) {
		i := bucketOf(v)
		require.Less(t, i, numBuckets, "value %d", v)
		low, width := bucketRange(i)
		require.LessOrEqual(t, low, v, "value %d bucket %d", v, i)
		require.Less(t, v-low, width, "value %d bucket %d", v, i)
		if width > 1 {
			// The midpoint is within half a bucket of any member (buckets
			// of width 1 are exact).
			require.LessOrEqual(t, float64(width)/2/float64(low), 1.0/(2*subCount)+1e-12, "value %d", v)
		}
	}
	for v := range uint64(4 * subCount) {
		check(v)
	}
	for range 100_000 {
		check(rng.Uint64() >> rng.IntN(64))
	}
	check(math.MaxUint64)
	// Buckets are contiguous and increasing.
	prevLow, prevWidth := bucketRange(0)
	for i := 1; i < numBuckets; i++ {
		low, width := bucketRange(i)
		require.Equal(t, prevLow+prevWidth, low, "bucket %d", i)
		prevLow, prevWidth = low, width
	}
}

// exactQuantile is the nearest-rank quantile of sorted values.
func exactQuantile(sorted []time.Duration, q float64) time.Duration {
	rank := int(math.Ceil(q * float64(len(sorted))))
	return sorted[max(rank, 1)-1]
}

func TestHistogramQuantilesWithinOnePercent(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	distributions := map[string]func() time.Duration{
		// Log-normal around 1 ms with a long tail, like request latencies.
		"lognormal": func() time.Duration {
			return time.Duration(math.Exp(rng.NormFloat64()*1.2) * float64(time.Millisecond))
		},
		"uniform": func() time.Duration { return time.Duration(rng.Int64N(int64(50 * time.Millisecond))) },
		"bimodal": func() time.Duration {
			if rng.IntN(100) < 95 {
				return time.Duration(200_000 + rng.Int64N(50_000))
			}
			return time.Duration(120_000_000 + rng.Int64N(10_000_000))
		},
		"tiny": func() time.Duration { return time.Duration(rng.Int64N(300)) }, // exact region and first buckets
	}
	for name, gen := range distributions {
		t.Run(name, func(t *testing.T) {
			var h histogram
			vals := make([]time.Duration, 50_000)
			var sum float64
			for i := range vals {
				vals[i] = gen()
				h.Record(vals[i])
				sum += float64(vals[i])
			}
			slices.Sort(vals)
			require.Equal(t, uint64(len(vals)), h.Count())
			require.Equal(t, vals[len(vals)-1], h.Max())
			require.InDelta(t, sum/float64(len(vals)), float64(h.Mean()), 1, "the mean is exact")
			for _, q := range []float64{0.001, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999, 0.9999, 1} {
				want, got := exactQuantile(vals, q), h.Quantile(q)
				assert.InDelta(t, float64(want), float64(got), math.Max(float64(want)*0.01, 1), "q=%v", q)
			}
		})
	}
}

func TestHistogramEdges(t *testing.T) {
	var h histogram
	require.Zero(t, h.Quantile(0.5))
	require.Zero(t, h.Mean())
	require.Zero(t, h.Max())
	h.Record(-time.Second) // clock step: counted as 0
	require.Equal(t, time.Duration(0), h.Quantile(1))

	var one histogram
	one.Record(1234567 * time.Nanosecond)
	for _, q := range []float64{0.0001, 0.5, 0.99, 1} {
		require.Equal(t, 1234567*time.Nanosecond, one.Quantile(q), "one value: clamped to the exact min/max")
	}
}

func TestHistogramMergeEqualsRecordingEverything(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var all, a, b histogram
	for i := range 10_000 {
		d := time.Duration(rng.Int64N(int64(time.Second)))
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	var m histogram
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(nil)
	m.Merge(&histogram{})
	require.Equal(t, all.Count(), m.Count())
	require.Equal(t, all.Max(), m.Max())
	require.Equal(t, all.min, m.min)
	require.Equal(t, all.counts, m.counts)
	for _, q := range []float64{0.5, 0.99} {
		require.Equal(t, all.Quantile(q), m.Quantile(q))
	}
}

func TestRecorderTalliesAndReport(t *testing.T) {
	var w1, w2 recorder
	for range 90 {
		w1.success(2 * time.Millisecond)
	}
	w1.failure("IDENT_RATE_LIMITED")
	w1.failure("IDENT_RATE_LIMITED")
	w2.success(10 * time.Millisecond)
	w2.failure("transport:timeout")
	w2.failure("IDENT_RATE_LIMITED")

	var total recorder
	total.merge(&w1)
	total.merge(&w2)
	total.merge(nil)
	r := total.report("login", 2)
	require.Equal(t, uint64(95), r.Requests)
	require.Equal(t, uint64(91), r.Successes)
	require.Equal(t, uint64(4), r.Failures)
	require.Equal(t, map[string]uint64{"IDENT_RATE_LIMITED": 3, "transport:timeout": 1}, r.Errors)
	require.InDelta(t, 45.5, r.ThroughputPerSec, 1e-9, "successes per measured second")
	require.InDelta(t, 2.0, r.LatencyMs.P50, 0.02)
	require.InDelta(t, 10.0, r.LatencyMs.Max, 1e-9)
	require.Equal(t, []string{"IDENT_RATE_LIMITED", "transport:timeout"}, errorCodes(r.Errors))

	require.Equal(t, []string{"a", "b", "c"}, errorCodes(map[string]uint64{"c": 1, "b": 1, "a": 2}), "by count, then by name")

	empty := (&recorder{}).report("jwks", 0)
	require.Zero(t, empty.Requests)
	require.Zero(t, empty.ThroughputPerSec)
	require.NotNil(t, empty.Errors, "always an object in JSON")
}
