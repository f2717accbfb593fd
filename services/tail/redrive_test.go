package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/consumer"
	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/derive/label"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/eventlog"
	"github.com/wahook/wahook/pkg/eventlog/eventlogtest"
	"github.com/wahook/wahook/pkg/provider/all"
	"github.com/wahook/wahook/pkg/redrive"
)

// redriveRun runs `tail redrive` with args and returns its lines.
func redriveRun(t *testing.T, ctx context.Context, args ...string) ([]redrive.Result, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(ctx, append([]string{"redrive"}, args...), &out)
	var lines []redrive.Result
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if l == "" {
			continue
		}
		var rl redrive.Result
		if err := json.Unmarshal([]byte(l), &rl); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		lines = append(lines, rl)
	}
	return lines, err
}

// stored reads what is stored on subject (NATS) or topic (Kafka) up to
// now, with tail's connection, as CloudEvent ids.
func stored(t *testing.T, ctx context.Context, c conn, subject string) []string {
	t.Helper()
	l, closeLog, err := c.eventLog(eventlog.WithNATSSubject(subject), eventlog.WithKafkaTopics(subject))
	if err != nil {
		t.Fatal(err)
	}
	defer closeLog()
	var ids []string
	if _, err := l.Scan(ctx, eventlog.Query{}, func(r eventlog.Record) error {
		ids = append(ids, r.Event.ID())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return ids
}

func actions(lines []redrive.Result) []string {
	var a []string
	for _, l := range lines {
		a = append(a, l.Action)
	}
	return a
}

// TestRedriveNATS: a delivery dead-lettered for having more items than the
// ingress took is redriven once the limit is raised: its raw events are
// those the ingress gives the same body, the label-changed consumer
// derives from them once, and redriving again stores nothing new.
func TestRedriveNATS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	emb, err := natsbroker.StartEmbedded(ctx, natsbroker.EmbeddedConfig{Addr: "127.0.0.1:-1", StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Shutdown(context.Background())
	if _, err := emb.WriteContext(filepath.Join(dir, natsbroker.ContextFile)); err != nil {
		t.Fatal(err)
	}
	nb, err := natsbroker.Connect(ctx, natsbroker.Config{Embedded: emb})
	if err != nil {
		t.Fatal(err)
	}
	defer nb.Close(context.Background())

	if code, _ := eventlogtest.Deliver(t, nb, envelope.NATS, 1, "/v1/webhooks/whapi", eventlogtest.TwoPatches); code != http.StatusBadRequest {
		t.Fatalf("delivery of 2 items to an ingress taking 1: %d, want 400", code)
	}
	reg := prometheus.NewRegistry()
	cons, err := consumer.New(consumer.Config{Deriver: label.Deriver{Registry: derivetest.NewLabelRegistry()}, Providers: all.Providers(),
		Subscriber: nb, Publisher: nb, Binding: envelope.NATS, Metrics: consumer.NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	cctx, stopCons := context.WithCancel(ctx)
	consDone := make(chan error, 1)
	go func() { consDone <- cons.Run(cctx) }()
	defer func() { stopCons(); <-consDone }()

	c := conn{broker: "nats", dataDir: dir}
	if err := c.check(); err != nil {
		t.Fatal(err)
	}
	args := []string{"-data-dir", dir}
	dry, err := redriveRun(t, ctx, append(args, "-dry-run")...)
	if err != nil || !slices.Equal(actions(dry), []string{"would_redrive"}) || len(dry[0].IDs) != 2 {
		t.Fatalf("dry run: %+v, %v; want one would_redrive of 2 ids", dry, err)
	}
	if raw := stored(t, ctx, c, "wahook.ingress.>"); len(raw) != 0 {
		t.Fatalf("dry run stored %v", raw)
	}

	first, err := redriveRun(t, ctx, args...)
	if err != nil || !slices.Equal(actions(first), []string{"redriven"}) || !slices.Equal(first[0].IDs, dry[0].IDs) {
		t.Fatalf("redrive: %+v, %v; want the dry run's ids redriven", first, err)
	}
	raw := stored(t, ctx, c, "wahook.ingress.>")
	if !slices.Equal(raw, first[0].IDs) {
		t.Fatalf("raw events %v, want %v", raw, first[0].IDs)
	}
	// The ingress gives the same body the same ids: a provider's retry
	// after the redrive stores nothing either.
	if code, ids := eventlogtest.Deliver(t, nb, envelope.NATS, 1000, "/v1/webhooks/whapi", eventlogtest.TwoPatches); code != http.StatusOK || !slices.Equal(ids, raw) {
		t.Fatalf("the same delivery to the ingress: %d %v, want 200 %v", code, ids, raw)
	}
	derived := func() []string { return stored(t, ctx, c, "wahook.label-changed.>") }
	eventlogtest.WaitFor(t, "4 label events derived", func() bool { return len(derived()) == 4 })

	again, err := redriveRun(t, ctx, args...)
	if err != nil || !slices.Equal(actions(again), []string{"already_redriven"}) {
		t.Fatalf("second redrive: %+v, %v; want already_redriven", again, err)
	}
	forced, err := redriveRun(t, ctx, append(args, "-force")...)
	if err != nil || !slices.Equal(actions(forced), []string{"redriven"}) || !slices.Equal(forced[0].IDs, raw) {
		t.Fatalf("forced redrive: %+v, %v", forced, err)
	}
	if got := stored(t, ctx, c, "wahook.ingress.>"); !slices.Equal(got, raw) {
		t.Errorf("raw events after redriving again %v, want %v once", got, raw)
	}
	// The consumer has nothing more: what it derived stays 4 events.
	idle := consumerIdle(t, reg)
	if n := len(derived()); n != 4 || !idle {
		t.Errorf("%d label events after redriving again, want 4", n)
	}
}

// consumerIdle reports whether the consumer holds no raw event.
func consumerIdle(t *testing.T, reg *prometheus.Registry) bool {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "wahook_consumer_pending_events" {
			for _, m := range mf.GetMetric() {
				if m.GetGauge().GetValue() != 0 {
					return false
				}
			}
		}
	}
	return true
}

// TestRedriveRefuses: a consumer's dead letter (its raw event is in the
// raw stream: replay it), a body in parts with a part lost, and a body the
// provider still refuses are not redriven, and each says why; the others
// in the same run are.
func TestRedriveRefuses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	emb, err := natsbroker.StartEmbedded(ctx, natsbroker.EmbeddedConfig{Addr: "127.0.0.1:-1", StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Shutdown(context.Background())
	if _, err := emb.WriteContext(filepath.Join(dir, natsbroker.ContextFile)); err != nil {
		t.Fatal(err)
	}
	nb, err := natsbroker.Connect(ctx, natsbroker.Config{Embedded: emb})
	if err != nil {
		t.Fatal(err)
	}
	defer nb.Close(context.Background())

	now := time.Now().UTC()
	publish := func(d envelope.DeadLetter, limit int, drop int) {
		t.Helper()
		msgs, err := envelope.DeadLetterMessages(d, envelope.NATS, limit)
		if err != nil {
			t.Fatal(err)
		}
		if limit > 0 && len(msgs) < 2 {
			t.Fatalf("dead letter %q in %d message, want parts", d.Reason, len(msgs))
		}
		if drop >= 0 {
			msgs = slices.Delete(msgs, drop, drop+1)
		}
		for _, m := range msgs {
			if err := nb.Publish(ctx, m); err != nil {
				t.Fatal(err)
			}
		}
	}
	fromConsumer := envelope.DeadLetter{Reason: "label-changed: bad", Provider: "unknown", Channel: "MANTIS-M72HC", ReceivedAt: now, SourceEventID: "abc"}
	fromConsumer.SetBody([]byte(`{"id":"1"}`))
	publish(fromConsumer, 0, -1)
	lost := envelope.DeadLetter{Reason: "delivery has more than 1 items", Provider: "whapi", ReceivedAt: now, Method: "POST", Path: "/v1/webhooks/whapi"}
	lost.SetBody([]byte(eventlogtest.TwoPatches))
	publish(lost, 1200, 0)
	notJSON := envelope.DeadLetter{Reason: "not JSON", Provider: "zapi", ReceivedAt: now, Method: "POST", Path: "/v1/webhooks/zapi"}
	notJSON.SetBody([]byte("{not json"))
	publish(notJSON, 0, -1)
	good := envelope.DeadLetter{Reason: "delivery has more than 1 items", Provider: "whapi", ReceivedAt: now, Method: "POST", Path: "/v1/webhooks/whapi",
		Headers: map[string]string{"Content-Type": "application/json"}}
	good.SetBody([]byte(strings.ReplaceAll(eventlogtest.TwoPatches, "MANTIS-M72HC", "OTHER")))
	publish(good, 1200, -1) // in parts, put back together

	lines, err := redriveRun(t, ctx, "-data-dir", dir)
	if err == nil || !strings.Contains(err.Error(), "3 dead letters refused") {
		t.Errorf("redrive error %v, want 3 refused", err)
	}
	want := []struct{ action, why string }{
		{"refused", "re-derive it by replaying"},
		{"refused", "body incomplete"},
		{"refused", "still invalid_payload"},
		{"redriven", ""},
	}
	if len(lines) != len(want) {
		t.Fatalf("lines %+v, want %d", lines, len(want))
	}
	for i, w := range want {
		if lines[i].Action != w.action || !strings.Contains(lines[i].Why, w.why) {
			t.Errorf("line %d: %s %q, want %s %q", i, lines[i].Action, lines[i].Why, w.action, w.why)
		}
	}
}

// TestRedriveKafka: the same on Kafka (kfake over TCP): redriven once and
// derived from, passed over the second time.
func TestRedriveKafka(t *testing.T) {
	cluster, kb := eventlogtest.Kafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if code, _ := eventlogtest.Deliver(t, kb, envelope.Kafka, 1, "/v1/webhooks/whapi", eventlogtest.TwoPatches); code != http.StatusBadRequest {
		t.Fatalf("delivery of 2 items to an ingress taking 1: %d, want 400", code)
	}
	cons, err := consumer.New(consumer.Config{Deriver: label.Deriver{Registry: derivetest.NewLabelRegistry()}, Providers: all.Providers(),
		Subscriber: kb, Publisher: kb, Binding: envelope.Kafka, Metrics: consumer.NewMetrics(prometheus.NewRegistry()),
		// A new group starts at the end unless given a time: from before the redrive, whenever it joins.
		StartTime: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	cctx, stopCons := context.WithCancel(ctx)
	consDone := make(chan error, 1)
	go func() { consDone <- cons.Run(cctx) }()
	defer func() { stopCons(); <-consDone }()
	brokers := strings.Join(cluster.ListenAddrs(), ",")
	c := conn{broker: "kafka", kafkaBrokers: brokers}
	args := []string{"-broker", "kafka", "-kafka-brokers", brokers}
	first, err := redriveRun(t, ctx, args...)
	if err != nil || !slices.Equal(actions(first), []string{"redriven"}) || len(first[0].IDs) != 2 {
		t.Fatalf("redrive: %+v, %v", first, err)
	}
	raw := stored(t, ctx, c, envelope.IngressTopic)
	slices.Sort(raw)
	want := slices.Sorted(slices.Values(first[0].IDs))
	if !slices.Equal(raw, want) {
		t.Fatalf("raw records %v, want %v", raw, want)
	}
	derived := func() []string { return stored(t, ctx, c, envelope.DerivedTopic("label-changed")) }
	eventlogtest.WaitFor(t, "4 label events derived", func() bool {
		select {
		case err := <-consDone:
			t.Fatalf("consumer: %v", err)
		default:
		}
		return len(derived()) == 4
	})
	again, err := redriveRun(t, ctx, args...)
	if err != nil || !slices.Equal(actions(again), []string{"already_redriven"}) {
		t.Fatalf("second redrive: %+v, %v; want already_redriven", again, err)
	}
	if got := stored(t, ctx, c, envelope.IngressTopic); len(got) != 2 {
		t.Errorf("raw records after the second redrive %v, want the 2 of the first", got)
	}
}
