package kafkabroker_test

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/broker/kafkabroker"
	"github.com/wahook/wahook/pkg/envelope"
)

// publishers is how many goroutines publish at once, as an ingress under
// load would.
const publishers = 64

// BenchmarkPublish publishes 1 KB raw events (11 headers) from 64
// goroutines through one Broker into kfake, each waiting for acks=all.
func BenchmarkPublish(b *testing.B) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		b.Fatalf("kfake.NewCluster: %v", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	br, err := kafkabroker.Connect(ctx, kafkabroker.Config{Brokers: c.ListenAddrs(), Logger: zap.NewNop()})
	if err != nil {
		b.Fatalf("Connect: %v", err)
	}
	defer br.Close(context.Background())

	data := append([]byte(`{"pad":"`), bytes.Repeat([]byte("x"), 1000)...)
	data = append(data, `"}`...)
	var n atomic.Int64
	b.SetBytes(int64(len(data)))
	b.SetParallelism(max(1, publishers/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			msg := envelope.Ingress(envelope.Raw{
				ID:       fmt.Sprintf("bench-%d", i),
				Provider: "whapi",
				Channel:  "MANTIS-M72HC",
				Kind:     "messages",
				Chat:     fmt.Sprintf("55119%08d@s.whatsapp.net", i%500),
				Time:     time.Unix(1_700_000_000, 0),
				Data:     data,
			}, envelope.Kafka)
			if err := br.Publish(context.Background(), msg); err != nil {
				b.Errorf("Publish: %v", err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
