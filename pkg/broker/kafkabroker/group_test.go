package kafkabroker_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/kafkabroker"
)

// call is one handler call seen by a log.
type call struct {
	Instance int
	Key      string
	Seq      int
	Attempt  int
}

// callLog records handler calls in the order they began, across instances,
// and catches a key handled by two handlers at once.
type callLog struct {
	mu       sync.Mutex
	calls    []call
	inflight map[string]int
	overlaps []string
}

func newCallLog() *callLog { return &callLog{inflight: map[string]int{}} }

// handler returns instance's handler; do (nil: succeed) decides the result.
func (l *callLog) handler(instance int, do func(ctx context.Context, m broker.Received) error) broker.Handler {
	return func(ctx context.Context, m broker.Received) error {
		seq, err := strconv.Atoi(m.Header.Get("seq"))
		if err != nil {
			return broker.Permanent(fmt.Errorf("no seq header: %w", err))
		}
		l.mu.Lock()
		l.calls = append(l.calls, call{Instance: instance, Key: m.Key, Seq: seq, Attempt: m.Attempt})
		l.inflight[m.Key]++
		if l.inflight[m.Key] > 1 {
			l.overlaps = append(l.overlaps, fmt.Sprintf("%s/%d", m.Key, seq))
		}
		l.mu.Unlock()
		defer func() {
			l.mu.Lock()
			l.inflight[m.Key]--
			l.mu.Unlock()
		}()
		if do != nil {
			return do(ctx, m)
		}
		return nil
	}
}

// handledBy reports whether instance has handled a record.
func (l *callLog) handledBy(instance int) bool {
	for _, c := range l.snapshot() {
		if c.Instance == instance {
			return true
		}
	}
	return false
}

func (l *callLog) snapshot() []call {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]call(nil), l.calls...)
}

// seen reports whether every (key, seq) in [0, n) of keys was handled.
func (l *callLog) seen(keys []string, n int) bool {
	got := map[string]bool{}
	for _, c := range l.snapshot() {
		got[fmt.Sprintf("%s/%d", c.Key, c.Seq)] = true
	}
	for _, k := range keys {
		for i := range n {
			if !got[fmt.Sprintf("%s/%d", k, i)] {
				return false
			}
		}
	}
	return true
}

func testMsg(key string, seq int) broker.Message {
	return broker.Message{
		Topic:  kafkabroker.IngressTopic,
		Key:    key,
		ID:     fmt.Sprintf("%s/%d", key, seq),
		Header: broker.Header{"seq": {strconv.Itoa(seq)}},
		Data:   fmt.Appendf(nil, `{"key":%q,"seq":%d}`, key, seq),
	}
}

// publishRounds publishes seq from..to-1 of every key, a round per call.
func publishRounds(t *testing.T, b broker.Publisher, keys []string, from, to int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := from; i < to; i++ {
		var round []broker.Message
		for _, k := range keys {
			round = append(round, testMsg(k, i))
		}
		if err := b.Publish(ctx, round...); err != nil {
			t.Fatalf("Publish(round %d): %v", i, err)
		}
	}
}

