package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/kafkabroker"
	"github.com/wahook/wahook/pkg/consumer"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/ingress"
	"github.com/wahook/wahook/pkg/state/kafkastate"
)

// kafkaPartitions is how many partitions every topic of the Kafka tests
// has: several, so that keys spread and a group's instances share them.
const kafkaPartitions = 6

// kafkaGroups makes consumer groups notice joins, leaves and deaths
// quickly, while leaving a loaded machine room for heartbeats.
var kafkaGroups = kafkabroker.SubscribeConfig{
	SessionTimeout:    3 * time.Second,
	HeartbeatInterval: 300 * time.Millisecond,
	RebalanceTimeout:  10 * time.Second,
	JoinGroupBackoff:  300 * time.Millisecond,
	RetryMax:          time.Second,
	ShutdownGrace:     5 * time.Second,
}

// kpipeline is the Kafka pipeline: an in-process Kafka (kfake) reached over
// TCP, the real ingress handler publishing to it, and consumers started
// per test, each on its own connections as a separate process would be.
type kpipeline struct {
	t       *testing.T
	cluster *kfake.Cluster
	broker  *kafkabroker.Broker
	http    *httptest.Server

	mu     sync.Mutex
	groups []string // the Kafka consumer groups started, for settle
}

func newKafkaPipeline(t *testing.T) *kpipeline {
	t.Helper()
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.DefaultNumPartitions(kafkaPartitions),
		kfake.GroupMinSessionTimeout(500*time.Millisecond),
	)
	if err != nil {
		t.Fatalf("kfake.NewCluster: %v", err)
	}
	t.Cleanup(c.Close)
	p := &kpipeline{t: t, cluster: c}
	p.broker = p.connect(nil)
	h, err := ingress.New(ingress.Config{
		Providers: providers, AuthDisabled: true, Publisher: p.broker, Binding: envelope.Kafka,
		Metrics: ingress.NewMetrics(prometheus.NewRegistry()),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.http = httptest.NewServer(h)
	t.Cleanup(p.http.Close)
	return p
}

// connect opens a kafkabroker.Broker on the cluster, closed when the test
// ends; dial, when set, opens its connections.
func (p *kpipeline) connect(dial func(ctx context.Context, network, address string) (net.Conn, error)) *kafkabroker.Broker {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := kafkabroker.Connect(ctx, kafkabroker.Config{
		Brokers:   p.cluster.ListenAddrs(),
		ClientID:  "e2e",
		Topics:    kafkabroker.TopicsConfig{Partitions: kafkaPartitions},
		Subscribe: kafkaGroups,
		Dial:      dial,
	})
	if err != nil {
		p.t.Fatalf("kafkabroker.Connect: %v", err)
	}
	p.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	return b
}

func (p *kpipeline) post(path string, body []byte) []string {
	p.t.Helper()
	return (&pipeline{t: p.t, http: p.http}).post(path, body)
}

// postAll posts bodies from 8 connections at once and returns the raw
// event id of each (one item per delivery).
func (p *kpipeline) postAll(path string, bodies [][]byte) []string {
	p.t.Helper()
	ids := make([]string, len(bodies))
	errs := make([]error, len(bodies))
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				ids[i], errs[i] = postOne(p.http.URL+path, bodies[i])
			}
		}()
	}
	for i := range bodies {
		work <- i
	}
	close(work)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			p.t.Fatalf("delivery %d: %v", i, err)
		}
	}
	return ids
}

// postOne posts a one-item delivery and returns its raw event id.
func postOne(url string, body []byte) (string, error) {
	res, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		return "", fmt.Errorf("POST %s = %d %s", url, res.StatusCode, b)
	}
	var a struct{ IDs []string }
	if err := json.Unmarshal(b, &a); err != nil {
		return "", err
	}
	if len(a.IDs) != 1 {
		return "", fmt.Errorf("POST %s gave %d raw events; want 1", url, len(a.IDs))
	}
	return a.IDs[0], nil
}

func (p *kpipeline) fixture(dir, name string) []byte {
	p.t.Helper()
	return (&pipeline{t: p.t}).fixture(dir, name)
}

