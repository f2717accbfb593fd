package subscribe_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/kafkabroker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/broker/natsbroker/natstest"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/label"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/subscribe"
	"github.com/wahook/wahook/schemas"
)

// channel needs percent-encoding in ce-* headers (space, non-ASCII) and
// escaping in subjects.
const channel = "Loja São Paulo"

// labelEvents are label-changed events as the envelope writes them, one
// per label id, on chat.
func labelEvents(t *testing.T, b envelope.Binding, ids ...string) []broker.Message {
	t.Helper()
	raw := derive.Raw{ID: "raw-1", Provider: "whapi", Channel: channel, Source: envelope.Source("whapi", channel),
		Subject: "919984351847@s.whatsapp.net", Time: time.Date(2024, 4, 22, 13, 27, 33, 0, time.UTC)}
	var out []broker.Message
	for _, id := range ids {
		d := label.Data{Common: derive.NewCommon(raw),
			ChatRef: derive.ChatRef{ChatID: raw.Subject, ChatIDRaw: "919984351847@c.us", ChatType: "contact"},
			Label:   label.Label{ID: id, Name: "Nova ordem " + id, Color: "gold"}}
		m, err := envelope.Derived(derive.Event{ID: "ev-" + id, Stream: derive.LabelChanged, Type: "io.wahook.label.added",
			Subject: raw.Subject, Chat: raw.Subject, Data: d}, raw, b)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// recorder is a handler that fails the first attempt of failID and
// records every call.
type recorder struct {
	failID string
	mu     sync.Mutex
	calls  []string
	events map[string]event.Event
	failed bool
	done   chan struct{}
	want   int
}

func newRecorder(failID string, want int) *recorder {
	return &recorder{failID: failID, events: map[string]event.Event{}, done: make(chan struct{}), want: want}
}

func (r *recorder) handle(_ context.Context, ev event.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, ev.ID())
	if ev.ID() == r.failID && !r.failed {
		r.failed = true
		return errors.New("not now")
	}
	r.events[ev.ID()] = ev
	if len(r.events) == r.want {
		close(r.done)
	}
	return nil
}

func (r *recorder) wait(t *testing.T) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(time.Minute):
		r.mu.Lock()
		defer r.mu.Unlock()
		t.Fatalf("handled %v, want %d events", r.calls, r.want)
	}
}

// check verifies the attributes and data decoded from the headers.
func (r *recorder) check(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, ev := range r.events {
		if ev.Extensions()[envelope.ExtChannel] != channel || ev.Source() != envelope.Source("whapi", channel) ||
			ev.DataSchema() != envelope.SchemaURI(derive.LabelChanged) || ev.Type() != "io.wahook.label.added" {
			t.Errorf("event %s: %s", id, ev)
		}
		if err := schemas.Validate(ev.DataSchema(), ev.Data()); err != nil {
			t.Errorf("event %s: %v", id, err)
		}
		v, err := subscribe.Data(ev)
		if err != nil {
			t.Fatalf("Data(%s): %v", id, err)
		}
		lc := v.(*subscribe.LabelChanged)
		if lc.Channel != channel || lc.ChatID != "919984351847@s.whatsapp.net" || "ev-"+lc.Label.ID != id ||
			!lc.OccurredAt.Equal(time.Date(2024, 4, 22, 13, 27, 33, 0, time.UTC)) {
			t.Errorf("Data(%s) = %+v", id, lc)
		}
	}
	// Each event once, but the one that failed, tried twice; the copy
	// stored under another message id is dropped by id.
	count := map[string]int{}
	for _, id := range r.calls {
		count[id]++
	}
	for id, n := range count {
		if want := map[bool]int{true: 2, false: 1}[id == r.failID]; n != want {
			t.Errorf("handler called %d times for %s, want %d (calls %v)", n, id, want, r.calls)
		}
	}
}

