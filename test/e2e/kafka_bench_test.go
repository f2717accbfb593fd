package e2e

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/wahook/wahook/pkg/broker/kafkabroker"
	"github.com/wahook/wahook/pkg/consumer"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/label"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/state/kafkastate"
)

// BenchmarkDeriveLabelChangedKafka is BenchmarkDeriveLabelChanged on
// Kafka: kfake in the test process reached over TCP, the label-changed
// consumer with the state a deriver has on Kafka (labels and the
// duplicate window on compacted topics): fetch, skip or decode, derive,
// publish with acks=all, remember the id, commit the offset.
func BenchmarkDeriveLabelChangedKafka(b *testing.B) { benchLabelChangedKafka(b, false) }

// BenchmarkDeriveLabelChangedKafkaFirstTime is
// BenchmarkDeriveLabelChangedKafka with raw events stamped at receipt, so
// that the consumer records each one's first time on the times topic.
func BenchmarkDeriveLabelChangedKafkaFirstTime(b *testing.B) { benchLabelChangedKafka(b, true) }

func benchLabelChangedKafka(b *testing.B, received bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(kafkaPartitions),
		kfake.GroupMinSessionTimeout(500*time.Millisecond))
	if err != nil {
		b.Fatalf("kfake.NewCluster: %v", err)
	}
	defer cluster.Close()
	// The requests kfake serves while the consumer runs, by key: what
	// the consumer asks of a broker per raw event.
	var counting atomic.Bool
	var requests [kmsg.MaxKey + 1]atomic.Int64
	cluster.Control(func(req kmsg.Request) (kmsg.Response, error, bool) {
		cluster.KeepControl()
		if k := req.Key(); counting.Load() && k >= 0 && int(k) < len(requests) {
			requests[k].Add(1)
		}
		return nil, nil, false
	})
	br, err := kafkabroker.Connect(ctx, kafkabroker.Config{
		Brokers: cluster.ListenAddrs(), ClientID: "bench",
		Topics: kafkabroker.TopicsConfig{Partitions: kafkaPartitions}, Subscribe: kafkaGroups,
	})
	if err != nil {
		b.Fatalf("kafkabroker.Connect: %v", err)
	}
	defer func() { _ = br.Close(context.Background()) }()
	st, err := kafkastate.Open(ctx, kafkastate.Config{Brokers: cluster.ListenAddrs(), Partitions: kafkaPartitions})
	if err != nil {
		b.Fatalf("kafkastate.Open: %v", err)
	}
	defer func() { _ = st.Close(context.Background()) }()
	var times derive.TimeRegistry
	if received {
		times = st.Times()
	}

	// The raw topic: b.N chats.patch items, each moving one chat from
	// label A to label B (one added, one removed).
	publishLabelMoves(ctx, b, br, envelope.Kafka, received)

	var done atomic.Int64
	finished := make(chan struct{})
	sub := &countingSubscriber{Subscriber: br, onDone: func() {
		if done.Add(1) == int64(b.N) {
			close(finished)
		}
	}}
	c, err := consumer.New(consumer.Config{
		Deriver: label.Deriver{Registry: st.Labels()}, Providers: providers,
		Subscriber: sub, Publisher: br, Binding: envelope.Kafka, Group: "bench", Concurrency: 64,
		Dedup: st.Dedup(), Times: times,
		Metrics: consumer.NewMetrics(prometheus.NewRegistry()),
	})
	if err != nil {
		b.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan struct{})
	b.ResetTimer()
	stopProfile := profileConsumer(b)
	counting.Store(true)
	cpu0, cpuOK := cpuTime()
	start := time.Now()
	go func() {
		defer close(ran)
		_ = c.Run(runCtx)
	}()
	select {
	case <-finished:
	case <-ctx.Done():
		b.Fatalf("%d of %d raw events handled", done.Load(), b.N)
	}
	elapsed := time.Since(start)
	cpu1, _ := cpuTime()
	counting.Store(false)
	stopProfile()
	b.StopTimer()
	stop()
	<-ran
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "raw-events/s")
	if cpuOK {
		// kfake's CPU as well as the consumer's: the profile tells them
		// apart (kfake's functions are in github.com/twmb/franz-go).
		b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N), "cpu-µs/raw")
	}
	var total int64
	var by []string
	for k := range requests {
		if n := requests[k].Load(); n > 0 {
			total += n
			by = append(by, fmt.Sprintf("%s %.3f", kmsg.NameForKey(int16(k)), float64(n)/float64(b.N)))
		}
	}
	b.ReportMetric(float64(total)/float64(b.N), "requests/raw")
	b.Logf("requests per raw event: %s", strings.Join(by, ", "))
}

// profileConsumer writes the CPU profile of the consumer's run alone, not
// of filling the raw topic, to the file WAHOOK_BENCH_CPUPROFILE names
// (not with go test -cpuprofile); the returned function stops it.
func profileConsumer(b *testing.B) func() {
	path := os.Getenv("WAHOOK_BENCH_CPUPROFILE")
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatalf("cpu profile: %v", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		b.Fatalf("cpu profile: %v", err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Errorf("cpu profile: %v", err)
		}
	}
}
