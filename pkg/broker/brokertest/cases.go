package brokertest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wahook/wahook/pkg/broker"
)

var errTransient = errors.New("brokertest: transient failure")

// view is what a case compares of a received message: the published
// fields, the headers it set (a broker may add its own), and Attempt.
type view struct {
	Topic, Subject, Key, ID string
	Header                  map[string][]string
	Data                    string
	Attempt                 int
}

func viewOf(m broker.Message, attempt int, header func(string) []string) view {
	h := map[string][]string{}
	for _, k := range []string{"wahook-test-key", "wahook-test-seq"} {
		h[k] = header(k)
	}
	return view{Topic: m.Topic, Subject: m.Subject, Key: m.Key, ID: m.ID, Header: h, Data: string(m.Data), Attempt: attempt}
}

// testRoundTrip: everything published before and while subscribed is
// handled once, with its topic, subject, key, id, headers and data, at
// Attempt 1; Subscribe returns ctx's error once cancelled.
func testRoundTrip(t *testing.T, e *env) {
	keys := e.keys(3)
	before := e.publishRounds(t, keys, 0, 10)
	rec := newRecorder(e)
	run := e.subscribe(t, e.Subscriber, broker.Subscription{Topic: e.Topic, Group: e.group("roundtrip"), Concurrency: 4}, rec.handler(nil))
	rec.waitHandled(t, waitTimeout, ids(before)...)
	after := e.publishRounds(t, keys, 10, 20)
	all := append(before, after...)
	rec.waitHandled(t, waitTimeout, ids(all)...)
	time.Sleep(quiet)
	run.stopCancelled(t)

	checkOnce(t, rec.handled(), ids(all))
	want := map[string]view{}
	for _, m := range all {
		want[m.ID] = viewOf(m, 1, func(k string) []string { return m.Header[k] })
	}
	got := map[string]view{}
	for _, m := range rec.received() {
		got[m.ID] = viewOf(m.Message, m.Attempt, func(k string) []string { return m.Header[k] })
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("received messages mismatch (-published +received):\n%s", diff)
	}
}

