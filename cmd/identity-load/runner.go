package main

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// op is one kind of request of a scenario. do returns nil on success; any
// error is tallied under errorCode(err).
type op struct {
	name   string
	weight int
	do     func(ctx context.Context, w *worker) error
}

// worker is the state of one load goroutine. Only its own goroutine touches
// it, so ops may keep per-worker state (a refresh-token chain) here.
type worker struct {
	id           int
	rng          *rand.Rand
	refreshToken string
	recs         []recorder // one per op
	lag          histogram  // open loop: actual send time − scheduled time
	late         uint64
}

// runOptions shape one scenario run.
type runOptions struct {
	Concurrency int
	// Rate is the open-loop arrival rate in requests per second; 0 runs a
	// closed loop (each worker sends its next request when the previous one
	// answered: the maximum throughput).
	Rate     float64
	Warmup   time.Duration
	Duration time.Duration
	// LateThreshold: an open-loop request sent more than this after its
	// scheduled time counts as late.
	LateThreshold time.Duration
	// QueueCap bounds the open-loop backlog of scheduled, unsent requests;
	// 0 means max(2·Concurrency, Rate) (about one second of backlog).
	QueueCap int
}

// openLoopReport describes the sending side of an open-loop run: how well
// the tool kept the schedule. Latencies of an open-loop run are measured
// from the scheduled send time, so they include the time a request waited
// for a free worker.
type openLoopReport struct {
	RatePerSec float64 `json:"ratePerSec"`
	Scheduled  uint64  `json:"scheduled"`
	Sent       uint64  `json:"sent"`
	// Dropped: not sent because the backlog was full when it was due.
	Dropped uint64 `json:"dropped"`
	// Unsent: still in the backlog when the window ended.
	Unsent          uint64  `json:"unsent"`
	Late            uint64  `json:"late"`
	LateThresholdMs float64 `json:"lateThresholdMs"`
	SendLagP50Ms    float64 `json:"sendLagP50Ms"`
	SendLagP99Ms    float64 `json:"sendLagP99Ms"`
	SendLagMaxMs    float64 `json:"sendLagMaxMs"`
}

// runResult is the merged outcome of a run.
type runResult struct {
	recs     []recorder // per op
	measured time.Duration
	open     *openLoopReport
}

// picker chooses an op index by weight.
type picker struct {
	cum   []int
	total int
}

func newPicker(ops []op) picker {
	p := picker{cum: make([]int, len(ops))}
	for i, o := range ops {
		p.total += max(o.weight, 0)
		p.cum[i] = p.total
	}
	return p
}

func (p picker) pick(rng *rand.Rand) int {
	if len(p.cum) == 1 || p.total == 0 {
		return 0
	}
	n := rng.IntN(p.total)
	for i, c := range p.cum {
		if n < c {
			return i
		}
	}
	return len(p.cum) - 1
}

// run drives ops with workers (already prepared, one per goroutine) for
// opts.Warmup + opts.Duration. Only requests started (closed loop) or
// scheduled (open loop) inside the measured window are recorded. When ctx
// is cancelled the run stops early and the window ends there.
func run(ctx context.Context, ops []op, workers []*worker, opts runOptions) runResult {
	for _, w := range workers {
		w.recs = make([]recorder, len(ops))
	}
	pk := newPicker(ops)
	start := time.Now()
	mStart := start.Add(opts.Warmup)
	mEnd := mStart.Add(opts.Duration)
	var res runResult
	if opts.Rate > 0 {
		res.open = runOpen(ctx, ops, pk, workers, opts, start, mStart, mEnd)
	} else {
		runClosed(ctx, ops, pk, workers, mStart, mEnd)
	}
	end := mEnd
	if ctx.Err() != nil && time.Now().Before(mEnd) {
		end = time.Now()
	}
	res.measured = max(end.Sub(mStart), 0)
	res.recs = make([]recorder, len(ops))
	for _, w := range workers {
		for i := range ops {
			res.recs[i].merge(&w.recs[i])
		}
	}
	return res
}

func record(ctx context.Context, w *worker, i int, err error, d time.Duration) {
	if err == nil {
		w.recs[i].success(d)
		return
	}
	if ctx.Err() != nil {
		return // interrupted by the user: not the server's failure
	}
	w.recs[i].failure(errorCode(err))
}

func runClosed(ctx context.Context, ops []op, pk picker, workers []*worker, mStart, mEnd time.Time) {
	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				t0 := time.Now()
				if !t0.Before(mEnd) {
					return
				}
				i := pk.pick(w.rng)
				err := ops[i].do(ctx, w)
				if !t0.Before(mStart) {
					record(ctx, w, i, err, time.Since(t0))
				}
				backOff(ctx, err, mEnd)
			}
		})
	}
	wg.Wait()
}

// backOff honours Retry-After on 429/503 the way a well-behaved client
// does (at most until the run ends), so a closed-loop storm measures the
// server's shedding rather than a retry flood.
func backOff(ctx context.Context, err error, until time.Time) {
	var se *statusError
	if !errors.As(err, &se) || se.RetryAfter <= 0 {
		return
	}
	d := min(se.RetryAfter, time.Until(until))
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func runOpen(ctx context.Context, ops []op, pk picker, workers []*worker, opts runOptions,
	start, mStart, mEnd time.Time) *openLoopReport {
	qcap := opts.QueueCap
	if qcap <= 0 {
		qcap = max(2*len(workers), int(opts.Rate))
	}
	late := opts.LateThreshold
	if late <= 0 {
		late = time.Millisecond
	}
	queue := make(chan time.Time, qcap)
	var scheduled, dropped, unsent atomic.Uint64

	go func() {
		defer close(queue)
		timer := time.NewTimer(time.Hour)
		defer timer.Stop()
		perReq := float64(time.Second) / opts.Rate
		for n := 0; ; n++ {
			intended := start.Add(time.Duration(float64(n) * perReq))
			if !intended.Before(mEnd) {
				return
			}
			if d := time.Until(intended); d > 0 {
				timer.Reset(d)
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				}
			} else if ctx.Err() != nil {
				return
			}
			measured := !intended.Before(mStart)
			if measured {
				scheduled.Add(1)
			}
			select {
			case queue <- intended:
			default:
				if measured {
					dropped.Add(1)
				}
			}
		}
	}()

	var wg sync.WaitGroup
	for _, w := range workers {
		wg.Go(func() {
			for intended := range queue {
				measured := !intended.Before(mStart)
				t0 := time.Now()
				if !t0.Before(mEnd) || ctx.Err() != nil {
					if measured {
						unsent.Add(1)
					}
					continue // drain: the window is over
				}
				i := pk.pick(w.rng)
				err := ops[i].do(ctx, w)
				if measured {
					done := time.Now()
					lag := t0.Sub(intended)
					w.lag.Record(lag)
					if lag > late {
						w.late++
					}
					record(ctx, w, i, err, done.Sub(intended))
					if err == nil {
						w.recs[i].svc.Record(done.Sub(t0))
					}
				}
			}
		})
	}
	wg.Wait()

	var lag histogram
	rep := &openLoopReport{RatePerSec: opts.Rate, Scheduled: scheduled.Load(), Dropped: dropped.Load(),
		Unsent: unsent.Load(), LateThresholdMs: ms(late)}
	for _, w := range workers {
		lag.Merge(&w.lag)
		rep.Late += w.late
	}
	rep.Sent = lag.Count()
	rep.SendLagP50Ms, rep.SendLagP99Ms, rep.SendLagMaxMs = ms(lag.Quantile(0.5)), ms(lag.Quantile(0.99)), ms(lag.Max())
	return rep
}
