package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/internal/dispatch"
)

// SubscribeConfig tunes Subscribe. The zero value of every field is usable.
type SubscribeConfig struct {
	// AckWait is how long JetStream waits for a message's acknowledgement
	// before it redelivers it, 30s when zero, at least 1s. Subscribe keeps
	// every message it holds alive (InProgress) however long it is retried
	// or queued; an instance that died is taken over after LeaseTTL, which
	// resumes its messages at once. Applied to existing consumers too.
	AckWait time.Duration
	// MaxAckPending caps the messages a consumer has delivered and not yet
	// had acknowledged, over all the instances sharing it. When zero it is
	// 32 per worker (Subscription.Concurrency), at least 256. It bounds
	// what Subscribe buffers: when one key's message is retried for long,
	// the messages queued behind it count, and consuming stops once they
	// fill the window. Applied to existing consumers too.
	MaxAckPending int
	// RetryMin and RetryMax bound the pause between two attempts of a
	// message whose handler failed: RetryMin (100ms) doubling up to
	// RetryMax (30s), each with up to half of it taken off at random.
	RetryMin, RetryMax time.Duration
	// ShutdownGrace is how long the handlers running when Subscribe's ctx
	// ends may take to finish, 30s when zero; their ctx is cancelled then.
	ShutdownGrace time.Duration
	// LeaseTTL is how long the lease on a durable consumer outlives its
	// holder's last renewal, 10s when zero, at least 1s. Only the holder
	// consumes; other instances of the consumer wait as standbys, and the
	// first takes over once the holder released the lease (a clean stop)
	// or it expired (the holder died), resuming from the consumer's ack
	// floor in the latter case. It is the delay before a dead instance's
	// consumer is taken over.
	LeaseTTL time.Duration
}

// Defaults of SubscribeConfig.
const (
	DefaultAckWait             = 30 * time.Second
	DefaultAckPendingPerWorker = 32
	DefaultMinAckPending       = 256
	DefaultRetryMin            = 100 * time.Millisecond
	DefaultRetryMax            = 30 * time.Second
	DefaultShutdownGrace       = 30 * time.Second
	DefaultLeaseTTL            = 10 * time.Second
)

const (
	// maxPullExpiry bounds one pull request; nats.go expects a heartbeat
	// every half of it, so a consumer lost on the server is noticed in
	// about 9s rather than 30s. A pull request also lasts at most 2/5 of
	// AckWait, so a dead instance's requests are gone when its messages are
	// redelivered, and request expiries do not line up with redeliveries
	// (see dropPullRequests for what nats-server does then).
	maxPullExpiry = 9 * time.Second
	// maxPullBatch is the most messages buffered in the client at once.
	maxPullBatch = 500
	// drainTimeout bounds reading back, at shutdown, the messages already
	// sent to this instance, so they can be handed back at once.
	drainTimeout = 5 * time.Second
	// pauseFor bounds the pause of a consumer during a shutdown, should
	// the instance die before it resumes it: the time a shutdown takes
	// to read back what it was sent and drop its pull requests.
	pauseFor = 2*drainTimeout + 2*flushTimeout
	// flushTimeout bounds the final flush that puts the last acks on the
	// server before Subscribe returns.
	flushTimeout = 5 * time.Second
	// setupRetryMax caps the pause between attempts to set the consumer up
	// while JetStream is unavailable.
	setupRetryMax = 5 * time.Second
	// maxNameLen keeps consumer names well under the server's 255 bytes.
	maxNameLen = 200
	// maxTermReason bounds the reason a terminated message is reported with.
	maxTermReason = 256
)

