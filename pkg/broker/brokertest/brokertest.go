// Package brokertest is the conformance suite of wahook's brokers. Every
// implementation of broker.Publisher and broker.Subscriber runs Run in its
// own tests, against a real server started by the test, so that the
// consumers built on package broker behave the same on each backbone:
// what is delivered, how often, in which order, what a handler's result
// does, and what happens at shutdown and after a crash.
//
// The suite only uses package broker: no client type appears here. Each
// case gets a fresh Pair and its own keys, ids and groups, so a Pair may
// also share one server between cases.
package brokertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/broker"
)

// Pair is one implementation under test.
type Pair struct {
	// Publisher stores the messages the cases consume.
	Publisher broker.Publisher
	// Subscriber consumes them. Cases call Subscribe on it several times,
	// one after another and at once (two partitions).
	Subscriber broker.Subscriber
	// Topic is the topic every case publishes to and subscribes on, e.g.
	// "wahook.ingress".
	Topic string
	// Subject is the subject of message i of key: Topic followed by
	// routing tokens on NATS; a broker that routes by topic alone may
	// return Topic. A message is received with the subject it was
	// published with.
	Subject func(key string, i int) string
	// Crash starts another instance of the subscriber, with a connection of
	// its own, and returns it with a function that kills that connection
	// the way a crashing process would: nothing acknowledged, nothing handed
	// back, nothing cleaned up.
	Crash func(t *testing.T) (sub broker.Subscriber, kill func())
	// Redelivery is the longest a killed instance's unacknowledged messages
	// take to reach another instance of its group (NATS: the AckWait the
	// pair was configured with; Kafka: the session timeout).
	Redelivery time.Duration
}

// Bounds of the suite. They are generous: other tests load the machine.
const (
	// waitTimeout bounds waiting for an expected delivery.
	waitTimeout = 30 * time.Second
	// quiet is how long a case keeps consuming after the expected
	// messages arrived, to catch extra deliveries.
	quiet = 500 * time.Millisecond
	// returnTimeout bounds how long Subscribe may take to return once its
	// ctx is cancelled and its handlers are idle.
	returnTimeout = 15 * time.Second
	// stillRunning is how long Subscribe must keep waiting for a handler
	// in flight after its ctx is cancelled.
	stillRunning = 300 * time.Millisecond
)

// Run runs every case, each on a Pair from newPair.
func Run(t *testing.T, newPair func(t *testing.T) Pair) {
	for _, c := range []struct {
		name string
		run  func(t *testing.T, e *env)
	}{
		{"RoundTrip", testRoundTrip},
		{"KeyOrder", testKeyOrder},
		{"RetryInPlace", testRetryInPlace},
		{"Permanent", testPermanent},
		{"PanicIsRetried", testPanic},
		{"PoisonPanic", testPoisonPanic},
		{"PoisonAfterAttempts", testPoisonAfterAttempts},
		{"UnavailableNotPoisoned", testUnavailableNotPoisoned},
		{"PoisonRetried", testPoisonRetried},
		{"Resume", testResume},
		{"Partitions", testPartitions},
		{"Skip", testSkip},
		{"StartTime", testStartTime},
		{"ShutdownWaitsForHandler", testShutdownWaits},
		{"ShutdownHandsBackFailed", testShutdownHandsBack},
		{"RedeliveryAfterCrash", testCrash},
		{"InvalidSubscription", testInvalid},
		{"Refused", testRefused},
		{"MessageLimit", testMessageLimit},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := newPair(t)
			if p.Publisher == nil || p.Subscriber == nil || p.Topic == "" || p.Subject == nil || p.Crash == nil || p.Redelivery <= 0 {
				t.Fatalf("brokertest: incomplete Pair %+v", p)
			}
			c.run(t, newEnv(t, p))
		})
	}
}

// env is one case's Pair with the names that keep it apart from other
// cases: ids, keys and groups carry a random token.
type env struct {
	Pair
	token string
}

func newEnv(t *testing.T, p Pair) *env {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("rand.Read: %v", err)
	}
	return &env{Pair: p, token: "t" + hex.EncodeToString(b[:])}
}

// keys returns n keys unique to the case.
func (e *env) keys(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%sk%02d", e.token, i)
	}
	return out
}

func (e *env) group(name string) string { return "brokertest-" + name + "-" + e.token }

// msg is message i of key.
func (e *env) msg(key string, i int) broker.Message {
	return broker.Message{
		Topic:   e.Topic,
		Subject: e.Subject(key, i),
		Key:     key,
		ID:      fmt.Sprintf("%s-%d", key, i),
		Header: broker.Header{
			"wahook-test-key": {key},
			"wahook-test-seq": {strconv.Itoa(i)},
		},
		Data: fmt.Appendf(nil, `{"key":%q,"seq":%d}`, key, i),
	}
}

// publish stores msgs in order: one Publish call per message, since
// messages of one call may be stored in any order.
func (e *env) publish(t *testing.T, msgs ...broker.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for _, m := range msgs {
		if err := e.Publisher.Publish(ctx, m); err != nil {
			t.Fatalf("Publish(%s): %v", m.ID, err)
		}
	}
}

// publishRounds publishes message i of every key for i in [from, to), a
// round at a time: one Publish call per round, so that rounds keep their
// order while a round's messages may be stored concurrently.
func (e *env) publishRounds(t *testing.T, keys []string, from, to int) []broker.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	var all []broker.Message
	for i := from; i < to; i++ {
		round := make([]broker.Message, 0, len(keys))
		for _, k := range keys {
			round = append(round, e.msg(k, i))
		}
		if err := e.Publisher.Publish(ctx, round...); err != nil {
			t.Fatalf("Publish(round %d, %d msgs): %v", i, len(round), err)
		}
		all = append(all, round...)
	}
	return all
}

