package messaging

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/persistence"
)

// PublishSpanName is the span recorded per relayed event (DESIGN.md, Telemetry).
const PublishSpanName = "identity.outbox.publish"

const instrumentationName = "github.com/ghasi-ehealth/identity-service/messaging"

// Relay defaults.
const (
	DefaultPollInterval = time.Second
	DefaultBatchSize    = 100
	defaultMinBackoff   = 100 * time.Millisecond
	defaultMaxBackoff   = 30 * time.Second
	// batchTimeout bounds one fetch-publish-mark transaction; it keeps
	// running after Run's context ends so a batch in flight at shutdown
	// is still marked.
	batchTimeout = 30 * time.Second
)

// Relay moves committed events from the outbox to a publisher, at least
// once and in sequence order per relay. Several relays (one per node) may
// share a Postgres database: each batch is locked with SKIP LOCKED, so they
// split the backlog. Consumers must dedupe by event id (see Consume).
type Relay struct {
	db     *persistence.DB
	pub    message.Publisher
	tracer trace.Tracer
	logger *slog.Logger
	clock  core.Clock
	wake   chan struct{}

	pollInterval time.Duration
	batchSize    int
	minBackoff   time.Duration
	maxBackoff   time.Duration
}

// RelayOption tunes a Relay.
type RelayOption func(*Relay)

// WithPollInterval sets how often the relay looks for events when no commit
// woke it (default 1 s; commits in other processes only show up this way).
func WithPollInterval(d time.Duration) RelayOption {
	return func(r *Relay) {
		if d > 0 {
			r.pollInterval = d
		}
	}
}

// WithBatchSize sets how many events one transaction publishes (default 100).
func WithBatchSize(n int) RelayOption {
	return func(r *Relay) {
		if n > 0 {
			r.batchSize = n
		}
	}
}

// WithBackoff sets the first and the longest wait after a failed batch
// (default 100 ms doubling up to 30 s).
func WithBackoff(first, longest time.Duration) RelayOption {
	return func(r *Relay) {
		if first > 0 && longest >= first {
			r.minBackoff, r.maxBackoff = first, longest
		}
	}
}

// WithClock sets the clock that stamps published_at (default system clock).
func WithClock(c core.Clock) RelayOption {
	return func(r *Relay) { r.clock = c }
}

// NewRelay returns a relay from db's outbox to pub. It registers a hook on
// db.OnCommit so every commit in this process wakes it at once, so build it
// during wiring, before db is used concurrently. A nil tp records no spans;
// a nil logger discards logs.
func NewRelay(db *persistence.DB, pub message.Publisher, tp trace.TracerProvider, logger *slog.Logger, opts ...RelayOption) *Relay {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	r := &Relay{
		db:           db,
		pub:          pub,
		tracer:       tp.Tracer(instrumentationName),
		logger:       logger.With("component", "outbox-relay"),
		clock:        core.SystemClock{},
		wake:         make(chan struct{}, 1),
		pollInterval: DefaultPollInterval,
		batchSize:    DefaultBatchSize,
		minBackoff:   defaultMinBackoff,
		maxBackoff:   defaultMaxBackoff,
	}
	for _, o := range opts {
		o(r)
	}
	db.OnCommit(r.Notify)
	return r
}

// Notify wakes the relay; it never blocks (a pending wake-up is enough).
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run relays until ctx ends, then returns nil after finishing the batch in
// flight. Publish or database failures are logged and retried with
// exponential backoff; wake-ups do not cut a backoff short, so a broken
// broker is not hammered by busy writers.
func (r *Relay) Run(ctx context.Context) error {
	var backoff time.Duration
	for {
		if ctx.Err() != nil {
			return nil
		}
		n, err := r.step(ctx)
		if err != nil {
			backoff = min(max(backoff*2, r.minBackoff), r.maxBackoff)
			r.logger.Warn("outbox relay batch failed; backing off", "published", n, "backoff", backoff, "error", err)
			if !sleep(ctx, backoff) {
				return nil
			}
			continue
		}
		backoff = 0
		if n == r.batchSize {
			continue // probably more waiting
		}
		timer := time.NewTimer(r.pollInterval)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-r.wake:
			timer.Stop()
		case <-timer.C:
		}
	}
}

// Flush publishes every pending event now (one batch after another) and
// returns how many it published; for tools and tests. Errors: the first
// failure (publisher's error, IDENT_UNAVAILABLE, IDENT_INTERNAL).
func (r *Relay) Flush(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := r.step(ctx)
		total += n
		if err != nil || n < r.batchSize {
			return total, err
		}
	}
}

// Backlog is what the outbox holds that no relay has published yet.
type Backlog struct {
	// Pending counts the unpublished events.
	Pending int64
	// Lag is how long the oldest of them has been waiting (the relay's
	// clock minus the event's time); zero when none is pending.
	Lag time.Duration
}

// Backlog reads the unpublished backlog of the outbox, which every relay on
// the database shares (the identity.outbox.* gauges). It is two indexed
// queries and takes no locks. Errors: IDENT_UNAVAILABLE, IDENT_INTERNAL.
func (r *Relay) Backlog(ctx context.Context) (Backlog, error) {
	pending, oldest, err := r.db.OutboxBacklog(ctx)
	if err != nil || pending == 0 {
		return Backlog{}, err
	}
	// Events are stamped by the emitting node's clock; a skewed one must
	// not make the lag negative.
	return Backlog{Pending: pending, Lag: max(r.clock.Now().Sub(oldest), 0)}, nil
}

func (r *Relay) step(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), batchTimeout)
	defer cancel()
	return r.db.RelayOutbox(ctx, r.batchSize, r.clock.Now, r.publishBatch)
}

// publishBatch publishes events in order and stops at the first failure,
// so the caller marks exactly the published prefix.
func (r *Relay) publishBatch(ctx context.Context, events []persistence.StoredEvent) (int, error) {
	for i, e := range events {
		if err := r.publishOne(ctx, e); err != nil {
			return i, err
		}
	}
	return len(events), nil
}

func (r *Relay) publishOne(ctx context.Context, e persistence.StoredEvent) error {
	// The span continues the trace of the request that emitted the event,
	// so one trace shows the state change and its publication.
	if e.Traceparent != "" {
		ctx = propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": e.Traceparent})
	}
	_, span := r.tracer.Start(ctx, PublishSpanName,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("messaging.operation.type", "publish"),
			attribute.String("messaging.destination.name", e.Type),
			attribute.String("messaging.message.id", e.ID),
			attribute.Int64("identity.outbox.seq", e.Seq),
		))
	defer span.End()
	payload, err := json.Marshal(EnvelopeOf(e))
	if err != nil {
		span.SetStatus(codes.Error, "marshal envelope")
		return core.Internal(err)
	}
	msg := message.NewMessage(e.ID, payload)
	msg.Metadata.Set("Content-Type", ContentType)
	if err := r.pub.Publish(e.Type, msg); err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "publish failed")
		return core.Unavailable(err)
	}
	return nil
}

// sleep waits d or until ctx ends; it reports whether the full wait passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