func (c *SubscribeConfig) setDefaults() {
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if c.RetryMin == 0 {
		c.RetryMin = DefaultRetryMin
	}
	if c.RetryMax == 0 {
		c.RetryMax = max(DefaultRetryMax, c.RetryMin)
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
}

// Validate checks a configuration after defaults are applied.
func (c SubscribeConfig) Validate() error {
	switch {
	case c.AckWait < time.Second:
		// The keep-alive sends InProgress every quarter of it.
		return fmt.Errorf("natsbroker: subscribe: ack wait %s, want 1s or more", c.AckWait)
	case c.MaxAckPending < 0:
		return fmt.Errorf("natsbroker: subscribe: max ack pending %d, want 0 or more", c.MaxAckPending)
	case c.RetryMin < 0 || c.RetryMax < c.RetryMin:
		return fmt.Errorf("natsbroker: subscribe: retry backoff %s to %s, want 0 <= min <= max", c.RetryMin, c.RetryMax)
	case c.ShutdownGrace < 0:
		return fmt.Errorf("natsbroker: subscribe: negative shutdown grace %s", c.ShutdownGrace)
	case c.LeaseTTL < time.Second:
		// Renewed every quarter of it.
		return fmt.Errorf("natsbroker: subscribe: lease TTL %s, want 1s or more", c.LeaseTTL)
	}
	return nil
}

// plan is a validated Subscription resolved to JetStream names.
type plan struct {
	broker.Subscription
	stream        string
	consumer      string
	filters       []string
	maxAckPending int
}

// planFor checks s and resolves its stream, consumer name and filters.
// Its errors are the caller's mistakes: retrying cannot fix them.
func (b *Broker) planFor(s broker.Subscription) (plan, error) {
	p := plan{Subscription: s}
	if p.Concurrency == 0 {
		p.Concurrency = 1
	}
	switch {
	case p.Concurrency < 0:
		return p, fmt.Errorf("natsbroker: subscribe: concurrency %d, want 1 or more", s.Concurrency)
	case p.Partitions < 0 || p.Partition < 0 || p.Partition >= max(p.Partitions, 1):
		return p, fmt.Errorf("natsbroker: subscribe: partition %d of %d", s.Partition, s.Partitions)
	}
	stream, ok := TopicStream(s.Topic)
	if !ok {
		return p, fmt.Errorf("natsbroker: subscribe: %w: topic %q", ErrNoStream, s.Topic)
	}
	p.stream = stream
	p.filters = []string{s.Topic + ".>"}
	if len(s.Filter) > 0 {
		p.filters = slices.Clone(s.Filter)
		for _, f := range p.filters {
			// Each filter must stay inside the topic: the stream may hold
			// other topics (WAHOOK_DERIVED holds four).
			if len(f) <= len(s.Topic)+1 || !strings.HasPrefix(f, s.Topic+".") {
				return p, fmt.Errorf("natsbroker: subscribe: filter %q is not inside topic %q", f, s.Topic)
			}
		}
	}
	name, err := ConsumerName(s.Group, s.Partition, s.Partitions)
	if err != nil {
		return p, err
	}
	p.consumer = name
	p.maxAckPending = b.cfg.Subscribe.MaxAckPending
	if p.maxAckPending == 0 {
		p.maxAckPending = max(DefaultMinAckPending, DefaultAckPendingPerWorker*p.Concurrency)
	}
	return p, nil
}

// TopicStream names the stream holding topic ("wahook.ingress",
// "wahook.deadletter", "wahook.label-changed", ...), or reports false.
func TopicStream(topic string) (string, bool) {
	for _, p := range subjectPrefixes {
		if p.prefix == topic+"." {
			return p.stream, true
		}
	}
	return "", false
}

// ConsumerName is the durable consumer of a group (and partition): the
// group itself when it is a valid name made of letters, digits, '-' and
// '_'; otherwise those characters with the others replaced by '_' and a
// hash of the group appended, so that two groups never share a consumer.
// With partitions > 1, "-p{partition}of{partitions}" is appended: each
// partition keeps its own position.
func ConsumerName(group string, partition, partitions int) (string, error) {
	if group == "" {
		return "", errors.New("natsbroker: subscribe: empty group")
	}
	var b strings.Builder
	clean := len(group) <= maxNameLen
	for i := 0; i < len(group) && b.Len() < maxNameLen; i++ {
		c := group[i]
		if c == '-' || c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('_')
		clean = false
	}
	name := b.String()
	if !clean {
		h := fnv.New32a()
		h.Write([]byte(group))
		name = fmt.Sprintf("%s-%08x", name, h.Sum32())
	}
	if partitions > 1 {
		name = fmt.Sprintf("%s-p%dof%d", name, partition, partitions)
	}
	return name, nil
}

// consumerConfig is the configuration a new consumer is created with.
func (p plan) consumerConfig(c SubscribeConfig) jetstream.ConsumerConfig {
	desc := fmt.Sprintf("wahook group %s on %s", p.Group, p.Topic)
	if p.Partitions > 1 {
		desc += fmt.Sprintf(", partition %d of %d", p.Partition, p.Partitions)
	}
	cc := jetstream.ConsumerConfig{
		Durable:       p.consumer,
		Description:   desc,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       c.AckWait,
		// A poison message is terminated by its handler (dead-lettered
		// first), never dropped by the server after some deliveries.
		MaxDeliver:    -1,
		MaxAckPending: p.maxAckPending,
	}
	setFilters(&cc, p.filters)
	if !p.StartTime.IsZero() {
		t := p.StartTime.UTC()
		cc.DeliverPolicy = jetstream.DeliverByStartTimePolicy
		cc.OptStartTime = &t
	}
	return cc
}

// setFilters writes filters the way the server stores them: one filter as
// FilterSubject, several as FilterSubjects.
func setFilters(cc *jetstream.ConsumerConfig, filters []string) {
	cc.FilterSubject, cc.FilterSubjects = "", nil
	if len(filters) == 1 {
		cc.FilterSubject = filters[0]
		return
	}
	cc.FilterSubjects = filters
}

// ensureConsumer creates the plan's consumer, or updates an existing one
// to the plan where JetStream allows it: filters, AckWait, MaxAckPending,
// MaxDeliver and description. Its deliver policy and start time are kept,
// so an existing consumer resumes where it was whatever StartTime says.
func (b *Broker) ensureConsumer(ctx context.Context, p plan) (jetstream.Consumer, error) {
	want := p.consumerConfig(b.cfg.Subscribe)
	// Another instance may create or delete the consumer between two calls.
	for range 3 {
		cons, err := b.js.Consumer(ctx, p.stream, p.consumer)
		switch {
		case err == nil:
			return b.updateConsumer(ctx, p, cons, want)
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			cons, err = b.js.CreateConsumer(ctx, p.stream, want)
			if err == nil {
				b.log.Info("consumer created", zap.String("stream", p.stream), zap.String("consumer", p.consumer),
					zap.Stringer("deliver_policy", want.DeliverPolicy))
				return cons, nil
			}
			if !errors.Is(err, jetstream.ErrConsumerExists) {
				return nil, fmt.Errorf("natsbroker: create consumer %s on %s: %w", p.consumer, p.stream, classify(err))
			}
		default:
			return nil, fmt.Errorf("natsbroker: consumer %s on %s: %w", p.consumer, p.stream, classify(err))
		}
	}
	return nil, fmt.Errorf("natsbroker: consumer %s on %s: created and deleted concurrently: %w",
		p.consumer, p.stream, broker.ErrUnavailable)
}

func (b *Broker) updateConsumer(ctx context.Context, p plan, cons jetstream.Consumer, want jetstream.ConsumerConfig) (jetstream.Consumer, error) {
	cur := cons.CachedInfo().Config
	if cur.AckPolicy != jetstream.AckExplicitPolicy {
		return nil, fmt.Errorf("natsbroker: consumer %s on %s has ack policy %s, want explicit (delete it or use another group)",
			p.consumer, p.stream, cur.AckPolicy)
	}
	upd := cur
	setFilters(&upd, p.filters)
	upd.Description = want.Description
	upd.AckWait = want.AckWait
	upd.MaxAckPending = want.MaxAckPending
	upd.MaxDeliver = want.MaxDeliver
	if reflect.DeepEqual(cur, upd) {
		return cons, nil
	}
	cons, err := b.js.UpdateConsumer(ctx, p.stream, upd)
	if err != nil {
		return nil, fmt.Errorf("natsbroker: update consumer %s on %s: %w", p.consumer, p.stream, classify(err))
	}
	b.log.Info("consumer updated", zap.String("stream", p.stream), zap.String("consumer", p.consumer))
	return cons, nil
}

// Subscribe consumes s.Topic through a durable pull consumer and hands each
// message to h until ctx is done; see the package documentation, section
// Consuming, for acknowledgements, retries, partitions, ordering and
// shutdown. It returns ctx's error after the handlers in flight finished,
// an error wrapping broker.ErrClosed when the broker is closed, or at once
// an error for a subscription it cannot serve (unknown topic, empty group,
// a consumer that is not a pull consumer with explicit acks). While
// JetStream is unreachable it keeps trying.
func (b *Broker) Subscribe(ctx context.Context, s broker.Subscription, h broker.Handler) error {
	if h == nil {
		return errors.New("natsbroker: subscribe: nil handler")
	}
	p, err := b.planFor(s)
	if err != nil {
		return err
	}
	if b.isClosing() {
		return fmt.Errorf("natsbroker: subscribe %s: %w", p.consumer, broker.ErrClosed)
	}
	tracker := dispatch.NewTracker(p.Progress)
	holder := b.newHolder()
	for {
		l, orphaned, err := b.acquire(ctx, p, holder)
		if err != nil {
			return b.subscribeEnd(ctx, p, err)
		}
		var info *jetstream.ConsumerInfo
		cons, err := b.setUp(ctx, p)
		if err == nil {
			info = cons.CachedInfo()
			if orphaned {
				info, err = b.resumeRetrying(ctx, p, cons)
			}
		}
		if err != nil {
			if !orphaned {
				l.release()
			}
			return b.subscribeEnd(ctx, p, err)
		}
		// rctx also ends when the lease is lost: a standby may take over.
		// The lease is renewed until the run has returned, its handlers
		// finished and its messages handed back, however long that takes.
		rctx, cancel := context.WithCancel(ctx)
		kctx, stopKeeping := context.WithCancel(context.WithoutCancel(ctx))
		var lost atomic.Bool
		kept := make(chan struct{})
		go func() {
			defer close(kept)
			l.keep(kctx, func() {
				lost.Store(true)
				cancel()
			})
		}()
		r := newRun(b, p, h, tracker)
		r.leaseLost, r.lostGrace = lost.Load, l.ttl/4
		err = r.run(rctx, cons, info)
		stopKeeping()
		cancel()
		<-kept
		switch {
		case lost.Load() && ctx.Err() == nil && !b.connClosedForGood() && !b.isClosing():
			// Wait as a standby again; whoever takes over resumes from
			// the ack floor.
			continue
		case ctx.Err() != nil && !errors.Is(err, broker.ErrClosed) && !r.unsettled.Load():
			// Everything held was settled or handed back in order: the
			// next holder need not resume from the ack floor.
			l.release()
		}
		return err
	}
}

// subscribeEnd is what Subscribe returns when it stops before consuming.
func (b *Broker) subscribeEnd(ctx context.Context, p plan, err error) error {
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case b.connClosedForGood() || b.isClosing():
		return fmt.Errorf("natsbroker: subscribe %s: %w", p.consumer, broker.ErrClosed)
	}
	return err
}