// TestNATS reads label-changed events as a read-only subscriber of the
// embedded server, through the durable consumer wahook keeps for it.
func TestNATS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sc := natsbroker.SubscriberConsumer{User: "reader", Name: "labels", Filter: "wahook.label-changed.>"}
	e := natstest.Start(t, natsbroker.EmbeddedConfig{
		Subscribers:         []natsbroker.Subscriber{{User: "reader", Password: "s3cret"}},
		SubscriberConsumers: []natsbroker.SubscriberConsumer{sc},
	})
	b := natstest.Connect(t, e, natsbroker.Config{})
	if err := b.EnsureSubscriberConsumers(ctx, []natsbroker.SubscriberConsumer{sc}); err != nil {
		t.Fatal(err)
	}
	msgs := labelEvents(t, envelope.NATS, "1", "2", "3")
	// A copy of event 2 stored after the duplicate window: another
	// message id, the same CloudEvent id.
	dup := labelEvents(t, envelope.NATS, "2")[0]
	dup.ID = "ev-2-later"
	dup.Header = broker.Header{}
	for k, v := range msgs[1].Header {
		dup.Header[k] = v
	}
	dup.Header.Set(jetstream.MsgIDHeader, dup.ID)
	if err := b.Publish(ctx, append(msgs, dup)...); err != nil {
		t.Fatal(err)
	}

	nc, err := nats.Connect(e.ClientURL(), nats.UserInfo("reader", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	rec := newRecorder("ev-1", 3)
	run := func(h subscribe.Handler) (stop func()) {
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- subscribe.NATS{JS: js, Consumer: sc.Durable(), Options: subscribe.Options{RetryDelay: 50 * time.Millisecond}}.Run(rctx, h)
		}()
		return func() {
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("Run: %v", err)
			}
		}
	}
	stop := run(rec.handle)
	rec.wait(t)
	// The duplicate follows event 3: once the consumer has nothing
	// pending, all four were settled.
	waitAcked(t, ctx, b, sc.Durable())
	stop()
	rec.check(t)

	// Everything was acknowledged: a new run gets only what comes next.
	next := newRecorder("", 1)
	stop = run(next.handle)
	if err := b.Publish(ctx, labelEvents(t, envelope.NATS, "4")...); err != nil {
		t.Fatal(err)
	}
	next.wait(t)
	stop()
	if len(next.calls) != 1 || next.calls[0] != "ev-4" {
		t.Errorf("second run handled %v, want only ev-4", next.calls)
	}
}

func waitAcked(t *testing.T, ctx context.Context, b *natsbroker.Broker, name string) {
	t.Helper()
	c, err := b.JetStream().Consumer(ctx, natsbroker.DerivedStream, name)
	if err != nil {
		t.Fatal(err)
	}
	for {
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatalf("consumer info: %v", err)
		}
		if info.NumPending == 0 && info.NumAckPending == 0 && info.Delivered.Stream == 4 {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("consumer never caught up: %+v", info)
		case <-time.After(20 * time.Millisecond): // polling the server's state, not a synchronisation by time
		}
	}
}

// TestKafka reads label-changed events as a member of a consumer group on
// kfake, with kafka-go.
func TestKafka(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(2), kfake.GroupMinSessionTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatalf("kfake.NewCluster: %v", err)
	}
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := kafkabroker.Connect(ctx, kafkabroker.Config{Brokers: c.ListenAddrs(), Topics: kafkabroker.TopicsConfig{Partitions: 2}})
	if err != nil {
		t.Fatalf("kafkabroker.Connect: %v", err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	// Kafka keeps every copy: the second event 2 is a re-derivation.
	msgs := labelEvents(t, envelope.Kafka, "1", "2", "3", "2")
	if err := b.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}

	reader := kafka.ReaderConfig{Brokers: c.ListenAddrs(), GroupID: "billing", Topic: subscribe.Topic(derive.LabelChanged),
		SessionTimeout: time.Second, HeartbeatInterval: 200 * time.Millisecond, RebalanceTimeout: 2 * time.Second,
		MaxWait: 100 * time.Millisecond, StartOffset: kafka.FirstOffset}
	dedup := &signalDedup{Dedup: subscribe.NewMemoryDedup(10, time.Hour), id: "ev-2", dropped: make(chan struct{})}
	run := func(h subscribe.Handler) (stop func()) {
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() {
			done <- subscribe.Kafka{Reader: reader, Options: subscribe.Options{RetryDelay: 50 * time.Millisecond, Dedup: dedup}}.Run(rctx, h)
		}()
		return func() {
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("Run: %v", err)
			}
		}
	}
	rec := newRecorder("ev-3", 3)
	stop := run(rec.handle)
	rec.wait(t)
	// The copy of 2 comes last (one chat, so one partition, in order).
	select {
	case <-dedup.dropped:
	case <-ctx.Done():
		t.Fatal("the copy of ev-2 never came")
	}
	stop()
	rec.check(t)
	if fmt.Sprint(rec.calls) != "[ev-1 ev-2 ev-3 ev-3]" {
		t.Errorf("calls %v, want in order, 3 twice, the copy of 2 dropped", rec.calls)
	}

	next := newRecorder("", 1)
	stop = run(next.handle)
	if err := b.Publish(ctx, labelEvents(t, envelope.Kafka, "4")...); err != nil {
		t.Fatal(err)
	}
	next.wait(t)
	stop()
	if fmt.Sprint(next.calls) != "[ev-4]" {
		t.Errorf("second run handled %v, want only ev-4: the first committed what it handled", next.calls)
	}
}

// signalDedup closes dropped when it reports id as seen.
type signalDedup struct {
	subscribe.Dedup
	id      string
	dropped chan struct{}
}