// testKeyOrder: with Concurrency 8 and handlers of random duration, each
// key's messages are handled one at a time in publishing order, while
// different keys are handled concurrently, never more than 8 at once.
func testKeyOrder(t *testing.T, e *env) {
	const concurrency, perKey = 8, 20
	keys := e.keys(24)
	msgs := e.publishRounds(t, keys, 0, perKey)

	inflight := map[string]*atomic.Int32{}
	for _, k := range keys {
		inflight[k] = new(atomic.Int32)
	}
	var running, peak atomic.Int32
	var overlapMu sync.Mutex
	overlaps := map[string]bool{}
	rec := newRecorder(e)
	run := e.subscribe(t, e.Subscriber, broker.Subscription{Topic: e.Topic, Group: e.group("order"), Concurrency: concurrency},
		rec.handler(func(ctx context.Context, m broker.Received) error {
			if inflight[m.Key].Add(1) > 1 {
				overlapMu.Lock()
				overlaps[m.Key] = true
				overlapMu.Unlock()
			}
			defer inflight[m.Key].Add(-1)
			n := running.Add(1)
			defer running.Add(-1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
			return nil
		}))
	rec.waitHandled(t, waitTimeout, ids(msgs)...)
	time.Sleep(quiet)
	run.stopCancelled(t)

	checkOnce(t, rec.handled(), ids(msgs))
	checkOrder(t, rec.events(), keys, perKey)
	if len(overlaps) > 0 {
		t.Errorf("keys handled concurrently with themselves: %v", overlaps)
	}
	if p := peak.Load(); p > concurrency || p < 2 {
		t.Errorf("at most %d handlers ran at once, want 2 to %d", p, concurrency)
	}
}

// testRetryInPlace: a message whose handler fails is retried in place with
// Attempt 1, 2, 3, and the next message of its key waits for it; other
// keys are not affected.
func testRetryInPlace(t *testing.T, e *env) {
	k := e.keys(2)
	a0, a1, b0 := e.msg(k[0], 0), e.msg(k[0], 1), e.msg(k[1], 0)
	e.publish(t, a0, a1, b0)
	rec := newRecorder(e)
	run := e.subscribe(t, e.Subscriber, broker.Subscription{Topic: e.Topic, Group: e.group("retry"), Concurrency: 4},
		rec.handler(func(ctx context.Context, m broker.Received) error {
			if m.ID == a0.ID && m.Attempt < 3 {
				return errTransient
			}
			return nil
		}))
	rec.waitHandled(t, waitTimeout, a0.ID, a1.ID, b0.ID)
	time.Sleep(quiet)
	run.stopCancelled(t)

	evs := rec.events()
	want := []event{
		{ID: a0.ID, Key: k[0], Seq: 0, Attempt: 1, Result: "error"},
		{ID: a0.ID, Key: k[0], Seq: 0, Attempt: 2, Result: "error"},
		{ID: a0.ID, Key: k[0], Seq: 0, Attempt: 3, Result: "ok"},
		{ID: a1.ID, Key: k[0], Seq: 1, Attempt: 1, Result: "ok"},
	}
	if diff := cmp.Diff(want, byKey(evs, k[0])); diff != "" {
		t.Errorf("handler calls of key %s mismatch (-want +got):\n%s", k[0], diff)
	}
	wantB := []event{{ID: b0.ID, Key: k[1], Seq: 0, Attempt: 1, Result: "ok"}}
	if diff := cmp.Diff(wantB, byKey(evs, k[1])); diff != "" {
		t.Errorf("handler calls of key %s mismatch (-want +got):\n%s", k[1], diff)
	}
}

// testPermanent: a message failing with a Permanent error is handled once
// and never redelivered, not even to a later subscription of its group;
// the next message of its key goes on.
func testPermanent(t *testing.T, e *env) {
	k := e.keys(2)
	poison, next, other := e.msg(k[0], 0), e.msg(k[0], 1), e.msg(k[1], 0)
	e.publish(t, poison, next, other)
	group := e.group("permanent")
	rec := newRecorder(e)
	run := e.subscribe(t, e.Subscriber, broker.Subscription{Topic: e.Topic, Group: group, Concurrency: 2},
		rec.handler(func(ctx context.Context, m broker.Received) error {
			if m.ID == poison.ID {
				return broker.Permanent(errors.New("poison"))
			}
			return nil
		}))
	rec.waitHandled(t, waitTimeout, next.ID, other.ID)
	time.Sleep(quiet)
	run.stopCancelled(t)
	want := []event{
		{ID: poison.ID, Key: k[0], Seq: 0, Attempt: 1, Result: "permanent"},
		{ID: next.ID, Key: k[0], Seq: 1, Attempt: 1, Result: "ok"},
	}
	if diff := cmp.Diff(want, byKey(rec.events(), k[0])); diff != "" {
		t.Errorf("handler calls of key %s mismatch (-want +got):\n%s", k[0], diff)
	}

	e.checkPosition(t, group, e.msg(k[1], 1), "")
}

// checkPosition publishes sentinel and fails t unless the next subscription
// of group handles it and nothing else: everything before it was settled.
func (e *env) checkPosition(t *testing.T, group string, sentinel broker.Message, why string) {
	t.Helper()
	e.publish(t, sentinel)
	rec := newRecorder(e)
	run := e.subscribe(t, e.Subscriber, broker.Subscription{Topic: e.Topic, Group: group, Concurrency: 2}, rec.handler(nil))
	rec.waitHandled(t, waitTimeout, sentinel.ID)
	time.Sleep(quiet)
	run.stopCancelled(t)
	checkOnce(t, rec.handled(), []string{sentinel.ID})
	if evs := rec.events(); len(evs) != 1 {
		t.Errorf("next subscription handled %+v, want only the sentinel%s", evs, why)
	}
}

// testPanic: without a Poison hook, a handler that panics is retried
// like a failure, and
// Subscribe goes on.
func testPanic(t *testing.T, e *env) {
	k := e.keys(1)[0]
	m0, m1 := e.msg(k, 0), e.msg(k, 1)
	e.publish(t, m0, m1)
	rec := newRecorder(e)
	run := e.subscribe(t, e.Subscriber, broker.Subscription{Topic: e.Topic, Group: e.group("panic")},
		rec.handler(func(ctx context.Context, m broker.Received) error {
			if m.ID == m0.ID && m.Attempt == 1 {
				panic("brokertest: handler panic")
			}
			return nil
		}))
	rec.waitHandled(t, waitTimeout, m0.ID, m1.ID)
	run.stopCancelled(t)
	want := []event{
		{ID: m0.ID, Key: k, Seq: 0, Attempt: 1, Result: "panic"},
		{ID: m0.ID, Key: k, Seq: 0, Attempt: 2, Result: "ok"},
		{ID: m1.ID, Key: k, Seq: 1, Attempt: 1, Result: "ok"},
	}
	if diff := cmp.Diff(want, rec.events()); diff != "" {
		t.Errorf("handler calls mismatch (-want +got):\n%s", diff)
	}
}

// testResume: a group subscribed again resumes after the messages it
// acknowledged: only the messages published since are handled.
func testResume(t *testing.T, e *env) {
	keys := e.keys(2)
	group := e.group("resume")
	first := e.publishRounds(t, keys, 0, 5)
	rec := newRecorder(e)
	run := e.subscribe(t, e.Subscriber, broker.Subscription{Topic: e.Topic, Group: group, Concurrency: 2}, rec.handler(nil))
	rec.waitHandled(t, waitTimeout, ids(first)...)
	run.stopCancelled(t)

	second := e.publishRounds(t, keys, 5, 10)
	rec2 := newRecorder(e)
	run2 := e.subscribe(t, e.Subscriber, broker.Subscription{Topic: e.Topic, Group: group, Concurrency: 2}, rec2.handler(nil))
	rec2.waitHandled(t, waitTimeout, ids(second)...)
	time.Sleep(quiet)
	run2.stopCancelled(t)
	checkOnce(t, rec.handled(), ids(first))
	checkOnce(t, rec2.handled(), ids(second))
}

// testPartitions: two instances of a group, partitions 0 and 1 of 2,
// handle every message once together; each key only in the partition
// broker.PartitionOf names, in order.
func testPartitions(t *testing.T, e *env) {
	const perKey = 8
	keys := e.keys(30)
	msgs := e.publishRounds(t, keys, 0, perKey)
	group := e.group("partitions")
	recs := []*recorder{newRecorder(e), newRecorder(e)}
	var runs []*running
	for i, rec := range recs {
		runs = append(runs, e.subscribe(t, e.Subscriber, broker.Subscription{
			Topic: e.Topic, Group: group, Concurrency: 4, Partition: i, Partitions: 2,
		}, rec.handler(nil)))
	}
	waitFor(t, waitTimeout, "every message handled by one of the partitions", func() bool {
		h0, h1 := recs[0].handled(), recs[1].handled()
		for _, m := range msgs {
			if h0[m.ID]+h1[m.ID] == 0 {
				return false
			}
		}
		return true
	})
	time.Sleep(quiet)
	for _, r := range runs {
		r.stopCancelled(t)
	}

	total := map[string]int{}
	for part, rec := range recs {
		var mine []string
		for id, n := range rec.handled() {
			total[id] += n
		}
		for _, ev := range rec.events() {
			if want := broker.PartitionOf(ev.Key, 2); want != part {
				t.Errorf("partition %d handled %s of key %s, which belongs to partition %d", part, ev.ID, ev.Key, want)
			}
		}
		for _, k := range keys {
			if broker.PartitionOf(k, 2) == part {
				mine = append(mine, k)
			}
		}
		if len(mine) == 0 {
			t.Fatalf("no key of the 30 belongs to partition %d", part)
		}
		checkOrder(t, rec.events(), mine, perKey)
	}
	checkOnce(t, total, ids(msgs))
}

// testSkip: messages Skip reports by their headers are never handed to the
// handler, even behind a message of their key being retried, and are
// acknowledged: a later subscription of the group does not get them. The
// others are handled once each, in order per key.
func testSkip(t *testing.T, e *env) {
	keys := e.keys(3)
	msgs := e.publishRounds(t, keys, 0, 6)
	var want []broker.Message
	for _, m := range msgs {
		if seqOf(broker.Received{Message: m})%2 == 0 {
			want = append(want, m)
		}
	}
	odd := func(h broker.Header) bool {
		n, err := strconv.Atoi(h.Get("wahook-test-seq"))
		return err == nil && n%2 == 1
	}
	group := e.group("skip")
	rec := newRecorder(e)
	run := e.subscribe(t, e.Subscriber, broker.Subscription{Topic: e.Topic, Group: group, Concurrency: 2, Skip: odd},
		rec.handler(func(ctx context.Context, m broker.Received) error {
			if m.Key == keys[0] && seqOf(m) == 0 && m.Attempt < 3 {
				return errTransient
			}
			return nil
		}))
	rec.waitHandled(t, waitTimeout, ids(want)...)
	time.Sleep(quiet)
	run.stopCancelled(t)
	checkOnce(t, rec.handled(), ids(want))
	for _, k := range keys {
		var seqs []int
		for _, ev := range byKey(rec.events(), k) {
			if ev.Result == "ok" {
				seqs = append(seqs, ev.Seq)
			}
		}
		if !slices.Equal(seqs, []int{0, 2, 4}) {
			t.Errorf("key %s handled in order %v, want [0 2 4]", k, seqs)
		}
	}

	e.checkPosition(t, group, e.msg(keys[1], 6), ": skipped messages were not acknowledged")
}

// testStartTime: a new group with a StartTime skips the messages stored
// before it; a new group without one starts at the beginning; an existing
// group resumes where it was whatever StartTime it is given.
func testStartTime(t *testing.T, e *env) {
	k := e.keys(1)[0]
	var old, recent []broker.Message
	for i := range 5 {
		old = append(old, e.msg(k, i))
		recent = append(recent, e.msg(k, 5+i))
	}
	e.publish(t, old...)
	// Margins on both sides of start: the broker stamps messages with its
	// own clock (the same machine's).
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	time.Sleep(100 * time.Millisecond)
	e.publish(t, recent...)

	late := e.group("late")
	rec := newRecorder(e)
	run := e.subscribe(t, e.Subscriber, broker.Subscription{Topic: e.Topic, Group: late, StartTime: start}, rec.handler(nil))
	rec.waitHandled(t, waitTimeout, ids(recent)...)
	time.Sleep(quiet)
	run.stopCancelled(t)
	checkOnce(t, rec.handled(), ids(recent))

	rec2 := newRecorder(e)
	run2 := e.subscribe(t, e.Subscriber, broker.Subscription{Topic: e.Topic, Group: e.group("all")}, rec2.handler(nil))
	all := append(append([]broker.Message(nil), old...), recent...)
	rec2.waitHandled(t, waitTimeout, ids(all)...)
	time.Sleep(quiet)
	run2.stopCancelled(t)
	checkOnce(t, rec2.handled(), ids(all))
	checkOrder(t, rec2.events(), []string{k}, len(all))

	// The existing group resumes: a StartTime in the future changes nothing.
	last := e.msg(k, 10)
	e.publish(t, last)
	rec3 := newRecorder(e)
	run3 := e.subscribe(t, e.Subscriber, broker.Subscription{Topic: e.Topic, Group: late, StartTime: time.Now().Add(time.Hour)}, rec3.handler(nil))
	rec3.waitHandled(t, waitTimeout, last.ID)
	time.Sleep(quiet)
	run3.stopCancelled(t)
	checkOnce(t, rec3.handled(), []string{last.ID})
}

// testShutdownWaits: once ctx is cancelled, Subscribe waits for the
// handler in flight, whose ctx stays usable so it can finish (publish its
// results); it then returns, the message is acknowledged, and the
// messages not started go to the group's next subscription, in order.
func testShutdownWaits(t *testing.T, e *env) {
	k := e.keys(1)[0]
	m0, m1, m2 := e.msg(k, 0), e.msg(k, 1), e.msg(k, 2)
	e.publish(t, m0, m1, m2)
	group := e.group("shutdown")
	started, release := make(chan struct{}), make(chan struct{})
	var handlerCtxErr atomic.Value
	rec := newRecorder(e)
	run := e.subscribe(t, e.Subscriber, broker.Subscription{Topic: e.Topic, Group: group, Concurrency: 2},
		rec.handler(func(ctx context.Context, m broker.Received) error {
			if m.ID == m0.ID {
				close(started)
				<-release
				handlerCtxErr.Store(fmtErr(ctx.Err()))
			}
			return nil
		}))
	select {
	case <-started:
	case <-time.After(waitTimeout):
		t.Fatalf("handler not called within %s", waitTimeout)
	}
	run.cancel()
	time.Sleep(stillRunning)
	if run.returned() {
		t.Errorf("Subscribe returned while its handler was still running")
	}
	close(release)
	if err := run.wait(t, returnTimeout); !errors.Is(err, context.Canceled) {
		t.Errorf("Subscribe after its ctx was cancelled = %v, want context.Canceled", err)
	}
	if got := handlerCtxErr.Load(); got != "<nil>" {
		t.Errorf("handler's ctx after Subscribe's was cancelled: %v, want not cancelled", got)
	}
	checkOnce(t, rec.handled(), []string{m0.ID})

	rec2 := newRecorder(e)
	run2 := e.subscribe(t, e.Subscriber, broker.Subscription{Topic: e.Topic, Group: group, Concurrency: 2}, rec2.handler(nil))
	rec2.waitHandled(t, waitTimeout, m1.ID, m2.ID)
	time.Sleep(quiet)
	run2.stopCancelled(t)
	checkOnce(t, rec2.handled(), []string{m1.ID, m2.ID})
	var seqs []int
	for _, ev := range rec2.events() {
		seqs = append(seqs, ev.Seq)
	}
	if diff := cmp.Diff([]int{1, 2}, seqs); diff != "" {
		t.Errorf("next subscription's order mismatch (-want +got):\n%s\nfirst: %+v\nnext: %+v", diff, rec.events(), rec2.events())
	}
}

func fmtErr(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// testShutdownHandsBack: a handler that fails while Subscribe is shutting
// down is not retried; its message is not acknowledged and goes, before
// the later messages of its key, to the group's next subscription.
func testShutdownHandsBack(t *testing.T, e *env) {
	k := e.keys(1)[0]
	m0, m1 := e.msg(k, 0), e.msg(k, 1)
	e.publish(t, m0, m1)
	group := e.group("handback")
	started, release := make(chan struct{}), make(chan struct{})
	rec := newRecorder(e)
	run := e.subscribe(t, e.Subscriber, broker.Subscription{Topic: e.Topic, Group: group},
		rec.handler(func(ctx context.Context, m broker.Received) error {
			if m.ID == m0.ID {
				close(started)
				<-release
				return errTransient
			}
			return nil
		}))
	select {
	case <-started:
	case <-time.After(waitTimeout):
		t.Fatalf("handler not called within %s", waitTimeout)
	}
	run.cancel()
	close(release)
	if err := run.wait(t, returnTimeout); !errors.Is(err, context.Canceled) {
		t.Errorf("Subscribe after its ctx was cancelled = %v, want context.Canceled", err)
	}
	wantFirst := []event{{ID: m0.ID, Key: k, Seq: 0, Attempt: 1, Result: "error"}}
	if diff := cmp.Diff(wantFirst, rec.events()); diff != "" {
		t.Errorf("first subscription's handler calls mismatch (-want +got):\n%s", diff)
	}

	rec2 := newRecorder(e)
	run2 := e.subscribe(t, e.Subscriber, broker.Subscription{Topic: e.Topic, Group: group}, rec2.handler(nil))
	rec2.waitHandled(t, waitTimeout+e.Redelivery, m0.ID, m1.ID)
	time.Sleep(quiet)
	run2.stopCancelled(t)
	evs := rec2.events()
	if len(evs) != 2 || evs[0].ID != m0.ID || evs[1].ID != m1.ID || evs[0].Attempt < 2 {
		t.Errorf("next subscription's handler calls = %+v, want %s (Attempt 2 or more) then %s", evs, m0.ID, m1.ID)
	}
}

// testCrash: the messages an instance held when it died, unacknowledged,
// reach another instance of its group within Redelivery, in stream order:
// the one it was handling first, then the later ones of its key, also
// those published after the crash.
func testCrash(t *testing.T, e *env) {
	k := e.keys(1)[0]
	m0, m1, m2 := e.msg(k, 0), e.msg(k, 1), e.msg(k, 2)
	e.publish(t, m0, m1)
	group := e.group("crash")

	sub, kill := e.Crash(t)
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	rec := newRecorder(e)
	e.subscribe(t, sub, broker.Subscription{Topic: e.Topic, Group: group},
		rec.handler(func(ctx context.Context, m broker.Received) error {
			once.Do(func() { close(started) })
			<-release
			return nil
		}))
	// Registered after subscribe's cleanup, so it runs first: the dead
	// instance's handler returns and its Subscribe can end.
	t.Cleanup(func() { close(release) })
	select {
	case <-started:
	case <-time.After(waitTimeout):
		t.Fatalf("handler not called within %s", waitTimeout)
	}
	kill()

	rec2 := newRecorder(e)
	run2 := e.subscribe(t, e.Subscriber, broker.Subscription{Topic: e.Topic, Group: group, Concurrency: 4}, rec2.handler(nil))
	e.publish(t, m2)
	rec2.waitHandled(t, e.Redelivery+waitTimeout, m0.ID, m1.ID, m2.ID)
	time.Sleep(quiet)
	run2.stopCancelled(t)
	checkOnce(t, rec2.handled(), []string{m0.ID, m1.ID, m2.ID})
	checkOrder(t, rec2.events(), []string{k}, 3)
	if got := rec.events(); len(got) != 1 || got[0].ID != m0.ID {
		t.Errorf("dead instance's handler calls = %+v, want only %s", got, m0.ID)
	}
}

// testInvalid: a subscription that cannot be served fails at once.
func testInvalid(t *testing.T, e *env) {
	for name, s := range map[string]broker.Subscription{
		"empty group":            {Topic: e.Topic},
		"partition out of range": {Topic: e.Topic, Group: e.group("invalid"), Partition: 2, Partitions: 2},
		"negative partition":     {Topic: e.Topic, Group: e.group("invalid"), Partition: -1, Partitions: 2},
		"negative concurrency":   {Topic: e.Topic, Group: e.group("invalid"), Concurrency: -1},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), returnTimeout)
			defer cancel()
			err := e.Subscriber.Subscribe(ctx, s, func(context.Context, broker.Received) error { return nil })
			if err == nil || ctx.Err() != nil {
				t.Errorf("Subscribe(%+v) = %v, want an error at once", s, err)
			}
		})
	}
}

