// Package dispatch runs the handlers of a subscription, the same way on
// every broker: per-key worker queues, retries in place with backoff and
// jitter, panic recovery, the poison policy, the shutdown grace period and
// progress tracking. A broker only fetches (Push) and settles (its
// Broker.Settle: ack, nak, term, commit points).
package dispatch

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/internal/fifo"
)

// LateHandlerWait is how long Wait still waits, after the grace period,
// for handlers that ignore their ctx.
const LateHandlerWait = 5 * time.Second

// DefaultMaxAttempts is the failed attempts after which a message whose
// handler keeps failing (not with broker.ErrUnavailable) is given to
// Subscription.Poison, when Subscription.MaxAttempts is zero.
const DefaultMaxAttempts = 10

// maxCause bounds the panic value in the error a panic becomes.
const maxCause = 1024

// Outcome is how a message left the dispatcher.
type Outcome int

const (
	// Acked: the handler returned nil.
	Acked Outcome = iota
	// Terminated: the handler returned a broker.Permanent error, or the
	// message was given up on and Subscription.Poison stored it. It must
	// never be delivered again.
	Terminated
	// Released: the dispatcher stopped before the message was finished;
	// the broker hands it back, or leaves it for the group's next owner.
	Released
)

func (o Outcome) String() string {
	switch o {
	case Acked:
		return "ack"
	case Terminated:
		return "term"
	}
	return "release"
}

// Broker is what a broker does for the dispatcher, for its message type M.
type Broker[M any] interface {
	// Message is what the handler gets of m (Received.Attempt aside). It
	// is called once per message, on its worker.
	Message(m M) broker.Message
	// Attempt is called before the handler call number try (from 0) of m,
	// and returns that call's Received.Attempt.
	Attempt(m M, try int) int
	// Settle tells the broker how m ended; cause is the error that ended
	// it (nil for Acked). It runs on m's worker: the later messages of
	// m's key wait for it.
	Settle(m M, o Outcome, cause error)
}

// Config configures a Dispatcher.
type Config struct {
	// Workers is how many messages are handled at once; 1 when below.
	Workers int
	// RetryMin and RetryMax bound the pause between two attempts.
	RetryMin, RetryMax time.Duration
	// Subscription supplies the handler's poison policy (MaxAttempts,
	// Poison).
	Subscription broker.Subscription
	Handler      broker.Handler
	Log          *zap.Logger
	// Tracker records progress; shared by the successive dispatchers of
	// one Subscribe call.
	Tracker *Tracker
}

// Dispatcher hands pushed messages to workers by a hash of their key, so a
// key's messages are handled one at a time and in the order pushed.
type Dispatcher[M any] struct {
	cfg    Config
	b      Broker[M]
	log    *zap.Logger
	seed   maphash.Seed
	queues []*fifo.Queue[*job[M]]
	wg     sync.WaitGroup
	// ctx ends the dispatching: once it is done no handler starts and no
	// failed one is retried. hctx is the handlers' ctx: ctx's values, but
	// cancelled only when the grace period after Stop ends.
	ctx     context.Context
	hctx    context.Context
	hcancel context.CancelFunc
	grace   sync.Once
	timer   *time.Timer
}

type job[M any] struct {
	m   M
	key string
	tk  *ticket
}

// New starts cfg.Workers workers; they handle what Push queues until ctx
// is done, and then release what they have not started.
func New[M any](ctx context.Context, cfg Config, b Broker[M]) *Dispatcher[M] {
	cfg.Workers = max(cfg.Workers, 1)
	if cfg.Log == nil {
		cfg.Log = zap.NewNop()
	}
	if cfg.Tracker == nil {
		cfg.Tracker = NewTracker(nil)
	}
	d := &Dispatcher[M]{cfg: cfg, b: b, log: cfg.Log, seed: maphash.MakeSeed(), ctx: ctx}
	d.hctx, d.hcancel = context.WithCancel(context.WithoutCancel(ctx))
	d.queues = make([]*fifo.Queue[*job[M]], cfg.Workers)
	for i := range d.queues {
		d.queues[i] = fifo.New[*job[M]]()
		d.wg.Add(1)
		go d.work(d.queues[i])
	}
	return d
}

// Push queues m on the worker of key.
func (d *Dispatcher[M]) Push(m M, key string) {
	j := &job[M]{m: m, key: key, tk: d.cfg.Tracker.add(time.Now())}
	d.queues[maphash.String(d.seed, key)%uint64(len(d.queues))].Push(j)
}

// HandlerContext is the handlers' ctx: it ends grace after Stop.
func (d *Dispatcher[M]) HandlerContext() context.Context { return d.hctx }

// Stop starts the grace period after which the handlers' ctx is
// cancelled. Call it once the ctx given to New is done; it may be called
// more than once (the first call counts).
func (d *Dispatcher[M]) Stop(grace time.Duration) {
	d.grace.Do(func() { d.timer = time.AfterFunc(grace, d.hcancel) })
}

// Wait closes the queues and waits for the workers: each finishes the
// handler it is running and releases what it has not started. Past the
// grace period it waits LateHandlerWait more for handlers that ignore
// their ctx, then gives up on them: their messages are not settled, and
// Wait reports false.
func (d *Dispatcher[M]) Wait(grace time.Duration) bool {
	d.Stop(grace)
	defer d.hcancel()
	for _, q := range d.queues {
		q.Close()
	}
	done := make(chan struct{})
	go func() {
		d.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		d.timer.Stop()
		return true
	case <-d.hctx.Done():
	}
	late := time.NewTimer(LateHandlerWait)
	defer late.Stop()
	select {
	case <-done:
		return true
	case <-late.C:
		d.log.Error("handlers still running after the shutdown grace period; their messages are redelivered",
			zap.Duration("grace", grace))
		return false
	}
}

