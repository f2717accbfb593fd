package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/internal/dispatch"
)

// settleRetryMax caps the pause between attempts to send an ack, nak or
// term while the connection is down.
const settleRetryMax = time.Second

// run is one Subscribe call: the Subscribe goroutine pulls messages and
// pushes each on the dispatcher, which hands them to workers by key and
// has run settle them; a keep-alive refreshes the ack timer of every
// message held.
type run struct {
	b   *Broker
	p   plan
	cfg SubscribeConfig
	h   broker.Handler
	log *zap.Logger

	d       *dispatch.Dispatcher[*delivery]
	tracker *dispatch.Tracker
	held    heldSet
	// leaseLost reports whether the run ends because the consumer's lease
	// was lost; its handlers then get lostGrace, less than the time left
	// before a standby may take over.
	leaseLost func() bool
	lostGrace time.Duration
	// unsettled is set when a message held could not be settled: it is
	// redelivered after AckWait, so the lease must not be released as
	// if everything had been handed back.
	unsettled atomic.Bool

	// ctx is Subscribe's ctx, also cancelled when shutdown begins for
	// another reason (the connection closed): workers then hand back what
	// they have not started. Checking it rather than a flag set by the
	// dispatcher means no handler starts once the caller has cancelled.
	ctx    context.Context
	cancel context.CancelFunc
	// pullStopped is closed once the server can no longer deliver to this
	// instance. Messages are handed back only then: a Nak'd message sent
	// back to this instance's draining pull request would be handed back
	// again, behind the later messages of its key.
	pullStopped chan struct{}
}

func newRun(b *Broker, p plan, h broker.Handler, tracker *dispatch.Tracker) *run {
	return &run{
		b:           b,
		p:           p,
		cfg:         b.cfg.Subscribe,
		h:           h,
		held:        heldSet{m: make(map[uint64]*delivery)},
		tracker:     tracker,
		pullStopped: make(chan struct{}),
		log: b.log.With(zap.String("stream", p.stream), zap.String("consumer", p.consumer),
			zap.String("group", p.Group)),
	}
}

func (r *run) run(ctx context.Context, cons jetstream.Consumer) error {
	r.ctx, r.cancel = context.WithCancel(ctx)
	defer r.cancel()
	r.d = dispatch.New(r.ctx, dispatch.Config{
		Workers:      r.p.Concurrency,
		RetryMin:     r.cfg.RetryMin,
		RetryMax:     r.cfg.RetryMax,
		Subscription: r.p.Subscription,
		Handler:      r.h,
		Log:          r.log,
		Tracker:      r.tracker,
	}, r)
	keepAliveStop, keepAliveDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(keepAliveDone)
		r.keepAlive(keepAliveStop)
	}()
	r.log.Info("subscription started", zap.Strings("filters", r.p.filters), zap.Int("concurrency", r.p.Concurrency),
		zap.Int("partition", r.p.Partition), zap.Int("partitions", r.p.Partitions))

	iter, endErr := r.messages(cons)
	if endErr != nil && !errors.Is(endErr, broker.ErrClosed) {
		// pull starts over with a fresh consumer and iterator.
		r.log.Warn("consuming failed to start, retrying", zap.Error(endErr))
		endErr = nil
	}
	if endErr == nil {
		iter, endErr = r.pull(r.ctx, iter)
	}
	r.shutdown(iter)
	close(keepAliveStop)
	<-keepAliveDone

	// Put the last acks and naks on the server before returning, so that
	// a Subscribe that follows, here or elsewhere, starts after them.
	fctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	if err := r.b.nc.FlushWithContext(fctx); err != nil && !r.b.connClosedForGood() {
		r.log.Debug("flush at shutdown", zap.Error(err))
	}
	r.log.Info("subscription stopped")
	if endErr != nil {
		return endErr
	}
	return ctx.Err()
}

func (r *run) messages(cons jetstream.Consumer) (jetstream.MessagesContext, error) {
	it, err := cons.Messages(
		jetstream.PullMaxMessages(min(r.p.maxAckPending, maxPullBatch)),
		jetstream.PullExpiry(max(time.Second, min(maxPullExpiry, r.cfg.AckWait*2/5))),
	)
	if err != nil {
		if r.b.connClosedForGood() || r.b.isClosing() {
			return nil, fmt.Errorf("natsbroker: subscribe %s: %w", r.p.consumer, broker.ErrClosed)
		}
		return nil, fmt.Errorf("natsbroker: subscribe %s: %w", r.p.consumer, err)
	}
	return it, nil
}

