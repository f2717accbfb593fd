package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"

	"github.com/wahook/wahook/pkg/broker/kafkabroker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/envelope"
)

// drainPoll is how often drain looks at the consumers' positions: the
// precision of an end-to-end time.
const drainPoll = 50 * time.Millisecond

// lagFunc returns how many raw events the derived streams' consumers have
// not finished yet, as many as the consumer furthest behind has (each
// reads every raw event it may derive from: on Kafka all of them, on NATS
// the kinds its stream reads, in every partition; the most is the raw
// events some derivation still owes), and which of them lag.
type lagFunc func(ctx context.Context) (int64, string, error)

// drain waits until every derived-stream consumer of the raw stream has
// processed every raw event, and reports how long that took and the lag
// it saw first. With -results it completes the file's last row (the
// pipeline's load) with its end-to-end time, or with -row appends a row of
// its own: the raw events the consumers had left when every -ready URL
// answered 200, and the time they took to finish them (a scale row).
func drain(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("drain", flag.ContinueOnError)
	brokerName := fs.String("broker", "nats", "broker: nats or kafka")
	natsURL := fs.String("nats-url", "nats://127.0.0.1:4222", "NATS server")
	kafkaBrokers := fs.String("kafka-brokers", "127.0.0.1:9092", "Kafka bootstrap brokers, comma-separated")
	prefix := fs.String("group-prefix", "wahook-", "the consumers' group prefix (WAHOOK_DERIVE_GROUP_PREFIX)")
	partitions := fs.Int("partitions", 1, "the derivers' WAHOOK_DERIVE_PARTITIONS: whose consumers (NATS) or groups (Kafka) to watch")
	timeout := fs.Duration("timeout", 5*time.Minute, "longest wait")
	results := fs.String("results", "", "complete the last row of this file with the end-to-end time")
	pids := fs.String("pids", "", "processes whose CPU time until drained and peak memory to add to that row, name=pid,... (Linux)")
	ready := fs.String("ready", "", "readiness URLs, comma-separated: the clock starts when all answer 200")
	row := fs.String("row", "", "append a row of this name to -results instead of completing the last one")
	body := fs.String("body-kind", "", "the body of the appended row")
	instances := fs.Int("instances", 0, "the derivers of the appended row")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *partitions < 1 {
		return fmt.Errorf("drain: -partitions %d", *partitions)
	}
	var lag lagFunc
	switch *brokerName {
	case "nats":
		js, closeNC, err := connectJS(*natsURL, "wahook-loadgen-drain")
		if err != nil {
			return err
		}
		defer closeNC()
		var names []string
		for _, s := range derive.Streams {
			for i := range *partitions {
				n, err := natsbroker.ConsumerName(*prefix+s, i, *partitions)
				if err != nil {
					return fmt.Errorf("drain: %w", err)
				}
				names = append(names, n)
			}
		}
		lag = natsLag(js, names)
	case "kafka":
		var groups []string
		for _, s := range derive.Streams {
			for i := range *partitions {
				groups = append(groups, kafkabroker.GroupID(*prefix+s, i, *partitions))
			}
		}
		lag = kafkaLag(&kafka.Client{Addr: kafka.TCP(strings.Split(*kafkaBrokers, ",")...), Timeout: 5 * time.Second}, groups)
	default:
		return fmt.Errorf("drain: broker %q: want nats or kafka", *brokerName)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if *ready != "" {
		if err := waitReady(ctx, strings.Split(*ready, ",")); err != nil {
			return fmt.Errorf("drain: %w", err)
		}
	}
	cpu, err := watchCPU(*pids)
	if err != nil {
		return err
	}
	began := time.Now()
	first, err := waitDrained(ctx, lag)
	if err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	done := time.Now()
	fmt.Fprintf(out, "drained: %d raw events unfinished at first look, none %s later\n", first, done.Sub(began).Round(time.Millisecond))
	if *results == "" {
		return nil
	}
	used, err := cpu.used()
	if err != nil {
		return err
	}
	rss, err := cpu.peakRSS()
	if err != nil {
		return err
	}
	if *row != "" {
		r := record{Row: *row, Body: *body, Broker: *brokerName, Instances: *instances, OK: first,
			Start: began, EndToEnd: done.Sub(began), CPU: used, RSS: rss}
		fmt.Fprintf(out, "%-18s %-12s %-5s %d instances: %d raw events in %s, %.0f/s\n",
			r.Row, r.Body, r.Broker, r.Instances, r.OK, r.EndToEnd.Round(time.Millisecond), r.rate())
		return appendRecord(*results, r)
	}
	r, err := updateLast(*results, func(r *record) {
		r.EndToEnd, r.Lag = done.Sub(r.Start), first
		for name, d := range used {
			if r.CPU == nil {
				r.CPU = map[string]time.Duration{}
			}
			r.CPU[name] += d
		}
		for name, n := range rss {
			if r.RSS == nil {
				r.RSS = map[string]int64{}
			}
			r.RSS[name] = max(r.RSS[name], n)
		}
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%-18s %-12s %-5s end to end: %d deliveries in %s, %.0f/s\n",
		r.Row, r.Body, r.Broker, r.OK, r.EndToEnd.Round(time.Millisecond), r.rate())
	return nil
}

// waitReady polls each URL until it answers 200.
func waitReady(ctx context.Context, urls []string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	for _, u := range urls {
		for {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
			if err != nil {
				return fmt.Errorf("ready %s: %w", u, err)
			}
			resp, err := client.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s never answered 200: %w", u, ctx.Err())
			case <-time.After(drainPoll):
			}
		}
	}
	return nil
}

// waitDrained polls lag until it is zero and returns its first value.
func waitDrained(ctx context.Context, lag lagFunc) (int64, error) {
	first := int64(-1)
	for {
		n, where, err := lag(ctx)
		if err == nil && first < 0 {
			first = n
		}
		if err == nil && n == 0 {
			return first, nil
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return first, fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
			}
			return first, fmt.Errorf("%w: %d raw events unfinished: %s", ctx.Err(), n, where)
		case <-time.After(drainPoll):
		}
	}
}

