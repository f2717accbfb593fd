// Package consumer runs a derived stream: it consumes the raw stream, reads
// each raw event as provider-neutral facts with the provider's package,
// derives the stream's events and publishes them, acknowledging the raw
// event only once every derived event is stored. A raw event that cannot be
// interpreted is dead-lettered with the reason and acknowledged, so it never
// blocks the stream. A broker or state store that is down or slow
// (broker.ErrUnavailable) is retried with a backoff for as long as it
// takes, holding back the later events of the same chat so that their
// order holds; any other failure is retried MaxAttempts times, a panic not
// at all, and the raw event is then dead-lettered with the reason
// (poisoned) so that its chat goes on.
//
// A consumer receives only the raw kinds its stream reads, as each
// provider's Feeds declare them: on NATS the durable consumer's filter
// subjects name them (per provider, any channel), and records of other
// kinds are passed over by their type header without being decoded, which
// is all a Kafka consumer can do. A kind no stream reads is read by no
// consumer: it stays in the raw stream, from which a derivation that comes
// to read it replays; an uninterpretable raw event is dead-lettered by the
// streams that read its kind.
package consumer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/tracing"
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
	// MaxAttempts is how many times a raw event failing for another
	// reason than an unavailable broker or store is tried before it is
	// dead-lettered; DefaultMaxAttempts when zero.
	MaxAttempts int
	// Dedup, when set, drops raw events this stream already derived: on
	// brokers without a duplicate window (Kafka) a provider's retried
	// webhook is stored twice.
	Dedup Dedup
	// Times, when set, gives every copy of a raw event whose time is its
	// receive time the first copy's time, so that all derive the same.
	Times   derive.TimeRegistry
	Metrics *Metrics
	Logger  *zap.Logger
	// Tracer, when set, traces the processing of every raw event as a
	// part of the trace the raw event carries, and carries it on to the
	// derived events; nil is tracing off.
	Tracer *tracing.Tracer
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
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
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

// DefaultMaxAttempts is Config.MaxAttempts when zero: with the brokers'
// default backoff (100ms doubling to 30s) a failing raw event is given up
// on after about half a minute.
const DefaultMaxAttempts = 10

// maxReason bounds the reason a poisoned raw event is dead-lettered with.
const maxReason = 1024

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
	// feeds are the providers' Feeds by provider name, nil for a provider
	// that declares none (read whole); nil altogether when the stream is
	// none of derive.Streams, which no Feeds name (read whole too).
	feeds    map[string]provider.Feeds
	notRead  prometheus.Counter
	retries  prometheus.Counter
	log      *zap.Logger
	progress *broker.Progress
}

// New checks cfg and returns a consumer.
func New(cfg Config) (*Consumer, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	c := &Consumer{cfg: cfg, stream: cfg.Deriver.Stream(), providers: map[string]provider.Provider{},
		log: cfg.Logger.With(zap.String("stream", cfg.Deriver.Stream())), progress: new(broker.Progress)}
	for _, p := range cfg.Providers {
		c.providers[p.Name()] = p
	}
	if slices.Contains(derive.Streams, c.stream) {
		c.feeds = map[string]provider.Feeds{}
		for _, p := range cfg.Providers {
			f, ok := provider.FeedsOf(p)
			if ok {
				if err := f.Check(); err != nil {
					return nil, fmt.Errorf("consumer: %s: %w", p.Name(), err)
				}
			}
			c.feeds[p.Name()] = f
		}
	}
	c.notRead = cfg.Metrics.processed.WithLabelValues(c.stream, "not_read")
	// Present from the start, so that rates over it are never absent.
	c.retries = cfg.Metrics.retries.WithLabelValues(c.stream)
	for _, o := range []string{"derived", "dead_lettered", "error", "poisoned"} {
		cfg.Metrics.processed.WithLabelValues(c.stream, o)
	}
	return c, nil
}

// Filter returns the raw subjects the stream reads: for each provider, the
// kinds its Feeds say the stream reads, on any channel, or all of the
// provider's subjects when it declares no Feeds. Nil means the whole raw
// stream: a stream the Feeds do not know, or one no provider feeds (an
// empty filter list is the whole stream to JetStream too; Skip then passes
// over each raw event).
func (c *Consumer) Filter() []string {
	var out []string
	for _, name := range slices.Sorted(maps.Keys(c.feeds)) {
		p := envelope.IngressTopic + "." + envelope.Token(name) + "."
		f := c.feeds[name]
		if f == nil {
			out = append(out, p+">")
			continue
		}
		for _, k := range f.Kinds(c.stream) {
			out = append(out, p+"*."+k)
		}
	}
	return out
}

