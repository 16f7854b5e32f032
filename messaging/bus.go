package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	wmjs "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/jetstream"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ghasi-ehealth/identity-service/core"
)

// JetStream layout (docs/EVENT_SCHEMAS.md). Every identity event is
// published on the subject equal to its type, all of them kept in one
// file-backed stream.
const (
	StreamName    = "IDENTITY_EVENTS"
	StreamSubject = "identity.>"
)

// Subscription tuning. ackWait bounds how long a consumer may take per
// message before JetStream redelivers it; pullBatch keeps few messages
// waiting in the client so they do not age past ackWait in its buffer.
const (
	ackWait     = 30 * time.Second
	pullBatch   = 16
	dialTimeout = 5 * time.Second
	// streamMaxAge bounds how long JetStream keeps a delivered event.
	streamMaxAge = 7 * 24 * time.Hour
)

// Bus is the event transport: NATS JetStream when a URL is configured,
// otherwise an in-process watermill GoChannel (single node; subscribers
// see only events published while they are subscribed).
type Bus struct {
	// Publisher publishes watermill messages; topic = event type, UUID =
	// event id, payload = the JSON envelope.
	Publisher message.Publisher

	subscriber message.Subscriber
	pubConn    *nats.Conn // nil in process
	subConn    *nats.Conn
	logger     *slog.Logger
}

type consumerNameKey struct{}

// NewBus connects to NATS at natsURL and ensures the IDENTITY_EVENTS stream
// exists (subjects identity.>, file storage; an existing stream is left
// as configured), or, for an empty URL, returns an in-process bus. It fails
// when NATS cannot be reached at start; later disconnects are retried
// forever by the client. Errors: IDENT_UNAVAILABLE.
func NewBus(ctx context.Context, natsURL string, logger *slog.Logger) (*Bus, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	logger = logger.With("component", "bus")
	// watermill logs every message at Info; that is debug detail for us.
	wlog := watermill.NewSlogLoggerWithLevelMapping(logger, map[slog.Level]slog.Level{slog.LevelInfo: slog.LevelDebug})
	if natsURL == "" {
		gc := gochannel.NewGoChannel(gochannel.Config{OutputChannelBuffer: 64}, wlog)
		return &Bus{Publisher: gc, subscriber: gc, logger: logger}, nil
	}
	b := &Bus{logger: logger}
	var err error
	if b.pubConn, err = connect(natsURL, "identity-service publisher", logger); err != nil {
		return nil, core.Unavailable(err)
	}
	if b.subConn, err = connect(natsURL, "identity-service subscriber", logger); err != nil {
		b.pubConn.Close()
		return nil, core.Unavailable(err)
	}
	fail := func(err error) (*Bus, error) {
		b.pubConn.Close()
		b.subConn.Close()
		return nil, core.Unavailable(err)
	}
	js, err := jetstream.New(b.pubConn)
	if err != nil {
		return fail(err)
	}
	if err := ensureStream(ctx, js); err != nil {
		return fail(err)
	}
	b.Publisher, err = wmnats.NewPublisherWithNatsConn(b.pubConn, wmnats.PublisherPublishConfig{
		Marshaler:         &wmnats.NATSMarshaler{},
		SubjectCalculator: wmnats.DefaultSubjectCalculator,
		// The stream is ours to manage (ensureStream); TrackMsgId sets
		// Nats-Msg-Id = event id so JetStream drops a republish inside its
		// duplicate window.
		JetStream: wmnats.JetStreamConfig{TrackMsgId: true},
	}, wlog)
	if err != nil {
		return fail(err)
	}
	b.subscriber, err = wmjs.NewSubscriber(wmjs.SubscriberConfig{
		Conn:                b.subConn,
		Logger:              wlog,
		AckWaitTimeout:      ackWait,
		ResourceInitializer: durableConsumer,
		ConsumeOptions:      []jetstream.PullConsumeOpt{jetstream.PullMaxMessages(pullBatch)},
	})
	if err != nil {
		return fail(err)
	}
	return b, nil
}

func connect(url, name string, logger *slog.Logger) (*nats.Conn, error) {
	return nats.Connect(url,
		nats.Name(name),
		nats.Timeout(dialTimeout),
		nats.MaxReconnects(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil means we closed it
				logger.Warn("NATS disconnected", "conn", name, "error", err)
			}
		}),
		nats.ReconnectHandler(func(_ *nats.Conn) { logger.Info("NATS reconnected", "conn", name) }),
	)
}

