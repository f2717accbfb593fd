package kafkastate_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/wahook/wahook/pkg/state/kafkastate"
)

const (
	prov  = "whapi"
	chan1 = "CHANNEL-1"
)

// testCtx bounds one step of a test; generous, as other tests may load the
// machine.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newCluster starts a one-broker kfake cluster on a free port, closed when
// the test ends: each test has its own, so tests running at once (ours or
// other packages') never share topics.
func newCluster(t testing.TB) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("kfake.NewCluster: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

var topicSeq atomic.Int64

// freshConfig names topics no other store of the cluster uses.
func freshConfig(c *kfake.Cluster) kafkastate.Config {
	n := topicSeq.Add(1)
	return kafkastate.Config{
		Brokers:     c.ListenAddrs(),
		LabelsTopic: fmt.Sprintf("labels-%d", n),
		ChatsTopic:  fmt.Sprintf("chats-%d", n),
		DedupTopic:  fmt.Sprintf("dedup-%d", n),
		TimesTopic:  fmt.Sprintf("times-%d", n),
	}
}

// open opens a store, closed when the test ends unless closed before.
func open(t testing.TB, cfg kafkastate.Config) *kafkastate.Store {
	t.Helper()
	s, err := kafkastate.Open(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { closeStore(t, s) })
	return s
}

func closeStore(t testing.TB, s *kafkastate.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func client(c *kfake.Cluster) *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(c.ListenAddrs()...), Timeout: 10 * time.Second}
}

// record is one record of a topic as read by lastRecords.
type record struct {
	Offset int64
	Value  map[string]any
}

// topicRecords reads every record of topic, by key in offset order.
func topicRecords(t testing.TB, c *kfake.Cluster, topic string) map[string][]record {
	t.Helper()
	ctx := testCtx(t)
	cl := client(c)
	meta, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil || len(meta.Topics) != 1 {
		t.Fatalf("Metadata(%s): %v", topic, err)
	}
	out := map[string][]record{}
	for _, p := range meta.Topics[0].Partitions {
		offs, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
			topic: {kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID)},
		}})
		if err != nil {
			t.Fatalf("ListOffsets(%s/%d): %v", topic, p.ID, err)
		}
		po := offs.Topics[topic][0]
		for next := po.FirstOffset; next < po.LastOffset; {
			resp, err := cl.Fetch(ctx, &kafka.FetchRequest{Topic: topic, Partition: p.ID, Offset: next, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: time.Second})
			if err == nil {
				err = resp.Error
			}
			if err != nil {
				t.Fatalf("Fetch(%s/%d at %d): %v", topic, p.ID, next, err)
			}
			for {
				rec, err := resp.Records.ReadRecord()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("ReadRecord(%s/%d): %v", topic, p.ID, err)
				}
				if rec.Offset < next {
					continue
				}
				key, _ := kafka.ReadAll(rec.Key)
				val, _ := kafka.ReadAll(rec.Value)
				var v map[string]any
				if err := json.Unmarshal(val, &v); err != nil {
					t.Fatalf("record %s at %s/%d@%d: %v", key, topic, p.ID, rec.Offset, err)
				}
				out[string(key)] = append(out[string(key)], record{Offset: rec.Offset, Value: v})
				next = rec.Offset + 1
			}
		}
	}
	return out
}

// produce writes one record the way another process would, to the
// partition the store reads key from (the Java client's partitioner).
func produce(t testing.TB, c *kfake.Cluster, topic, key string, value any) {
	t.Helper()
	ctx := testCtx(t)
	cl := client(c)
	meta, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil || len(meta.Topics) != 1 {
		t.Fatalf("Metadata(%s): %v", topic, err)
	}
	parts := make([]int, len(meta.Topics[0].Partitions))
	for i := range parts {
		parts[i] = i
	}
	val, err := json.Marshal(value)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	resp, err := cl.Produce(ctx, &kafka.ProduceRequest{
		Topic:        topic,
		Partition:    kafka.Murmur2Balancer{Consistent: true}.Balance(kafka.Message{Key: []byte(key)}, parts...),
		RequiredAcks: kafka.RequireAll,
		Records:      kafka.NewRecordReader(kafka.Record{Key: kafka.NewBytes([]byte(key)), Value: kafka.NewBytes(val)}),
	})
	if err == nil {
		err = resp.Error
	}
	if err != nil {
		t.Fatalf("Produce(%s, %s): %v", topic, key, err)
	}
}

// clock is a settable clock for the dedup window.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock(at time.Time) *clock { return &clock{now: at} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// raceFirstSeen has s1 and s2 see each of chats chats (named by name) at
// once, s1 with event "a" and s2 with "b", and returns each chat's winner:
// it fails t unless exactly one of them was first.
func raceFirstSeen(t *testing.T, s1, s2 *kafkastate.Store, chats int, name func(int) string) []string {
	t.Helper()
	got := make([][2]bool, chats)
	errs := make(chan error, 2*chats)
	var wg sync.WaitGroup
	for i := range chats {
		start := make(chan struct{})
		for j, s := range []*kafkastate.Store{s1, s2} {
			wg.Go(func() {
				<-start
				first, err := s.Chats().FirstSeen(testCtx(t), prov, chan1, name(i), []string{"a", "b"}[j])
				got[i][j] = first
				errs <- err
			})
		}
		close(start)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("FirstSeen: %v", err)
		}
	}
	winners := make([]string, chats)
	for i, g := range got {
		if g[0] == g[1] {
			t.Fatalf("chat %d: store 1 first = %v, store 2 first = %v; want exactly one", i, g[0], g[1])
		}
		winners[i] = map[bool]string{true: "a", false: "b"}[g[0]]
	}
	return winners
}

// agreeOnWinners fails t unless s answers each chat's winner, and only it,
// as first among events.
func agreeOnWinners(t *testing.T, what string, s *kafkastate.Store, winners []string, name func(int) string, events ...string) {
	t.Helper()
	for i, w := range winners {
		for _, ev := range events {
			firstSeen(t, s, name(i), ev, ev == w)
		}
	}
	if t.Failed() {
		t.Fatalf("%s disagrees on the winners", what)
	}
}