// mine reports whether m was published by this case.
func (e *env) mine(m broker.Received) bool { return strings.HasPrefix(m.Key, e.token) }

// running is a Subscribe call in progress.
type running struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// subscribe starts Subscribe on sub; the case's end stops it.
func (e *env) subscribe(t *testing.T, sub broker.Subscriber, s broker.Subscription, h broker.Handler) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = sub.Subscribe(ctx, s, h)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(waitTimeout):
			t.Errorf("Subscribe(group %s) still running %s after the case ended", s.Group, waitTimeout)
		}
	})
	return r
}

// stop cancels the subscription and returns Subscribe's error, failing the
// case if Subscribe does not return within returnTimeout.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	return r.wait(t, returnTimeout)
}

func (r *running) wait(t *testing.T, d time.Duration) error {
	t.Helper()
	select {
	case <-r.done:
		return r.err
	case <-time.After(d):
		t.Fatalf("Subscribe did not return within %s of its ctx being cancelled", d)
		return nil
	}
}

// returned reports whether Subscribe has returned.
func (r *running) returned() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// stopCancelled stops r and checks Subscribe returned ctx's error.
func (r *running) stopCancelled(t *testing.T) {
	t.Helper()
	if err := r.stop(t); !errors.Is(err, context.Canceled) {
		t.Errorf("Subscribe after its ctx was cancelled = %v, want context.Canceled", err)
	}
}

// event is one handler call: the message it got and what it returned.
type event struct {
	ID      string
	Key     string
	Seq     int
	Attempt int
	Result  string // "ok", "error", "permanent", "panic"
}

// recorder collects the handler calls of this case's messages in the order
// they began (for one key, the order they ran).
type recorder struct {
	e  *env
	mu sync.Mutex
	ev []event
	rx []broker.Received
}

func newRecorder(e *env) *recorder { return &recorder{e: e} }

func seqOf(m broker.Received) int {
	n, err := strconv.Atoi(m.Header.Get("wahook-test-seq"))
	if err != nil {
		return -1
	}
	return n
}

// handler records every call of this case's messages and returns what do
// says (nil do: success); other messages are acknowledged unrecorded.
func (r *recorder) handler(do func(ctx context.Context, m broker.Received) error) broker.Handler {
	return func(ctx context.Context, m broker.Received) error {
		if !r.e.mine(m) {
			return nil
		}
		i := r.begin(m)
		var err error
		result := "panic"
		defer func() { r.end(i, result) }()
		if do != nil {
			err = do(ctx, m)
		}
		switch {
		case err == nil:
			result = "ok"
		case broker.IsPermanent(err):
			result = "permanent"
		default:
			result = "error"
		}
		return err
	}
}

func (r *recorder) begin(m broker.Received) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ev = append(r.ev, event{ID: m.ID, Key: m.Key, Seq: seqOf(m), Attempt: m.Attempt})
	r.rx = append(r.rx, m)
	return len(r.ev) - 1
}

func (r *recorder) end(i int, result string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ev[i].Result = result
}

func (r *recorder) events() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event(nil), r.ev...)
}

func (r *recorder) received() []broker.Received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]broker.Received(nil), r.rx...)
}

// handled returns the ids handled successfully, with how often.
func (r *recorder) handled() map[string]int {
	out := map[string]int{}
	for _, ev := range r.events() {
		if ev.Result == "ok" {
			out[ev.ID]++
		}
	}
	return out
}

// waitHandled waits until every id in ids was handled successfully.
func (r *recorder) waitHandled(t *testing.T, d time.Duration, ids ...string) {
	t.Helper()
	waitFor(t, d, fmt.Sprintf("%d messages handled", len(ids)), func() bool {
		h := r.handled()
		for _, id := range ids {
			if h[id] == 0 {
				return false
			}
		}
		return true
	})
}

// byKey returns the events of key, in order.
func byKey(evs []event, key string) []event {
	var out []event
	for _, ev := range evs {
		if ev.Key == key {
			out = append(out, ev)
		}
	}
	return out
}

// waitFor polls cond until it holds, failing the case after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func ids(msgs []broker.Message) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

// checkOnce reports ids handled other than once, and unexpected ones.
func checkOnce(t *testing.T, got map[string]int, want []string) {
	t.Helper()
	wanted := make(map[string]bool, len(want))
	for _, id := range want {
		wanted[id] = true
		if n := got[id]; n != 1 {
			t.Errorf("message %s handled %d times, want once", id, n)
		}
	}
	for id, n := range got {
		if !wanted[id] {
			t.Errorf("message %s handled %d times, want never", id, n)
		}
	}
}

// checkOrder reports keys whose successful handling was not 0, 1, ... n-1.
func checkOrder(t *testing.T, evs []event, keys []string, n int) {
	t.Helper()
	for _, k := range keys {
		var seqs []int
		for _, ev := range byKey(evs, k) {
			if ev.Result == "ok" {
				seqs = append(seqs, ev.Seq)
			}
		}
		ok := len(seqs) == n
		for i := 0; ok && i < n; i++ {
			ok = seqs[i] == i
		}
		if !ok {
			t.Errorf("key %s handled in order %v, want 0..%d", k, seqs, n-1)
		}
	}
}