// skip reports a raw event of a kind the stream does not read, by its
// headers alone: the Subscription's Skip. What is not a raw event or names
// a provider the consumer does not serve is handled, and dead-lettered.
func (c *Consumer) skip(h broker.Header) bool {
	name, kind, ok := envelope.RawKind(h, c.cfg.Binding)
	if !ok {
		return false
	}
	f := c.feeds[name]
	if f == nil || f.Reads(c.stream, kind) {
		return false
	}
	c.notRead.Inc()
	return true
}

// Run consumes until ctx is done, then finishes the raw events in flight.
func (c *Consumer) Run(ctx context.Context) error {
	filter := c.Filter()
	sub := broker.Subscription{
		Topic:       envelope.IngressTopic,
		Group:       c.cfg.Group,
		Filter:      filter,
		StartTime:   c.cfg.StartTime,
		Concurrency: c.cfg.Concurrency,
		Partition:   c.cfg.Partition,
		Partitions:  c.cfg.Partitions,
		MaxAttempts: c.cfg.MaxAttempts,
		Poison:      c.Poison,
		Progress:    c.progress,
	}
	if c.feeds != nil {
		sub.Skip = c.skip
	}
	w := watched{stream: c.stream, progress: c.progress}
	if br, ok := c.cfg.Subscriber.(broker.BacklogReader); ok {
		// A copy: scrapes read it while Subscribe runs.
		asked := sub
		w.backlog = func(ctx context.Context) (broker.Backlog, error) { return br.Backlog(ctx, asked) }
	}
	c.cfg.Metrics.watch(w)
	c.log.Info("derived stream consumer started", zap.String("group", c.cfg.Group),
		zap.Int("partition", c.cfg.Partition), zap.Int("partitions", c.cfg.Partitions), zap.Strings("filter", filter))
	err := c.cfg.Subscriber.Subscribe(ctx, sub, c.Handle)
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		c.log.Info("derived stream consumer stopped")
		return nil
	}
	return err
}

// Handle processes one raw event; it is the consumer's broker.Handler.
func (c *Consumer) Handle(ctx context.Context, m broker.Received) error {
	start := c.cfg.Now()
	if c.cfg.Tracer != nil {
		var span trace.Span
		ctx, span = c.cfg.Tracer.StartProcess(ctx, m, c.cfg.Binding, tracing.Process{Group: c.cfg.Group, Stream: c.stream})
		var outcome string
		var err error
		defer func() { tracing.EndProcess(span, outcome, err) }()
		outcome, err = c.process(ctx, m, start)
		return err
	}
	_, err := c.process(ctx, m, start)
	return err
}

// process handles one attempt at a raw event and records its outcome.
func (c *Consumer) process(ctx context.Context, m broker.Received, start time.Time) (string, error) {
	if m.Attempt > 1 {
		c.retries.Inc()
	}
	outcome, err := c.handle(ctx, m)
	c.cfg.Metrics.processed.WithLabelValues(c.stream, outcome).Inc()
	c.cfg.Metrics.duration.WithLabelValues(c.stream).Observe(c.cfg.Now().Sub(start).Seconds())
	if err != nil && !broker.IsPermanent(err) {
		lvl := zap.WarnLevel
		if m.Attempt > 3 {
			lvl = zap.ErrorLevel
		}
		c.logAt(ctx, lvl, "raw event failed", zap.String("subject", m.Subject),
			zap.String("event_id", m.ID), zap.Int("attempt", m.Attempt), zap.Error(err))
	}
	return outcome, err
}

// logAt writes a line with the trace_id and span_id of the span in ctx
// when it is recording.
func (c *Consumer) logAt(ctx context.Context, lvl zapcore.Level, msg string, fields ...zap.Field) {
	ce := c.log.Check(lvl, msg)
	if ce == nil {
		return
	}
	if tf := tracing.LogFields(ctx); tf != nil {
		fields = append(fields, tf...)
	}
	ce.Write(fields...)
}