// poisonLog records the calls of a Subscription.Poison hook.
type poisonLog struct {
	mu    sync.Mutex
	calls []poisonCall
	// fail, when set, makes the first calls fail: how many.
	fail int
}

type poisonCall struct {
	ID      string
	Attempt int
	Cause   error
}

func (p *poisonLog) hook(e *env) func(ctx context.Context, m broker.Received, cause error) error {
	return func(ctx context.Context, m broker.Received, cause error) error {
		if !e.mine(m) {
			return nil
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		p.calls = append(p.calls, poisonCall{ID: m.ID, Attempt: m.Attempt, Cause: cause})
		if len(p.calls) <= p.fail {
			return fmt.Errorf("brokertest: dead letter not stored: %w", broker.ErrUnavailable)
		}
		return nil
	}
}

func (p *poisonLog) all() []poisonCall {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]poisonCall(nil), p.calls...)
}

// checkNotRedelivered subscribes the group again after a sentinel and
// checks that only the sentinel comes: what the first subscription settled
// (poisoned messages included) is never delivered again.
func checkNotRedelivered(t *testing.T, e *env, group, key string, seq int) {
	t.Helper()
	sentinel := e.msg(key, seq)
	e.publish(t, sentinel)
	rec := newRecorder(e)
	run := e.subscribe(t, e.Subscriber, broker.Subscription{Topic: e.Topic, Group: group, Concurrency: 2}, rec.handler(nil))
	rec.waitHandled(t, waitTimeout, sentinel.ID)
	time.Sleep(quiet)
	run.stopCancelled(t)
	if evs := rec.events(); len(evs) != 1 || evs[0].ID != sentinel.ID {
		t.Errorf("next subscription handled %+v, want only the sentinel %s", evs, sentinel.ID)
	}
}