// TestGroupSharesPartitions: two instances in one group (Partitions 1)
// split the topic's partitions between them; no record is lost, a record
// is handled twice only when a rebalance moved its partition before its
// offset was committed, each key's records are first handled in order and
// never two at once, and once the group is stable each key is handled by
// one instance only.
func TestGroupSharesPartitions(t *testing.T) {
	c := startCluster(t)
	b := connect(t, c, kafkabroker.Config{Subscribe: fastGroups})
	keys := make([]string, 24)
	for i := range keys {
		keys[i] = fmt.Sprintf("whapi/CH/chat%02d", i)
	}
	log := newCallLog()
	slow := func(ctx context.Context, m broker.Received) error {
		time.Sleep(time.Millisecond)
		return nil
	}
	s := broker.Subscription{Topic: kafkabroker.IngressTopic, Group: "shared", Concurrency: 4}

	publishRounds(t, b, keys, 0, 10)
	subscribe(t, b, s, log.handler(0, slow))
	waitFor(t, 30*time.Second, "first instance handling records", func() bool { return len(log.snapshot()) > 20 })
	// The second instance joins while the first is busy.
	other := connect(t, c, kafkabroker.Config{Subscribe: fastGroups})
	subscribe(t, other, s, log.handler(1, slow))
	publishRounds(t, b, keys, 10, 20)
	waitFor(t, 60*time.Second, "rounds 0-19 handled", func() bool { return log.seen(keys, 20) })
	// Publish a round at a time until the second instance handles one:
	// it then has its partitions, and the group is stable.
	joined := time.Now()
	stableRound := 20
	for !log.handledBy(1) {
		if time.Since(joined) > 60*time.Second {
			t.Fatalf("the second instance handled nothing within 60s")
		}
		publishRounds(t, b, keys, stableRound, stableRound+1)
		stableRound++
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("second instance handling records %s after rounds 0-19, %d rounds later", time.Since(joined).Round(time.Millisecond), stableRound-20)
	stable := len(log.snapshot())
	last := stableRound + 10
	publishRounds(t, b, keys, stableRound, last)
	waitFor(t, 60*time.Second, "every round handled", func() bool { return log.seen(keys, last) })
	time.Sleep(500 * time.Millisecond)

	calls := log.snapshot()
	owner := map[string]int{}
	count := map[string]int{}
	for i, c := range calls {
		id := fmt.Sprintf("%s/%d", c.Key, c.Seq)
		count[id]++
		if i < stable || c.Seq < stableRound {
			continue
		}
		if count[id] > 1 {
			t.Errorf("record %s handled again after the group was stable", id)
		}
		if o, ok := owner[c.Key]; ok && o != c.Instance {
			t.Errorf("key %s handled by instances %d and %d after the group was stable", c.Key, o, c.Instance)
		}
		owner[c.Key] = c.Instance
	}
	byInstance := map[int]int{}
	for _, o := range owner {
		byInstance[o]++
	}
	if len(byInstance) != 2 {
		t.Errorf("keys per instance once stable: %v, want both instances to own keys", byInstance)
	}
	// First handlings of each key in order: a redelivery may repeat
	// records, never skip ahead.
	next := map[string]int{}
	for _, c := range calls {
		switch {
		case c.Seq == next[c.Key]:
			next[c.Key]++
		case c.Seq > next[c.Key]:
			t.Errorf("key %s: record %d handled before record %d", c.Key, c.Seq, next[c.Key])
		}
	}
	redelivered := 0
	for _, n := range count {
		redelivered += n - 1
	}
	t.Logf("%d calls for %d records; %d redelivered around the rebalance", len(calls), last*len(keys), redelivered)
	if len(log.overlaps) > 0 {
		t.Errorf("records handled while another of their key was: %v", log.overlaps)
	}
}

// committed returns the group's committed offsets and metadata on the
// ingress topic, by partition.
func committed(t *testing.T, addrs []string, group string) map[int]kafka.OffsetFetchPartition {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cl := &kafka.Client{Addr: kafka.TCP(addrs...)}
	parts := make([]int, testPartitions)
	for i := range parts {
		parts[i] = i
	}
	resp, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group,
		Topics: map[string][]int{kafkabroker.IngressTopic: parts}})
	if err != nil {
		t.Fatalf("OffsetFetch(%s): %v", group, err)
	}
	out := map[int]kafka.OffsetFetchPartition{}
	for _, p := range resp.Topics[kafkabroker.IngressTopic] {
		out[p.Partition] = p
	}
	return out
}