func (d *Dispatcher[M]) work(q *fifo.Queue[*job[M]]) {
	defer d.wg.Done()
	for {
		j, ok := q.Pop()
		if !ok {
			return
		}
		d.process(j)
	}
}

func (d *Dispatcher[M]) stopping() bool { return d.ctx.Err() != nil }

// process runs the handler on j until it succeeds, fails for good, is
// given up on, or the dispatcher stops, and settles it accordingly.
func (d *Dispatcher[M]) process(j *job[M]) {
	if d.stopping() {
		d.settle(j, Released, nil)
		return
	}
	rcv := broker.Received{Message: d.b.Message(j.m)}
	failures := 0
	for try := 0; ; try++ {
		rcv.Attempt = d.b.Attempt(j.m, try)
		err, panicked := d.call(rcv)
		switch {
		case err == nil:
			d.settle(j, Acked, nil)
			return
		case broker.IsPermanent(err):
			d.settle(j, Terminated, err)
			return
		case d.stopping():
			d.settle(j, Released, err)
			return
		}
		if !errors.Is(err, broker.ErrUnavailable) {
			failures++
		}
		if d.poisonous(panicked, failures) {
			if d.poison(j, rcv, err) {
				d.b.Settle(j.m, Terminated, err)
				d.cfg.Tracker.done(j.tk, Terminated, true)
			} else {
				d.settle(j, Released, err)
			}
			return
		}
		wait := Backoff(try, d.cfg.RetryMin, d.cfg.RetryMax)
		d.log.Debug("handler failed, retrying in place", zap.String("subject", rcv.Subject), zap.String("id", rcv.ID),
			zap.Int("attempt", rcv.Attempt), zap.Duration("backoff", wait), zap.Error(err))
		j.tk.retrying(true)
		ok := Sleep(d.ctx, wait)
		j.tk.retrying(false)
		if !ok {
			d.settle(j, Released, err)
			return
		}
	}
}

// poisonous reports whether a failed message is given up on: with a
// Poison hook, at once after a panic, else after MaxAttempts failures.
func (d *Dispatcher[M]) poisonous(panicked bool, failures int) bool {
	s := d.cfg.Subscription
	if s.Poison == nil {
		return false
	}
	limit := s.MaxAttempts
	if limit <= 0 {
		limit = DefaultMaxAttempts
	}
	return panicked || failures >= limit
}

// poison passes a message given up on to Subscription.Poison until it
// stores it, retrying in place; false if the dispatcher stopped first.
func (d *Dispatcher[M]) poison(j *job[M], rcv broker.Received, cause error) bool {
	d.log.Warn("giving up on a message: handing it to the poison handler", zap.String("subject", rcv.Subject),
		zap.String("id", rcv.ID), zap.Int("attempt", rcv.Attempt), zap.Error(cause))
	for n := 0; ; n++ {
		err := d.callPoison(rcv, cause)
		if err == nil {
			return true
		}
		if d.stopping() {
			return false
		}
		wait := Backoff(n, d.cfg.RetryMin, d.cfg.RetryMax)
		d.log.Warn("poison handler failed, retrying in place", zap.String("id", rcv.ID),
			zap.Duration("backoff", wait), zap.Error(err))
		j.tk.retrying(true)
		ok := Sleep(d.ctx, wait)
		j.tk.retrying(false)
		if !ok {
			return false
		}
	}
}

func (d *Dispatcher[M]) callPoison(rcv broker.Received, cause error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			d.log.Error("poison handler panicked", zap.String("id", rcv.ID), zap.Any("panic", v),
				zap.ByteString("stack", debug.Stack()))
			err = fmt.Errorf("poison handler panicked: %v", v)
		}
	}()
	return d.cfg.Subscription.Poison(d.hctx, rcv, cause)
}

// call runs the handler, turning a panic into an error wrapping
// broker.ErrPanic.
func (d *Dispatcher[M]) call(rcv broker.Received) (err error, panicked bool) {
	defer func() {
		if v := recover(); v != nil {
			d.log.Error("handler panicked", zap.String("subject", rcv.Subject), zap.String("id", rcv.ID),
				zap.Int("attempt", rcv.Attempt), zap.Any("panic", v), zap.ByteString("stack", debug.Stack()))
			err, panicked = panicError(v), true
		}
	}()
	return d.cfg.Handler(d.hctx, rcv), false
}

// panicError is the error a recovered panic becomes: the value on one
// line, bounded.
func panicError(v any) error {
	s := strings.Join(strings.Fields(fmt.Sprint(v)), " ")
	if len(s) > maxCause {
		s = s[:maxCause]
	}
	return fmt.Errorf("%w: %s", broker.ErrPanic, s)
}

func (d *Dispatcher[M]) settle(j *job[M], o Outcome, cause error) {
	d.b.Settle(j.m, o, cause)
	d.cfg.Tracker.done(j.tk, o, false)
}

// Backoff is the pause after the n-th failure (from 0): lo doubling up to
// hi, jittered.
func Backoff(n int, lo, hi time.Duration) time.Duration {
	d := lo
	for range n {
		if d >= hi/2 {
			d = hi
			break
		}
		d *= 2
	}
	return Jitter(min(d, hi))
}

// Jitter takes up to half of d off at random, so that instances retrying
// the same failure spread out.
func Jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d - rand.N(d/2)
}

// Sleep waits d or until ctx is done, reporting whether d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