// kinstance is one consumer process: derived-stream consumers on their own
// Kafka connections and their own state store.
type kinstance struct {
	// published counts the derived (and dead-letter) messages this
	// instance had acknowledged.
	published atomic.Int64
	// crashAt, when above zero, makes the instance die as soon as it has
	// had that many messages acknowledged, before it records or commits
	// anything more: a crash between a publish and its commit.
	crashAt int64

	cut    cutter
	dead   atomic.Bool
	died   chan struct{}
	dieOne sync.Once

	stop  func()
	crash func()
}

var errDead = errors.New("e2e: the consumer process is dead")

// die is the instant of a crash: every connection to Kafka is cut and the
// process makes no call to Kafka or to its state from then on.
func (in *kinstance) die() {
	in.dieOne.Do(func() {
		in.dead.Store(true)
		in.cut.kill()
		close(in.died)
	})
}

// instanceOpts tunes one consumer instance.
type instanceOpts struct {
	concurrency int
	crashAt     int64
}

// consumers runs derived-stream consumers, as pipeline.consumers does on
// NATS, until stop (a clean shutdown: finish, commit, leave the group) or
// crash (connections cut, nothing more written, committed or left).
func (p *kpipeline) consumers(names []string, group string, partition, partitions int, o instanceOpts) *kinstance {
	p.t.Helper()
	in := &kinstance{crashAt: o.crashAt, died: make(chan struct{})}
	b := p.connect(in.cut.dial)
	ctx, cancel := context.WithCancel(context.Background())
	octx, ocancel := context.WithTimeout(ctx, 30*time.Second)
	defer ocancel()
	st, err := kafkastate.Open(octx, kafkastate.Config{Brokers: p.cluster.ListenAddrs(), Partitions: kafkaPartitions})
	if err != nil {
		cancel()
		p.t.Fatalf("kafkastate.Open: %v", err)
	}
	p.mu.Lock()
	for _, n := range names {
		p.groups = append(p.groups, kafkabroker.GroupID(group+n, partition, partitions))
	}
	p.mu.Unlock()
	if o.concurrency == 0 {
		o.concurrency = 16
	}
	done := make(chan error, 1)
	go func() {
		done <- consumer.Streams{Names: names, GroupPrefix: group, Concurrency: o.concurrency,
			Partition: partition, Partitions: partitions}.Run(ctx, consumer.Deps{
			Subscriber: b,
			Publisher:  deadPublisher{in, b},
			Binding:    envelope.Kafka,
			Labels:     deadLabels{in, st.Labels()},
			Chats:      deadChats{in, st.Chats()},
			Aliases:    st.Aliases(),
			Dedup:      deadDedup{in, st.Dedup()},
			Times:      st.Times(),
			Providers:  providers,
			Metrics:    consumer.NewMetrics(prometheus.NewRegistry()),
		})
	}()
	wait := func() {
		select {
		case err := <-done:
			if err != nil && !in.dead.Load() {
				p.t.Errorf("consumers: %v", err)
			}
		case <-time.After(45 * time.Second):
			p.t.Errorf("consumers still running 45s after their ctx ended")
		}
	}
	closeState := func() {
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ccancel()
		_ = st.Close(cctx)
	}
	var once sync.Once
	in.stop = func() {
		once.Do(func() {
			cancel()
			wait()
			closeState()
		})
	}
	in.crash = func() {
		once.Do(func() {
			in.die()
			closeState()
			cancel()
			wait()
		})
	}
	p.t.Cleanup(in.stop)
	return in
}

// deadPublisher counts what its instance publishes and refuses to publish
// once the instance is dead; it kills the instance at crashAt.
type deadPublisher struct {
	in   *kinstance
	next broker.Publisher
}

func (d deadPublisher) Publish(ctx context.Context, msgs ...broker.Message) error {
	if d.in.dead.Load() {
		return errDead
	}
	if err := d.next.Publish(ctx, msgs...); err != nil {
		return err
	}
	if n := d.in.published.Add(int64(len(msgs))); d.in.crashAt > 0 && n >= d.in.crashAt {
		// Acknowledged, and the process dies before it can mark the raw
		// event done or commit its offset.
		d.in.die()
		return errDead
	}
	return nil
}

