package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/broker/natsbroker/natstest"
	"github.com/wahook/wahook/pkg/chatid"
	"github.com/wahook/wahook/pkg/consumer"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/derive/label"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/state/natsstate"
)

// BenchmarkDeriveLabelChanged measures raw events per second through one
// label-changed consumer on the embedded server, subscribed as it
// subscribes (its filter subjects): fetch, decode, interpret a Whapi
// chats.patch, derive the label difference, publish the derived events
// with durable acks, acknowledge the raw event.
func BenchmarkDeriveLabelChanged(b *testing.B) { benchLabelChanged(b, false) }

// BenchmarkDeriveLabelChangedFirstTime is BenchmarkDeriveLabelChanged in
// the shape of the ingress's raw events: each stamped at receipt, so that
// the consumer records its first time in the times bucket (one KV create
// per raw event) before deriving, as a deriver does by default.
func BenchmarkDeriveLabelChangedFirstTime(b *testing.B) { benchLabelChanged(b, true) }

// publishLabelMoves publishes b.N Whapi chats.patch raw events, each
// moving one of 5,000 chats from a label to the next, stamped at receipt
// when received.
func publishLabelMoves(ctx context.Context, b *testing.B, pub broker.Publisher, binding envelope.Binding, received bool) {
	b.Helper()
	batch := make([]broker.Message, 0, 256)
	flush := func() {
		if err := pub.Publish(ctx, batch...); err != nil {
			b.Fatal(err)
		}
		batch = batch[:0]
	}
	for i := 0; i < b.N; i++ {
		chat := fmt.Sprintf("55119%08d@s.whatsapp.net", i%5000)
		data := fmt.Sprintf(`{"before_update":{"id":%q,"type":"contact","timestamp":1747391325,"labels":[{"id":"%d","name":"A","color":"gold"}]},"after_update":{"id":%q,"type":"contact","timestamp":1747391325,"labels":[{"id":"%d","name":"B","color":"salmon"}]},"changes":["labels"]}`,
			chat, i, chat, i+1)
		batch = append(batch, envelope.Ingress(envelope.Raw{ID: fmt.Sprintf("raw-%d", i), Provider: "whapi", Channel: "BENCH",
			Kind: "chats.patch", Chat: chat, Time: time.Now(), TimeReceived: received, Data: []byte(data)}, binding))
		if len(batch) == cap(batch) {
			flush()
		}
	}
	flush()
}

func benchLabelChanged(b *testing.B, received bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	br := natstest.Broker(b, natsbroker.Config{})
	var times derive.TimeRegistry
	if received {
		st, err := natsstate.Open(ctx, br.JetStream(), natsstate.Config{})
		if err != nil {
			b.Fatal(err)
		}
		times = st.Times()
	}

	// The raw stream: b.N chats.patch items, each moving one chat from
	// label A to label B (one added, one removed).
	publishLabelMoves(ctx, b, br, envelope.NATS, received)

	var done atomic.Int64
	finished := make(chan struct{})
	counting := &countingSubscriber{Subscriber: br, onDone: func() {
		if done.Add(1) == int64(b.N) {
			close(finished)
		}
	}}
	c, err := consumer.New(consumer.Config{
		Deriver: label.Deriver{Registry: derivetest.NewLabelRegistry()}, Providers: providers,
		Subscriber: counting, Publisher: br, Binding: envelope.NATS, Group: "bench", Concurrency: 64,
		Times:   times,
		Metrics: consumer.NewMetrics(prometheus.NewRegistry()),
	})
	if err != nil {
		b.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	b.ResetTimer()
	cpu0, cpuOK := cpuTime()
	start := time.Now()
	go func() { _ = c.Run(runCtx) }()
	<-finished
	elapsed := time.Since(start)
	cpu1, _ := cpuTime()
	b.StopTimer()
	stop()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "raw-events/s")
	if cpuOK {
		// The consumer's and the embedded broker's CPU: on a shared
		// machine a steadier measure of the work than the rate.
		b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N), "cpu-µs/raw")
	}
}

