package ingress_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/kafkabroker"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/ingress"
	"github.com/wahook/wahook/pkg/provider/all"
)

// TestKafkaRefusals runs the channel, kind and item bounds on Kafka (kfake
// over TCP): the same answers, dead letters on wahook.deadletter without
// the refused channel, raw events on wahook.ingress only for the 200s.
func TestKafkaRefusals(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(kafkabroker.DefaultPartitions))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	br, err := kafkabroker.Connect(ctx, kafkabroker.Config{Brokers: c.ListenAddrs(), Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = br.Close(context.Background()) })
	h, err := ingress.New(ingress.Config{
		Providers: all.Providers(), AuthDisabled: true, Publisher: br, Binding: envelope.Kafka,
		MaxItems: 5, Metrics: ingress.NewMetrics(prometheus.NewRegistry()),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	e := &env{t: t, srv: srv}

	refused := map[string]bool{} // dead-letter bodies expected
	for name, d := range channelBodies(strings.Repeat("A", 4096), 0) {
		a := e.post(d.path, []byte(d.body))
		if a.status != http.StatusBadRequest || a.errorCode(t) != "invalid_channel" {
			t.Errorf("%s = %d %s; want 400 invalid_channel", name, a.status, a.body)
		}
		refused[d.body] = true
	}
	many := `{"messages":[{"id":"1"},{"id":"2"},{"id":"3"},{"id":"4"},{"id":"5"},{"id":"6"}],"event":{"type":"messages","event":"post"},"channel_id":"CH"}`
	if a := e.post("/v1/webhooks/whapi", []byte(many)); a.status != http.StatusBadRequest || a.errorCode(t) != "too_many_items" {
		t.Errorf("six items = %d %s; want 400 too_many_items", a.status, a.body)
	}
	refused[many] = true
	a := e.post("/v1/webhooks/waha", []byte(`{"id":"evt_k","event":"label.*.`+strings.Repeat("x", 100)+`","session":"default","payload":{}}`))
	if a.status != http.StatusOK {
		t.Fatalf("WAHA event with a wildcard = %d %s", a.status, a.body)
	}
	_, ids := a.accepted(t)

	raw := kafkaRecords(t, c, envelope.IngressTopic)
	if len(raw) != 1 || string(raw[0].Key) != "waha/default" {
		t.Fatalf("raw records = %d; want the one accepted", len(raw))
	}
	ev, err := envelope.Decode(kafkaMessage(raw[0]), envelope.Kafka)
	if err != nil || ev.ID() != ids[0] || ev.Type() != "io.wahook.ingress.waha.unknown" {
		t.Errorf("raw record = %v, %v; want id %s of kind unknown", ev, err, ids[0])
	}
	for _, r := range kafkaRecords(t, c, envelope.DeadLetterTopic) {
		m := kafkaMessage(r)
		if m.Header.Get("ce_channel") != "" {
			t.Errorf("dead letter names channel %.20q", m.Header.Get("ce_channel"))
		}
		ev, err := envelope.Decode(m, envelope.Kafka)
		if err != nil {
			t.Fatal(err)
		}
		var dl envelope.DeadLetter
		if err := json.Unmarshal(ev.Data(), &dl); err != nil || dl.Body == nil || !refused[*dl.Body] {
			t.Errorf("dead letter %+v is not one of the refused bodies", dl)
			continue
		}
		delete(refused, *dl.Body)
	}
	if len(refused) != 0 {
		t.Errorf("%d refused bodies not dead-lettered", len(refused))
	}
}

// kafkaRecords reads every record of topic, each partition to its high
// watermark, with another client (franz-go) and no group.
func kafkaRecords(t *testing.T, c *kfake.Cluster, topic string) []*kgo.Record {
	t.Helper()
	ends := map[int32]int64{}
	starts := map[int32]kgo.Offset{}
	for _, pi := range c.PartitionInfos(topic) {
		if pi.HighWatermark > pi.LogStartOffset {
			ends[pi.Partition] = pi.HighWatermark
			starts[pi.Partition] = kgo.NewOffset().AtStart()
		}
	}
	if len(ends) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: starts}), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []*kgo.Record
	for pending := len(ends); pending > 0; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("reading %s: %d partitions not read to their end", topic, pending)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if end := ends[r.Partition]; r.Offset < end {
				out = append(out, r)
				if r.Offset == end-1 {
					pending--
				}
			}
		})
	}
	return out
}

func kafkaMessage(r *kgo.Record) broker.Message {
	h := broker.Header{}
	for _, rh := range r.Headers {
		h[rh.Key] = append(h[rh.Key], string(rh.Value))
	}
	return broker.Message{Topic: r.Topic, Key: string(r.Key), Header: h, Data: r.Value}
}