// testPoisonPanic: with a Poison hook, a message whose handler panics is
// not retried: Poison gets it once with a cause wrapping broker.ErrPanic,
// it is never delivered again, and the later messages of its key and of
// other keys are handled, in order.
func testPoisonPanic(t *testing.T, e *env) {
	k := e.keys(2)
	a0, a1, a2, b0 := e.msg(k[0], 0), e.msg(k[0], 1), e.msg(k[0], 2), e.msg(k[1], 0)
	e.publish(t, a0, a1, a2, b0)
	group := e.group("poison-panic")
	var pl poisonLog
	var progress broker.Progress
	rec := newRecorder(e)
	run := e.subscribe(t, e.Subscriber, broker.Subscription{Topic: e.Topic, Group: group, Concurrency: 4,
		Poison: pl.hook(e), Progress: &progress},
		rec.handler(func(ctx context.Context, m broker.Received) error {
			if m.ID == a1.ID {
				panic("brokertest: deterministic panic")
			}
			return nil
		}))
	rec.waitHandled(t, waitTimeout, a0.ID, a2.ID, b0.ID)
	time.Sleep(quiet)
	stats := progress.Stats()
	run.stopCancelled(t)

	want := []event{
		{ID: a0.ID, Key: k[0], Seq: 0, Attempt: 1, Result: "ok"},
		{ID: a1.ID, Key: k[0], Seq: 1, Attempt: 1, Result: "panic"},
		{ID: a2.ID, Key: k[0], Seq: 2, Attempt: 1, Result: "ok"},
	}
	if diff := cmp.Diff(want, byKey(rec.events(), k[0])); diff != "" {
		t.Errorf("handler calls of key %s mismatch (-want +got):\n%s", k[0], diff)
	}
	calls := pl.all()
	if len(calls) != 1 || calls[0].ID != a1.ID || calls[0].Attempt != 1 || !errors.Is(calls[0].Cause, broker.ErrPanic) ||
		!strings.Contains(calls[0].Cause.Error(), "deterministic panic") {
		t.Errorf("Poison calls = %+v, want one for %s at Attempt 1 with the panic as cause", calls, a1.ID)
	}
	if stats.Poisoned != 1 || stats.Pending != 0 || stats.Retrying != 0 {
		t.Errorf("progress = %+v, want 1 poisoned, nothing pending", stats)
	}
	checkNotRedelivered(t, e, group, k[1], 1)
}