// pull dispatches messages until ctx is done or the connection is closed
// for good, and returns the iterator in use then (nil if none) with the
// error Subscribe returns (nil for ctx's). nats.go re-issues pull requests
// after a reconnect or missed heartbeats; pull itself re-creates the
// consumer when it is deleted.
func (r *run) pull(ctx context.Context, iter jetstream.MessagesContext) (jetstream.MessagesContext, error) {
	wait := r.cfg.RetryMin
	for {
		if iter == nil {
			cons, err := r.b.ensureConsumer(ctx, r.p)
			if err == nil {
				iter, err = r.messages(cons)
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil, nil
				}
				if r.b.connClosedForGood() || r.b.isClosing() {
					return nil, fmt.Errorf("natsbroker: subscribe %s: %w", r.p.consumer, broker.ErrClosed)
				}
				r.log.Warn("consumer setup failed, retrying", zap.Error(err))
				if !dispatch.Sleep(ctx, dispatch.Jitter(wait)) {
					return nil, nil
				}
				wait = min(2*wait, setupRetryMax)
				continue
			}
		}
		m, err := iter.Next(jetstream.NextContext(ctx))
		if err == nil {
			wait = r.cfg.RetryMin
			r.dispatch(m)
			continue
		}
		switch {
		case ctx.Err() != nil:
			return iter, nil
		case r.b.connClosedForGood() || r.b.isClosing() || errors.Is(err, jetstream.ErrConnectionClosed):
			return iter, fmt.Errorf("natsbroker: subscribe %s: %w", r.p.consumer, broker.ErrClosed)
		case errors.Is(err, jetstream.ErrNoHeartbeat):
			// The pull request is re-issued by the next Next; make sure
			// there is still a consumer to pull from.
			_, cerr := r.b.js.Consumer(ctx, r.p.stream, r.p.consumer)
			if !errors.Is(cerr, jetstream.ErrConsumerNotFound) {
				continue
			}
			r.log.Warn("consumer disappeared, re-creating it")
		default:
			// The consumer was deleted (ErrConsumerDeleted), or the server
			// refused the pull request: start over with a fresh consumer.
			r.log.Warn("consuming interrupted, resuming", zap.Error(err))
		}
		iter.Stop()
		iter = nil
		if !dispatch.Sleep(ctx, dispatch.Jitter(wait)) {
			return nil, nil
		}
		wait = min(2*wait, setupRetryMax)
	}
}

// dispatch acknowledges a message of another partition, and queues any
// other on the worker of its key unless a worker already holds it.
func (r *run) dispatch(m jetstream.Msg) {
	h := m.Headers()
	key := keyOf(h, m.Subject())
	if r.p.Partitions > 1 && broker.PartitionOf(key, r.p.Partitions) != r.p.Partition {
		// Another partition's consumer handles it. A lost ack only brings
		// it back here to be skipped again.
		_ = m.Ack()
		return
	}
	d := &delivery{msg: m, key: key, attempt: 1}
	if meta, err := m.Metadata(); err == nil {
		d.seq = meta.Sequence.Stream
		d.attempt = int(meta.NumDelivered)
	}
	d.touch(time.Now())
	if !r.held.add(d) {
		// A redelivery (its ack timer expired while the connection was
		// down) of a message a worker still has: one is enough.
		return
	}
	r.d.Push(d, key)
}

// shutdown stops pulling, reads back what was already sent to this
// instance so the workers can hand it back (Nak: another instance gets it
// at once), and waits for the workers: each finishes the message it is
// handling, within the grace period.
func (r *run) shutdown(iter jetstream.MessagesContext) {
	r.cancel()
	grace := r.cfg.ShutdownGrace
	if r.leaseLost != nil && r.leaseLost() {
		grace = min(grace, r.lostGrace)
	}
	r.d.Stop(grace)

	if iter != nil && !r.b.connClosedForGood() {
		iter.Drain()
		deadline := time.Now().Add(drainTimeout)
		for {
			wait := time.Until(deadline)
			if wait <= 0 {
				break
			}
			m, err := iter.Next(jetstream.NextMaxWait(wait))
			if err != nil {
				if errors.Is(err, jetstream.ErrMsgIteratorClosed) || errors.Is(err, nats.ErrTimeout) {
					break
				}
				continue
			}
			r.dispatch(m)
		}
	}
	if iter != nil {
		iter.Stop()
	}
	if !r.b.connClosedForGood() {
		r.dropPullRequests()
	}
	close(r.pullStopped)
	if !r.d.Wait(grace) {
		r.unsettled.Store(true)
	}
}

