package tracing_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/kafkabroker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/broker/natsbroker/natstest"
	"github.com/wahook/wahook/pkg/consumer"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/derive/label"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/ingress"
	"github.com/wahook/wahook/pkg/provider/all"
	"github.com/wahook/wahook/pkg/tracing"
)

// bus is a broker both publishing and consuming.
type bus interface {
	broker.Publisher
	broker.Subscriber
}

// pipeline is an ingress and the label-changed consumer on one broker, as
// services/ingress and services/deriver run them, with a tracer recording
// into exp when traced.
type pipeline struct {
	t       *testing.T
	srv     *httptest.Server
	exp     *tracetest.InMemoryExporter
	binding envelope.Binding
	logs    *observer.ObservedLogs

	mu       sync.Mutex
	received map[string]broker.Header // by raw event id: headers as the consumer got them
	derived  []broker.Message         // derived events as published
}

func startPipeline(t *testing.T, b bus, binding envelope.Binding, traced bool) *pipeline {
	t.Helper()
	p := &pipeline{t: t, binding: binding, received: map[string]broker.Header{}}
	var tracer *tracing.Tracer
	if traced {
		p.exp = tracetest.NewInMemoryExporter()
		tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(p.exp))
		t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
		tracer = tracing.New(tp)
	}
	core, logs := observer.New(zap.DebugLevel)
	p.logs = logs
	h, err := ingress.New(ingress.Config{
		Providers: all.Providers(), AuthDisabled: true, Publisher: b, Binding: binding,
		Metrics: ingress.NewMetrics(prometheus.NewRegistry()), Logger: zap.New(core).Named("ingress"),
		PublishTimeout: 30 * time.Second, Tracer: tracer,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.srv = httptest.NewServer(h)
	t.Cleanup(p.srv.Close)

	cons, err := consumer.New(consumer.Config{
		Deriver: label.Deriver{Registry: derivetest.NewLabelRegistry()}, Providers: all.Providers(),
		Subscriber: recordingSubscriber{b, p}, Publisher: recordingPublisher{b, p}, Binding: binding,
		Metrics: consumer.NewMetrics(prometheus.NewRegistry()), Logger: zap.New(core).Named("consumer"), Tracer: tracer,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cons.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("consumer Run: %v", err)
		}
	})
	return p
}

type recordingSubscriber struct {
	broker.Subscriber
	p *pipeline
}

func (r recordingSubscriber) Subscribe(ctx context.Context, s broker.Subscription, h broker.Handler) error {
	return r.Subscriber.Subscribe(ctx, s, func(ctx context.Context, m broker.Received) error {
		r.p.mu.Lock()
		r.p.received[m.Header.Get(headerName(r.p.binding, envelope.AttrID))] = m.Header
		r.p.mu.Unlock()
		return h(ctx, m)
	})
}

type recordingPublisher struct {
	broker.Publisher
	p *pipeline
}

func (r recordingPublisher) Publish(ctx context.Context, msgs ...broker.Message) error {
	if err := r.Publisher.Publish(ctx, msgs...); err != nil {
		return err
	}
	r.p.mu.Lock()
	defer r.p.mu.Unlock()
	for _, m := range msgs {
		if m.Topic == envelope.DerivedTopic(derive.LabelChanged) {
			r.p.derived = append(r.p.derived, m)
		}
	}
	return nil
}

// chatsPatch is a Whapi chats.patch, shaped like the provider's documented
// one (README quickstart): label 3 taken off group chat n, label 76 put on.
// It derives io.wahook.label.added and io.wahook.label.removed.
func chatsPatch(n int) []byte {
	chat := fmt.Sprintf("12036339875093%04d@g.us", n)
	return fmt.Appendf(nil, `{"chats_updates":[{`+
		`"before_update":{"id":%q,"type":"group","timestamp":1747391325,"labels":[{"id":"3","name":"Pending payment","color":"salmon"}]},`+
		`"after_update":{"id":%q,"type":"group","timestamp":1747391325,"labels":[{"id":"76","name":"New order","color":"gold"}]},`+
		`"changes":["labels"]}],"event":{"type":"chats","event":"patch"},"channel_id":"MANTIS-M72HC"}`, chat, chat)
}