// deadLabels, deadChats and deadDedup pass calls to the instance's state
// store while it lives.
type deadLabels struct {
	in   *kinstance
	next derive.LabelRegistry
}

func (d deadLabels) Upsert(ctx context.Context, provider, channel string, l fact.Label, eventID string) (bool, fact.Label, error) {
	if d.in.dead.Load() {
		return false, fact.Label{}, errDead
	}
	return d.next.Upsert(ctx, provider, channel, l, eventID)
}

func (d deadLabels) Delete(ctx context.Context, provider, channel string, ref fact.LabelRef, eventID string) (fact.Label, bool, error) {
	if d.in.dead.Load() {
		return fact.Label{}, false, errDead
	}
	return d.next.Delete(ctx, provider, channel, ref, eventID)
}

func (d deadLabels) Lookup(ctx context.Context, provider, channel, id string) (fact.Label, bool, error) {
	if d.in.dead.Load() {
		return fact.Label{}, false, errDead
	}
	return d.next.Lookup(ctx, provider, channel, id)
}

type deadChats struct {
	in   *kinstance
	next derive.ChatRegistry
}

func (d deadChats) FirstSeen(ctx context.Context, provider, channel, chat, eventID string) (bool, error) {
	if d.in.dead.Load() {
		return false, errDead
	}
	return d.next.FirstSeen(ctx, provider, channel, chat, eventID)
}

type deadDedup struct {
	in   *kinstance
	next consumer.Dedup
}

func (d deadDedup) Seen(ctx context.Context, scope, id string) (bool, error) {
	if d.in.dead.Load() {
		return false, errDead
	}
	return d.next.Seen(ctx, scope, id)
}

func (d deadDedup) Mark(ctx context.Context, scope, id string) error {
	if d.in.dead.Load() {
		return errDead
	}
	return d.next.Mark(ctx, scope, id)
}

// cutter dials like net.Dialer until kill, which closes every connection
// it opened and refuses new ones: what the cluster sees of a killed
// process.
type cutter struct {
	mu    sync.Mutex
	dead  bool
	conns []net.Conn
}

func (c *cutter) dial(ctx context.Context, network, address string) (net.Conn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dead {
		return nil, errDead
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	c.conns = append(c.conns, conn)
	return conn, nil
}

func (c *cutter) kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dead = true
	for _, conn := range c.conns {
		conn.Close()
	}
	c.conns = nil
}

// settled reports whether every consumer group started so far has
// committed the whole ingress topic: every raw event written is handled
// (derived, skipped, deduplicated or dead-lettered) and what it derived is
// stored.
func (p *kpipeline) settled() (bool, string) {
	p.mu.Lock()
	groups := append([]string(nil), p.groups...)
	p.mu.Unlock()
	parts := p.cluster.PartitionInfos(envelope.IngressTopic)
	for _, g := range groups {
		info := p.cluster.GroupInfo(g)
		if info == nil {
			return false, g + " does not exist"
		}
		for _, pi := range parts {
			if pi.HighWatermark == pi.LogStartOffset {
				continue
			}
			c, ok := info.Commits[envelope.IngressTopic][pi.Partition]
			if !ok || c.Offset < pi.HighWatermark {
				return false, fmt.Sprintf("%s has committed %d of %d records of partition %d", g, c.Offset, pi.HighWatermark, pi.Partition)
			}
		}
	}
	return true, ""
}