// resumeRetrying resumes p's consumer (see resume), retrying while
// JetStream is unavailable, and returns its state then.
func (b *Broker) resumeRetrying(ctx context.Context, p plan, cons jetstream.Consumer) (*jetstream.ConsumerInfo, error) {
	wait := b.cfg.Subscribe.RetryMin
	for {
		info, err := b.resume(ctx, p, cons)
		if err == nil || !errors.Is(err, broker.ErrUnavailable) || ctx.Err() != nil || b.connClosedForGood() || b.isClosing() {
			return info, err
		}
		b.log.Warn("resuming the consumer failed, retrying", zap.String("consumer", p.consumer), zap.Error(err))
		if !dispatch.Sleep(ctx, dispatch.Jitter(wait)) {
			return nil, ctx.Err()
		}
		wait = min(2*wait, setupRetryMax)
	}
}

// setUp ensures the consumer, retrying while JetStream is unavailable.
func (b *Broker) setUp(ctx context.Context, p plan) (jetstream.Consumer, error) {
	wait := b.cfg.Subscribe.RetryMin
	for {
		cons, err := b.ensureConsumer(ctx, p)
		if err == nil {
			return cons, nil
		}
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		if b.connClosedForGood() || b.isClosing() {
			return nil, fmt.Errorf("natsbroker: subscribe %s: %w", p.consumer, broker.ErrClosed)
		}
		if !errors.Is(err, broker.ErrUnavailable) {
			return nil, err
		}
		b.log.Warn("consumer setup failed, retrying", zap.String("consumer", p.consumer), zap.Error(err))
		if !dispatch.Sleep(ctx, dispatch.Jitter(wait)) {
			return nil, ctx.Err()
		}
		wait = min(2*wait, setupRetryMax)
	}
}

func (b *Broker) connClosedForGood() bool {
	select {
	case <-b.connClosed:
		return true
	default:
		return false
	}
}

// termReason is the reason a terminated message is reported with in
// JetStream's advisory: the error on one line, bounded.
func termReason(err error) string {
	r := strings.Join(strings.Fields(err.Error()), " ")
	if len(r) > maxTermReason {
		r = r[:maxTermReason]
	}
	return r
}