func ensureStream(ctx context.Context, js jetstream.JetStream) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := js.Stream(ctx, StreamName)
	if err == nil {
		return nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("look up stream %s: %w", StreamName, err)
	}
	_, err = js.CreateStream(ctx, jetstream.StreamConfig{
		Name:        StreamName,
		Description: "events emitted by identity-service (subject = event type)",
		Subjects:    []string{StreamSubject},
		Storage:     jetstream.FileStorage,
		// The stream is a delivery buffer, not the record: the outbox table
		// keeps every event. A week covers any consumer outage worth waiting for.
		MaxAge: streamMaxAge,
	})
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return nil // another instance created it meanwhile
	}
	if err != nil {
		return fmt.Errorf("create stream %s: %w", StreamName, err)
	}
	return nil
}

// durableConsumer creates (or reattaches to) the durable JetStream consumer
// of one consumer name and subject. The stream is found by subject, so
// subjects of other services' streams (tenant.*.v1) work once those streams
// exist. A new consumer starts with messages published after its creation;
// the durable then resumes where it left off across restarts.
func durableConsumer(ctx context.Context, js jetstream.JetStream, topic string) (jetstream.Consumer, func(context.Context, watermill.LoggerAdapter), error) {
	name, _ := ctx.Value(consumerNameKey{}).(string)
	stream, err := js.StreamNameBySubject(ctx, topic)
	if err != nil {
		return nil, nil, fmt.Errorf("no JetStream stream holds subject %s: %w", topic, err)
	}
	c, err := js.CreateOrUpdateConsumer(ctx, stream, jetstream.ConsumerConfig{
		Durable:       DurableName(name, topic),
		Description:   "identity-service consumer " + name,
		FilterSubject: topic,
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckWait:       ackWait,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("create consumer %s on %s: %w", name, stream, err)
	}
	return c, nil, nil // nil closer: a durable outlives the subscription
}

// DurableName is the JetStream durable consumer name of consumerName on
// eventType (NATS names may not contain '.', '*', '>' or spaces).
func DurableName(consumerName, eventType string) string {
	return natsToken(consumerName) + "__" + natsToken(eventType)
}

func natsToken(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return '_'
	}, s)
}

// Subscribe delivers messages of eventType to consumerName until ctx ends
// or the bus closes (the channel is then closed). Each message must be
// Acked or Nacked; a Nack, or no answer within 30 s, redelivers it.
//
// On JetStream the subscription is a durable consumer named by
// DurableName(consumerName, eventType), so instances sharing a consumer name
// split the messages and a restart resumes where the consumer left off. In
// process every subscription receives every message published while it is
// subscribed. Errors: IDENT_INTERNAL for an empty consumer name,
// IDENT_UNAVAILABLE when the broker refuses (e.g. no stream holds the
// subject yet).
func (b *Bus) Subscribe(ctx context.Context, consumerName, eventType string) (<-chan *message.Message, error) {
	if consumerName == "" || eventType == "" {
		return nil, core.Internal(errors.New("messaging: Subscribe needs a consumer name and an event type"))
	}
	ch, err := b.subscriber.Subscribe(context.WithValue(ctx, consumerNameKey{}, consumerName), eventType)
	if err != nil {
		return nil, core.Unavailable(err)
	}
	return ch, nil
}

// InProcess reports whether the bus is the in-process GoChannel.
func (b *Bus) InProcess() bool { return b.pubConn == nil }

// Ping reports whether the broker connection is up (readiness); the
// in-process bus always is. Errors: IDENT_UNAVAILABLE.
func (b *Bus) Ping(context.Context) error {
	if b.InProcess() {
		return nil
	}
	for _, c := range []*nats.Conn{b.pubConn, b.subConn} {
		if !c.IsConnected() {
			return core.Unavailable(fmt.Errorf("NATS connection %s is %s", c.Opts.Name, c.Status()))
		}
	}
	return nil
}

// Close stops every subscription (their channels close), then the
// publisher. Call it after the relay and consumers have stopped.
func (b *Bus) Close() error {
	errs := []error{b.subscriber.Close()}
	if !b.InProcess() {
		errs = append(errs, b.Publisher.Close())
	}
	return errors.Join(errs...)
}