// deliver posts a chats.patch with the headers given and returns the raw
// event id.
func (p *pipeline) deliver(n int, hdr map[string]string) string {
	p.t.Helper()
	req, err := http.NewRequest("POST", p.srv.URL+"/v1/webhooks/whapi", bytes.NewReader(chatsPatch(n)))
	if err != nil {
		p.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := p.srv.Client().Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer res.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(res.Body)
	if res.StatusCode != http.StatusOK {
		p.t.Fatalf("delivery = %d %s", res.StatusCode, buf.String())
	}
	i := strings.Index(buf.String(), `"ids":["`)
	if i < 0 {
		p.t.Fatalf("answer %s", buf.String())
	}
	return buf.String()[i+8 : i+8+32]
}

// wait waits for the raw event id to be derived: received by the
// consumer and its two derived events published.
func (p *pipeline) wait(id string) (raw broker.Header, derived []broker.Message) {
	p.t.Helper()
	waitFor(p.t, "raw event "+id+" derived", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		raw = p.received[id]
		derived = derived[:0]
		for _, m := range p.derived {
			if m.Header.Get(headerName(p.binding, envelope.ExtCausationID)) == id {
				derived = append(derived, m)
			}
		}
		return raw != nil && len(derived) == 2
	})
	return raw, derived
}

func headerName(b envelope.Binding, attr string) string { return b.Prefix + attr }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// carried is the span context a message's headers carry.
func carried(h broker.Header, b envelope.Binding) trace.SpanContext {
	ctx := propagation.TraceContext{}.Extract(context.Background(), envelope.TraceCarrier{Header: h, Binding: b})
	return trace.SpanContextFromContext(ctx)
}

// spansOf waits for the trace's spans to include the derived publish's and
// the consumer's (ended last) and returns them by name.
func (p *pipeline) spansOf(id trace.TraceID) map[string][]tracetest.SpanStub {
	p.t.Helper()
	var by map[string][]tracetest.SpanStub
	waitFor(p.t, "the consumer's spans", func() bool {
		by = map[string][]tracetest.SpanStub{}
		for _, s := range p.exp.GetSpans() {
			if s.SpanContext.TraceID() == id {
				by[s.Name] = append(by[s.Name], s)
			}
		}
		return len(by["process wahook.ingress"]) == 1 && len(by["send wahook.label-changed"]) == 1
	})
	return by
}

// checkTrace checks that one webhook is one trace: the delivery's server
// span (a child of parent when the request carried one), the raw publish,
// the consumer's processing, and the derived publish, each the parent of
// the next; and that the raw and derived events carry their producer
// spans' contexts. It returns the server and process spans.
func (p *pipeline) checkTrace(rawHdr broker.Header, derived []broker.Message, parent trace.SpanContext) (server, process tracetest.SpanStub) {
	t := p.t
	t.Helper()
	rawCtx := carried(rawHdr, p.binding)
	if !rawCtx.IsValid() {
		t.Fatalf("raw event carries no trace context: %v", rawHdr)
	}
	if parent.IsValid() && rawCtx.TraceID() != parent.TraceID() {
		t.Errorf("raw event's trace %s; want the request's %s", rawCtx.TraceID(), parent.TraceID())
	}
	by := p.spansOf(rawCtx.TraceID())
	one := func(name string, kind trace.SpanKind) tracetest.SpanStub {
		t.Helper()
		if len(by[name]) != 1 {
			t.Fatalf("%d spans %q in the trace; want 1 (spans: %v)", len(by[name]), name, names(by))
		}
		s := by[name][0]
		if s.SpanKind != kind {
			t.Errorf("span %q is %v; want %v", name, s.SpanKind, kind)
		}
		return s
	}
	server = one("POST /v1/webhooks/{provider}", trace.SpanKindServer)
	send := one("send wahook.ingress", trace.SpanKindProducer)
	process = one("process wahook.ingress", trace.SpanKindConsumer)
	dsend := one("send wahook.label-changed", trace.SpanKindClient)
	creates := by["create wahook.label-changed"]

	if parent.IsValid() {
		if server.Parent.SpanID() != parent.SpanID() || !server.Parent.IsRemote() {
			t.Errorf("server span's parent %v; want the request's remote %s", server.Parent, parent.SpanID())
		}
	} else if server.Parent.IsValid() {
		t.Errorf("server span of a request without traceparent has parent %v; want a new trace", server.Parent)
	}
	if send.Parent.SpanID() != server.SpanContext.SpanID() {
		t.Errorf("raw publish's parent %s; want the server span %s", send.Parent.SpanID(), server.SpanContext.SpanID())
	}
	if rawCtx.SpanID() != send.SpanContext.SpanID() {
		t.Errorf("raw event carries span %s; want its producer span %s", rawCtx.SpanID(), send.SpanContext.SpanID())
	}
	if process.Parent.SpanID() != send.SpanContext.SpanID() || !process.Parent.IsRemote() {
		t.Errorf("processing's parent %v; want the raw event's remote producer span %s", process.Parent, send.SpanContext.SpanID())
	}
	if len(process.Links) != 1 || process.Links[0].SpanContext.SpanID() != send.SpanContext.SpanID() {
		t.Errorf("processing's links %v; want one to the raw event's creation context", process.Links)
	}
	if len(creates) != 2 {
		t.Fatalf("%d create spans of derived events; want 2", len(creates))
	}
	var createIDs []trace.SpanID
	for _, c := range creates {
		if c.Parent.SpanID() != process.SpanContext.SpanID() || c.SpanKind != trace.SpanKindProducer {
			t.Errorf("derived create span %v, parent %s; want a producer under the processing", c.SpanKind, c.Parent.SpanID())
		}
		createIDs = append(createIDs, c.SpanContext.SpanID())
	}
	if dsend.Parent.SpanID() != process.SpanContext.SpanID() {
		t.Errorf("derived publish's parent %s; want the processing %s", dsend.Parent.SpanID(), process.SpanContext.SpanID())
	}
	var linked []trace.SpanID
	for _, l := range dsend.Links {
		linked = append(linked, l.SpanContext.SpanID())
	}
	if !sameSet(linked, createIDs) {
		t.Errorf("derived publish links %v; want the create spans %v", linked, createIDs)
	}
	for _, m := range derived {
		sc := carried(m.Header, p.binding)
		if sc.TraceID() != rawCtx.TraceID() || !slices.Contains(createIDs, sc.SpanID()) {
			t.Errorf("derived event %s carries %s-%s; want trace %s and its create span", m.ID, sc.TraceID(), sc.SpanID(), rawCtx.TraceID())
		}
	}
	return server, process
}

