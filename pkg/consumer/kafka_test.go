package consumer_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/kafkabroker"
	"github.com/wahook/wahook/pkg/consumer"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/derive/label"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/provider/whapi"
)

// recording is a publisher that remembers what it stored, by topic.
type recording struct {
	broker.Publisher
	mu     sync.Mutex
	topics map[string][]broker.Message
}

func (r *recording) Publish(ctx context.Context, msgs ...broker.Message) error {
	if err := r.Publisher.Publish(ctx, msgs...); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range msgs {
		r.topics[m.Topic] = append(r.topics[m.Topic], m)
	}
	return nil
}

func (r *recording) of(topic string) []broker.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.topics[topic])
}

// TestKafkaSkipsKindsNotRead runs the label-changed consumer on Kafka
// (kfake over TCP), where the broker cannot filter: records of kinds the
// stream does not read are committed by their ce_type header without being
// decoded, even one whose other headers and body no consumer could read;
// the others are derived, or dead-lettered when unreadable, as before. A
// later run of the group gets nothing again.
func TestKafkaSkipsKindsNotRead(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(2), kfake.GroupMinSessionTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatalf("kfake.NewCluster: %v", err)
	}
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := kafkabroker.Connect(ctx, kafkabroker.Config{
		Brokers: c.ListenAddrs(), Topics: kafkabroker.TopicsConfig{Partitions: 2},
		Subscribe: kafkabroker.SubscribeConfig{SessionTimeout: 3 * time.Second, HeartbeatInterval: 300 * time.Millisecond,
			RebalanceTimeout: 10 * time.Second, JoinGroupBackoff: 300 * time.Millisecond, RetryMax: time.Second, ShutdownGrace: 5 * time.Second},
	})
	if err != nil {
		t.Fatalf("kafkabroker.Connect: %v", err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })

	read := []envelope.Raw{chatsPatch("patch-1", 1, 1, 2), chatsPatch("patch-2", 2, 1, 2)}
	bad := envelope.Raw{ID: "patch-bad", Provider: "whapi", Channel: "CH", Kind: whapi.KindChatsPatch, Time: time.Unix(1747391325, 0), Data: []byte(`"nope"`)}
	unread := []envelope.Raw{messagesPost("msg-1", 1), statusesPost("status-1", 2), messagesPost("msg-2", 2)}
	var msgs []broker.Message
	for _, r := range append(append(slices.Clone(read), bad), unread...) {
		msgs = append(msgs, envelope.Ingress(r, envelope.Kafka))
	}
	// Its type says statuses.post; nothing else about it is a raw event.
	garbled := broker.Message{Topic: envelope.IngressTopic, Key: "whapi/CH", ID: "garbled", Data: []byte("\xff not JSON"),
		Header: broker.Header{"ce_type": {envelope.IngressTypePrefix + "whapi.statuses.post"}, "ce_provider": {"whapi"}}}
	msgs = append(msgs, garbled)
	for _, m := range msgs {
		if err := b.Publish(ctx, m); err != nil {
			t.Fatalf("Publish(%s): %v", m.ID, err)
		}
	}

	pub := &recording{Publisher: b, topics: map[string][]broker.Message{}}
	reg := prometheus.NewRegistry()
	metrics := consumer.NewMetrics(reg)
	start := func() (stop func()) {
		cons, err := consumer.New(consumer.Config{
			Deriver: label.Deriver{Registry: derivetest.NewLabelRegistry()}, Providers: allProviders,
			Subscriber: b, Publisher: pub, Binding: envelope.Kafka, Metrics: metrics,
		})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- cons.Run(rctx) }()
		return func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		}
	}
	stop := start()
	waitFor(t, "every record settled", func() bool {
		o := outcomes(t, reg)
		return o["derived"] == 2 && o["dead_lettered"] == 1 && o["not_read"] == 4
	})
	stop()

	if o := outcomes(t, reg); o["skipped"] != 0 || o["error"] != 0 || len(o) != 3 {
		t.Errorf("outcomes %v, want 2 derived, 1 dead-lettered, 4 not read", o)
	}
	var dead []string
	for _, m := range pub.of(envelope.DeadLetterTopic) {
		_, d, err := envelope.DecodeDeadLetter(m, envelope.Kafka)
		if err != nil {
			t.Fatal(err)
		}
		dead = append(dead, d.SourceEventID)
	}
	if !slices.Equal(dead, []string{bad.ID}) {
		t.Errorf("dead letters of %q, want only %s's", dead, bad.ID)
	}
	if n := len(pub.of(envelope.DerivedTopic(derive.LabelChanged))); n != 4 {
		t.Errorf("%d label events, want 4 (one added and one removed per chats.patch)", n)
	}

	// The group committed past the records it passed over: run again, it
	// gets a chats.patch published since and nothing before.
	if err := b.Publish(ctx, envelope.Ingress(chatsPatch("patch-3", 3, 1, 2), envelope.Kafka)); err != nil {
		t.Fatal(err)
	}
	stop = start()
	waitFor(t, "the new chats.patch derived", func() bool { return outcomes(t, reg)["derived"] == 3 })
	time.Sleep(500 * time.Millisecond)
	stop()
	if o := outcomes(t, reg); o["derived"] != 3 || o["dead_lettered"] != 1 || o["not_read"] != 4 || len(o) != 3 {
		t.Errorf("outcomes after the group ran again %v: records were delivered again", o)
	}
}