func (c *Consumer) handle(ctx context.Context, m broker.Received) (string, error) {
	raw, err := envelope.DecodeRaw(m.Message, c.cfg.Binding)
	if err != nil {
		return c.reject(ctx, m, m.ID, "", "", fmt.Sprintf("not a raw event: %v", err))
	}
	p, ok := c.providers[raw.Provider]
	if !ok {
		return c.reject(ctx, m, raw.ID, raw.Provider, raw.Channel, fmt.Sprintf("unknown provider %q", raw.Provider))
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
			return c.reject(ctx, m, raw.ID, providerName, channel, err.Error())
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
			return c.reject(ctx, m, raw.ID, providerName, channel, err.Error())
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
			return c.reject(ctx, m, raw.ID, providerName, channel, err.Error())
		}
		msgs = append(msgs, msg)
	}
	if err := c.cfg.Tracer.Publish(ctx, c.cfg.Publisher, c.cfg.Binding, msgs...); err != nil {
		return "error", fmt.Errorf("publish derived events of %s: %w", raw.ID, err)
	}
	for _, d := range events {
		c.cfg.Metrics.derived.WithLabelValues(c.stream, d.Type).Inc()
	}
	if err := c.mark(ctx, raw.ID); err != nil {
		return "error", err
	}
	c.logAt(ctx, zap.DebugLevel, "derived", zap.String("event_id", raw.ID), zap.Int("events", len(events)))
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

// Poison dead-letters a raw event given up on (its handling kept failing,
// or panicked), with the cause as the reason; it is the consumer's
// broker.Subscription.Poison. An error means the dead letter is not stored
// and the event is tried again.
func (c *Consumer) Poison(ctx context.Context, m broker.Received, cause error) (err error) {
	if c.cfg.Tracer != nil {
		var span trace.Span
		ctx, span = c.cfg.Tracer.StartProcess(ctx, m, c.cfg.Binding, tracing.Process{Group: c.cfg.Group, Stream: c.stream})
		defer func() { tracing.EndProcess(span, "poisoned", err) }()
	}
	eventID, providerName, channel := m.ID, "", ""
	if raw, err := envelope.DecodeRaw(m.Message, c.cfg.Binding); err == nil {
		eventID, providerName, channel = raw.ID, raw.Provider, raw.Channel
	}
	reason := fmt.Sprintf("gave up after %d attempts: %v", m.Attempt, cause)
	if errors.Is(cause, broker.ErrPanic) {
		reason = cause.Error()
	}
	reason = bounded(reason, maxReason)
	if err := c.deadLetter(ctx, m, eventID, providerName, channel, reason); err != nil {
		c.logAt(ctx, zap.ErrorLevel, "poisoned raw event not dead-lettered; retrying", zap.String("event_id", eventID), zap.Error(err))
		return err
	}
	c.cfg.Metrics.processed.WithLabelValues(c.stream, "poisoned").Inc()
	c.logAt(ctx, zap.ErrorLevel, "raw event poisoned: dead-lettered and skipped", zap.String("event_id", eventID),
		zap.String("subject", m.Subject), zap.Int("attempt", m.Attempt), zap.String("reason", reason))
	return nil
}

// bounded is s on one line, at most n bytes, cut on a rune boundary.
func bounded(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// reject dead-letters a raw event the stream cannot use, with the reason,
// and ends its redelivery; if the store fails the event is retried.
func (c *Consumer) reject(ctx context.Context, m broker.Received, eventID, providerName, channel, reason string) (string, error) {
	if err := c.deadLetter(ctx, m, eventID, providerName, channel, reason); err != nil {
		return "error", err
	}
	c.logAt(ctx, zap.WarnLevel, "raw event dead-lettered", zap.String("event_id", eventID), zap.String("subject", m.Subject), zap.String("reason", reason))
	return "dead_lettered", broker.Permanent(errors.New(reason))
}

// deadLetter stores a raw event on the dead-letter stream with the reason.
func (c *Consumer) deadLetter(ctx context.Context, m broker.Received, eventID, providerName, channel, reason string) error {
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
		err = envelope.PublishDeadLetter(ctx, func(ctx context.Context, m ...broker.Message) error {
			return c.cfg.Tracer.Publish(ctx, c.cfg.Publisher, c.cfg.Binding, m...)
		}, msgs)
	}
	if err != nil {
		return fmt.Errorf("dead-letter %s: %w", eventID, err)
	}
	return nil
}

// Metrics are a consumer's Prometheus collectors, shared by the streams of
// one process; they also watch the consumers' progress (see Stuck).
type Metrics struct {
	processed *prometheus.CounterVec
	derived   *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	retries   *prometheus.CounterVec
	state     stateMetrics
	lag       backlogs

	mu      sync.Mutex
	watched []watched
	now     func() time.Time
}

// watched is a consumer's subscription progress.
type watched struct {
	stream   string
	progress *broker.Progress
	// backlog reads the consumer's backlog from the broker; nil when the
	// broker cannot tell.
	backlog func(context.Context) (broker.Backlog, error)
}

