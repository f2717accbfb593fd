package chaos

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/kafkabroker"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/envelope"
)

// kafkaPartitions is the partition count of every topic: several, so that
// the two derivers of a group share them.
const kafkaPartitions = 6

// TestChaosKafka runs the pipeline on Kafka (kfake, in this process, over
// TCP) with the ingress and two derivers in one consumer group as
// processes of their own. Under load the short variant kills a deriver
// (SIGKILL), waits until the group has given its partitions to the other
// one (a rebalance) and starts it again; the long one does that twice,
// stops each deriver (SIGTERM: it leaves the group) and restarts it, and
// kills each and restarts it at once. kfake is the broker of the test
// process: it is never killed.
func TestChaosKafka(t *testing.T) {
	if !*longRun {
		t.Parallel()
	}
	h := newHarness(t, "kafka")
	ctx := t.Context()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(kafkaPartitions))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	b := &kafkaBackend{c: c}
	_, url := h.startIngress(ctx, b)
	ders := h.derivers(ctx, b, 2)
	if err := b.whole(ctx, ders); err != nil {
		t.Fatal(err)
	}

	// Each fault starts once the previous one's restarted deriver is back
	// in every group; after the last one, the harness waits for that
	// before its checks.
	whole := func(ctx context.Context) error { return b.whole(ctx, ders) }
	killRebalance := func(i int) fault {
		return fault{ders[i].name + " SIGKILL, rebalance", whole, func(ctx context.Context) (string, error) {
			began := time.Now()
			ders[i].current().kill()
			if err := b.waitMembers(ctx, 1); err != nil {
				return "", err
			}
			alone := time.Since(began)
			ders[i].start()
			return fmt.Sprintf(", the other deriver had every partition %.1fs later; restarted", alone.Seconds()), nil
		}}
	}
	killRestart := func(i int) fault {
		return fault{ders[i].name + " SIGKILL", whole, func(ctx context.Context) (string, error) {
			ders[i].current().kill()
			ders[i].start()
			return ", restarted at once", nil
		}}
	}
	stopRestart := func(i int) fault {
		return fault{ders[i].name + " SIGTERM", whole, func(ctx context.Context) (string, error) {
			began := time.Now()
			if err := ders[i].current().stop(time.Minute); err != nil {
				return "", err
			}
			stopped := time.Since(began)
			ders[i].start()
			return fmt.Sprintf(", stopped in %.1fs, restarted", stopped.Seconds()), nil
		}}
	}
	h.settle = func(ctx context.Context) (string, error) {
		if err := b.whole(ctx, ders); err != nil {
			return "", err
		}
		return "both derivers in every group", nil
	}
	// The short variant's one fault is a kill and a rebalance: a dead
	// member's partitions move only after its session times out (30s).
	faults := []fault{killRebalance(0)}
	if *longRun {
		faults = []fault{killRebalance(0), stopRestart(1), killRestart(0), killRebalance(1), stopRestart(0), killRestart(1)}
	}
	h.run(ctx, b, url, faults)
	h.finish(nil)
}

// kafkaBackend checks a run on kfake: group state from the cluster itself,
// records through a client of another library than wahook's (franz-go).
type kafkaBackend struct {
	c *kfake.Cluster
}

func (b *kafkaBackend) env() []string {
	return []string{"WAHOOK_BROKER=kafka", "WAHOOK_KAFKA_BROKERS=" + strings.Join(b.c.ListenAddrs(), ","),
		fmt.Sprintf("WAHOOK_KAFKA_PARTITIONS=%d", kafkaPartitions)}
}

func (b *kafkaBackend) binding() envelope.Binding { return envelope.Kafka }
func (b *kafkaBackend) atLeastOnce() bool         { return true }

func groups() []string {
	var out []string
	for _, s := range derive.Streams {
		out = append(out, kafkabroker.GroupID("wahook-"+s, 0, 1))
	}
	return out
}

// whole polls until every group is stable with one member per deriver
// and each deriver's current run has been given partitions in every
// group: a killed deriver stays a member until its session times out, so
// counting members alone would take it for its restarted run.
func (b *kafkaBackend) whole(ctx context.Context, ders []*service) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for _, d := range ders {
		p := d.current()
		for {
			got := loggedValues(p.log, "partitions assigned", "group")
			missing := 0
			for _, g := range groups() {
				if !got[g] {
					missing++
				}
			}
			if missing == 0 {
				break
			}
			if p.exited() {
				return fmt.Errorf("%s exited (%v) before joining every group:\n%s", p.name, p.err, tail(p.log, 30))
			}
			if pause(ctx, 100*time.Millisecond) != nil {
				return fmt.Errorf("%s has no partitions in %d groups after 2 minutes:\n%s", p.name, missing, tail(p.log, 30))
			}
		}
	}
	return b.waitMembers(ctx, len(ders))
}