// countingSubscriber counts raw events whose handling finished, under the
// subscription the consumer asks for.
type countingSubscriber struct {
	broker.Subscriber
	onDone func()
}

func (s *countingSubscriber) Subscribe(ctx context.Context, sub broker.Subscription, h broker.Handler) error {
	return s.Subscriber.Subscribe(ctx, sub, func(ctx context.Context, m broker.Received) error {
		err := h(ctx, m)
		if err == nil || broker.IsPermanent(err) {
			s.onDone()
		}
		return err
	})
}

// mixedRaws is every documented example of the three providers in turn,
// split as the ingress splits them, b times over with fresh ids: the raw
// stream of a deriver serving all three, each kind as often as documented.
func mixedRaws(tb testing.TB, n int) []envelope.Raw {
	tb.Helper()
	var items []envelope.Raw
	for _, p := range providers {
		files, err := filepath.Glob(filepath.Join("..", "..", "pkg", "provider", p.Name(), "testdata", "*.json"))
		if err != nil || len(files) == 0 {
			tb.Fatalf("no fixtures of %s: %v", p.Name(), err)
		}
		for _, f := range files {
			body, err := os.ReadFile(f)
			if err != nil {
				tb.Fatal(err)
			}
			split, err := p.Split(body, provider.Delivery{Method: "POST"})
			if err != nil {
				tb.Fatalf("%s: Split: %v", f, err)
			}
			for _, it := range split {
				channel := it.Channel
				if channel == "" {
					channel = "BENCH"
				}
				items = append(items, envelope.Raw{Provider: p.Name(), Channel: channel, Kind: it.Kind,
					Chat: chatid.ID(it.Chat), Time: it.Time, TimeReceived: it.Time.IsZero(), Data: it.Data})
			}
		}
	}
	raws := make([]envelope.Raw, n)
	for i := range raws {
		raws[i] = items[i%len(items)]
		raws[i].ID = fmt.Sprintf("mixed-%d", i)
		if raws[i].Time.IsZero() {
			raws[i].Time = time.Now()
		}
	}
	return raws
}

// BenchmarkDeriveMixed measures raw events per second through a deriver
// running the four derived streams (each its own durable consumer,
// concurrency 64) on the embedded server, over the providers' documented
// examples in turn (mixedRaws): the time from starting the consumers until
// every one of them has nothing pending or unacknowledged. It also reports
// how many deliveries the four consumers took per raw event.
func BenchmarkDeriveMixed(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	br := natstest.Broker(b, natsbroker.Config{})
	batch := make([]broker.Message, 0, 256)
	for i, r := range mixedRaws(b, b.N) {
		batch = append(batch, envelope.Ingress(r, envelope.NATS))
		if len(batch) == cap(batch) || i == b.N-1 {
			if err := br.Publish(ctx, batch...); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}

	const prefix = "bench-"
	streams := consumer.Streams{Names: derive.Streams, GroupPrefix: prefix, Concurrency: 64}
	deps := consumer.Deps{Subscriber: br, Publisher: br, Binding: envelope.NATS,
		Labels: derivetest.NewLabelRegistry(), Chats: derivetest.NewChatRegistry(), Times: &derivetest.TimeRegistry{},
		Providers: providers, Metrics: consumer.NewMetrics(prometheus.NewRegistry())}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	b.ResetTimer()
	start := time.Now()
	go func() { done <- streams.Run(runCtx, deps) }()
	var delivered uint64
	for {
		idle := true
		delivered = 0
		for _, s := range derive.Streams {
			c, err := br.JetStream().Consumer(ctx, natsbroker.IngressStream, prefix+s)
			if err != nil {
				idle = false
				break
			}
			info := c.CachedInfo()
			delivered += info.Delivered.Consumer
			idle = idle && info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0
		}
		if idle {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	stop()
	if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "raw-events/s")
	b.ReportMetric(float64(delivered)/float64(b.N), "deliveries/raw-event")
}
