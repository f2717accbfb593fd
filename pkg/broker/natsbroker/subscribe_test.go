package natsbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/brokertest"
)

// conformanceAckWait is short enough for the crash case to see
// redeliveries quickly, long enough that a loaded machine does not miss the
// keep-alive (every quarter of it).
const conformanceAckWait = 5 * time.Second

// conformanceLeaseTTL is how soon a crashed instance's consumer is taken
// over in the conformance cases.
const conformanceLeaseTTL = 3 * time.Second

func TestConformance(t *testing.T) {
	brokertest.Run(t, func(t *testing.T) brokertest.Pair {
		e := startServer(t, t.TempDir())
		sub := SubscribeConfig{AckWait: conformanceAckWait, LeaseTTL: conformanceLeaseTTL}
		b := connect(t, Config{Embedded: e, Subscribe: sub})
		return brokertest.Pair{
			Publisher:  b,
			Subscriber: b,
			Topic:      "wahook.ingress",
			Subject: func(key string, i int) string {
				return "wahook.ingress.test." + key + ".kind"
			},
			Crash: func(t *testing.T) (broker.Subscriber, func()) {
				// Over TCP: closing it is what the server sees of a crash.
				other := connect(t, Config{URL: e.ClientURL(), Auth: e.ServiceAuth(), Subscribe: sub})
				return other, other.Conn().Close
			},
			Redelivery: conformanceAckWait,
		}
	})
}

// collector records received messages for the NATS-specific tests.
type collector struct {
	mu  sync.Mutex
	got []broker.Received
}

func (c *collector) handle(ctx context.Context, m broker.Received) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, m)
	return nil
}

func (c *collector) all() []broker.Received {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]broker.Received(nil), c.got...)
}

func (c *collector) ids() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.got {
		out = append(out, m.ID)
	}
	return out
}

func (c *collector) waitIDs(t *testing.T, d time.Duration, want ...string) {
	t.Helper()
	poll(t, d, fmt.Sprintf("messages %v", want), func() bool {
		got := map[string]bool{}
		for _, id := range c.ids() {
			got[id] = true
		}
		for _, id := range want {
			if !got[id] {
				return false
			}
		}
		return true
	})
}

func poll(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sub is a Subscribe call running until the test ends or stop.
type sub struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

func subscribed(t *testing.T, b *Broker, s broker.Subscription, h broker.Handler) *sub {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &sub{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- b.Subscribe(ctx, s, h) }()
	t.Cleanup(func() { r.stop() })
	return r
}

// wait returns Subscribe's error once it returned.
func (r *sub) wait() error {
	r.once.Do(func() {
		select {
		case r.err = <-r.done:
		case <-time.After(30 * time.Second):
			r.err = errors.New("Subscribe did not return within 30s")
		}
	})
	return r.err
}

// stop cancels Subscribe and waits for it.
func (r *sub) stop() error {
	r.cancel()
	return r.wait()
}

func consumerInfo(t *testing.T, b *Broker, stream, name string) *jetstream.ConsumerInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := b.JetStream().Consumer(ctx, stream, name)
	if err != nil {
		t.Fatalf("Consumer(%s, %s): %v", stream, name, err)
	}
	return c.CachedInfo()
}

func waitConsumer(t *testing.T, b *Broker, stream, name string) *jetstream.ConsumerInfo {
	t.Helper()
	poll(t, 20*time.Second, "consumer "+name, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := b.JetStream().Consumer(ctx, stream, name)
		return err == nil
	})
	return consumerInfo(t, b, stream, name)
}