// NewMetrics registers the consumer collectors with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		processed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "wahook", Subsystem: "consumer", Name: "raw_events_total",
			Help: "Raw events processed, by stream and outcome (derived, skipped, duplicate, dead_lettered, error, poisoned, not_read: of a kind the stream does not read, passed over undecoded).",
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
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "wahook", Subsystem: "consumer", Name: "retries_total",
			Help: "Attempts at raw events after their first (redeliveries: retries after a failure, and deliveries again after a crash or a lost acknowledgement), by stream.",
		}, []string{"stream"}),
		state: newStateMetrics(),
		now:   time.Now,
	}
	reg.MustRegister(m.processed, m.derived, m.duration, m.retries, m.state.ops, m.state.duration, progressCollector{m})
	return m
}

func (m *Metrics) watch(w watched) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, o := range m.watched {
		if o.progress == w.progress {
			return
		}
	}
	m.watched = append(m.watched, w)
}

// streamProgress is the progress of a stream's consumers in this process,
// added up.
type streamProgress struct {
	pending, retrying int
	oldest, last      time.Time
	stalled           time.Duration
}

func (m *Metrics) progress() map[string]*streamProgress {
	m.mu.Lock()
	ws := append([]watched(nil), m.watched...)
	m.mu.Unlock()
	now := m.now()
	out := map[string]*streamProgress{}
	for _, w := range ws {
		st := w.progress.Stats()
		if st.LastProgress.IsZero() {
			// Not consuming yet.
			continue
		}
		sp := out[w.stream]
		if sp == nil {
			sp = &streamProgress{last: st.LastProgress}
			out[w.stream] = sp
		}
		sp.pending += st.Pending
		sp.retrying += st.Retrying
		if !st.Oldest.IsZero() && (sp.oldest.IsZero() || st.Oldest.Before(sp.oldest)) {
			sp.oldest = st.Oldest
		}
		if st.LastProgress.Before(sp.last) {
			sp.last = st.LastProgress
		}
		sp.stalled = max(sp.stalled, st.Stalled(now))
	}
	return out
}

// Stuck returns an error naming the streams whose consumer has held raw
// events without finishing any for longer than after, nil when none has:
// a readiness check.
func (m *Metrics) Stuck(after time.Duration) error {
	var stuck []string
	for stream, sp := range m.progress() {
		if sp.stalled > after {
			stuck = append(stuck, fmt.Sprintf("%s (%d pending, %d retrying, no progress for %s)",
				stream, sp.pending, sp.retrying, sp.stalled.Round(time.Second)))
		}
	}
	if len(stuck) == 0 {
		return nil
	}
	slices.Sort(stuck)
	return fmt.Errorf("consumer stuck: %s", strings.Join(stuck, "; "))
}

var (
	pendingDesc = prometheus.NewDesc("wahook_consumer_pending_events",
		"Raw events received and not finished: queued, being processed or waiting to be retried.", []string{"stream"}, nil)
	retryingDesc = prometheus.NewDesc("wahook_consumer_retrying_events",
		"Raw events whose last attempt failed and that wait for the next one.", []string{"stream"}, nil)
	oldestDesc = prometheus.NewDesc("wahook_consumer_oldest_pending_age_seconds",
		"Age of the oldest raw event received and not finished; 0 when none is.", []string{"stream"}, nil)
	lastDesc = prometheus.NewDesc("wahook_consumer_last_progress_timestamp_seconds",
		"When a raw event was last finished (or the consumer started), Unix time; the earliest of the stream's consumers.",
		[]string{"stream"}, nil)
	stalledDesc = prometheus.NewDesc("wahook_consumer_stalled_seconds",
		"How long the consumer has held raw events without finishing any; 0 when it holds none.", []string{"stream"}, nil)
)

// progressCollector exports the watched consumers' progress.
type progressCollector struct{ m *Metrics }

func (c progressCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{pendingDesc, retryingDesc, oldestDesc, lastDesc, stalledDesc, lagDesc, ackPendingDesc, lagUpDesc} {
		ch <- d
	}
}

func (c progressCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.m.now()
	for stream, sp := range c.m.progress() {
		age := 0.0
		if !sp.oldest.IsZero() {
			age = now.Sub(sp.oldest).Seconds()
		}
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(sp.pending), stream)
		ch <- prometheus.MustNewConstMetric(retryingDesc, prometheus.GaugeValue, float64(sp.retrying), stream)
		ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, age, stream)
		ch <- prometheus.MustNewConstMetric(lastDesc, prometheus.GaugeValue, float64(sp.last.UnixNano())/1e9, stream)
		ch <- prometheus.MustNewConstMetric(stalledDesc, prometheus.GaugeValue, sp.stalled.Seconds(), stream)
	}
	c.m.collectBacklogs(ch)
}
