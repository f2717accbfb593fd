package ingress_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/broker/kafkabroker"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/envelope/envelopetest"
)

// referenceTopic is the topic the bare reference handler writes to.
const referenceTopic = "reference"

// benchCluster starts an in-process Kafka (kfake, one broker, in memory)
// reached over loopback TCP, with topics of kafkabroker's default
// partition count.
func benchCluster(b *testing.B) *kfake.Cluster {
	b.Helper()
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.DefaultNumPartitions(kafkabroker.DefaultPartitions),
		kfake.SeedTopics(kafkabroker.DefaultPartitions, referenceTopic),
	)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	return c
}

// BenchmarkIngressHTTPKafka is BenchmarkIngressHTTP on Kafka: the real
// ingress handler over loopback HTTP, publishing through kafkabroker into
// kfake and answering once every in-sync replica acknowledged (acks=all).
func BenchmarkIngressHTTPKafka(b *testing.B) {
	for _, conns := range []int{16, 64} {
		b.Run("conns="+strconv.Itoa(conns), func(b *testing.B) {
			c := benchCluster(b)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			br, err := kafkabroker.Connect(ctx, kafkabroker.Config{Brokers: c.ListenAddrs(), Logger: zap.NewNop()})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = br.Close(ctx)
			})
			drive(b, serveIngress(b, br, envelope.Kafka)+"/v1/webhooks/whapi", conns)
		})
	}
}

// BenchmarkReferenceHTTPKafka is the Kafka yardstick: a bare handler that
// reads the body and writes it with one kafka-go Writer shared by every
// request, configured as kafkabroker's (acks=all, murmur2 partitioner,
// 2ms batch timeout, batches of 100), and waits for the acknowledgement.
// The bare variant writes the body alone, without key, so the partitioner
// spreads the records over the topic's partitions; the "headers" variant
// also writes what the contract puts on every raw event: the record key
// (the partitionkey, one chat here as in the ingress benchmark) and the
// ce_* and content-type headers.
func BenchmarkReferenceHTTPKafka(b *testing.B) {
	for _, withHeaders := range []bool{false, true} {
		for _, conns := range []int{16, 64} {
			name := "conns=" + strconv.Itoa(conns)
			if withHeaders {
				name = "headers/" + name
			}
			b.Run(name, func(b *testing.B) {
				c := benchCluster(b)
				w := &kafka.Writer{
					Addr:         kafka.TCP(c.ListenAddrs()...),
					Topic:        referenceTopic,
					Balancer:     &kafka.Murmur2Balancer{},
					RequiredAcks: kafka.RequireAll,
					BatchTimeout: kafkabroker.DefaultBatchTimeout,
					BatchSize:    kafkabroker.DefaultBatchSize,
					BatchBytes:   kafkabroker.DefaultMaxMessageBytes,
				}
				b.Cleanup(func() { _ = w.Close() })
				var n atomic.Int64
				h := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
					body, err := io.ReadAll(r.Body)
					if err != nil {
						rw.WriteHeader(400)
						return
					}
					rec := kafka.Message{Value: body}
					if withHeaders {
						m := envelopetest.Reference(envelopetest.ID(0, n.Add(1)), body, envelope.Kafka)
						rec.Key = []byte(m.Key)
						for k, vs := range m.Header {
							for _, v := range vs {
								rec.Headers = append(rec.Headers, kafka.Header{Key: k, Value: []byte(v)})
							}
						}
					}
					if err := w.WriteMessages(r.Context(), rec); err != nil {
						rw.WriteHeader(503)
						return
					}
					rw.WriteHeader(200)
				})
				drive(b, serve(b, h), conns)
			})
		}
	}
}