// settle waits until every consumer group has handled every raw event.
func (p *kpipeline) settle() {
	p.t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		ok, why := p.settled()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("consumers not done within 45s: %s", why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// records reads every record of topic, each partition from its first
// offset to its high watermark, with a client of another library
// (franz-go) and no group: what any reader of the topic gets. They come
// by partition, in offset order.
func (p *kpipeline) records(topic string) []*kgo.Record {
	p.t.Helper()
	ends := map[int32]int64{}
	starts := map[int32]kgo.Offset{}
	for _, pi := range p.cluster.PartitionInfos(topic) {
		if pi.HighWatermark > pi.LogStartOffset {
			ends[pi.Partition] = pi.HighWatermark
			starts[pi.Partition] = kgo.NewOffset().AtStart()
		}
	}
	if len(ends) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.cluster.ListenAddrs()...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: starts}),
		kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		p.t.Fatalf("kgo.NewClient: %v", err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	byPart := map[int32][]*kgo.Record{}
	for pending := len(ends); pending > 0; {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			p.t.Fatalf("reading %s: %d partitions not read to their end within 20s", topic, pending)
		}
		fs.EachError(func(topic string, part int32, err error) {
			p.t.Logf("fetch %s/%d: %v", topic, part, err) // kgo retries; the deadline bounds it
		})
		fs.EachRecord(func(r *kgo.Record) {
			end := ends[r.Partition]
			if r.Offset >= end {
				return
			}
			byPart[r.Partition] = append(byPart[r.Partition], r)
			if r.Offset == end-1 {
				pending--
			}
		})
	}
	var out []*kgo.Record
	for part := int32(0); part < kafkaPartitions; part++ {
		out = append(out, byPart[part]...)
	}
	return out
}

// message is what kafkabroker hands a subscriber for a record.
func message(r *kgo.Record) broker.Message {
	h := broker.Header{}
	for _, rh := range r.Headers {
		h[rh.Key] = append(h[rh.Key], string(rh.Value))
	}
	return broker.Message{Topic: r.Topic, Key: string(r.Key), Header: h, Data: r.Value}
}

// kevent is a derived record read back.
type kevent struct {
	cloudevents.Event
	Partition int32
	Offset    int64
}

// derived returns the records of a derived stream about provider (and
// channel, unless empty), in partition and offset order, repeats
// included, each decoded and checked as checkDerived does on NATS, and its
// key checked against its partitionkey.
func (p *kpipeline) derived(stream, provider, channel string) []kevent {
	p.t.Helper()
	var out []kevent
	for _, r := range p.records(envelope.DerivedTopic(stream)) {
		ev, err := envelope.Decode(message(r), envelope.Kafka)
		if err != nil {
			p.t.Fatalf("record %s/%d@%d is not a CloudEvent: %v", r.Topic, r.Partition, r.Offset, err)
		}
		prov, _ := ev.Extensions()[envelope.ExtProvider].(string)
		ch, _ := ev.Extensions()[envelope.ExtChannel].(string)
		checkDerived(p.t, envelope.DerivedSubject(stream, prov, ch), ev)
		if pk := ev.Extensions()[envelope.ExtPartitionKey]; string(r.Key) != pk {
			p.t.Errorf("%s: record key %q, partitionkey %v", ev.ID(), r.Key, pk)
		}
		if prov == provider && (channel == "" || ch == channel) {
			out = append(out, kevent{Event: ev, Partition: r.Partition, Offset: r.Offset})
		}
	}
	return out
}

// await waits until the consumers are done, then checks the stream holds
// exactly want records about provider (and channel): no record missing,
// and none repeated, not even with the same id.
func (p *kpipeline) await(stream, provider, channel string, want int) []cloudevents.Event {
	p.t.Helper()
	p.settle()
	got := p.derived(stream, provider, channel)
	var evs []cloudevents.Event
	for _, k := range got {
		evs = append(evs, k.Event)
	}
	if len(evs) != want {
		p.t.Fatalf("%s holds %d records about %s/%s; want %d: %v", envelope.DerivedTopic(stream), len(evs), provider, channel, want, types(evs))
	}
	return evs
}

// distinct applies the subscriber's recipe: it drops the records whose
// ce_id it has seen, keeping the first, and counts the repeats.
func distinct(evs []kevent) (out []kevent, repeats int) {
	seen := map[string]bool{}
	for _, ev := range evs {
		if seen[ev.ID()] {
			repeats++
			continue
		}
		seen[ev.ID()] = true
		out = append(out, ev)
	}
	return out, repeats
}

// rawCount counts the ingress records with event id id.
func (p *kpipeline) rawCount(id string) int {
	p.t.Helper()
	n := 0
	for _, r := range p.records(envelope.IngressTopic) {
		if message(r).Header.Get("ce_id") == id {
			n++
		}
	}
	return n
}