// testPoisonAfterAttempts: a message whose handler always fails with a
// plain error is tried MaxAttempts times, in place, then given to Poison
// once with the last error; the key's later messages wait for it, then go
// on.
func testPoisonAfterAttempts(t *testing.T, e *env) {
	k := e.keys(2)
	a0, a1, b0 := e.msg(k[0], 0), e.msg(k[0], 1), e.msg(k[1], 0)
	e.publish(t, a0, a1, b0)
	group := e.group("poison-attempts")
	var pl poisonLog
	var progress broker.Progress
	rec := newRecorder(e)
	run := e.subscribe(t, e.Subscriber, broker.Subscription{Topic: e.Topic, Group: group, Concurrency: 4,
		MaxAttempts: 3, Poison: pl.hook(e), Progress: &progress},
		rec.handler(func(ctx context.Context, m broker.Received) error {
			if m.ID == a0.ID {
				return errors.New("brokertest: bad input")
			}
			return nil
		}))
	rec.waitHandled(t, waitTimeout, a1.ID, b0.ID)
	time.Sleep(quiet)
	stats := progress.Stats()
	run.stopCancelled(t)

	want := []event{
		{ID: a0.ID, Key: k[0], Seq: 0, Attempt: 1, Result: "error"},
		{ID: a0.ID, Key: k[0], Seq: 0, Attempt: 2, Result: "error"},
		{ID: a0.ID, Key: k[0], Seq: 0, Attempt: 3, Result: "error"},
		{ID: a1.ID, Key: k[0], Seq: 1, Attempt: 1, Result: "ok"},
	}
	if diff := cmp.Diff(want, byKey(rec.events(), k[0])); diff != "" {
		t.Errorf("handler calls of key %s mismatch (-want +got):\n%s", k[0], diff)
	}
	calls := pl.all()
	if len(calls) != 1 || calls[0].ID != a0.ID || calls[0].Attempt != 3 || calls[0].Cause == nil ||
		calls[0].Cause.Error() != "brokertest: bad input" {
		t.Errorf("Poison calls = %+v, want one for %s at Attempt 3 with the handler's error", calls, a0.ID)
	}
	if stats.Poisoned != 1 || stats.Handled < 2 || stats.Pending != 0 {
		t.Errorf("progress = %+v, want 1 poisoned, 2 handled, nothing pending", stats)
	}
	checkNotRedelivered(t, e, group, k[1], 1)
}