func names(by map[string][]tracetest.SpanStub) []string {
	var out []string
	for n, s := range by {
		out = append(out, fmt.Sprintf("%s×%d", n, len(s)))
	}
	slices.Sort(out)
	return out
}

func sameSet(a, b []trace.SpanID) bool {
	if len(a) != len(b) {
		return false
	}
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}

// checkLogs checks the trace_id and span_id of the delivery line and of
// the consumer's line about the raw event.
func (p *pipeline) checkLogs(server, process tracetest.SpanStub, id string) {
	p.t.Helper()
	var delivery, derived bool
	for _, e := range p.logs.All() {
		f := e.ContextMap()
		switch {
		case e.LoggerName == "ingress" && e.Message == "delivery" && slices.Contains(anyStrings(f["ids"]), id):
			delivery = true
			if f["trace_id"] != server.SpanContext.TraceID().String() || f["span_id"] != server.SpanContext.SpanID().String() {
				p.t.Errorf("delivery line trace_id %v span_id %v; want the server span's %s %s", f["trace_id"], f["span_id"],
					server.SpanContext.TraceID(), server.SpanContext.SpanID())
			}
		case e.LoggerName == "consumer" && e.Message == "derived" && f["event_id"] == id:
			derived = true
			if f["trace_id"] != process.SpanContext.TraceID().String() || f["span_id"] != process.SpanContext.SpanID().String() {
				p.t.Errorf("consumer line trace_id %v span_id %v; want the processing span's %s %s", f["trace_id"], f["span_id"],
					process.SpanContext.TraceID(), process.SpanContext.SpanID())
			}
		}
	}
	if !delivery || !derived {
		p.t.Errorf("log lines found: delivery %v, derived %v", delivery, derived)
	}
}

func anyStrings(v any) []string {
	var out []string
	switch x := v.(type) {
	case []any:
		for _, s := range x {
			out = append(out, fmt.Sprint(s))
		}
	case []string:
		out = x
	}
	return out
}

const incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func incomingContext(t *testing.T) trace.SpanContext {
	t.Helper()
	sc := carried(broker.Header{"ce-traceparent": {incoming}}, envelope.NATS)
	if !sc.IsValid() {
		t.Fatal("test traceparent is not valid")
	}
	return sc
}