func TestConsumerName(t *testing.T) {
	for name, tc := range map[string]struct {
		group                 string
		partition, partitions int
		want                  string
	}{
		"plain":            {group: "wahook-label-changed", want: "wahook-label-changed"},
		"one partition":    {group: "g_1", partitions: 1, want: "g_1"},
		"partitioned":      {group: "wahook-call", partition: 1, partitions: 3, want: "wahook-call-p1of3"},
		"dots and spaces":  {group: "a.b c", want: "a_b_c-d1965965"},
		"distinct from ok": {group: "a_b_c", want: "a_b_c"},
		"wildcards":        {group: "x.*.>", partition: 0, partitions: 2, want: "x____-9853bf9b-p0of2"},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := ConsumerName(tc.group, tc.partition, tc.partitions)
			if err != nil {
				t.Fatalf("ConsumerName(%q): %v", tc.group, err)
			}
			if got != tc.want {
				t.Errorf("ConsumerName(%q, %d, %d) = %q, want %q", tc.group, tc.partition, tc.partitions, got, tc.want)
			}
		})
	}
	long, err := ConsumerName(strings.Repeat("g", 300), 0, 0)
	if err != nil || len(long) > maxNameLen+9 {
		t.Errorf("ConsumerName(300 bytes) = %q (%d bytes), %v; want at most %d bytes", long, len(long), err, maxNameLen+9)
	}
	if _, err := ConsumerName("", 0, 0); err == nil {
		t.Errorf("ConsumerName(\"\") = nil error, want one")
	}
}

func TestSubscribeInvalid(t *testing.T) {
	_, b := newEmbeddedBroker(t)
	noop := func(context.Context, broker.Received) error { return nil }
	for name, tc := range map[string]struct {
		s       broker.Subscription
		h       broker.Handler
		wantErr string
	}{
		"nil handler":        {s: broker.Subscription{Topic: "wahook.ingress", Group: "g"}, wantErr: "nil handler"},
		"unknown topic":      {s: broker.Subscription{Topic: "wahook.other", Group: "g"}, h: noop, wantErr: "no stream"},
		"subject as topic":   {s: broker.Subscription{Topic: "wahook.ingress.whapi", Group: "g"}, h: noop, wantErr: "no stream"},
		"filter outside":     {s: broker.Subscription{Topic: "wahook.call", Group: "g", Filter: []string{"wahook.ingress.>"}}, h: noop, wantErr: "not inside topic"},
		"filter is topic":    {s: broker.Subscription{Topic: "wahook.call", Group: "g", Filter: []string{"wahook.call"}}, h: noop, wantErr: "not inside topic"},
		"partition too high": {s: broker.Subscription{Topic: "wahook.call", Group: "g", Partition: 1}, h: noop, wantErr: "partition 1 of 0"},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := b.Subscribe(ctx, tc.s, tc.h)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Subscribe(%+v) = %v, want an error containing %q", tc.s, err, tc.wantErr)
			}
		})
	}

	// A consumer that exists with another ack policy is refused, not
	// changed behind its owner's back.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := b.JetStream().CreateConsumer(ctx, IngressStream, jetstream.ConsumerConfig{
		Durable: "foreign", AckPolicy: jetstream.AckNonePolicy,
	}); err != nil {
		t.Fatalf("CreateConsumer: %v", err)
	}
	err := b.Subscribe(ctx, broker.Subscription{Topic: "wahook.ingress", Group: "foreign"}, noop)
	if err == nil || !strings.Contains(err.Error(), "ack policy") {
		t.Errorf("Subscribe to a consumer with AckNone = %v, want an error about its ack policy", err)
	}
}

