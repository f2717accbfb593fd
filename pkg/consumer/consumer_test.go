package consumer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/broker/natsbroker/natstest"
	"github.com/wahook/wahook/pkg/consumer"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/label"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/whapi"
	"github.com/wahook/wahook/pkg/state"
	"github.com/wahook/wahook/pkg/state/natsstate"
)

const waitTimeout = 30 * time.Second

// natsEnv is an embedded JetStream server, a broker on it and the state
// stores, as a deriver process has them.
type natsEnv struct {
	b  *natsbroker.Broker
	st *natsstate.Store
}

func newNATS(t *testing.T) *natsEnv {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	b := natstest.Broker(t, natsbroker.Config{
		Subscribe: natsbroker.SubscribeConfig{RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond}})
	st, err := natsstate.Open(ctx, b.JetStream(), natsstate.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return &natsEnv{b: b, st: st}
}

// publish stores raw events one at a time, in order.
func (e *natsEnv) publish(t *testing.T, raws ...envelope.Raw) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	for _, r := range raws {
		if err := e.b.Publish(ctx, envelope.Ingress(r, envelope.NATS)); err != nil {
			t.Fatalf("Publish(%q): %v", r.ID, err)
		}
	}
}

// run runs c until the test ends.
func run(t *testing.T, c *consumer.Consumer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// messages returns the messages of stream on subjects matching filter.
func (e *natsEnv) messages(t *testing.T, stream, filter string) []jetstream.RawStreamMsg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	s, err := e.b.JetStream().Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if m.Subject == filter || strings.HasSuffix(filter, ">") && strings.HasPrefix(m.Subject, strings.TrimSuffix(filter, ">")) {
			out = append(out, *m)
		}
	}
	return out
}

// derivedTypes returns "type label-id" of the derived events of a channel,
// in stream order.
func (e *natsEnv) derivedTypes(t *testing.T, stream, channel string) []string {
	t.Helper()
	var out []string
	for _, m := range e.messages(t, natsbroker.DerivedStream, envelope.DerivedSubject(stream, "whapi", channel)) {
		ev, err := envelope.Decode(broker.Message{Header: broker.Header(m.Header), Data: m.Data}, envelope.NATS)
		if err != nil {
			t.Fatal(err)
		}
		var data struct {
			Label struct{ ID string } `json:"label"`
		}
		if err := json.Unmarshal(ev.Data(), &data); err != nil {
			t.Fatal(err)
		}
		out = append(out, ev.Type()+" "+data.Label.ID)
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", waitTimeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func labelsPost(id, channel, labelID string) envelope.Raw {
	return envelope.Raw{ID: id, Provider: "whapi", Channel: channel, Kind: "labels.post", Time: time.Unix(1747391325, 0),
		Data: fmt.Appendf(nil, `{"id":%q,"name":"L%s","color":"gold"}`, labelID, labelID)}
}

// panicking derives like its Deriver but panics on one raw event, as a
// bug in a derivation would, every time.
type panicking struct {
	derive.Deriver
	id string
}

func (p panicking) Derive(ctx context.Context, raw derive.Raw, f fact.Facts) ([]derive.Event, error) {
	if raw.ID == p.id {
		panic("derivation bug on " + raw.ID)
	}
	return p.Deriver.Derive(ctx, raw, f)
}

// flaky is a label registry that is unavailable for the first calls about
// one label, as a store briefly down would be.
type flaky struct {
	derive.LabelRegistry
	id    string
	mu    sync.Mutex
	fails int
}

func (f *flaky) Upsert(ctx context.Context, provider, channel string, l fact.Label, eventID string) (bool, fact.Label, error) {
	f.mu.Lock()
	fail := l.ID == f.id && f.fails > 0
	if fail {
		f.fails--
	}
	f.mu.Unlock()
	if fail {
		return false, fact.Label{}, fmt.Errorf("labels: %w", broker.ErrUnavailable)
	}
	return f.LabelRegistry.Upsert(ctx, provider, channel, l, eventID)
}

// TestPoisonedRawEventsAreDeadLettered runs the label-changed consumer over
// real parts (whapi, the label deriver, the JetStream label registry) on
// one channel's raw events, all of one key: one the registry fails on every
// time (its label's record is not a label record), one whose
// derivation panics, one the registry is unavailable for a few times, then
// a good one; and a good one of another channel. The first two are
// dead-lettered once each with their reason, the third is derived after
// its retries, and everything after them is derived, in order.
func TestPoisonedRawEventsAreDeadLettered(t *testing.T) {
	e := newNATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	kv, err := e.b.JetStream().KeyValue(ctx, natsstate.DefaultLabelsBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, state.EntryKey("whapi", "CH", "1"), []byte("not a label record")); err != nil {
		t.Fatal(err)
	}
	bad, boom, slow, good := labelsPost("bad", "CH", "1"), labelsPost("boom", "CH", "2"),
		labelsPost("slow", "CH", "3"), labelsPost("good", "CH", "4")
	other := labelsPost("other", "CH2", "9")
	e.publish(t, bad, boom, slow, good, other)

	reg := prometheus.NewRegistry()
	metrics := consumer.NewMetrics(reg)
	c, err := consumer.New(consumer.Config{
		Deriver:    panicking{Deriver: label.Deriver{Registry: &flaky{LabelRegistry: e.st.Labels(), id: "3", fails: 5}}, id: boom.ID},
		Providers:  []provider.Provider{whapi.New()},
		Subscriber: e.b, Publisher: e.b, Binding: envelope.NATS,
		MaxAttempts: 3, Metrics: metrics,
	})
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)

	waitFor(t, "the good events derived", func() bool {
		return len(e.derivedTypes(t, derive.LabelChanged, "CH")) == 2 && len(e.derivedTypes(t, derive.LabelChanged, "CH2")) == 1
	})
	if got, want := e.derivedTypes(t, derive.LabelChanged, "CH"), []string{"io.wahook.label.created 3", "io.wahook.label.created 4"}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("derived on CH = %v, want %v", got, want)
	}

	reasons := map[string][]string{}
	for _, m := range e.messages(t, natsbroker.DeadLetterStream, "wahook.deadletter.>") {
		var dl envelope.DeadLetter
		if err := json.Unmarshal(m.Data, &dl); err != nil {
			t.Fatal(err)
		}
		reasons[dl.SourceEventID] = append(reasons[dl.SourceEventID], dl.Reason)
	}
	if len(reasons) != 2 {
		t.Errorf("dead letters by source event: %q, want the bad and the panicking one", reasons)
	}
	badReasons := reasons[bad.ID]
	if len(badReasons) != 1 || !strings.HasPrefix(badReasons[0], "label-changed: gave up after 3 attempts: ") ||
		!strings.Contains(badReasons[0], "decode") {
		t.Errorf("dead letters of %q: %q, want one giving up after 3 attempts on the unreadable record", bad.ID, badReasons)
	}
	if r := reasons[boom.ID]; len(r) != 1 || !strings.Contains(r[0], "handler panicked: derivation bug on boom") {
		t.Errorf("dead letters of %q: %q, want one with the panic", boom.ID, r)
	}
	if got := metricValue(t, reg, "wahook_consumer_raw_events_total", "poisoned"); got != 2 {
		t.Errorf("poisoned raw events counted %v, want 2", got)
	}
	if got := metricValue(t, reg, "wahook_consumer_pending_events", ""); got != 0 {
		t.Errorf("pending events %v after everything was handled, want 0", got)
	}
}

