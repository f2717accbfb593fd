// Package consumer runs a derived stream: it consumes the raw stream, reads
// each raw event as provider-neutral facts with the provider's package,
// derives the stream's events and publishes them, acknowledging the raw
// event only once every derived event is stored. A raw event that cannot be
// interpreted is dead-lettered with the reason and acknowledged, so it never
// blocks the stream; a broker or state error is retried with a backoff,
// holding back the later events of the same chat so that their order holds.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/provider"
)

// Config configures one derived stream's consumer.
type Config struct {
	Deriver    derive.Deriver
	Providers  []provider.Provider
	Subscriber broker.Subscriber
	Publisher  broker.Publisher
	Binding    envelope.Binding
	// Group names the durable consumer, "wahook-{stream}" when empty. A new
	// group with a StartTime replays the raw stream from then on.
	Group     string
	StartTime time.Time
	// Concurrency is how many raw events are processed at once; a chat's
	// events are always processed in order. 64 when zero.
	Concurrency int
	// Partition and Partitions split the chats among instances.
	Partition, Partitions int
	// Dedup, when set, drops raw events this stream already derived: on
	// brokers without a duplicate window (Kafka) a provider's retried
	// webhook is stored twice.
	Dedup Dedup
	// Times, when set, gives every copy of a raw event whose time is its
	// receive time the first copy's time, so that all derive the same.
	Times   derive.TimeRegistry
	Metrics *Metrics
	Logger  *zap.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

func (c *Config) setDefaults() {
	if c.Group == "" {
		c.Group = "wahook-" + c.Deriver.Stream()
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 64
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Binding.Prefix == "" {
		c.Binding = envelope.NATS
	}
}

func (c Config) validate() error {
	switch {
	case c.Deriver == nil:
		return errors.New("consumer: no deriver")
	case c.Subscriber == nil || c.Publisher == nil:
		return errors.New("consumer: no subscriber or publisher")
	case c.Metrics == nil:
		return errors.New("consumer: no metrics")
	case c.Partitions > 1 && (c.Partition < 0 || c.Partition >= c.Partitions):
		return fmt.Errorf("consumer: partition %d of %d", c.Partition, c.Partitions)
	}
	return nil
}

// Dedup remembers which raw events a stream has derived.
type Dedup interface {
	// Seen reports whether id was marked in scope.
	Seen(ctx context.Context, scope, id string) (bool, error)
	// Mark records id in scope durably.
	Mark(ctx context.Context, scope, id string) error
}

// Consumer derives one stream.
type Consumer struct {
	cfg       Config
	stream    string
	providers map[string]provider.Provider
	log       *zap.Logger
}

// New checks cfg and returns a consumer.
func New(cfg Config) (*Consumer, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	c := &Consumer{cfg: cfg, stream: cfg.Deriver.Stream(), providers: map[string]provider.Provider{},
		log: cfg.Logger.With(zap.String("stream", cfg.Deriver.Stream()))}
	for _, p := range cfg.Providers {
		c.providers[p.Name()] = p
	}
	return c, nil
}

// Run consumes until ctx is done, then finishes the raw events in flight.
func (c *Consumer) Run(ctx context.Context) error {
	c.log.Info("derived stream consumer started", zap.String("group", c.cfg.Group),
		zap.Int("partition", c.cfg.Partition), zap.Int("partitions", c.cfg.Partitions))
	err := c.cfg.Subscriber.Subscribe(ctx, broker.Subscription{
		Topic:       envelope.IngressTopic,
		Group:       c.cfg.Group,
		StartTime:   c.cfg.StartTime,
		Concurrency: c.cfg.Concurrency,
		Partition:   c.cfg.Partition,
		Partitions:  c.cfg.Partitions,
	}, c.Handle)
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		c.log.Info("derived stream consumer stopped")
		return nil
	}
	return err
}

// Handle processes one raw event; it is the consumer's broker.Handler.
func (c *Consumer) Handle(ctx context.Context, m broker.Received) error {
	start := c.cfg.Now()
	outcome, err := c.handle(ctx, m)
	c.cfg.Metrics.processed.WithLabelValues(c.stream, outcome).Inc()
	c.cfg.Metrics.duration.WithLabelValues(c.stream).Observe(c.cfg.Now().Sub(start).Seconds())
	if err != nil && !broker.IsPermanent(err) {
		lvl := zap.WarnLevel
		if m.Attempt > 3 {
			lvl = zap.ErrorLevel
		}
		c.log.Check(lvl, "raw event will be retried").Write(zap.String("subject", m.Subject),
			zap.String("event_id", m.ID), zap.Int("attempt", m.Attempt), zap.Error(err))
	}
	return err
}

func (c *Consumer) handle(ctx context.Context, m broker.Received) (string, error) {
	raw, err := envelope.DecodeRaw(m.Message, c.cfg.Binding)
	if err != nil {
		return c.deadLetter(ctx, m, m.ID, "", "", fmt.Sprintf("not a raw event: %v", err))
	}
	p, ok := c.providers[raw.Provider]
	if !ok {
		return c.deadLetter(ctx, m, raw.ID, raw.Provider, raw.Channel, fmt.Sprintf("unknown provider %q", raw.Provider))
	}
	providerName, channel := raw.Provider, raw.Channel
	if c.cfg.Dedup != nil {
		seen, err := c.cfg.Dedup.Seen(ctx, c.stream, raw.ID)
		if err != nil {
			return "error", fmt.Errorf("dedup %s: %w", raw.ID, err)
		}
		if seen {
			return "duplicate", nil
		}
	}
	facts, err := p.Interpret(raw.Kind, raw.Data)
	if err != nil {
		if errors.Is(err, provider.ErrInvalid) {
			return c.deadLetter(ctx, m, raw.ID, providerName, channel, err.Error())
		}
		return "error", fmt.Errorf("interpret %s: %w", raw.ID, err)
	}
	if facts.Empty() {
		return "skipped", nil
	}
	if raw.TimeReceived && c.cfg.Times != nil {
		if raw.Time, err = c.cfg.Times.FirstTime(ctx, raw.ID, raw.Time); err != nil {
			return "error", fmt.Errorf("first time of %s: %w", raw.ID, err)
		}
	}
	events, err := c.cfg.Deriver.Derive(ctx, raw, facts)
	if err != nil {
		if broker.IsPermanent(err) {
			return c.deadLetter(ctx, m, raw.ID, providerName, channel, err.Error())
		}
		return "error", fmt.Errorf("derive %s: %w", raw.ID, err)
	}
	if len(events) == 0 {
		return "skipped", nil
	}
	msgs := make([]broker.Message, 0, len(events))
	for _, d := range events {
		msg, err := envelope.Derived(d, raw, c.cfg.Binding)
		if err != nil {
			return c.deadLetter(ctx, m, raw.ID, providerName, channel, err.Error())
		}
		msgs = append(msgs, msg)
	}
	if err := c.cfg.Publisher.Publish(ctx, msgs...); err != nil {
		return "error", fmt.Errorf("publish derived events of %s: %w", raw.ID, err)
	}
	for _, d := range events {
		c.cfg.Metrics.derived.WithLabelValues(c.stream, d.Type).Inc()
	}
	if err := c.mark(ctx, raw.ID); err != nil {
		return "error", err
	}
	c.log.Debug("derived", zap.String("event_id", raw.ID), zap.Int("events", len(events)))
	return "derived", nil
}

// mark records a derived raw event for Dedup. A crash before it means
// the event is derived again: the same ids, which subscribers drop.
func (c *Consumer) mark(ctx context.Context, id string) error {
	if c.cfg.Dedup == nil {
		return nil
	}
	if err := c.cfg.Dedup.Mark(ctx, c.stream, id); err != nil {
		return fmt.Errorf("dedup mark %s: %w", id, err)
	}
	return nil
}

// deadLetter stores a raw event the stream cannot use, with the reason, and
// ends its redelivery; if the store fails the event is retried.
func (c *Consumer) deadLetter(ctx context.Context, m broker.Received, eventID, providerName, channel, reason string) (string, error) {
	if providerName == "" {
		providerName = "unknown"
	}
	dl := envelope.DeadLetter{
		Reason:        c.stream + ": " + reason,
		Provider:      providerName,
		Channel:       channel,
		ReceivedAt:    c.cfg.Now().UTC(),
		SourceEventID: eventID,
	}
	dl.SetBody(m.Data)
	// Parts first when the body does not fit one message, the record last.
	msgs, err := envelope.DeadLetterMessages(dl, c.cfg.Binding, broker.MaxMessageBytes(c.cfg.Publisher))
	if err == nil {
		err = envelope.PublishDeadLetter(ctx, c.cfg.Publisher.Publish, msgs)
	}
	if err != nil {
		return "error", fmt.Errorf("dead-letter %s: %w", eventID, err)
	}
	c.log.Warn("raw event dead-lettered", zap.String("event_id", eventID), zap.String("subject", m.Subject), zap.String("reason", reason))
	return "dead_lettered", broker.Permanent(errors.New(reason))
}

// Metrics are a consumer's Prometheus collectors, shared by the streams of
// one process.
type Metrics struct {
	processed *prometheus.CounterVec
	derived   *prometheus.CounterVec
	duration  *prometheus.HistogramVec
}

// NewMetrics registers the consumer collectors with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "wahook", Subsystem: "consumer", Name: "raw_events_total",
			Help: "Raw events processed, by stream and outcome (derived, skipped, duplicate, dead_lettered, error).",
		}, []string{"stream", "outcome"}),
		derived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "wahook", Subsystem: "consumer", Name: "derived_events_total",
			Help: "Derived events published, by stream and type.",
		}, []string{"stream", "type"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "wahook", Subsystem: "consumer", Name: "processing_duration_seconds",
			Help:    "Time to process one raw event, derived events stored included.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12),
		}, []string{"stream"}),
	}
	reg.MustRegister(m.processed, m.derived, m.duration)
	return m
}
