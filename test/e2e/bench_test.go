package e2e

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/broker/natsbroker/natstest"
	"github.com/wahook/wahook/pkg/consumer"
	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/derive/label"
	"github.com/wahook/wahook/pkg/envelope"
)

// BenchmarkDeriveLabelChanged measures raw events per second through one
// label-changed consumer on the embedded server: fetch, decode, interpret
// a Whapi chats.patch, derive the label difference, publish the derived
// events with durable acks, acknowledge the raw event.
func BenchmarkDeriveLabelChanged(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	br := natstest.Broker(b, natsbroker.Config{})

	// The raw stream: b.N chats.patch items, each moving one chat from
	// label A to label B (one added, one removed).
	batch := make([]broker.Message, 0, 256)
	flush := func() {
		if err := br.Publish(ctx, batch...); err != nil {
			b.Fatal(err)
		}
		batch = batch[:0]
	}
	for i := 0; i < b.N; i++ {
		chat := fmt.Sprintf("55119%08d@s.whatsapp.net", i%5000)
		data := fmt.Sprintf(`{"before_update":{"id":%q,"type":"contact","timestamp":1747391325,"labels":[{"id":"%d","name":"A","color":"gold"}]},"after_update":{"id":%q,"type":"contact","timestamp":1747391325,"labels":[{"id":"%d","name":"B","color":"salmon"}]},"changes":["labels"]}`,
			chat, i, chat, i+1)
		batch = append(batch, envelope.Ingress(envelope.Raw{ID: fmt.Sprintf("raw-%d", i), Provider: "whapi", Channel: "BENCH",
			Kind: "chats.patch", Chat: chat, Time: time.Now(), Data: []byte(data)}, envelope.NATS))
		if len(batch) == cap(batch) {
			flush()
		}
	}
	flush()

	var done atomic.Int64
	finished := make(chan struct{})
	c, err := consumer.New(consumer.Config{
		Deriver: label.Deriver{Registry: derivetest.NewLabelRegistry()}, Providers: providers,
		Subscriber: br, Publisher: br, Binding: envelope.NATS, Concurrency: 64,
		Metrics: consumer.NewMetrics(prometheus.NewRegistry()),
	})
	if err != nil {
		b.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	counting := &countingSubscriber{Subscriber: br, onDone: func() {
		if done.Add(1) == int64(b.N) {
			close(finished)
		}
	}}
	b.ResetTimer()
	start := time.Now()
	go func() { _ = counting.run(runCtx, c) }()
	<-finished
	elapsed := time.Since(start)
	b.StopTimer()
	stop()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "raw-events/s")
}

// countingSubscriber counts raw events whose handling finished.
type countingSubscriber struct {
	broker.Subscriber
	onDone func()
}

func (s *countingSubscriber) run(ctx context.Context, c *consumer.Consumer) error {
	return s.Subscribe(ctx, broker.Subscription{Topic: envelope.IngressTopic, Group: "bench", Concurrency: 64},
		func(ctx context.Context, m broker.Received) error {
			err := c.Handle(ctx, m)
			if err == nil || broker.IsPermanent(err) {
				s.onDone()
			}
			return err
		})
}
