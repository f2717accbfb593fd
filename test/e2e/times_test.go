package e2e

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/chatid"
	"github.com/wahook/wahook/pkg/consumer"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/whapi"
	"github.com/wahook/wahook/pkg/state/kafkastate"
	"github.com/wahook/wahook/pkg/state/natsstate"
)

// receivedAt is when the first copy of the raw event was received; the
// second one comes an hour later, past any duplicate window.
var receivedAt = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

// rawCopies returns the two copies the raw stream holds of a Whapi
// groups.post (a chat-created and a group-notification event) when the
// provider retried it after the broker's duplicate window: one id and data,
// receive times an hour apart, no duplicate-window id header. The timesource
// mark is what consumers go by.
func rawCopies(t *testing.T, b envelope.Binding) []broker.Message {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("..", "..", "pkg", "provider", "whapi", "testdata", "groups.post_new-group.json"))
	if err != nil {
		t.Fatal(err)
	}
	items, err := whapi.New().Split(body, provider.Delivery{Method: "POST"})
	if err != nil || len(items) != 1 {
		t.Fatalf("Split: %d items, %v", len(items), err)
	}
	it := items[0]
	id, err := provider.EventID("whapi", it)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []broker.Message
	for i := range 2 {
		m := envelope.Ingress(envelope.Raw{ID: id, Provider: "whapi", Channel: it.Channel, Kind: it.Kind, Chat: chatid.ID(it.Chat),
			Time: receivedAt.Add(time.Duration(i) * time.Hour), TimeReceived: true, Data: it.Data}, b)
		if b.IDHeader != "" {
			delete(m.Header, b.IDHeader)
			m.ID = "" // the broker would send it as that header
		}
		msgs = append(msgs, m)
	}
	return msgs
}

// recorder keeps what a consumer published, per stream.
type recorder struct {
	next broker.Publisher
	mu   sync.Mutex
	msgs map[string][]broker.Message // by topic
}

func (r *recorder) Publish(ctx context.Context, msgs ...broker.Message) error {
	if err := r.next.Publish(ctx, msgs...); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range msgs {
		r.msgs[m.Topic] = append(r.msgs[m.Topic], m)
	}
	return nil
}

// published waits until the recorder holds n messages of each topic.
func (r *recorder) published(t *testing.T, n int, topics ...string) map[string][]broker.Message {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r.mu.Lock()
		done := true
		for _, tp := range topics {
			done = done && len(r.msgs[tp]) >= n
		}
		if done {
			out := map[string][]broker.Message{}
			for _, tp := range topics {
				out[tp] = append([]broker.Message(nil), r.msgs[tp]...)
			}
			r.mu.Unlock()
			return out
		}
		r.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("consumers published %v, want %d of each of %v", r.counts(), n, topics)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *recorder) counts() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := map[string]int{}
	for tp, ms := range r.msgs {
		c[tp] = len(ms)
	}
	return c
}

// checkCopiesDeriveAlike checks that both copies derived the same message
// (id, headers, data) in every stream of every group, with the first copy's
// time.
func checkCopiesDeriveAlike(t *testing.T, b envelope.Binding, groups []map[string][]broker.Message) {
	t.Helper()
	var first map[string]broker.Message // by topic
	for g, got := range groups {
		for tp, msgs := range got {
			if len(msgs) != 2 {
				t.Errorf("group %d, %s: %d messages, want 2 (one per copy)", g, tp, len(msgs))
				continue
			}
			if diff := cmp.Diff(msgs[0], msgs[1]); diff != "" {
				t.Errorf("group %d, %s: the copies derived different messages (-first +second):\n%s", g, tp, diff)
			}
			ev, err := envelope.Decode(msgs[0], b)
			if err != nil {
				t.Fatalf("%s: %v", tp, err)
			}
			if !ev.Time().Equal(receivedAt) {
				t.Errorf("group %d, %s: time %v, want the first copy's %v", g, tp, ev.Time(), receivedAt)
			}
			if first == nil {
				first = map[string]broker.Message{}
			}
			if f, ok := first[tp]; ok {
				if diff := cmp.Diff(f, msgs[0]); diff != "" {
					t.Errorf("group %d, %s: differs from another group's (-other +this):\n%s", g, tp, diff)
				}
			}
			first[tp] = msgs[0]
		}
	}
}

var timeStreams = []string{derive.ChatCreated, derive.GroupNotification}

// TestCopiesDeriveTheSameTime stores two copies of one raw event without a
// provider time, received an hour apart, and runs two consumer groups of
// two streams each at once: every stream of every group derives the same
// events from both copies, with the first copy's time.
func TestCopiesDeriveTheSameTime(t *testing.T) {
	p := newPipeline(t)
	ctx := testContext(t)
	if err := p.broker.Publish(ctx, rawCopies(t, envelope.NATS)...); err != nil {
		t.Fatal(err)
	}
	groups := []string{"times-a-", "times-b-"}
	var deps []consumer.Deps
	var recs []*recorder
	for _, group := range groups {
		b, err := natsbroker.Connect(ctx, natsbroker.Config{URL: p.emb.ClientURL(), Auth: p.emb.ServiceAuth(), Name: "e2e-" + group})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close(context.Background()) })
		st, err := natsstate.Open(ctx, b.JetStream(), natsstate.Config{})
		if err != nil {
			t.Fatal(err)
		}
		rec := &recorder{next: b, msgs: map[string][]broker.Message{}}
		recs = append(recs, rec)
		deps = append(deps, consumer.Deps{Subscriber: b, Publisher: rec, Binding: envelope.NATS,
			Labels: st.Labels(), Chats: st.Chats(), Times: st.Times()})
	}
	for i, group := range groups {
		runConsumers(t, deps[i], group)
	}
	var got []map[string][]broker.Message
	for _, rec := range recs {
		got = append(got, rec.published(t, 2, envelope.DerivedTopic(derive.ChatCreated), envelope.DerivedTopic(derive.GroupNotification)))
	}
	checkCopiesDeriveAlike(t, envelope.NATS, got)
}