// TestTraceNATS: one webhook through the ingress, the embedded NATS server,
// the label-changed consumer and its derived publish is one trace, which
// continues the request's traceparent (and keeps its tracestate) or starts
// when the request has none; the events on the streams carry it.
func TestTraceNATS(t *testing.T) {
	b := natstest.Broker(t, natsbroker.Config{})
	p := startPipeline(t, b, envelope.NATS, true)

	id := p.deliver(1, map[string]string{"Traceparent": incoming, "Tracestate": "vendor=a%20b,other=x"})
	raw, derived := p.wait(id)
	server, process := p.checkTrace(raw, derived, incomingContext(t))
	p.checkLogs(server, process, id)
	if got := (envelope.TraceCarrier{Header: raw, Binding: envelope.NATS}).Get(envelope.ExtTraceState); got != "vendor=a%20b,other=x" {
		t.Errorf("raw event's tracestate %q; want the request's", got)
	}
	// What is stored is what subscribers read: the derived stream's events
	// carry the trace, percent-encoded as every ce-* header.
	stored := derivedStored(t, b)
	for _, m := range derived {
		if got := stored[m.ID].Get("ce-traceparent"); got == "" || got != m.Header.Get("ce-traceparent") {
			t.Errorf("stored derived event %s has ce-traceparent %q; want %q", m.ID, got, m.Header.Get("ce-traceparent"))
		}
	}

	// Without a traceparent, and with a malformed one: a new trace.
	for i, hdr := range []map[string]string{nil, {"Traceparent": "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"}} {
		id := p.deliver(2+i, hdr)
		raw, derived := p.wait(id)
		p.checkTrace(raw, derived, trace.SpanContext{})
		if carried(raw, envelope.NATS).TraceID() == incomingContext(t).TraceID() {
			t.Errorf("delivery %v continued another trace", hdr)
		}
	}
}

// derivedStored reads the derived stream's events by id.
func derivedStored(t *testing.T, b *natsbroker.Broker) map[string]broker.Header {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := b.JetStream().Stream(ctx, natsbroker.DerivedStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]broker.Header{}
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("derived stream seq %d: %v", seq, err)
		}
		out[m.Header.Get("ce-id")] = broker.Header(m.Header)
	}
	return out
}

// TestTraceOffNATS: with tracing off no event gets a traceparent, not even
// from a request that carried one, and log lines have no trace fields.
func TestTraceOffNATS(t *testing.T) {
	b := natstest.Broker(t, natsbroker.Config{})
	p := startPipeline(t, b, envelope.NATS, false)
	id := p.deliver(1, map[string]string{"Traceparent": incoming, "Tracestate": "vendor=x"})
	raw, derived := p.wait(id)
	for _, h := range append([]broker.Header{raw}, derived[0].Header, derived[1].Header) {
		for k := range h {
			if strings.Contains(strings.ToLower(k), "trace") {
				t.Errorf("header %s added with tracing off", k)
			}
		}
	}
	for _, e := range p.logs.All() {
		if _, ok := e.ContextMap()["trace_id"]; ok {
			t.Errorf("log line %q has a trace_id with tracing off", e.Message)
		}
	}
}

// TestTraceKafka: on Kafka (kfake) the trace context travels in ce_
// headers from the ingress to the consumer and on to the derived events:
// one trace, as on NATS.
func TestTraceKafka(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(1), kfake.GroupMinSessionTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatalf("kfake.NewCluster: %v", err)
	}
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := kafkabroker.Connect(ctx, kafkabroker.Config{
		Brokers: c.ListenAddrs(), Topics: kafkabroker.TopicsConfig{Partitions: 1},
		Subscribe: kafkabroker.SubscribeConfig{SessionTimeout: 3 * time.Second, HeartbeatInterval: 300 * time.Millisecond,
			RebalanceTimeout: 10 * time.Second, JoinGroupBackoff: 300 * time.Millisecond, RetryMax: time.Second, ShutdownGrace: 5 * time.Second},
	})
	if err != nil {
		t.Fatalf("kafkabroker.Connect: %v", err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	p := startPipeline(t, b, envelope.Kafka, true)

	id := p.deliver(1, map[string]string{"Traceparent": incoming})
	raw, derived := p.wait(id)
	if raw.Get("ce_traceparent") == "" {
		t.Errorf("raw record headers %v; want ce_traceparent", raw)
	}
	for _, m := range derived {
		if m.Header.Get("ce_traceparent") == "" {
			t.Errorf("derived record headers %v; want ce_traceparent", m.Header)
		}
	}
	p.checkTrace(raw, derived, incomingContext(t))
}
