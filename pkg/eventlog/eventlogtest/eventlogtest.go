// Package eventlogtest is the scaffold the tests of the stream readers
// share (pkg/eventlog, pkg/redrive, services/tail): a Kafka on kfake,
// deliveries through the real ingress handler, sample events and a
// deadline-bound wait.
package eventlogtest

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

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/kafkabroker"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/ingress"
	"github.com/wahook/wahook/pkg/provider/all"
)

// TwoPatches is a Whapi chats.patch delivery of two chats, shaped like the
// documented one (README's quickstart; whapi-openapi-1.8.7.yaml,
// ChatsUpdates): on each, label 3 taken off and label 76 put on.
const TwoPatches = `{"chats_updates": [
  {"before_update": {"id": "120363398750933550@g.us", "type": "group", "timestamp": 1747391325, "labels": [{"id": "3", "name": "Pending payment", "color": "salmon"}]},
   "after_update":  {"id": "120363398750933550@g.us", "type": "group", "timestamp": 1747391325, "labels": [{"id": "76", "name": "New order", "color": "gold"}]},
   "changes": ["labels"]},
  {"before_update": {"id": "5511999990000@s.whatsapp.net", "type": "contact", "timestamp": 1747391326, "labels": [{"id": "3", "name": "Pending payment", "color": "salmon"}]},
   "after_update":  {"id": "5511999990000@s.whatsapp.net", "type": "contact", "timestamp": 1747391326, "labels": [{"id": "76", "name": "New order", "color": "gold"}]},
   "changes": ["labels"]}],
 "event": {"type": "chats", "event": "patch"}, "channel_id": "MANTIS-M72HC"}`

// Kafka starts a kfake cluster of one broker and 2 partitions a topic, and
// connects a broker to it over TCP; both stop when the test ends.
func Kafka(t *testing.T) (*kfake.Cluster, *kafkabroker.Broker) {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(2), kfake.GroupMinSessionTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatalf("eventlogtest: kfake.NewCluster: %v", err)
	}
	t.Cleanup(cluster.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	kb, err := kafkabroker.Connect(ctx, kafkabroker.Config{Brokers: cluster.ListenAddrs(), Topics: kafkabroker.TopicsConfig{Partitions: 2},
		Subscribe: kafkabroker.SubscribeConfig{SessionTimeout: 3 * time.Second, HeartbeatInterval: 300 * time.Millisecond,
			RebalanceTimeout: 10 * time.Second, JoinGroupBackoff: 300 * time.Millisecond, RetryMax: time.Second, ShutdownGrace: 5 * time.Second}})
	if err != nil {
		t.Fatalf("eventlogtest: kafkabroker.Connect: %v", err)
	}
	t.Cleanup(func() { _ = kb.Close(context.Background()) })
	return cluster, kb
}

// Deliver posts body to path on an ingress publishing to pub that takes
// at most maxItems items, and returns the answer's code and ids.
func Deliver(t *testing.T, pub broker.Publisher, b envelope.Binding, maxItems int, path, body string) (int, []string) {
	t.Helper()
	h, err := ingress.New(ingress.Config{Providers: all.Providers(), AuthDisabled: true, Publisher: pub, Binding: b,
		MaxItems: maxItems, Metrics: ingress.NewMetrics(prometheus.NewRegistry())}, nil)
	if err != nil {
		t.Fatalf("eventlogtest: ingress.New: %v", err)
	}
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(rec, req)
	var got struct{ IDs []string }
	_ = json.Unmarshal(rec.Body.Bytes(), &got)
	return rec.Code, got.IDs
}

// Chats the sample events are about.
const ChatA, ChatB = "5511999990000@s.whatsapp.net", "120363398750933550@g.us"

// Sample is, on binding b: a raw event about each of two chats (ids raw-a,
// raw-b; raw-a of request id req-a), a label event derived from raw-a about
// chat A (derived-a) and a dead letter of zapi.
func Sample(t *testing.T, b envelope.Binding) []broker.Message {
	t.Helper()
	at := time.Unix(1747391325, 0)
	rawA := envelope.Raw{ID: "raw-a", Provider: "whapi", Channel: "CH", Kind: "chats.patch", Chat: ChatA, Time: at, RequestID: "req-a", Data: []byte(`{"id": "a"}`)}
	rawB := envelope.Raw{ID: "raw-b", Provider: "whapi", Channel: "CH", Kind: "messages.post", Chat: ChatB, Time: at, Data: []byte(`{"id":"b"}`)}
	src, err := envelope.DecodeRaw(envelope.Ingress(rawA, b), b)
	if err != nil {
		t.Fatalf("eventlogtest: DecodeRaw: %v", err)
	}
	added, err := envelope.Derived(derive.Event{ID: "derived-a", Stream: derive.LabelChanged, Type: "io.wahook.label.added", Subject: ChatA,
		Data: derive.ChatRef{ChatID: ChatA}}, src, b)
	if err != nil {
		t.Fatalf("eventlogtest: Derived: %v", err)
	}
	dl := envelope.DeadLetter{Reason: "bad", Provider: "zapi", ReceivedAt: at}
	dl.SetBody([]byte("not json"))
	dead, err := envelope.DeadLetterMessage(dl, b)
	if err != nil {
		t.Fatalf("eventlogtest: DeadLetterMessage: %v", err)
	}
	return []broker.Message{envelope.Ingress(rawA, b), envelope.Ingress(rawB, b), added, dead}
}

// WaitFor polls cond until it holds, failing the test after 20 s.
func WaitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
