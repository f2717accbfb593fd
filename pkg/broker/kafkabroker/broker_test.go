package kafkabroker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/kafkabroker"
)

// readTopic reads n records of topic from the beginning with franz-go, a
// client independent of the one under test.
func readTopic(t *testing.T, addrs []string, topic string, n int) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatalf("kgo.NewClient: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s before the deadline", len(out), n, topic)
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.Logf("fetch %s/%d: %v", topic, p, err)
		})
		out = append(out, fs.Records()...)
	}
	return out
}

// topicPartitions returns the partition count of each topic that exists.
func topicPartitions(t *testing.T, addrs []string, topics ...string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := kafka.DialContext(ctx, "tcp", addrs[0])
	if err != nil {
		t.Fatalf("kafka.Dial: %v", err)
	}
	defer conn.Close()
	parts, err := conn.ReadPartitions(topics...)
	if err != nil {
		t.Fatalf("ReadPartitions(%v): %v", topics, err)
	}
	out := map[string]int{}
	for _, p := range parts {
		out[p.Topic]++
	}
	return out
}

func TestEnsureTopics(t *testing.T) {
	c := startCluster(t)
	addrs := c.ListenAddrs()
	// A topic that exists beforehand is left as it is.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	cl := &kafka.Client{Addr: kafka.TCP(addrs...)}
	resp, err := cl.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{
		{Topic: kafkabroker.CallTopic, NumPartitions: 2, ReplicationFactor: 1},
	}})
	if err != nil || resp.Errors[kafkabroker.CallTopic] != nil {
		t.Fatalf("CreateTopics(%s) = %v, %v", kafkabroker.CallTopic, resp, err)
	}

	b := connect(t, c, kafkabroker.Config{Topics: kafkabroker.TopicsConfig{Partitions: 3}})
	for i := range 2 {
		if err := b.EnsureTopics(ctx); err != nil {
			t.Fatalf("EnsureTopics (call %d after Connect): %v", i+1, err)
		}
	}
	// A second process ensures the same topics.
	connect(t, c, kafkabroker.Config{Topics: kafkabroker.TopicsConfig{Partitions: 5}})

	want := map[string]int{}
	for _, topic := range kafkabroker.Topics() {
		want[topic] = 3
	}
	want[kafkabroker.CallTopic] = 2
	if diff := cmp.Diff(want, topicPartitions(t, addrs, kafkabroker.Topics()...)); diff != "" {
		t.Errorf("partitions per topic mismatch (-want +got):\n%s", diff)
	}
	if err := b.Ready(ctx); err != nil {
		t.Errorf("Ready: %v", err)
	}
}

func TestTopicConfigs(t *testing.T) {
	cfg := kafkabroker.TopicsConfig{Partitions: 6, ReplicationFactor: 3, MinInSyncReplicas: 2, MaxMessageBytes: 1 << 20,
		IngressRetention: time.Hour, DeadLetterRetention: -1, DerivedRetention: 2 * time.Hour}
	got := map[string]map[string]string{}
	for _, tc := range cfg.TopicConfigs() {
		if tc.NumPartitions != 6 || tc.ReplicationFactor != 3 {
			t.Errorf("topic %s: %d partitions, replication %d; want 6, 3", tc.Topic, tc.NumPartitions, tc.ReplicationFactor)
		}
		got[tc.Topic] = map[string]string{}
		for _, e := range tc.ConfigEntries {
			got[tc.Topic][e.ConfigName] = e.ConfigValue
		}
	}
	entries := func(retention string) map[string]string {
		return map[string]string{"cleanup.policy": "delete", "retention.ms": retention,
			"max.message.bytes": "1048576", "min.insync.replicas": "2"}
	}
	want := map[string]map[string]string{
		kafkabroker.IngressTopic:           entries("3600000"),
		kafkabroker.DeadLetterTopic:        entries("-1"),
		kafkabroker.LabelChangedTopic:      entries("7200000"),
		kafkabroker.ChatCreatedTopic:       entries("7200000"),
		kafkabroker.CallTopic:              entries("7200000"),
		kafkabroker.GroupNotificationTopic: entries("7200000"),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("TopicConfigs() mismatch (-want +got):\n%s", diff)
	}
}