func TestSubscribeConsumerConfig(t *testing.T) {
	e := startServer(t, t.TempDir())
	b := connect(t, Config{Embedded: e, Subscribe: SubscribeConfig{AckWait: 7 * time.Second}})
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	subscribed(t, b, broker.Subscription{
		Topic: "wahook.call", Group: "calls", Filter: []string{"wahook.call.zapi.>", "wahook.call.waha.>"},
		StartTime: start, Concurrency: 16, Partition: 1, Partitions: 3,
	}, new(collector).handle)
	subscribed(t, b, broker.Subscription{Topic: "wahook.deadletter", Group: "dl"}, new(collector).handle)

	got := waitConsumer(t, b, DerivedStream, "calls-p1of3").Config
	want := jetstream.ConsumerConfig{
		Durable:        "calls-p1of3",
		Description:    "wahook group calls on wahook.call, partition 1 of 3",
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &start,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        7 * time.Second,
		MaxDeliver:     -1,
		FilterSubjects: []string{"wahook.call.zapi.>", "wahook.call.waha.>"},
		MaxAckPending:  512,
	}
	set := map[string]bool{"Durable": true, "Description": true, "DeliverPolicy": true, "OptStartTime": true,
		"AckPolicy": true, "AckWait": true, "MaxDeliver": true, "FilterSubject": true, "FilterSubjects": true, "MaxAckPending": true}
	// Ignore the server's defaults and bookkeeping: only what Subscribe sets.
	opts := cmp.FilterPath(func(p cmp.Path) bool {
		if len(p) < 2 {
			return false
		}
		f, ok := p[1].(cmp.StructField)
		return ok && !set[f.Name()]
	}, cmp.Ignore())
	if diff := cmp.Diff(want, got, opts); diff != "" {
		t.Errorf("consumer config mismatch (-want +got):\n%s", diff)
	}
	dl := waitConsumer(t, b, DeadLetterStream, "dl").Config
	if dl.FilterSubject != DeadLetterSubjects || dl.DeliverPolicy != jetstream.DeliverAllPolicy || dl.MaxAckPending != DefaultMinAckPending {
		t.Errorf("dead-letter consumer: filter %q, deliver %s, max ack pending %d; want %q, all, %d",
			dl.FilterSubject, dl.DeliverPolicy, dl.MaxAckPending, DeadLetterSubjects, DefaultMinAckPending)
	}
}