// testUnavailableNotPoisoned: failures wrapping broker.ErrUnavailable are
// retried in place past MaxAttempts and never given to Poison; the key's
// later messages wait, in order.
func testUnavailableNotPoisoned(t *testing.T, e *env) {
	k := e.keys(1)[0]
	m0, m1 := e.msg(k, 0), e.msg(k, 1)
	e.publish(t, m0, m1)
	var pl poisonLog
	rec := newRecorder(e)
	run := e.subscribe(t, e.Subscriber, broker.Subscription{Topic: e.Topic, Group: e.group("unavailable"),
		MaxAttempts: 2, Poison: pl.hook(e)},
		rec.handler(func(ctx context.Context, m broker.Received) error {
			if m.ID == m0.ID && m.Attempt <= 4 {
				return fmt.Errorf("brokertest: store down: %w", broker.ErrUnavailable)
			}
			return nil
		}))
	rec.waitHandled(t, waitTimeout, m0.ID, m1.ID)
	time.Sleep(quiet)
	run.stopCancelled(t)
	var got []int
	for _, ev := range rec.events() {
		if ev.ID == m0.ID {
			got = append(got, ev.Attempt)
		}
	}
	if diff := cmp.Diff([]int{1, 2, 3, 4, 5}, got); diff != "" {
		t.Errorf("attempts of %s mismatch (-want +got):\n%s", m0.ID, diff)
	}
	checkOrder(t, rec.events(), []string{k}, 2)
	if calls := pl.all(); len(calls) != 0 {
		t.Errorf("Poison calls = %+v, want none", calls)
	}
}