func TestConfigValidate(t *testing.T) {
	for name, cfg := range map[string]kafkabroker.Config{
		"no brokers":          {},
		"broker without port": {Brokers: []string{"localhost"}},
		"heartbeat too long": {Brokers: []string{"localhost:9092"},
			Subscribe: kafkabroker.SubscribeConfig{SessionTimeout: time.Second, HeartbeatInterval: 2 * time.Second}},
		"min isr above replication": {Brokers: []string{"localhost:9092"},
			Topics: kafkabroker.TopicsConfig{ReplicationFactor: 1, MinInSyncReplicas: 2}},
		"retry max below min": {Brokers: []string{"localhost:9092"},
			Subscribe: kafkabroker.SubscribeConfig{RetryMin: time.Second, RetryMax: time.Millisecond}},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if b, err := kafkabroker.Connect(ctx, cfg); err == nil || errors.Is(err, broker.ErrUnavailable) {
				if b != nil {
					_ = b.Close(ctx)
				}
				t.Errorf("Connect(%+v) = %v, want a configuration error", cfg, err)
			}
		})
	}
}

func TestPublishReadBack(t *testing.T) {
	c := startCluster(t)
	b := connect(t, c, kafkabroker.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	var msgs []broker.Message
	for i := range 40 {
		msgs = append(msgs, broker.Message{
			Topic:   kafkabroker.IngressTopic,
			Subject: "wahook.ingress.whapi.CH.messages",
			Key:     fmt.Sprintf("whapi/CH/chat-%d@s.whatsapp.net", i%7),
			ID:      fmt.Sprintf("id-%02d", i),
			Header:  broker.Header{"b-multi": {"1", "2"}, "a-single": {fmt.Sprint(i)}},
			Data:    fmt.Appendf(nil, `{"n":%d}`, i),
		})
	}
	// One message carries its own ce_id: it is kept.
	msgs[3].Header[kafkabroker.IDHeader] = []string{msgs[3].ID}
	if err := b.Publish(ctx, msgs...); err != nil {
		t.Fatalf("Publish(%d msgs): %v", len(msgs), err)
	}

	type rec struct {
		Key       string
		Headers   []string
		Value     string
		Partition int32
	}
	// The Java client's default partitioner, as franz-go implements it.
	part := kgo.StickyKeyPartitioner(nil).ForTopic(kafkabroker.IngressTopic)
	var want []rec
	for i, m := range msgs {
		// Headers in name order, after the id Publish adds.
		hs := []string{"ce_id=" + m.ID, "a-single=" + m.Header.Get("a-single"), "b-multi=1", "b-multi=2"}
		if i == 3 {
			hs = append(hs[1:], hs[0])
		}
		want = append(want, rec{
			Key:       m.Key,
			Headers:   hs,
			Value:     string(m.Data),
			Partition: int32(part.Partition(&kgo.Record{Key: []byte(m.Key)}, testPartitions)),
		})
	}
	var got []rec
	for _, r := range readTopic(t, c.ListenAddrs(), kafkabroker.IngressTopic, len(msgs)) {
		var hs []string
		for _, h := range r.Headers {
			hs = append(hs, h.Key+"="+string(h.Value))
		}
		got = append(got, rec{Key: string(r.Key), Headers: hs, Value: string(r.Value), Partition: r.Partition})
	}
	sortRecs := func(rs []rec) {
		sort.Slice(rs, func(i, j int) bool { return rs[i].Value < rs[j].Value })
	}
	sortRecs(want)
	sortRecs(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records after Publish mismatch (-want +got):\n%s", diff)
	}
	if _, ok := msgs[5].Header[kafkabroker.IDHeader]; ok {
		t.Errorf("Publish wrote %s into the caller's header", kafkabroker.IDHeader)
	}
}

func TestPublishUnavailable(t *testing.T) {
	c := startCluster(t)
	b := connect(t, c, kafkabroker.Config{PublishTimeout: 2 * time.Second})
	msg := broker.Message{Topic: kafkabroker.IngressTopic, Key: "k", ID: "id-1", Data: []byte(`{}`)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Publish(ctx, msg); err != nil {
		t.Fatalf("Publish while the cluster runs: %v", err)
	}
	start := time.Now()
	c.Close()
	t.Logf("cluster closed in %s", time.Since(start))

	for name, timeout := range map[string]time.Duration{"ctx deadline": 2 * time.Second, "PublishTimeout": 0} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			if timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, timeout)
				defer cancel()
			}
			start := time.Now()
			err := b.Publish(ctx, msg)
			if took := time.Since(start); took > 4*time.Second {
				t.Errorf("Publish with the cluster gone took %s, want about 2s at most", took)
			}
			if !errors.Is(err, broker.ErrUnavailable) {
				t.Errorf("Publish with the cluster gone = %v, want ErrUnavailable", err)
			}
		})
	}
	rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer rcancel()
	start = time.Now()
	if err := b.Ready(rctx); !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Ready with the cluster gone = %v, want ErrUnavailable", err)
	}
	t.Logf("Ready took %s", time.Since(start))
}