// natsLag is the most pending and unacknowledged raw events of a
// consumer: every consumer of a partitioned stream receives every raw event
// of its stream's kinds (passing over those of other partitions), so the
// most is what the slowest still owes. A consumer that does not exist yet
// is an error.
func natsLag(js jetstream.JetStream, consumers []string) lagFunc {
	return func(ctx context.Context) (int64, string, error) {
		var most int64
		var where []string
		for _, name := range consumers {
			c, err := js.Consumer(ctx, natsbroker.IngressStream, name)
			if err != nil {
				return 0, "", fmt.Errorf("consumer %s: %w", name, err)
			}
			info := c.CachedInfo()
			if n := int64(info.NumPending) + int64(info.NumAckPending); n > 0 {
				most = max(most, n)
				where = append(where, fmt.Sprintf("%s %d pending, %d unacknowledged", name, info.NumPending, info.NumAckPending))
			}
		}
		return most, strings.Join(where, "; "), nil
	}
}

// kafkaLag is the most records after a group's committed offsets, summed
// over the raw topic's partitions; a partition a group has not committed
// yet counts from its beginning. Every group reads every record, so the
// most is the raw events the slowest still owes.
func kafkaLag(client *kafka.Client, groups []string) lagFunc {
	topic := envelope.IngressTopic
	return func(ctx context.Context) (int64, string, error) {
		meta, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err != nil {
			return 0, "", fmt.Errorf("metadata: %w", err)
		}
		if len(meta.Topics) != 1 || meta.Topics[0].Error != nil {
			return 0, "", fmt.Errorf("topic %s: %v", topic, meta.Topics)
		}
		var parts []int
		var reqs []kafka.OffsetRequest
		for _, p := range meta.Topics[0].Partitions {
			parts = append(parts, p.ID)
			reqs = append(reqs, kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
		}
		lo, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
		if err != nil {
			return 0, "", fmt.Errorf("list offsets: %w", err)
		}
		first, end := map[int]int64{}, map[int]int64{}
		for _, p := range lo.Topics[topic] {
			if p.Error != nil {
				return 0, "", fmt.Errorf("list offsets partition %d: %w", p.Partition, p.Error)
			}
			first[p.Partition], end[p.Partition] = p.FirstOffset, p.LastOffset
		}
		var total int64
		var where []string
		for _, g := range groups {
			of, err := client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: g, Topics: map[string][]int{topic: parts}})
			if err != nil {
				return 0, "", fmt.Errorf("offset fetch %s: %w", g, err)
			}
			if of.Error != nil {
				return 0, "", fmt.Errorf("offset fetch %s: %w", g, of.Error)
			}
			var behind int64
			for _, p := range of.Topics[topic] {
				if p.Error != nil {
					return 0, "", fmt.Errorf("offset fetch %s partition %d: %w", g, p.Partition, p.Error)
				}
				committed := p.CommittedOffset
				if committed < 0 {
					committed = first[p.Partition]
				}
				behind += max(end[p.Partition]-committed, 0)
			}
			if behind > 0 {
				total = max(total, behind)
				where = append(where, fmt.Sprintf("%s %d behind", g, behind))
			}
		}
		return total, strings.Join(where, "; "), nil
	}
}

// reset deletes wahook's streams and key-value buckets and the reference's
// stream on a NATS server, so that the next row starts from nothing, as on
// a fresh store. It destroys their data: point it at a test server only.
func reset(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("reset", flag.ContinueOnError)
	natsURL := fs.String("nats-url", "nats://127.0.0.1:4222", "NATS server")
	if err := fs.Parse(args); err != nil {
		return err
	}
	js, closeNC, err := connectJS(*natsURL, "wahook-loadgen-reset")
	if err != nil {
		return err
	}
	defer closeNC()
	names := js.StreamNames(ctx)
	for name := range names.Name() {
		if !strings.HasPrefix(name, "WAHOOK_") && !strings.HasPrefix(name, "KV_WAHOOK_") && name != referenceStream {
			continue
		}
		if err := js.DeleteStream(ctx, name); err != nil {
			return fmt.Errorf("reset: delete stream %s: %w", name, err)
		}
	}
	if err := names.Err(); err != nil {
		return fmt.Errorf("reset: list streams: %w", err)
	}
	return nil
}

// connectJS connects to the NATS server at url, without a login, as name.
func connectJS(url, name string) (jetstream.JetStream, func(), error) {
	nc, err := nats.Connect(url, nats.Name(name))
	if err != nil {
		return nil, nil, fmt.Errorf("connect %s: %w", url, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	return js, nc.Close, nil
}