// TestKafkaCopiesDeriveTheSameTime is TestCopiesDeriveTheSameTime on
// Kafka, without Dedup, as when the copies are further apart than its
// window.
func TestKafkaCopiesDeriveTheSameTime(t *testing.T) {
	p := newKafkaPipeline(t)
	ctx := testContext(t)
	if err := p.broker.Publish(ctx, rawCopies(t, envelope.Kafka)...); err != nil {
		t.Fatal(err)
	}
	var recs []*recorder
	for _, group := range []string{"times-a-", "times-b-"} {
		b := p.connect(nil)
		st, err := kafkastate.Open(ctx, kafkastate.Config{Brokers: p.cluster.ListenAddrs(), Partitions: kafkaPartitions})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close(context.Background()) })
		rec := &recorder{next: b, msgs: map[string][]broker.Message{}}
		recs = append(recs, rec)
		runConsumers(t, consumer.Deps{Subscriber: b, Publisher: rec, Binding: envelope.Kafka,
			Labels: st.Labels(), Chats: st.Chats(), Times: st.Times()}, group)
	}
	var got []map[string][]broker.Message
	for _, rec := range recs {
		got = append(got, rec.published(t, 2, envelope.DerivedTopic(derive.ChatCreated), envelope.DerivedTopic(derive.GroupNotification)))
	}
	checkCopiesDeriveAlike(t, envelope.Kafka, got)
}

// TestCopiesDeriveTheirOwnTimesPerCopy is the trade of
// WAHOOK_RECEIVED_TIME_PER_COPY: without the first-time registry the two
// copies derive events with the same ids and data but each copy's own time.
func TestCopiesDeriveTheirOwnTimesPerCopy(t *testing.T) {
	p := newPipeline(t)
	ctx := testContext(t)
	if err := p.broker.Publish(ctx, rawCopies(t, envelope.NATS)...); err != nil {
		t.Fatal(err)
	}
	st, err := natsstate.Open(ctx, p.broker.JetStream(), natsstate.Config{})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{next: p.broker, msgs: map[string][]broker.Message{}}
	runConsumers(t, consumer.Deps{Subscriber: p.broker, Publisher: rec, Binding: envelope.NATS,
		Labels: st.Labels(), Chats: st.Chats()}, "per-copy-")
	for tp, msgs := range rec.published(t, 2, envelope.DerivedTopic(derive.ChatCreated), envelope.DerivedTopic(derive.GroupNotification)) {
		if len(msgs) != 2 {
			t.Fatalf("%s: %d messages, want 2", tp, len(msgs))
		}
		var times []time.Time
		var ids []string
		for _, m := range msgs {
			ev, err := envelope.Decode(m, envelope.NATS)
			if err != nil {
				t.Fatalf("%s: %v", tp, err)
			}
			times, ids = append(times, ev.Time()), append(ids, ev.ID())
		}
		if ids[0] != ids[1] {
			t.Errorf("%s: ids %q and %q, want one id for both copies", tp, ids[0], ids[1])
		}
		if want := []time.Time{receivedAt, receivedAt.Add(time.Hour)}; !times[0].Equal(want[0]) || !times[1].Equal(want[1]) {
			t.Errorf("%s: times %v, want each copy's own %v", tp, times, want)
		}
	}
}

// runConsumers runs timeStreams with d under group until the test ends.
func runConsumers(t *testing.T, d consumer.Deps, group string) {
	t.Helper()
	d.Providers, d.Metrics = providers, consumer.NewMetrics(prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- consumer.Streams{Names: timeStreams, GroupPrefix: group, Concurrency: 4}.Run(ctx, d) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && err != context.Canceled {
			t.Errorf("consumers %s: %v", group, err)
		}
	})
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestIngressMarksReceiveTime checks that the ingress marks the raw events
// it stamps with their receive time, and those alone.
func TestIngressMarksReceiveTime(t *testing.T) {
	p := newPipeline(t)
	ctx := testContext(t)
	s, err := p.broker.JetStream().Stream(ctx, natsbroker.IngressStream)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		fixture, subject, want string
	}{
		{"labels.post.json", "wahook.ingress.whapi.MANTIS-M72HC.labels.post", envelope.TimeReceived},
		{"groups.post_new-group.json", "wahook.ingress.whapi.MANTIS-M72HC.groups.post", ""},
	} {
		p.post("/v1/webhooks/whapi", p.fixture("whapi", tc.fixture))
		m, err := s.GetLastMsgForSubject(ctx, tc.subject)
		if err != nil {
			t.Fatalf("%s: %v", tc.subject, err)
		}
		if got := m.Header.Get("ce-" + envelope.ExtTimeSource); got != tc.want {
			t.Errorf("%s: ce-timesource = %q, want %q", tc.fixture, got, tc.want)
		}
	}
}