func TestPublishErrors(t *testing.T) {
	c := startCluster(t)
	b := connect(t, c, kafkabroker.Config{Topics: kafkabroker.TopicsConfig{MaxMessageBytes: 64 << 10}})
	ok := broker.Message{Topic: kafkabroker.IngressTopic, Key: "k", ID: "ok", Data: []byte(`{}`)}

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Publish(cancelled, ok); !errors.Is(err, context.Canceled) || errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Publish(cancelled ctx) = %v, want context.Canceled without ErrUnavailable", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	for name, tc := range map[string]struct {
		msg  broker.Message
		want error
	}{
		"unknown topic": {broker.Message{Topic: "wahook.nope", Key: "k", Data: []byte(`{}`)}, kafkabroker.ErrUnknownTopic},
		"too large":     {broker.Message{Topic: kafkabroker.IngressTopic, Key: "k", Data: bytes.Repeat([]byte("x"), 100<<10)}, broker.ErrTooLarge},
		"no topic":      {broker.Message{Key: "k", Data: []byte(`{}`)}, nil},
	} {
		t.Run(name, func(t *testing.T) {
			err := b.Publish(ctx, tc.msg)
			if err == nil || errors.Is(err, broker.ErrUnavailable) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Errorf("Publish = %v, want an error wrapping %v and not ErrUnavailable", err, tc.want)
			}
		})
	}
	// The writer is still usable.
	if err := b.Publish(ctx, ok); err != nil {
		t.Errorf("Publish after refused messages: %v", err)
	}

	if err := b.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := b.Publish(ctx, ok); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Publish after Close = %v, want ErrClosed", err)
	}
	if err := b.Subscribe(ctx, broker.Subscription{Topic: kafkabroker.IngressTopic, Group: "g"},
		func(context.Context, broker.Received) error { return nil }); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Subscribe after Close = %v, want ErrClosed", err)
	}
	if err := b.Ready(ctx); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Ready after Close = %v, want ErrClosed", err)
	}
}

func TestConnectUnreachable(t *testing.T) {
	// A port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("net.Listen: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	b, err := kafkabroker.Connect(ctx, kafkabroker.Config{Brokers: []string{addr}})
	if err == nil {
		_ = b.Close(ctx)
	}
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Connect(%s) = %v, want ErrUnavailable", addr, err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Connect(%s) took %s, want at most its ctx's 3s", addr, took)
	}
}

func TestSubscribeUnknownTopic(t *testing.T) {
	c := startCluster(t)
	b := connect(t, c, kafkabroker.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := b.Subscribe(ctx, broker.Subscription{Topic: "wahook.nope", Group: "g"},
		func(context.Context, broker.Received) error { return nil })
	if !errors.Is(err, kafkabroker.ErrUnknownTopic) || ctx.Err() != nil {
		t.Errorf("Subscribe(unknown topic) = %v, want ErrUnknownTopic at once", err)
	}
}