// An existing consumer resumes with its deliver policy; what may change
// (filters, AckWait, MaxAckPending, MaxDeliver) is updated.
func TestSubscribeUpdatesExistingConsumer(t *testing.T) {
	_, b := newEmbeddedBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 4 {
		if err := b.Publish(ctx, ingressMsg("UPD", i, jsonBody(i))); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	last := time.Now().Add(-time.Hour).UTC()
	if _, err := b.JetStream().CreateConsumer(ctx, IngressStream, jetstream.ConsumerConfig{
		Durable: "existing", AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute, MaxDeliver: 5,
		DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &last, FilterSubject: "wahook.ingress.whapi.>",
	}); err != nil {
		t.Fatalf("CreateConsumer: %v", err)
	}
	var c collector
	subscribed(t, b, broker.Subscription{Topic: "wahook.ingress", Group: "existing", Concurrency: 2}, c.handle)
	c.waitIDs(t, 20*time.Second, "evt-UPD-00000", "evt-UPD-00003")

	got := consumerInfo(t, b, IngressStream, "existing").Config
	if got.DeliverPolicy != jetstream.DeliverByStartTimePolicy || got.OptStartTime == nil || !got.OptStartTime.Equal(last) {
		t.Errorf("deliver policy %s from %v after Subscribe, want by start time from %v (kept)", got.DeliverPolicy, got.OptStartTime, last)
	}
	if got.AckWait != DefaultAckWait || got.MaxDeliver != -1 || got.FilterSubject != IngressSubjects || got.MaxAckPending != DefaultMinAckPending {
		t.Errorf("after Subscribe: AckWait %s, MaxDeliver %d, filter %q, MaxAckPending %d; want %s, -1, %q, %d",
			got.AckWait, got.MaxDeliver, got.FilterSubject, got.MaxAckPending, DefaultAckWait, IngressSubjects, DefaultMinAckPending)
	}
}

// Messages fetched but not started are handed back (Nak) at shutdown: the
// next subscription gets them at once, long before AckWait.
func TestSubscribeNaksUnstartedAtShutdown(t *testing.T) {
	e := startServer(t, t.TempDir())
	b := connect(t, Config{Embedded: e, Subscribe: SubscribeConfig{AckWait: 10 * time.Minute}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var msgs []broker.Message
	for i := range 6 {
		msgs = append(msgs, ingressMsg("NAK", i, jsonBody(i)))
	}
	if err := b.Publish(ctx, msgs...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	started, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	run := subscribed(t, b, broker.Subscription{Topic: "wahook.ingress", Group: "nak", Concurrency: 4},
		func(ctx context.Context, m broker.Received) error {
			if calls.Add(1) == 1 {
				close(started)
				<-release
				return nil
			}
			return errors.New("only the first message may be handled")
		})
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("handler not called")
	}
	// Every message shares one key: the other five are fetched and queued.
	poll(t, 20*time.Second, "the other messages fetched", func() bool {
		return consumerInfo(t, b, IngressStream, "nak").NumAckPending == 6
	})
	run.cancel()
	close(release)
	if err := run.wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe = %v, want context.Canceled", err)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("handler called %d times, want once", n)
	}

	var c collector
	subscribed(t, b, broker.Subscription{Topic: "wahook.ingress", Group: "nak", Concurrency: 4}, c.handle)
	var want []string
	for _, m := range msgs[1:] {
		want = append(want, m.ID)
	}
	c.waitIDs(t, 20*time.Second, want...)
	if diff := cmp.Diff(want, c.ids()); diff != "" {
		t.Errorf("next subscription's messages mismatch (-want +got):\n%s", diff)
	}
}

// Messages held longer than AckWait, in the handler or queued behind it,
// are kept alive: JetStream redelivers none of them.
func TestSubscribeKeepsHeldMessagesAlive(t *testing.T) {
	e := startServer(t, t.TempDir())
	// The keep-alive runs every second; a 4s AckWait leaves the loaded
	// machine 2s of slack.
	b := connect(t, Config{Embedded: e, Subscribe: SubscribeConfig{AckWait: 4 * time.Second}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs := []broker.Message{ingressMsg("LONG", 0, jsonBody(0)), ingressMsg("LONG", 1, jsonBody(1))}
	if err := b.Publish(ctx, msgs...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	var mu sync.Mutex
	var got []string
	subscribed(t, b, broker.Subscription{Topic: "wahook.ingress", Group: "long", Concurrency: 2},
		func(ctx context.Context, m broker.Received) error {
			mu.Lock()
			got = append(got, fmt.Sprintf("%s#%d", m.ID, m.Attempt))
			mu.Unlock()
			if m.ID == msgs[0].ID {
				time.Sleep(10 * time.Second)
			}
			return nil
		})
	poll(t, 30*time.Second, "both messages handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= 2
	})
	time.Sleep(time.Second)
	mu.Lock()
	defer mu.Unlock()
	want := []string{msgs[0].ID + "#1", msgs[1].ID + "#1"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("handler calls mismatch (-want +got):\n%s", diff)
	}
	// A redelivery of a held message would be dropped as a duplicate: ask
	// the server whether it redelivered anything.
	if n := consumerInfo(t, b, IngressStream, "long").NumRedelivered; n != 0 {
		t.Errorf("JetStream redelivered %d messages, want 0", n)
	}
}

// The handler's ctx outlives Subscribe's by ShutdownGrace, then is
// cancelled; a handler that then fails has its message handed back.
func TestSubscribeShutdownGrace(t *testing.T) {
	e := startServer(t, t.TempDir())
	b := connect(t, Config{Embedded: e, Subscribe: SubscribeConfig{ShutdownGrace: 500 * time.Millisecond}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m := ingressMsg("GRACE", 0, jsonBody(0))
	if err := b.Publish(ctx, m); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	started := make(chan struct{})
	handlerCtxDone := make(chan time.Time, 1)
	run := subscribed(t, b, broker.Subscription{Topic: "wahook.ingress", Group: "grace"},
		func(ctx context.Context, r broker.Received) error {
			if r.Attempt > 1 {
				return nil
			}
			close(started)
			<-ctx.Done()
			handlerCtxDone <- time.Now()
			return ctx.Err()
		})
	<-started
	cancelled := time.Now()
	if err := run.stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Subscribe = %v, want context.Canceled", err)
	}
	if d := (<-handlerCtxDone).Sub(cancelled); d < 400*time.Millisecond {
		t.Errorf("handler's ctx cancelled %s after Subscribe's, want after the 500ms grace", d)
	}
	var c collector
	subscribed(t, b, broker.Subscription{Topic: "wahook.ingress", Group: "grace"}, c.handle)
	c.waitIDs(t, 20*time.Second, m.ID)
	if got := c.all()[0].Attempt; got != 2 {
		t.Errorf("redelivered with Attempt %d, want 2", got)
	}
}

func TestSubscribePanicLogged(t *testing.T) {
	e := startServer(t, t.TempDir())
	core, logs := observer.New(zap.InfoLevel)
	b := connect(t, Config{Embedded: e, Logger: zap.New(core)})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Publish(ctx, ingressMsg("PANIC", 0, jsonBody(0))); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	var c collector
	subscribed(t, b, broker.Subscription{Topic: "wahook.ingress", Group: "panic"},
		func(ctx context.Context, m broker.Received) error {
			if m.Attempt == 1 {
				panic("boom")
			}
			return c.handle(ctx, m)
		})
	c.waitIDs(t, 20*time.Second, "evt-PANIC-00000")
	entries := logs.FilterMessageSnippet("handler panicked").All()
	if len(entries) != 1 {
		t.Fatalf("%d 'handler panicked' log entries, want 1", len(entries))
	}
	fields := entries[0].ContextMap()
	if fields["panic"] != "boom" || !strings.Contains(fmt.Sprint(fields["stack"]), "subscribe_test.go") {
		t.Errorf("panic log fields %v, want panic=boom and a stack through the handler", fields)
	}
}

// Key and ID come from the headers wahook writes; Key falls back to the
// subject, and Publish writes the key header a message lacks.
func TestSubscribeKeyAndID(t *testing.T) {
	_, b := newEmbeddedBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs := []broker.Message{
		// Envelope-like: the key header is percent-encoded.
		{Subject: "wahook.ingress.a.b.c", ID: "id-1", Key: "ignored, the header wins",
			Header: broker.Header{KeyHeader: {"whapi/CH/caf%C3%A9%20x"}}, Data: []byte("1")},
		// No header: Publish writes it from Key.
		{Subject: "wahook.ingress.a.b.c", ID: "id-2", Key: "whapi/CH/café x", Data: []byte("2")},
		// Neither key nor Nats-Msg-Id: subject and ce-id.
		{Subject: "wahook.ingress.a.b.d", Header: broker.Header{IDHeader: {"ce%20id"}}, Data: []byte("3")},
	}
	for _, m := range msgs {
		if err := b.Publish(ctx, m); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	if _, ok := msgs[1].Header[KeyHeader]; ok || msgs[1].Header != nil {
		t.Errorf("Publish wrote into the caller's header: %v", msgs[1].Header)
	}
	var c collector
	subscribed(t, b, broker.Subscription{Topic: "wahook.ingress", Group: "keys"}, c.handle)
	poll(t, 20*time.Second, "3 messages", func() bool { return len(c.ids()) == 3 })
	type kid struct{ Key, ID, Topic string }
	var got []kid
	for _, m := range c.all() {
		got = append(got, kid{m.Key, m.ID, m.Topic})
	}
	want := []kid{
		{"whapi/CH/café x", "id-1", "wahook.ingress"},
		{"whapi/CH/café x", "id-2", "wahook.ingress"},
		{"wahook.ingress.a.b.d", "ce id", "wahook.ingress"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("received keys and ids mismatch (-want +got):\n%s", diff)
	}
}

// Subscribe keeps consuming across a server restart, and re-creates a
// consumer deleted under it.
func TestSubscribeSurvivesRestartAndDeletion(t *testing.T) {
	dir := t.TempDir()
	e := startServer(t, dir)
	b := connect(t, Config{URL: e.ClientURL(), Auth: e.ServiceAuth(), ReconnectWait: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	publish := func(i int) string {
		t.Helper()
		m := ingressMsg("RST", i, jsonBody(i))
		for {
			err := b.Publish(ctx, m)
			if err == nil {
				return m.ID
			}
			if !errors.Is(err, broker.ErrUnavailable) || ctx.Err() != nil {
				t.Fatalf("Publish(%d): %v", i, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	var c collector
	run := subscribed(t, b, broker.Subscription{Topic: "wahook.ingress", Group: "restart"}, c.handle)
	c.waitIDs(t, 20*time.Second, publish(0))

	if err := e.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(e.ClientURL(), "nats://"))
	startServerAt(t, dir, "127.0.0.1:"+port)
	c.waitIDs(t, 30*time.Second, publish(1))

	if err := b.JetStream().DeleteConsumer(ctx, IngressStream, "restart"); err != nil {
		t.Fatalf("DeleteConsumer: %v", err)
	}
	// The re-created consumer starts at the beginning: 0 and 1 come again.
	c.waitIDs(t, 30*time.Second, publish(2))
	if err := run.stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Subscribe = %v, want context.Canceled", err)
	}
}

func TestSubscribeClosedBroker(t *testing.T) {
	e := startServer(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := Connect(ctx, Config{Embedded: e})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		done <- b.Subscribe(context.Background(), broker.Subscription{Topic: "wahook.ingress", Group: "closed"},
			func(context.Context, broker.Received) error { return nil })
	}()
	waitConsumer(t, b, IngressStream, "closed")
	if err := b.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, broker.ErrClosed) {
			t.Errorf("Subscribe after Close = %v, want an error wrapping broker.ErrClosed", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Subscribe still running 20s after Close")
	}
	err = b.Subscribe(ctx, broker.Subscription{Topic: "wahook.ingress", Group: "closed"},
		func(context.Context, broker.Received) error { return nil })
	if !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Subscribe on a closed broker = %v, want an error wrapping broker.ErrClosed", err)
	}
}

func TestSubscribeConfigValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		give    SubscribeConfig
		wantErr string
	}{
		"defaults":          {},
		"ack wait too low":  {give: SubscribeConfig{AckWait: 500 * time.Millisecond}, wantErr: "ack wait"},
		"retry max < min":   {give: SubscribeConfig{RetryMin: time.Second, RetryMax: 10 * time.Millisecond}, wantErr: "retry backoff"},
		"negative pending":  {give: SubscribeConfig{MaxAckPending: -1}, wantErr: "max ack pending"},
		"negative grace":    {give: SubscribeConfig{ShutdownGrace: -time.Second}, wantErr: "shutdown grace"},
		"lease TTL too low": {give: SubscribeConfig{LeaseTTL: 500 * time.Millisecond}, wantErr: "lease TTL"},
		"min above default": {give: SubscribeConfig{RetryMin: time.Minute}},
	} {
		t.Run(name, func(t *testing.T) {
			cfg := Config{URL: "nats://x", Subscribe: tc.give}
			cfg.setDefaults()
			err := cfg.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Errorf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}

// A second instance of a consumer waits as a standby while the first
// lives, however long the first holds a message: it handles nothing and
// never resets the consumer under it. Once the first stops, the standby
// takes over and goes on in order, each message handled once.
func TestSubscribeStandbyNeverResetsALiveInstance(t *testing.T) {
	e := startServer(t, t.TempDir())
	cfg := SubscribeConfig{AckWait: 2 * time.Second, LeaseTTL: 2 * time.Second}
	b1 := connect(t, Config{Embedded: e, Subscribe: cfg})
	b2 := connect(t, Config{URL: e.ClientURL(), Auth: e.ServiceAuth(), Subscribe: cfg})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var msgs []broker.Message
	for i := range 4 {
		msgs = append(msgs, ingressMsg("STANDBY", i, jsonBody(i)))
	}
	if err := b1.Publish(ctx, msgs[:2]...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	started, release := make(chan struct{}), make(chan struct{})
	var first collector
	run1 := subscribed(t, b1, broker.Subscription{Topic: "wahook.ingress", Group: "standby", Concurrency: 2},
		func(ctx context.Context, m broker.Received) error {
			if m.ID == msgs[0].ID {
				close(started)
				<-release
			}
			return first.handle(ctx, m)
		})
	<-started
	var second collector
	subscribed(t, b2, broker.Subscription{Topic: "wahook.ingress", Group: "standby", Concurrency: 2}, second.handle)
	if err := b1.Publish(ctx, msgs[2]); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	// Several lease TTLs and AckWaits: the first instance keeps its lease
	// and its messages alive.
	time.Sleep(6 * time.Second)
	if got := second.ids(); len(got) != 0 {
		t.Errorf("standby handled %v while the first instance lived", got)
	}
	close(release)
	first.waitIDs(t, 20*time.Second, msgs[0].ID, msgs[1].ID, msgs[2].ID)
	if err := run1.stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Subscribe = %v, want context.Canceled", err)
	}
	if err := b1.Publish(ctx, msgs[3]); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	second.waitIDs(t, 20*time.Second, msgs[3].ID)
	time.Sleep(500 * time.Millisecond)
	all := append(first.ids(), second.ids()...)
	var want []string
	for _, m := range msgs {
		want = append(want, m.ID)
	}
	if diff := cmp.Diff(want, all); diff != "" {
		t.Errorf("messages handled (first instance, then standby) mismatch (-want +got):\n%s", diff)
	}
	if n := consumerInfo(t, b2, IngressStream, "standby").NumRedelivered; n != 0 {
		t.Errorf("JetStream redelivered %d messages, want 0", n)
	}
}

// An instance that cannot renew its lease (the server is down longer than
// half of LeaseTTL) stops consuming, cancelling its handlers, and takes
// its lease again once the server is back, resuming from the ack floor: the
// message it was handling comes first again, then the later ones, in order.
func TestSubscribeLeaseLostResumesInOrder(t *testing.T) {
	dir := t.TempDir()
	e := startServer(t, dir)
	b := connect(t, Config{URL: e.ClientURL(), Auth: e.ServiceAuth(), ReconnectWait: 50 * time.Millisecond,
		Subscribe: SubscribeConfig{AckWait: time.Minute, LeaseTTL: 2 * time.Second}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	msgs := []broker.Message{ingressMsg("LOST", 0, jsonBody(0)), ingressMsg("LOST", 1, jsonBody(1)), ingressMsg("LOST", 2, jsonBody(2))}
	if err := b.Publish(ctx, msgs[:2]...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	started := make(chan struct{})
	var once sync.Once
	var c collector
	run := subscribed(t, b, broker.Subscription{Topic: "wahook.ingress", Group: "lost", Concurrency: 2},
		func(ctx context.Context, m broker.Received) error {
			first := false
			once.Do(func() { first = true })
			if first {
				close(started)
				// Hangs until the lease is lost.
				<-ctx.Done()
				return ctx.Err()
			}
			return c.handle(ctx, m)
		})
	<-started
	if err := e.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// Longer than the lease TTL: it expires on the server's clock too.
	time.Sleep(3 * time.Second)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(e.ClientURL(), "nats://"))
	startServerAt(t, dir, "127.0.0.1:"+port)
	for {
		err := b.Publish(ctx, msgs[2])
		if err == nil {
			break
		}
		if !errors.Is(err, broker.ErrUnavailable) || ctx.Err() != nil {
			t.Fatalf("Publish: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.waitIDs(t, 30*time.Second, msgs[0].ID, msgs[1].ID, msgs[2].ID)
	time.Sleep(500 * time.Millisecond)
	if diff := cmp.Diff([]string{msgs[0].ID, msgs[1].ID, msgs[2].ID}, c.ids()); diff != "" {
		t.Errorf("messages handled after the lease was lost and taken again (-want +got):\n%s", diff)
	}
	if err := run.stop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Subscribe = %v, want context.Canceled", err)
	}
}

// An instance that stops keeps its lease while its handlers finish, and
// when it stops with a message it could not settle (its handler ignored
// the end of the grace period) it does not release the lease: the next
// instance takes over when it expires and resumes from the ack floor, so
// that message comes back at once and first, not after AckWait.
func TestSubscribeUnsettledStopKeepsTheLease(t *testing.T) {
	e := startServer(t, t.TempDir())
	cfg := SubscribeConfig{AckWait: 10 * time.Minute, LeaseTTL: 2 * time.Second, ShutdownGrace: 100 * time.Millisecond}
	b := connect(t, Config{Embedded: e, Subscribe: cfg})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	msgs := []broker.Message{ingressMsg("STUCK", 0, jsonBody(0)), ingressMsg("STUCK", 1, jsonBody(1))}
	if err := b.Publish(ctx, msgs[0]); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	started, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	run := subscribed(t, b, broker.Subscription{Topic: "wahook.ingress", Group: "stuck"},
		func(ctx context.Context, m broker.Received) error {
			close(started)
			<-release // ignores ctx
			return nil
		})
	<-started
	if err := run.stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe = %v, want context.Canceled", err)
	}
	if err := b.Publish(ctx, msgs[1]); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	var c collector
	subscribed(t, b, broker.Subscription{Topic: "wahook.ingress", Group: "stuck"}, c.handle)
	c.waitIDs(t, 20*time.Second, msgs[0].ID, msgs[1].ID)
	if diff := cmp.Diff([]string{msgs[0].ID, msgs[1].ID}, c.ids()); diff != "" {
		t.Errorf("next instance's messages mismatch (-want +got):\n%s", diff)
	}
}

// TestSubscribeStopLosesNoDeliveryOnItsWay: instances stopping while the
// server is still sending them messages read back every delivery, so each
// releases its lease and the next one need not reset the consumer (which
// would restart Received.Attempt). Many stop at once, each with a stream of
// deliveries queued on the server, where one queued as its pull requests
// are dropped would be lost.
func TestSubscribeStopLosesNoDeliveryOnItsWay(t *testing.T) {
	e := startServer(t, t.TempDir())
	b := connect(t, Config{Embedded: e, Subscribe: SubscribeConfig{AckWait: time.Minute, LeaseTTL: time.Minute}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const groups, msgs = 16, 400
	for i := range msgs {
		if err := b.Publish(ctx, ingressMsg(fmt.Sprintf("C%d", i%50), i, jsonBody(i))); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	var started sync.WaitGroup
	started.Add(groups)
	release := make(chan struct{})
	runs := make([]*sub, groups)
	for g := range groups {
		var once sync.Once
		runs[g] = subscribed(t, b, broker.Subscription{Topic: "wahook.ingress", Group: fmt.Sprintf("g%02d", g), Concurrency: 4},
			func(ctx context.Context, m broker.Received) error {
				once.Do(started.Done)
				<-release
				return nil
			})
	}
	started.Wait()
	for _, r := range runs {
		r.cancel()
	}
	close(release)
	for _, r := range runs {
		if err := r.wait(); !errors.Is(err, context.Canceled) {
			t.Fatalf("Subscribe = %v, want context.Canceled", err)
		}
	}
	kv, err := b.JetStream().KeyValue(ctx, LeaseBucket)
	if err != nil {
		t.Fatalf("lease bucket: %v", err)
	}
	keys, err := kv.Keys(ctx)
	if err != nil {
		t.Fatalf("lease keys: %v", err)
	}
	if len(keys) != groups {
		t.Fatalf("%d leases, want %d", len(keys), groups)
	}
	for _, k := range keys {
		v, err := kv.Get(ctx, k)
		if err != nil {
			t.Fatalf("lease %s: %v", k, err)
		}
		var l leaseValue
		if err := json.Unmarshal(v.Value(), &l); err != nil || l.State != leaseReleased {
			t.Errorf("lease %s after a clean stop = %s, want state %q", k, v.Value(), leaseReleased)
		}
		info := consumerInfo(t, b, "WAHOOK_INGRESS", strings.TrimPrefix(k, "WAHOOK_INGRESS."))
		if info.Paused {
			t.Errorf("consumer %s still paused after its instance stopped", info.Name)
		}
	}
}