// dropPullRequests makes the server forget this instance's pull requests
// before anything is handed back. nats-server keeps a pull request until
// it expires or is found without interest; finding it so when about to
// redeliver a Nak'd message, it puts that message back at the end of the
// redelivery queue, behind the later messages of its key. A consumer info
// request purges the requests without interest, and the unsubscribe is on
// the server once a flush returned.
func (r *run) dropPullRequests() {
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	if err := r.b.nc.FlushWithContext(ctx); err != nil {
		return
	}
	if _, err := r.b.js.Consumer(ctx, r.p.stream, r.p.consumer); err != nil {
		r.log.Debug("consumer info at shutdown", zap.Error(err))
	}
}

// Message is what the handler gets of d.
func (r *run) Message(d *delivery) broker.Message {
	h := d.msg.Headers()
	return broker.Message{
		Topic:   r.p.Topic,
		Subject: d.msg.Subject(),
		Key:     d.key,
		ID:      idOf(h),
		Header:  broker.Header(h),
		Data:    d.msg.Data(),
	}
}

// Attempt is JetStream's delivery count plus the retries in place.
func (r *run) Attempt(d *delivery, try int) int { return d.attempt + try }

// Settle acknowledges or terminates d, or hands it back (Nak) once
// pulling has stopped, so that the next instance of the group gets it at
// once rather than after AckWait.
func (r *run) Settle(d *delivery, o dispatch.Outcome, cause error) {
	defer r.held.remove(d)
	switch o {
	case dispatch.Acked:
		r.settle(d, "ack", d.msg.Ack)
	case dispatch.Terminated:
		reason := termReason(cause)
		r.settle(d, "term", func() error { return d.msg.TermWithReason(reason) })
	default:
		select {
		case <-r.pullStopped:
		case <-r.d.HandlerContext().Done():
		}
		r.settle(d, "nak", d.msg.Nak)
	}
}

// settle sends an ack, nak or term. While the connection is down it keeps
// trying, holding the worker so that the key's later messages wait; it
// gives up when the connection is closed for good or the grace period
// ended, and JetStream redelivers the message after AckWait.
func (r *run) settle(d *delivery, op string, send func() error) {
	wait := 10 * time.Millisecond
	for {
		err := send()
		if err == nil || errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			return
		}
		hctx := r.d.HandlerContext()
		if r.b.connClosedForGood() || hctx.Err() != nil {
			r.unsettled.Store(true)
			r.log.Warn("message not settled; JetStream redelivers it after AckWait", zap.String("op", op),
				zap.String("subject", d.msg.Subject()), zap.Uint64("stream_seq", d.seq), zap.Error(err))
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-hctx.Done():
			t.Stop()
		}
		wait = min(2*wait, settleRetryMax)
	}
}

// keepAlive tells JetStream that every message held for a quarter of
// AckWait is still in progress, until stop is closed: those being retried
// and those queued behind them are not redelivered elsewhere.
func (r *run) keepAlive(stop <-chan struct{}) {
	every := r.cfg.AckWait / 4
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			for _, d := range r.held.older(now.Add(-every)) {
				if d.msg.InProgress() == nil {
					d.touch(now)
				}
			}
		}
	}
}

// delivery is a message held by this instance.
type delivery struct {
	msg     jetstream.Msg
	key     string
	seq     uint64 // stream sequence, 0 if unknown
	attempt int    // JetStream's delivery count
	// touched is when the ack timer was last started (UnixNano).
	touched atomic.Int64
}

func (d *delivery) touch(t time.Time) { d.touched.Store(t.UnixNano()) }

// heldSet is the messages handed to workers and not settled yet, by
// stream sequence.
type heldSet struct {
	mu sync.Mutex
	m  map[uint64]*delivery
	// unknown holds the (never seen) messages without metadata.
	unknown []*delivery
}

// add reports false if a message with d's sequence is already held.
func (s *heldSet) add(d *delivery) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d.seq == 0 {
		s.unknown = append(s.unknown, d)
		return true
	}
	if _, ok := s.m[d.seq]; ok {
		return false
	}
	s.m[d.seq] = d
	return true
}

func (s *heldSet) remove(d *delivery) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d.seq != 0 {
		delete(s.m, d.seq)
		return
	}
	for i, u := range s.unknown {
		if u == d {
			s.unknown = append(s.unknown[:i], s.unknown[i+1:]...)
			return
		}
	}
}

// older lists the messages whose ack timer started before t.
func (s *heldSet) older(t time.Time) []*delivery {
	limit := t.UnixNano()
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*delivery
	for _, d := range s.m {
		if d.touched.Load() <= limit {
			out = append(out, d)
		}
	}
	for _, d := range s.unknown {
		if d.touched.Load() <= limit {
			out = append(out, d)
		}
	}
	return out
}
