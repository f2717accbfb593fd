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
//
// JetStream numbers every delivery of a consumer, new or redelivered, one
// more than the last. The pulling goroutine counts them: a message that
// arrives with another number means the server delivered messages that
// never arrived (lost in transit as the connection broke, dropped by the
// client) or forgot deliveries (a restart that lost its state). The lost
// ones would come back only after AckWait, behind the later messages of
// their keys, so the run resyncs instead: it stops pulling, resets the
// consumer to its ack floor and resumes, every message after the floor
// coming again in stream order.
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

	// Owned by the pulling goroutine. cons is the consumer pulled from,
	// created its creation time, next the delivery sequence its next
	// message must carry.
	cons    jetstream.Consumer
	created time.Time
	next    uint64
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

// run consumes cons, whose state info describes: taken while this instance
// had no pull request on it, so that its last delivery is the last one
// before this run's first.
func (r *run) run(ctx context.Context, cons jetstream.Consumer, info *jetstream.ConsumerInfo) error {
	r.cons = cons
	r.count(info)
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

// count counts deliveries on from the consumer's state in info.
func (r *run) count(info *jetstream.ConsumerInfo) {
	r.next, r.created = info.Delivered.Consumer+1, info.Created
}

// inSequence reports whether m carries the delivery sequence expected
// next, counting it if so. A message without metadata (JetStream always
// sends it) passes uncounted, with a nil meta.
func (r *run) inSequence(m jetstream.Msg) (*jetstream.MsgMetadata, bool) {
	meta, err := m.Metadata()
	if err != nil {
		return nil, true
	}
	if meta.Sequence.Consumer != r.next {
		return meta, false
	}
	r.next++
	return meta, true
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
// consumer when it is deleted, and resyncs when deliveries were lost.
func (r *run) pull(ctx context.Context, iter jetstream.MessagesContext) (jetstream.MessagesContext, error) {
	wait := r.cfg.RetryMin
	// wctx also ends at the next reconnect.
	wctx, unwatch := r.watch(ctx)
	defer func() { unwatch() }()
	for {
		if iter == nil {
			cons, err := r.b.ensureConsumer(ctx, r.p)
			if err == nil {
				r.cons = cons
				if info := cons.CachedInfo(); !info.Created.Equal(r.created) {
					// Another consumer of the same name: it counts
					// its deliveries from its own start.
					r.count(info)
				}
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
		m, err := iter.Next(jetstream.NextContext(wctx))
		if err == nil {
			wait = r.cfg.RetryMin
			meta, ok := r.inSequence(m)
			if ok {
				r.dispatch(m, meta)
				continue
			}
			iter = r.resync(ctx, iter, zap.Uint64("want_delivery_seq", r.next),
				zap.Uint64("got_delivery_seq", meta.Sequence.Consumer))
			continue
		}
		switch {
		case ctx.Err() != nil:
			return iter, nil
		case wctx.Err() != nil:
			// Reconnected: anything sent as the connection broke is
			// lost, and nothing may follow to show it.
			unwatch()
			wctx, unwatch = r.watch(ctx)
			if d, missed := r.missed(ctx); missed {
				iter = r.resync(ctx, iter, zap.String("after", "reconnect"),
					zap.Uint64("received_up_to_delivery_seq", r.next-1), zap.Uint64("server_delivered_up_to", d))
			} else if ctx.Err() == nil {
				r.log.Debug("every delivery arrived before the reconnect", zap.Uint64("delivery_seq", d))
			}
			continue
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
		// What it still buffers is not dispatched: its deliveries are
		// then missing in the new iterator's count, which resyncs.
		r.drain(iter, nil)
		iter = nil
		if !dispatch.Sleep(ctx, dispatch.Jitter(wait)) {
			return nil, nil
		}
		wait = min(2*wait, setupRetryMax)
	}
}

// watch returns a context that ends with ctx or at the next reconnect.
func (r *run) watch(ctx context.Context) (context.Context, func()) {
	wctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(r.b.nextReconnect(), cancel)
	return wctx, func() {
		stop()
		cancel()
	}
}

// missed reports, after a reconnect, whether the server delivered messages
// this run did not receive, and the server's last delivery sequence.
// Those it sent as the connection broke are lost, and JetStream sends them
// again only after AckWait; when a later message comes first its sequence
// shows the gap, but none may come. Nothing was missed when the server's
// last delivery is the last one received: everything delivered before the
// break arrived. Messages already sent on the new connection also count as
// missed here (they cannot be told apart), costing a needless resync.
func (r *run) missed(ctx context.Context) (uint64, bool) {
	wait := r.cfg.RetryMin
	for {
		actx, unwatch := r.watch(ctx)
		info, err := r.cons.Info(actx)
		unwatch()
		switch {
		case err == nil:
			d := info.Delivered.Consumer
			return d, !info.Created.Equal(r.created) || d+1 != r.next
		case errors.Is(err, jetstream.ErrConsumerNotFound):
			// resync finds it gone and has pull set it up again.
			return 0, true
		case ctx.Err() != nil || r.b.connClosedForGood() || r.b.isClosing():
			return 0, false
		case actx.Err() != nil:
			// Reconnected again: the answer is lost, ask again.
			continue
		}
		r.log.Debug("consumer info after a reconnect failed, retrying", zap.Error(err))
		if !dispatch.Sleep(ctx, dispatch.Jitter(wait)) {
			return 0, false
		}
		wait = min(2*wait, setupRetryMax)
	}
}

// resync resets the consumer to its ack floor after deliveries were lost,
// so that every message after the floor comes again in stream order: the
// lost ones before the later messages of their keys. It first drains iter
// without dispatching what it still buffers (the reset sends that again),
// so that the server no longer sends anything to its pull requests, and
// starts the next iterator after the reset, counting from it. The
// workers go on meanwhile: everything they hold was delivered before the
// lost messages, and the redeliveries of what they hold are dropped as
// duplicates (heldSet.add). It returns the iterator to go on with, or nil
// when pull must set the consumer up again or stop (ctx done, connection
// closed).
func (r *run) resync(ctx context.Context, iter jetstream.MessagesContext, why ...zap.Field) jetstream.MessagesContext {
	r.log.Warn("deliveries lost: resetting the consumer to its ack floor", why...)
	if iter != nil {
		r.drain(iter, nil)
	}
	wait := r.cfg.RetryMin
	for {
		actx, unwatch := r.watch(ctx)
		resp, err := r.b.js.ResetConsumer(actx, r.p.stream, r.p.consumer)
		unwatch()
		if err == nil {
			r.count(resp.ConsumerInfo)
			r.log.Info("consumer reset to its ack floor", zap.Uint64("from_stream_seq", resp.ResetSeq))
			it, err := r.messages(r.cons)
			if err != nil {
				r.log.Warn("consuming failed to resume after the reset, retrying", zap.Error(err))
				return nil
			}
			return it
		}
		if ctx.Err() != nil || r.b.connClosedForGood() || r.b.isClosing() || errors.Is(err, jetstream.ErrConsumerNotFound) {
			return nil
		}
		if actx.Err() != nil {
			// Reconnected meanwhile: the answer is lost (a reset done
			// twice does no harm), ask again.
			continue
		}
		r.log.Warn("resetting the consumer failed, retrying", zap.Error(err))
		if !dispatch.Sleep(ctx, dispatch.Jitter(wait)) {
			return nil
		}
		wait = min(2*wait, setupRetryMax)
	}
}

// drain stops iter, first reading back what it buffers and what the server
// still sends until the server has dropped its pull requests, passing each
// message to keep (nil drops them). It reports whether that completed
// within drainTimeout; if not, the server may still send to them.
func (r *run) drain(iter jetstream.MessagesContext, keep func(jetstream.Msg)) bool {
	defer iter.Stop()
	if r.b.connClosedForGood() {
		return false
	}
	iter.Drain()
	deadline := time.Now().Add(drainTimeout)
	for {
		wait := time.Until(deadline)
		if wait <= 0 {
			return false
		}
		m, err := iter.Next(jetstream.NextMaxWait(wait))
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return true
			}
			if errors.Is(err, nats.ErrTimeout) {
				return false
			}
			continue
		}
		if keep != nil {
			keep(m)
		}
	}
}

// dispatch acknowledges a message of another partition or one Skip
// reports, and queues any other on the worker of its key unless a worker
// already holds it. meta is
// m's metadata, nil if it has none.
func (r *run) dispatch(m jetstream.Msg, meta *jetstream.MsgMetadata) {
	h := m.Headers()
	key := keyOf(h, m.Subject())
	if r.p.Partitions > 1 && broker.PartitionOf(key, r.p.Partitions) != r.p.Partition {
		// Another partition's consumer handles it. A lost ack only brings
		// it back here to be skipped again.
		_ = m.Ack()
		return
	}
	if r.p.Skip != nil && r.p.Skip(broker.Header(h)) {
		// Not read by this subscription; likewise.
		_ = m.Ack()
		return
	}
	d := &delivery{msg: m, key: key, attempt: 1}
	if meta != nil {
		d.seq = meta.Sequence.Stream
		d.attempt = int(meta.NumDelivered)
	}
	d.touch(time.Now())
	if !r.held.add(d) {
		// A redelivery (after a reset, or its ack timer expired while
		// the connection was down) of a message a worker still has: one
		// is enough.
		return
	}
	r.d.Push(d, key)
}

// shutdown stops pulling, reads back what was already sent to this
// instance so the workers can hand it back (Nak: another instance gets it
// at once), and waits for the workers: each finishes the message it is
// handling, within the grace period. When a message delivered to this
// instance never reached it, nothing handed back may go first: the run
// counts as unsettled, so its lease is not released and whoever takes
// over resets the consumer.
func (r *run) shutdown(iter jetstream.MessagesContext) {
	r.cancel()
	grace := r.cfg.ShutdownGrace
	if r.leaseLost != nil && r.leaseLost() {
		grace = min(grace, r.lostGrace)
	}
	r.d.Stop(grace)

	complete, paused := true, false
	if iter != nil {
		gap := false
		keep := func(m jetstream.Msg) {
			if gap {
				return
			}
			meta, ok := r.inSequence(m)
			if !ok {
				gap = true
				return
			}
			r.dispatch(m, meta)
		}
		paused = r.catchUp(iter, keep)
		complete = r.drain(iter, keep)
	}
	if !r.b.connClosedForGood() && (!r.dropPullRequests() || !complete) {
		r.unsettled.Store(true)
	}
	if paused {
		r.unpause()
	}
	close(r.pullStopped)
	if !r.d.Wait(grace) {
		r.unsettled.Store(true)
	}
}

// catchUp pauses the consumer and reads what the server delivered to this
// run before the pause and is still on its way: nats-server queues a
// delivery before sending it, so one queued as the pull requests are
// dropped is lost, and the lease must then expire and the next holder
// reset the consumer, restarting the delivery counts (Received.Attempt).
// It reports whether it paused the consumer, which unpause undoes; should
// this instance die first, the pause ends by itself after pauseFor. A
// consumer paused already (by an operator) is left as it is.
func (r *run) catchUp(iter jetstream.MessagesContext, keep func(jetstream.Msg)) (paused bool) {
	if r.b.connClosedForGood() {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	info, err := r.cons.Info(ctx)
	if err != nil {
		r.log.Debug("consumer info at shutdown", zap.Error(err))
		return false
	}
	if !info.Paused {
		if _, err := r.b.js.PauseConsumer(ctx, r.p.stream, r.p.consumer, time.Now().Add(pauseFor)); err != nil {
			r.log.Debug("pausing the consumer at shutdown", zap.Error(err))
			return false
		}
		paused = true
		if info, err = r.cons.Info(ctx); err != nil {
			r.log.Debug("consumer info at shutdown", zap.Error(err))
			return paused
		}
	}
	if !info.Created.Equal(r.created) {
		return paused
	}
	deadline := time.Now().Add(drainTimeout)
	for r.next <= info.Delivered.Consumer {
		wait := time.Until(deadline)
		if wait <= 0 {
			return paused
		}
		m, err := iter.Next(jetstream.NextMaxWait(wait))
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || errors.Is(err, nats.ErrTimeout) {
				return paused
			}
			continue
		}
		next := r.next
		keep(m)
		if r.next == next {
			// Out of sequence: dropPullRequests tells.
			return paused
		}
	}
	return paused
}

// unpause ends the pause catchUp began. Failing that, it ends by itself.
func (r *run) unpause() {
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	if _, err := r.b.js.ResumeConsumer(ctx, r.p.stream, r.p.consumer); err != nil {
		r.log.Warn("resuming the consumer after shutdown failed; its pause ends by itself",
			zap.Duration("within", pauseFor), zap.Error(err))
	}
}

// dropPullRequests makes the server forget this instance's pull requests
// before anything is handed back. nats-server keeps a pull request until
// it expires or is found without interest; finding it so when about to
// redeliver a Nak'd message, it puts that message back at the end of the
// redelivery queue, behind the later messages of its key. A consumer info
// request purges the requests without interest, and the unsubscribe is on
// the server once a flush returned. It reports whether every message the
// server delivered to this run arrived (false when it cannot tell).
func (r *run) dropPullRequests() bool {
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	if err := r.b.nc.FlushWithContext(ctx); err != nil {
		return false
	}
	cons, err := r.b.js.Consumer(ctx, r.p.stream, r.p.consumer)
	if err != nil {
		r.log.Debug("consumer info at shutdown", zap.Error(err))
		return false
	}
	info := cons.CachedInfo()
	if !info.Created.Equal(r.created) || info.Delivered.Consumer+1 != r.next {
		r.log.Warn("messages delivered to this instance never arrived: leaving the lease to expire, so that the next instance resets the consumer",
			zap.Uint64("received_up_to_delivery_seq", r.next-1), zap.Uint64("server_delivered_up_to", info.Delivered.Consumer))
		return false
	}
	return true
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
	var op string
	var send func(jetstream.Msg) error
	switch o {
	case dispatch.Acked:
		op, send = "ack", jetstream.Msg.Ack
	case dispatch.Terminated:
		reason := termReason(cause)
		op, send = "term", func(m jetstream.Msg) error { return m.TermWithReason(reason) }
	default:
		select {
		case <-r.pullStopped:
		case <-r.d.HandlerContext().Done():
		}
		op, send = "nak", jetstream.Msg.Nak
	}
	r.settle(d, op, d.msg, send)
	// A redelivery of d that arrived while it was held (after a reset) is
	// the delivery the server now counts: settle it too. An ack or nak of
	// the first delivery sent after the reset and before the redelivery is
	// ignored by the server, and a nak is checked against the delivery
	// sequence, which starts over at a reset.
	if again := r.held.remove(d); again != nil {
		r.settle(d, op, again, send)
	}
}

// settle sends an ack, nak or term of m, a delivery of d. While the
// connection is down it keeps trying, holding the worker so that the key's
// later messages wait; it gives up when the connection is closed for good
// or the grace period ended, and JetStream redelivers the message after
// AckWait.
func (r *run) settle(d *delivery, op string, m jetstream.Msg, send func(jetstream.Msg) error) {
	wait := 10 * time.Millisecond
	for {
		err := send(m)
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
	msg jetstream.Msg
	// again is its latest redelivery while held, if any (guarded by the
	// heldSet's lock).
	again   jetstream.Msg
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

// add reports false if a message with d's sequence is already held; d's
// delivery is then recorded as that message's latest.
func (s *heldSet) add(d *delivery) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d.seq == 0 {
		s.unknown = append(s.unknown, d)
		return true
	}
	if h, ok := s.m[d.seq]; ok {
		h.again = d.msg
		return false
	}
	s.m[d.seq] = d
	return true
}

// remove forgets d and returns its latest redelivery, nil if none came.
func (s *heldSet) remove(d *delivery) jetstream.Msg {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d.seq != 0 {
		delete(s.m, d.seq)
		return d.again
	}
	for i, u := range s.unknown {
		if u == d {
			s.unknown = append(s.unknown[:i], s.unknown[i+1:]...)
			return nil
		}
	}
	return nil
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