// waitMembers polls until every derived stream's group is stable with n
// members, each holding partitions of the raw topic.
func (b *kafkaBackend) waitMembers(ctx context.Context, n int) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	for {
		var off []string
		for _, g := range groups() {
			info := b.c.GroupInfo(g)
			switch {
			case info == nil:
				off = append(off, g+" does not exist")
			case info.State != "Stable" || len(info.Members) != n:
				off = append(off, fmt.Sprintf("%s is %s with %d members", g, info.State, len(info.Members)))
			default:
				for _, m := range info.Members {
					if len(m.Assignment[envelope.IngressTopic]) == 0 {
						off = append(off, fmt.Sprintf("%s: member %s has no partition", g, m.ClientID))
					}
				}
			}
		}
		if len(off) == 0 {
			return nil
		}
		if pause(ctx, 100*time.Millisecond) != nil {
			return fmt.Errorf("groups not stable with %d members within 2 minutes: %s", n, strings.Join(off, "; "))
		}
	}
}

// behind: the raw records each group has not committed.
func (b *kafkaBackend) behind(context.Context) (int64, string, error) {
	parts := b.c.PartitionInfos(envelope.IngressTopic)
	var total int64
	var where []string
	for _, g := range groups() {
		info := b.c.GroupInfo(g)
		if info == nil {
			return 0, "", fmt.Errorf("group %s does not exist", g)
		}
		lag := int64(0)
		var lagging []string
		for _, pi := range parts {
			c, ok := info.Commits[envelope.IngressTopic][pi.Partition]
			committed := pi.LogStartOffset
			if ok {
				committed = c.Offset
			}
			if committed < pi.HighWatermark {
				lag += pi.HighWatermark - committed
				lagging = append(lagging, fmt.Sprintf("p%d %d/%d", pi.Partition, committed, pi.HighWatermark))
			}
		}
		if lag > 0 {
			total += lag
			where = append(where, fmt.Sprintf("%s (%s, %d members) %d records behind: %s",
				g, info.State, len(info.Members), lag, strings.Join(lagging, ", ")))
		}
	}
	return total, strings.Join(where, "; "), nil
}

func (b *kafkaBackend) derivedCount(context.Context) (int64, error) {
	var n int64
	for _, s := range derive.Streams {
		for _, pi := range b.c.PartitionInfos(envelope.DerivedTopic(s)) {
			n += pi.HighWatermark
		}
	}
	return n, nil
}

// records reads every record of topic, partition by partition in offset
// order, with no group.
func (b *kafkaBackend) records(ctx context.Context, topic string) ([]record, error) {
	ends := map[int32]int64{}
	starts := map[int32]kgo.Offset{}
	for _, pi := range b.c.PartitionInfos(topic) {
		if pi.HighWatermark > pi.LogStartOffset {
			ends[pi.Partition] = pi.HighWatermark
			starts[pi.Partition] = kgo.NewOffset().AtStart()
		}
	}
	if len(ends) == 0 {
		return nil, nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.c.ListenAddrs()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: starts}),
		kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	byPart := map[int32][]*kgo.Record{}
	for pending := len(ends); pending > 0; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read %s: %d partitions not read to their end: %w", topic, pending, err)
		}
		var ferr error
		fs.EachError(func(_ string, p int32, err error) { ferr = fmt.Errorf("read %s/%d: %w", topic, p, err) })
		if ferr != nil {
			return nil, ferr
		}
		fs.EachRecord(func(r *kgo.Record) {
			if end := ends[r.Partition]; r.Offset < end {
				byPart[r.Partition] = append(byPart[r.Partition], r)
				if r.Offset == end-1 {
					pending--
				}
			}
		})
	}
	parts := make([]int32, 0, len(byPart))
	for p := range byPart {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	var out []record
	for _, p := range parts {
		for _, r := range byPart[p] {
			h := broker.Header{}
			for _, rh := range r.Headers {
				h[rh.Key] = append(h[rh.Key], string(rh.Value))
			}
			out = append(out, record{
				pos:   len(out),
				where: fmt.Sprintf("%s p%d@%d", r.Topic, r.Partition, r.Offset),
				msg:   broker.Message{Topic: r.Topic, Key: string(r.Key), Header: h, Data: r.Value},
			})
		}
	}
	return out, nil
}

func (b *kafkaBackend) raw(ctx context.Context) ([]record, error) {
	return b.records(ctx, envelope.IngressTopic)
}

func (b *kafkaBackend) derived(ctx context.Context) ([]derivedRecord, error) {
	var out []derivedRecord
	for _, s := range derive.Streams {
		recs, err := b.records(ctx, envelope.DerivedTopic(s))
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			ev, err := envelope.Decode(r.msg, envelope.Kafka)
			if err != nil {
				return nil, fmt.Errorf("derived %s is not a CloudEvent: %w", r.where, err)
			}
			if pk, _ := ev.Extensions()[envelope.ExtPartitionKey].(string); pk != r.msg.Key {
				return nil, fmt.Errorf("derived %s: record key %q, partitionkey %q", r.where, r.msg.Key, pk)
			}
			out = append(out, derivedRecord{record: r, stream: s, event: ev})
		}
	}
	return out, nil
}

func (b *kafkaBackend) deadLetters(ctx context.Context) ([]string, error) {
	recs, err := b.records(ctx, envelope.DeadLetterTopic)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range recs {
		out = append(out, deadLetter(r, envelope.Kafka))
	}
	return out, nil
}
