package natsbroker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/broker"
)

// benchBroker starts a server with the given durability and connects to it
// in-process, as `make run` does.
func benchBroker(b *testing.B, syncAlways bool) *Broker {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := StartEmbedded(ctx, EmbeddedConfig{Addr: "127.0.0.1:-1", StoreDir: b.TempDir(), SyncAlways: syncAlways})
	if err != nil {
		b.Fatalf("StartEmbedded: %v", err)
	}
	b.Cleanup(func() { e.Shutdown(context.Background()) })
	return connect(b, Config{Embedded: e})
}

// benchmarkPublish publishes batch 1 KB messages with envelope-like headers
// per call from 64 goroutines (32 per core on this 2-core machine, like a
// loaded ingress), each call waiting for its PubAcks.
func benchmarkPublish(b *testing.B, batch int) {
	for _, sync := range []bool{false, true} {
		b.Run(fmt.Sprintf("sync_always=%v", sync), func(b *testing.B) {
			br := benchBroker(b, sync)
			data := bytes.Repeat([]byte("x"), 1024)
			var seq atomic.Int64
			b.SetParallelism(32)
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				ctx := context.Background()
				msgs := make([]broker.Message, batch)
				for pb.Next() {
					for i := range msgs {
						n := seq.Add(1)
						msgs[i] = ingressMsg(fmt.Sprintf("B%d", n%16), int(n), data)
					}
					if err := br.Publish(ctx, msgs...); err != nil {
						b.Errorf("Publish: %v", err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}

func BenchmarkPublish(b *testing.B)        { benchmarkPublish(b, 1) }
func BenchmarkPublishBatch10(b *testing.B) { benchmarkPublish(b, 10) }

// BenchmarkSubscribe measures messages/s through Subscribe with a no-op
// handler and Concurrency 64: b.N envelope-like 1 KB messages over 1024
// keys are stored first (not timed), then consumed and acknowledged.
func BenchmarkSubscribe(b *testing.B) {
	br := benchBroker(b, false)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	data := bytes.Repeat([]byte("x"), 1024)
	const batch = 100
	msgs := make([]broker.Message, 0, batch)
	for i := range b.N {
		msgs = append(msgs, ingressMsg(fmt.Sprintf("B%d", i%1024), i, data))
		if len(msgs) == batch || i == b.N-1 {
			if err := br.Publish(ctx, msgs...); err != nil {
				b.Fatalf("Publish: %v", err)
			}
			msgs = msgs[:0]
		}
	}

	var handled atomic.Int64
	done := make(chan struct{})
	errc := make(chan error, 1)
	b.ReportAllocs()
	b.ResetTimer()
	go func() {
		errc <- br.Subscribe(ctx, broker.Subscription{Topic: "wahook.ingress", Group: "bench", Concurrency: 64},
			func(context.Context, broker.Received) error {
				if handled.Add(1) == int64(b.N) {
					close(done)
				}
				return nil
			})
	}()
	select {
	case <-done:
	case err := <-errc:
		b.Fatalf("Subscribe returned early: %v", err)
	}
	b.StopTimer()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		b.Errorf("Subscribe = %v, want context.Canceled", err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