func (d *signalDedup) Seen(ctx context.Context, id string) (bool, error) {
	seen, err := d.Dedup.Seen(ctx, id)
	if seen && id == d.id {
		close(d.dropped)
	}
	return seen, err
}

// deadLetterAndNote are a dead-letter record and the note a redrive
// leaves after it, as the envelope writes them.
func deadLetterAndNote(t *testing.T, b envelope.Binding) []broker.Message {
	t.Helper()
	d := envelope.DeadLetter{Reason: "invalid payload: not JSON", Provider: "whapi", Channel: channel,
		ReceivedAt: time.Date(2024, 4, 22, 13, 27, 33, 0, time.UTC), Method: "POST", Path: "/v1/webhooks/whapi"}
	d.SetBody([]byte(`{"messages":[}`))
	rec, err := envelope.DeadLetterMessage(d, b)
	if err != nil {
		t.Fatal(err)
	}
	note, err := envelope.RedrivenMessage(d, envelope.Redriven{DeadLetterID: rec.ID, IDs: []string{"raw-1", "raw-2"},
		RedrivenAt: time.Date(2024, 4, 23, 8, 0, 0, 0, time.UTC)}, b)
	if err != nil {
		t.Fatal(err)
	}
	return []broker.Message{rec, note}
}

// checkDeadLetters verifies that the record and the note were handled and
// that Data decodes each into its type.
func checkDeadLetters(t *testing.T, r *recorder, msgs []broker.Message) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	recID := msgs[0].ID
	if fmt.Sprint(r.calls) != fmt.Sprint([]string{recID, recID + "-redriven"}) {
		t.Errorf("handled %v, want the record, then its note", r.calls)
	}
	for id, ev := range r.events {
		if err := schemas.Validate(ev.DataSchema(), ev.Data()); err != nil {
			t.Errorf("event %s: %v", id, err)
		}
		v, err := subscribe.Data(ev)
		if err != nil {
			t.Fatalf("Data(%s): %v", id, err)
		}
		switch x := v.(type) {
		case *subscribe.DeadLetter:
			if id != recID || x.Channel != channel || x.Body == nil || *x.Body != `{"messages":[}` {
				t.Errorf("Data(%s) = %+v", id, x)
			}
		case *subscribe.DeadLetterRedriven:
			if ev.Type() != envelope.DeadLetterRedrivenType || x.DeadLetterID != recID ||
				fmt.Sprint(x.IDs) != "[raw-1 raw-2]" || !x.RedrivenAt.Equal(time.Date(2024, 4, 23, 8, 0, 0, 0, time.UTC)) {
				t.Errorf("Data(%s) = %+v (type %s)", id, x, ev.Type())
			}
		default:
			t.Errorf("Data(%s) = %T", id, v)
		}
	}
}

// TestDeadLettersNATS reads the dead-letter stream, a record and its
// redrive note, through a consumer the reader creates.
func TestDeadLettersNATS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b := natstest.Broker(t, natsbroker.Config{})
	msgs := deadLetterAndNote(t, envelope.NATS)
	if err := b.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	rec := newRecorder("", 2)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- subscribe.NATS{JS: b.JetStream(), Stream: natsbroker.DeadLetterStream, Consumer: "dead-letters",
			Create: &jetstream.ConsumerConfig{FilterSubject: envelope.DeadLetterTopic + ".>"}}.Run(rctx, rec.handle)
	}()
	rec.wait(t)
	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v", err)
	}
	checkDeadLetters(t, rec, msgs)
}

// TestDeadLettersKafka: the same on the dead-letter topic of kfake.
func TestDeadLettersKafka(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(2), kfake.GroupMinSessionTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatalf("kfake.NewCluster: %v", err)
	}
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, err := kafkabroker.Connect(ctx, kafkabroker.Config{Brokers: c.ListenAddrs(), Topics: kafkabroker.TopicsConfig{Partitions: 2}})
	if err != nil {
		t.Fatalf("kafkabroker.Connect: %v", err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	msgs := deadLetterAndNote(t, envelope.Kafka)
	if err := b.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	reader := kafka.ReaderConfig{Brokers: c.ListenAddrs(), GroupID: "dead-letters", Topic: envelope.DeadLetterTopic,
		SessionTimeout: time.Second, HeartbeatInterval: 200 * time.Millisecond, RebalanceTimeout: 2 * time.Second,
		MaxWait: 100 * time.Millisecond, StartOffset: kafka.FirstOffset}
	rec := newRecorder("", 2)
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- subscribe.Kafka{Reader: reader}.Run(rctx, rec.handle) }()
	rec.wait(t)
	stop()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run: %v", err)
	}
	checkDeadLetters(t, rec, msgs)
}
