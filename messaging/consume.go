package messaging

import (
	"context"
	"log/slog"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/propagation"

	"github.com/ghasi-ehealth/identity-service/core"
	"github.com/ghasi-ehealth/identity-service/persistence"
)

// DefaultRetryDelay is how long a consumer waits before asking for a
// failed message again; it keeps a persistently failing handler from
// spinning (the in-process bus redelivers a Nack at once).
const DefaultRetryDelay = time.Second

// Handler processes one event. It runs inside the database transaction that
// records the event in the inbox, so its database writes (through the ctx
// it is given) commit exactly when the event counts as processed. Keep it
// short: on SQLite the transaction holds the write lock.
type Handler func(ctx context.Context, env Envelope) error

// ConsumeOption tunes Consume.
type ConsumeOption func(*consumeConfig)

type consumeConfig struct {
	retryDelay time.Duration
	clock      core.Clock
	observe    func(env Envelope, outcome Outcome)
}

// Outcome is what a consumer did with one message.
type Outcome int

const (
	// Processed: the handler ran and its transaction committed.
	Processed Outcome = iota + 1
	// Duplicate: the inbox already held the event id; acked, handler skipped.
	Duplicate
	// Failed: the handler or the database failed; rolled back and Nacked.
	Failed
	// Dropped: the payload was not an envelope; acked and logged.
	Dropped
)

func (o Outcome) String() string {
	switch o {
	case Processed:
		return "processed"
	case Duplicate:
		return "duplicate"
	case Failed:
		return "failed"
	case Dropped:
		return "dropped"
	}
	return "unknown"
}

// WithObserver calls observe after each message with what happened to it
// (for metrics and tests). It runs on the consumer's goroutine.
func WithObserver(observe func(env Envelope, outcome Outcome)) ConsumeOption {
	return func(c *consumeConfig) { c.observe = observe }
}

// WithRetryDelay sets the wait before a failed message is redelivered.
func WithRetryDelay(d time.Duration) ConsumeOption {
	return func(c *consumeConfig) {
		if d >= 0 {
			c.retryDelay = d
		}
	}
}

// WithConsumeClock sets the clock that stamps inbox rows.
func WithConsumeClock(clock core.Clock) ConsumeOption {
	return func(c *consumeConfig) { c.clock = clock }
}

// Consumer is a running inbox consumer.
type Consumer struct {
	done chan struct{}
}

// Done is closed when the consumer has stopped (its context ended or the
// bus closed).
func (c *Consumer) Done() <-chan struct{} { return c.done }

// Consume subscribes consumerName to eventType on bus and processes each
// message in the background, one at a time, until ctx ends or the bus
// closes. For every message it runs, in ONE db.InTx, the inbox insert of
// (consumerName, event id) and then handler; an id already in the inbox is
// acknowledged without running handler, so redelivery is harmless. A
// handler or database error rolls the transaction back and Nacks the
// message after the retry delay (redelivery); a payload that is not an
// envelope is logged and acknowledged, since redelivering it cannot help.
//
// Subscribing happens before Consume returns, so events published after
// that reach the consumer. Errors: those of Bus.Subscribe.
func Consume(ctx context.Context, bus *Bus, db *persistence.DB, consumerName, eventType string, handler Handler, opts ...ConsumeOption) (*Consumer, error) {
	cfg := consumeConfig{retryDelay: DefaultRetryDelay, clock: core.SystemClock{}, observe: func(Envelope, Outcome) {}}
	for _, o := range opts {
		o(&cfg)
	}
	msgs, err := bus.Subscribe(ctx, consumerName, eventType)
	if err != nil {
		return nil, err
	}
	c := &Consumer{done: make(chan struct{})}
	logger := bus.logger.With("consumer", consumerName, "eventType", eventType)
	go func() {
		defer close(c.done)
		for msg := range msgs {
			process(ctx, db, consumerName, handler, cfg, logger, msg)
		}
	}()
	return c, nil
}

func process(ctx context.Context, db *persistence.DB, consumerName string, handler Handler,
	cfg consumeConfig, logger *slog.Logger, msg *message.Message) {
	env, err := ParseEnvelope(msg.Payload)
	if err != nil {
		logger.Error("dropping a message that is not an event envelope", "messageId", msg.UUID, "error", err)
		msg.Ack()
		cfg.observe(Envelope{}, Dropped)
		return
	}
	hctx := msg.Context()
	if env.TraceParent != "" {
		// Spans the handler starts join the trace of the emitting request.
		hctx = propagation.TraceContext{}.Extract(hctx, propagation.MapCarrier{"traceparent": env.TraceParent})
	}
	outcome := Processed
	err = db.InTx(hctx, func(ctx context.Context) error {
		fresh, err := db.InsertInbox(ctx, consumerName, env.ID, cfg.clock.Now())
		if err != nil {
			return err
		}
		if !fresh {
			outcome = Duplicate
			return nil
		}
		return handler(ctx, env)
	})
	if err == nil {
		msg.Ack()
		cfg.observe(env, outcome)
		return
	}
	logger.Warn("event handler failed; will retry", "eventId", env.ID, "error", err)
	if cfg.retryDelay > 0 {
		t := time.NewTimer(cfg.retryDelay)
		select {
		case <-t.C:
		case <-ctx.Done():
		case <-msg.Context().Done():
		}
		t.Stop()
	}
	msg.Nack()
	cfg.observe(env, Failed)
}
