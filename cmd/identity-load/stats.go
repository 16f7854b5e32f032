package main

import (
	"maps"
	"math"
	"math/bits"
	"slices"
	"time"
)

// histogram is a log-linear latency histogram in the spirit of HdrHistogram:
// values below subCount nanoseconds are counted exactly, larger ones in
// subCount linear sub-buckets per power of two. A bucket [low, low+2^e)
// with low ≥ subCount·2^e is reported by its midpoint, so the relative error
// of a reported value is at most 2^(e-1) / (subCount·2^e) = 1/(2·subCount)
// = 0.39 %. The bucket array is allocated on the first Record.
type histogram struct {
	counts   []uint64
	n        uint64
	sum      float64 // nanoseconds
	min, max uint64
}

const (
	subBits  = 7
	subCount = 1 << subBits
	// numBuckets covers every uint64: the top value 2^64-1 lands in bucket
	// (64-subBits)·subCount + subCount-1.
	numBuckets = (64 - subBits + 1) * subCount
)

func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	e := bits.Len64(v) - subBits - 1 // v>>e is in [subCount, 2·subCount)
	return (e+1)*subCount + int(v>>e) - subCount
}

// bucketRange is the inclusive-low, exclusive-high value range of bucket i
// (high saturates at the top of uint64).
func bucketRange(i int) (low, width uint64) {
	if i < subCount {
		return uint64(i), 1
	}
	e := i/subCount - 1
	m := uint64(i%subCount + subCount)
	return m << e, 1 << e
}

// Record adds one latency (negative durations count as 0).
func (h *histogram) Record(d time.Duration) {
	v := uint64(max(d, 0))
	if h.counts == nil {
		h.counts = make([]uint64, numBuckets)
	}
	h.counts[bucketOf(v)]++
	if h.n == 0 || v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.n++
	h.sum += float64(v)
}

// Merge adds o's counts to h.
func (h *histogram) Merge(o *histogram) {
	if o == nil || o.n == 0 {
		return
	}
	if h.counts == nil {
		h.counts = make([]uint64, numBuckets)
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// Count is the number of recorded values.
func (h *histogram) Count() uint64 { return h.n }

// Max is the largest recorded value, exactly.
func (h *histogram) Max() time.Duration { return time.Duration(h.max) }

// Mean is the exact mean of the recorded values.
func (h *histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Quantile returns the value at quantile q (0 < q ≤ 1) by the nearest-rank
// method: the smallest recorded value v such that at least ⌈q·n⌉ values are
// ≤ v, within the histogram's 0.39 % error (and clamped to the exact
// minimum and maximum). It is 0 for an empty histogram.
func (h *histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if q >= 1 {
		return time.Duration(h.max)
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(rank, 1)
	var seen uint64
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		seen += c
		if seen >= rank {
			low, width := bucketRange(i)
			v := low + width/2
			return time.Duration(min(max(v, h.min), h.max))
		}
	}
	return time.Duration(h.max)
}

// recorder collects the outcome of one operation in one worker; workers
// own theirs, so recording takes no lock. Latencies are those of successful
// requests; failures are tallied by error code.
type recorder struct {
	ok     histogram
	svc    histogram // open loop: latency from the actual send (service time)
	errors map[string]uint64
}

func (r *recorder) success(d time.Duration) { r.ok.Record(d) }

func (r *recorder) failure(code string) {
	if r.errors == nil {
		r.errors = map[string]uint64{}
	}
	r.errors[code]++
}

// failures is the number of failed requests.
func (r *recorder) failures() uint64 {
	var n uint64
	for _, c := range r.errors {
		n += c
	}
	return n
}

// merge adds o into r.
func (r *recorder) merge(o *recorder) {
	if o == nil {
		return
	}
	r.ok.Merge(&o.ok)
	r.svc.Merge(&o.svc)
	for code, c := range o.errors {
		if r.errors == nil {
			r.errors = map[string]uint64{}
		}
		r.errors[code] += c
	}
}

// opReport is the result of one operation (or the total of a scenario).
type opReport struct {
	Name             string        `json:"name"`
	Weight           int           `json:"weight,omitempty"`
	Requests         uint64        `json:"requests"`
	Successes        uint64        `json:"successes"`
	Failures         uint64        `json:"failures"`
	ThroughputPerSec float64       `json:"throughputPerSec"`
	LatencyMs        latencyReport `json:"latencyMs"`
	// ServiceMs (open loop only) is measured from the actual send, without
	// the wait for the send; LatencyMs is measured from the scheduled time.
	ServiceMs *latencyReport    `json:"serviceMs,omitempty"`
	Errors    map[string]uint64 `json:"errors"`
}

// latencyReport holds latencies of successful requests in milliseconds.
type latencyReport struct {
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p999"`
	Max  float64 `json:"max"`
}

func latencies(h *histogram) latencyReport {
	return latencyReport{
		Mean: ms(h.Mean()), P50: ms(h.Quantile(0.50)), P90: ms(h.Quantile(0.90)),
		P95: ms(h.Quantile(0.95)), P99: ms(h.Quantile(0.99)), P999: ms(h.Quantile(0.999)),
		Max: ms(h.Max()),
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// report summarizes r over a measured window of seconds.
func (r *recorder) report(name string, seconds float64) opReport {
	fails := r.failures()
	out := opReport{
		Name: name, Requests: r.ok.Count() + fails, Successes: r.ok.Count(), Failures: fails,
		Errors:    map[string]uint64{},
		LatencyMs: latencies(&r.ok),
	}
	if r.svc.Count() > 0 {
		svc := latencies(&r.svc)
		out.ServiceMs = &svc
	}
	maps.Copy(out.Errors, r.errors)
	if seconds > 0 {
		out.ThroughputPerSec = float64(out.Successes) / seconds
	}
	return out
}

// errorCodes returns the codes of a tally, most frequent first (ties by name).
func errorCodes(tally map[string]uint64) []string {
	codes := slices.Collect(maps.Keys(tally))
	slices.SortFunc(codes, func(a, b string) int {
		if tally[a] != tally[b] {
			if tally[a] > tally[b] {
				return -1
			}
			return 1
		}
		if a < b {
			return -1
		}
		if a > b {
			return 1
		}
		return 0
	})
	return codes
}