// metricValue returns the value of the gauge or counter name (of outcome,
// when given) for the label-changed stream, from reg.
func metricValue(t *testing.T, reg *prometheus.Registry, name, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["stream"] != derive.LabelChanged || (outcome != "" && labels["outcome"] != outcome) {
				continue
			}
			return m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no %s{stream=%q,outcome=%q} in %d metric families", name, derive.LabelChanged, outcome, len(mfs))
	return 0
}

// blocking is a label registry whose calls wait until release is closed,
// as a store that hangs would.
type blocking struct {
	derive.LabelRegistry
	release chan struct{}
}

func (b blocking) Upsert(ctx context.Context, provider, channel string, l fact.Label, eventID string) (bool, fact.Label, error) {
	select {
	case <-b.release:
	case <-ctx.Done():
		return false, fact.Label{}, ctx.Err()
	}
	return b.LabelRegistry.Upsert(ctx, provider, channel, l, eventID)
}

// TestStuckConsumerIsReported: a consumer holding a raw event without
// finishing it makes Metrics.Stuck fail and shows in the progress gauges;
// once the event is finished, Stuck is nil again.
func TestStuckConsumerIsReported(t *testing.T) {
	e := newNATS(t)
	reg := prometheus.NewRegistry()
	metrics := consumer.NewMetrics(reg)
	if err := metrics.Stuck(0); err != nil {
		t.Errorf("Stuck with no consumer = %v, want nil", err)
	}
	release := make(chan struct{})
	c, err := consumer.New(consumer.Config{
		Deriver:    label.Deriver{Registry: blocking{LabelRegistry: e.st.Labels(), release: release}},
		Providers:  []provider.Provider{whapi.New()},
		Subscriber: e.b, Publisher: e.b, Binding: envelope.NATS, Metrics: metrics,
	})
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)
	e.publish(t, labelsPost("held", "CH", "1"), labelsPost("queued", "CH", "2"))

	waitFor(t, "the consumer reported stuck", func() bool {
		err := metrics.Stuck(time.Millisecond)
		return err != nil && strings.Contains(err.Error(), "label-changed (2 pending")
	})
	if got := metricValue(t, reg, "wahook_consumer_pending_events", ""); got != 2 {
		t.Errorf("pending events %v while stuck, want 2", got)
	}
	if got := metricValue(t, reg, "wahook_consumer_oldest_pending_age_seconds", ""); got <= 0 {
		t.Errorf("oldest pending age %v while stuck, want above 0", got)
	}
	if err := metrics.Stuck(time.Hour); err != nil {
		t.Errorf("Stuck(1h) = %v, want nil: not held that long", err)
	}
	close(release)
	waitFor(t, "both events derived", func() bool { return len(e.derivedTypes(t, derive.LabelChanged, "CH")) == 2 })
	waitFor(t, "the consumer no longer stuck", func() bool { return metrics.Stuck(time.Millisecond) == nil })
	if got := metricValue(t, reg, "wahook_consumer_stalled_seconds", ""); got != 0 {
		t.Errorf("stalled seconds %v once idle, want 0", got)
	}
}