// TestCrashRedeliversUncommitted: an instance whose connections die while
// it handles a record is replaced by another of its group, which gets the
// records from the one in flight on, with Attempt 2 for that one, and none
// of those committed before.
func TestCrashRedeliversUncommitted(t *testing.T) {
	c := startCluster(t)
	b := connect(t, c, kafkabroker.Config{Subscribe: fastGroups})
	const key = "whapi/CH/crash"
	publishRounds(t, b, []string{key}, 0, 10)

	cut := &cutter{}
	dying := connect(t, c, kafkabroker.Config{Subscribe: fastGroups, Dial: cut.dial})
	log := newCallLog()
	stuck := make(chan struct{})
	s := broker.Subscription{Topic: kafkabroker.IngressTopic, Group: "crash", Concurrency: 2}
	subscribe(t, dying, s, log.handler(0, func(ctx context.Context, m broker.Received) error {
		if m.Header.Get("seq") == "3" {
			<-stuck
		}
		return nil
	}))
	// Runs before subscribe's cleanup: the dead instance's handler returns.
	t.Cleanup(func() { close(stuck) })
	waitFor(t, 30*time.Second, "record 3 in flight", func() bool { return log.seen([]string{key}, 4) })
	// Records 0-2 are done: wait until their commit, and record 3's
	// delivery, reach the coordinator, then crash.
	waitFor(t, 10*time.Second, "offset 3 committed with one delivery", func() bool {
		for _, p := range committed(t, c.ListenAddrs(), "crash") {
			if p.CommittedOffset == 3 && p.Metadata == "wahook:attempts=1" {
				return true
			}
		}
		return false
	})
	cut.kill()

	subscribe(t, b, s, log.handler(1, nil))
	waitFor(t, 60*time.Second, "records 3-9 handled by the survivor", func() bool {
		n := 0
		for _, c := range log.snapshot() {
			if c.Instance == 1 {
				n++
			}
		}
		return n >= 7
	})
	time.Sleep(500 * time.Millisecond)
	var got []call
	for _, c := range log.snapshot() {
		if c.Instance == 1 {
			got = append(got, c)
		}
	}
	var want []call
	for i := 3; i < 10; i++ {
		want = append(want, call{Instance: 1, Key: key, Seq: i, Attempt: map[bool]int{true: 2, false: 1}[i == 3]})
	}
	if fmt.Sprint(want) != fmt.Sprint(got) {
		t.Errorf("survivor's calls = %v, want %v", got, want)
	}
}

// TestShutdownCancelsLateHandlers: a handler still running when the grace
// period ends gets its ctx cancelled; its record, failed, is not committed
// and goes to the group's next subscription.
func TestShutdownCancelsLateHandlers(t *testing.T) {
	c := startCluster(t)
	cfg := fastGroups
	cfg.ShutdownGrace = 50 * time.Millisecond
	b := connect(t, c, kafkabroker.Config{Subscribe: cfg})
	const key = "whapi/CH/late"
	publishRounds(t, b, []string{key}, 0, 3)
	s := broker.Subscription{Topic: kafkabroker.IngressTopic, Group: "late"}
	log := newCallLog()
	var cancelled atomic.Bool
	run := subscribe(t, b, s, log.handler(0, func(ctx context.Context, m broker.Received) error {
		if m.Header.Get("seq") != "1" {
			return nil
		}
		<-ctx.Done()
		cancelled.Store(true)
		return ctx.Err()
	}))
	waitFor(t, 30*time.Second, "record 1 in flight", func() bool { return log.seen([]string{key}, 2) })
	if err := run.stop(t); !errors.Is(err, context.Canceled) {
		t.Errorf("Subscribe after cancel = %v, want context.Canceled", err)
	}
	if !cancelled.Load() {
		t.Errorf("the late handler's ctx was not cancelled")
	}
	subscribe(t, b, s, log.handler(1, nil))
	waitFor(t, 30*time.Second, "records 1-2 handled again", func() bool { return len(log.snapshot()) >= 4 })
	time.Sleep(500 * time.Millisecond)
	want := []call{{0, key, 0, 1}, {0, key, 1, 1}, {1, key, 1, 2}, {1, key, 2, 1}}
	if got := log.snapshot(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
}

// TestFilterIgnored: Kafka records carry no subject, so a NATS subject
// filter narrows nothing.
func TestFilterIgnored(t *testing.T) {
	c := startCluster(t)
	b := connect(t, c, kafkabroker.Config{Subscribe: fastGroups})
	keys := []string{"whapi/CH/a", "zapi/I1/b"}
	publishRounds(t, b, keys, 0, 2)
	log := newCallLog()
	subscribe(t, b, broker.Subscription{Topic: kafkabroker.IngressTopic, Group: "filter",
		Filter: []string{"wahook.ingress.whapi.>"}}, log.handler(0, nil))
	waitFor(t, 30*time.Second, "every record handled", func() bool { return log.seen(keys, 2) })
}