// testPoisonRetried: a Poison hook that fails is retried in place, the
// handler not called again, and the key's later messages wait until it
// succeeds.
func testPoisonRetried(t *testing.T, e *env) {
	k := e.keys(1)[0]
	m0, m1 := e.msg(k, 0), e.msg(k, 1)
	e.publish(t, m0, m1)
	pl := poisonLog{fail: 2}
	rec := newRecorder(e)
	var m1Started atomic.Int32
	run := e.subscribe(t, e.Subscriber, broker.Subscription{Topic: e.Topic, Group: e.group("poison-retry"),
		Poison: func(ctx context.Context, m broker.Received, cause error) error {
			if m1Started.Load() != 0 {
				t.Errorf("Poison of %s called after the next message of its key started", m.ID)
			}
			return pl.hook(e)(ctx, m, cause)
		}},
		rec.handler(func(ctx context.Context, m broker.Received) error {
			if m.ID == m0.ID {
				panic("brokertest: poison")
			}
			m1Started.Add(1)
			return nil
		}))
	rec.waitHandled(t, waitTimeout, m1.ID)
	time.Sleep(quiet)
	run.stopCancelled(t)
	want := []event{
		{ID: m0.ID, Key: k, Seq: 0, Attempt: 1, Result: "panic"},
		{ID: m1.ID, Key: k, Seq: 1, Attempt: 1, Result: "ok"},
	}
	if diff := cmp.Diff(want, rec.events()); diff != "" {
		t.Errorf("handler calls mismatch (-want +got):\n%s", diff)
	}
	if calls := pl.all(); len(calls) != 3 {
		t.Errorf("Poison called %d times (%+v), want 3: two failures, then stored", len(calls), calls)
	}
}
