package kafkastate

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/kafkabroker"
	"github.com/wahook/wahook/pkg/state"
)

// Defaults of Config.
const (
	DefaultLabelsTopic = "wahook.state.labels"
	DefaultChatsTopic  = "wahook.state.chats"
	DefaultDedupTopic  = "wahook.state.dedup"
	DefaultTimesTopic  = "wahook.state.times"
	DefaultPartitions  = 6
	DefaultDedupWindow = 24 * time.Hour
	DefaultDedupMaxIDs = 1_000_000
	// DefaultTimesTTL covers the longest retry horizon documented by a
	// provider (7 days).
	DefaultTimesTTL    = 7 * 24 * time.Hour
	DefaultTimesMaxIDs = 1_000_000
)

// minCompactionLag is the state topics' min.compaction.lag.ms: a record is
// never compacted away sooner, which leaves a writer that lost a race far
// more time than it needs (milliseconds) to write the repair that makes the
// winner its key's last record again. See the package documentation.
const minCompactionLag = time.Hour

// requestTimeout bounds each request to the brokers when the caller's ctx
// does not; half of it is the broker-side wait for a produce's acks.
const requestTimeout = 10 * time.Second

// maxAttempts bounds the write rounds of one call. Each round's records are
// ordered by the partition, so one writer wins each round; losing this many
// in a row means heavy contention on one key, reported as ErrContended.
const maxAttempts = 32

// ErrClosed is returned by calls on a Store after Close.
// It wraps broker.ErrUnavailable: a consumer still running retries.
var ErrClosed = fmt.Errorf("kafkastate: store closed: %w", broker.ErrUnavailable)

// ErrContended reports that a write lost to other writers of the same key
// too many times in a row; the caller may retry the call later.
var ErrContended = errors.New("kafkastate: too many concurrent writers")

// Config configures a Store. Brokers is required; every other field has a
// default.
type Config struct {
	// Brokers are the bootstrap brokers, "host:port".
	Brokers []string
	// LabelsTopic, ChatsTopic and DedupTopic name the state topics,
	// DefaultLabelsTopic, DefaultChatsTopic and DefaultDedupTopic when
	// empty.
	LabelsTopic string
	ChatsTopic  string
	DedupTopic  string
	// TimesTopic names the topic of raw events' first times (see Times),
	// DefaultTimesTopic when empty.
	TimesTopic string
	// Partitions and ReplicationFactor are used when Open creates a topic,
	// DefaultPartitions and 1 when zero; an existing topic keeps its own.
	// Never add partitions to a state topic: keys would move to other
	// partitions, whose records are not ordered with the old ones.
	Partitions        int
	ReplicationFactor int
	// MinInSyncReplicas is the min.insync.replicas of the topics Open
	// creates (0: the broker's default), so that a state write acknowledged
	// by all in-sync replicas is on at least that many brokers; an
	// existing topic below it is logged.
	MinInSyncReplicas int
	// DedupWindow is how long Dedup remembers an id, DefaultDedupWindow
	// when zero; it is also the dedup topic's retention.ms.
	DedupWindow time.Duration
	// DedupMaxIDs bounds the ids Dedup keeps in memory per scope,
	// DefaultDedupMaxIDs when zero; the oldest are forgotten first.
	DedupMaxIDs int
	// TimesTTL is how long Times remembers a raw event's first time,
	// DefaultTimesTTL when zero; it is also the times topic's retention.ms.
	// TimesMaxIDs bounds the times kept in memory, DefaultTimesMaxIDs when
	// zero; the oldest are forgotten first.
	TimesTTL    time.Duration
	TimesMaxIDs int
	// ChatsTTL forgets a known chat that long after it was first seen, as
	// natsstate's: a chat seen again later is claimed again, and announced
	// again. Zero, the default, never forgets. Each claim carries its
	// expiry, so that processes agree whatever their own ChatsTTL; the
	// chats topic Open creates then deletes records older than the TTL and
	// an hour (see the package documentation).
	ChatsTTL time.Duration
	// CatchUpCache lets one catch-up (a partition's end offset read, then
	// the wait for it) serve the reads that start within this long after
	// it was asked for, instead of one round trip each. Zero, the default,
	// asks for every read. Only a write acknowledged inside that interval
	// can be missed, so keep it below the time a consumer group takes to
	// move a partition to another instance (its rebalance), e.g. 50ms.
	CatchUpCache time.Duration
	// Now is the clock of the values written (first_seen_at, dedup times)
	// and of the dedup window; time.Now when nil.
	Now func() time.Time
	// Logger receives the background tailers' errors; none when nil.
	Logger *zap.Logger
	// TLS and SASL, when set, secure every connection to the brokers, as
	// kafkabroker.Config's (see kafkabroker.Security).
	TLS  *tls.Config
	SASL sasl.Mechanism
}

func (c *Config) setDefaults() {
	if c.LabelsTopic == "" {
		c.LabelsTopic = DefaultLabelsTopic
	}
	if c.ChatsTopic == "" {
		c.ChatsTopic = DefaultChatsTopic
	}
	if c.DedupTopic == "" {
		c.DedupTopic = DefaultDedupTopic
	}
	if c.TimesTopic == "" {
		c.TimesTopic = DefaultTimesTopic
	}
	if c.TimesTTL == 0 {
		c.TimesTTL = DefaultTimesTTL
	}
	if c.TimesMaxIDs == 0 {
		c.TimesMaxIDs = DefaultTimesMaxIDs
	}
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = 1
	}
	if c.DedupWindow == 0 {
		c.DedupWindow = DefaultDedupWindow
	}
	if c.DedupMaxIDs == 0 {
		c.DedupMaxIDs = DefaultDedupMaxIDs
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

// Validate checks a configuration after defaults are applied.
func (c Config) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("kafkastate: no brokers")
	case len(map[string]bool{c.LabelsTopic: true, c.ChatsTopic: true, c.DedupTopic: true, c.TimesTopic: true}) < 4:
		return fmt.Errorf("kafkastate: topics %q, %q, %q and %q are not distinct", c.LabelsTopic, c.ChatsTopic, c.DedupTopic, c.TimesTopic)
	case c.Partitions < 1:
		return fmt.Errorf("kafkastate: %d partitions, want at least 1", c.Partitions)
	case c.ReplicationFactor < 1:
		return fmt.Errorf("kafkastate: replication factor %d, want at least 1", c.ReplicationFactor)
	case c.MinInSyncReplicas < 0 || c.MinInSyncReplicas > c.ReplicationFactor:
		return fmt.Errorf("kafkastate: min in-sync replicas %d, want 0 to the replication factor %d", c.MinInSyncReplicas, c.ReplicationFactor)
	case c.DedupWindow < time.Second:
		return fmt.Errorf("kafkastate: dedup window %v, want at least 1s", c.DedupWindow)
	case c.DedupMaxIDs < 1:
		return fmt.Errorf("kafkastate: dedup bound %d, want at least 1", c.DedupMaxIDs)
	case c.TimesTTL < time.Second:
		return fmt.Errorf("kafkastate: times TTL %v, want at least 1s", c.TimesTTL)
	case c.TimesMaxIDs < 1:
		return fmt.Errorf("kafkastate: times bound %d, want at least 1", c.TimesMaxIDs)
	case c.CatchUpCache < 0:
		return fmt.Errorf("kafkastate: negative catch-up cache %v", c.CatchUpCache)
	case c.ChatsTTL < 0 || c.ChatsTTL > 0 && c.ChatsTTL < time.Second:
		return fmt.Errorf("kafkastate: chats TTL %v, want 0 (never) or at least 1s", c.ChatsTTL)
	}
	return nil
}

// Store is the derived streams' state on compacted Kafka topics, held in
// memory and kept current by tailing the topics. It is safe for concurrent
// use, also with Stores of other processes on the same topics.
type Store struct {
	cfg       Config
	log       *zap.Logger
	transport *kafka.Transport
	client    *kafka.Client

	labels *Labels
	chats  *Chats
	dedup  *Dedup
	times  *Times
	topics []*topic

	ctx       context.Context // the Store's life: ends at Close
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// table is what a topic's records are applied to, in offset order per
// partition, by that partition's tailer alone.
type table interface {
	apply(part int, key, value []byte)
}

// Open creates the topics that are missing, restores the state from them
// (every partition read from its start to the end offset it had when Open
// looked) and keeps tailing them until Close. ctx bounds Open only.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	transport := &kafka.Transport{
		ClientID:       "wahook-state",
		MetadataTopics: []string{cfg.LabelsTopic, cfg.ChatsTopic, cfg.DedupTopic, cfg.TimesTopic},
		Context:        sctx,
		TLS:            cfg.TLS,
		SASL:           cfg.SASL,
	}
	s := &Store{
		cfg:       cfg,
		log:       cfg.Logger.With(zap.String("component", "kafkastate")),
		transport: transport,
		client:    &kafka.Client{Addr: kafka.TCP(cfg.Brokers...), Timeout: requestTimeout, Transport: transport},
		ctx:       sctx,
		cancel:    cancel,
	}
	if err := s.open(ctx); err != nil {
		s.shutdown()
		return nil, err
	}
	return s, nil
}

func (s *Store) open(ctx context.Context) error {
	if err := s.createTopics(ctx); err != nil {
		return err
	}
	counts, err := s.partitionCounts(ctx)
	if err != nil {
		return err
	}
	if err := s.checkTopics(ctx); err != nil {
		return err
	}
	labels := newTopic(s.cfg.LabelsTopic, counts[s.cfg.LabelsTopic])
	chats := newTopic(s.cfg.ChatsTopic, counts[s.cfg.ChatsTopic])
	dedup := newTopic(s.cfg.DedupTopic, counts[s.cfg.DedupTopic])
	times := newTopic(s.cfg.TimesTopic, counts[s.cfg.TimesTopic])
	s.labels = newLabels(s, labels)
	s.chats = newChats(s, chats)
	s.dedup = newDedup(s, dedup)
	s.times = newTimes(s, times)
	labels.table, chats.table, dedup.table, times.table = s.labels, s.chats, s.dedup, s.times
	s.topics = []*topic{labels, chats, dedup, times}

	// Every partition is read from its first offset; Open returns once each
	// has reached the end offset it had before reading began.
	var ends []int64
	var parts []*partition
	for _, t := range s.topics {
		first, last, err := s.offsets(ctx, t, t.ids)
		if err != nil {
			return err
		}
		for _, p := range t.parts {
			p.pos = first[p.id]
			parts = append(parts, p)
			ends = append(ends, last[p.id])
		}
	}
	for _, t := range s.topics {
		s.wg.Add(1 + 2*len(t.parts))
		go s.probe(t)
		for _, p := range t.parts {
			go s.tail(p)
			go s.writer(p)
		}
	}
	for i, p := range parts {
		if err := s.waitFor(ctx, p, ends[i]); err != nil {
			return fmt.Errorf("kafkastate: restore %s: %w", p, err)
		}
	}
	s.chats.compact()
	s.wg.Add(1)
	go s.sweep(sweepEvery(s.cfg.ChatsTTL))
	return nil
}

// sweep drops the chats gone from memory every interval until Close. It
// runs whatever ChatsTTL is: other processes' claims may carry an expiry.
func (s *Store) sweep(every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
			if n := s.chats.sweep(); n > 0 {
				s.log.Debug("expired chats dropped from memory", zap.Int("chats", n))
			}
			if n := s.chats.aliases.sweep(); n > 0 {
				s.log.Debug("expired aliases dropped from memory", zap.Int("aliases", n))
			}
		}
	}
}

// createTopics creates the missing topics; an existing topic is left as it
// is (its partitions included) and checked afterwards.
func (s *Store) createTopics(ctx context.Context) error {
	withISR := func(entries ...kafka.ConfigEntry) []kafka.ConfigEntry {
		if n := s.cfg.MinInSyncReplicas; n > 0 {
			entries = append(entries, kafka.ConfigEntry{ConfigName: "min.insync.replicas", ConfigValue: strconv.Itoa(n)})
		}
		return entries
	}
	compacted := func(name string) kafka.TopicConfig {
		return kafka.TopicConfig{
			Topic:             name,
			NumPartitions:     s.cfg.Partitions,
			ReplicationFactor: s.cfg.ReplicationFactor,
			ConfigEntries: withISR(
				kafka.ConfigEntry{ConfigName: "cleanup.policy", ConfigValue: "compact"},
				kafka.ConfigEntry{ConfigName: "min.compaction.lag.ms", ConfigValue: ms(minCompactionLag)},
			),
		}
	}
	// Compaction keeps an id's last record only; deletion drops the
	// segments whose records are all older than the window, so ids that
	// are never written again need no tombstones. Segments of at most an
	// hour keep what outlives the window small.
	windowed := func(name string, window time.Duration) kafka.TopicConfig {
		return kafka.TopicConfig{
			Topic:             name,
			NumPartitions:     s.cfg.Partitions,
			ReplicationFactor: s.cfg.ReplicationFactor,
			ConfigEntries: withISR(
				kafka.ConfigEntry{ConfigName: "cleanup.policy", ConfigValue: "compact,delete"},
				kafka.ConfigEntry{ConfigName: "retention.ms", ConfigValue: ms(window)},
				kafka.ConfigEntry{ConfigName: "segment.ms", ConfigValue: ms(min(window, time.Hour))},
			),
		}
	}
	// Chats that expire leave with their segments once no process holds
	// them (see chatsKept); compaction still keeps a key's last record.
	chats := compacted(s.cfg.ChatsTopic)
	if ttl := s.cfg.ChatsTTL; ttl > 0 {
		chats.ConfigEntries[0].ConfigValue = "compact,delete"
		chats.ConfigEntries = append(chats.ConfigEntries, kafka.ConfigEntry{ConfigName: "retention.ms", ConfigValue: ms(ttl + chatsKept)})
	}
	resp, err := s.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{
		Topics: []kafka.TopicConfig{compacted(s.cfg.LabelsTopic), chats,
			windowed(s.cfg.DedupTopic, s.cfg.DedupWindow), windowed(s.cfg.TimesTopic, s.cfg.TimesTTL)},
	})
	if err != nil {
		return fmt.Errorf("kafkastate: create topics: %w", err)
	}
	for name, err := range resp.Errors {
		if err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			return fmt.Errorf("kafkastate: create topic %s: %w", name, err)
		}
	}
	kafkabroker.CheckMinInSync(ctx, s.client, []string{s.cfg.LabelsTopic, s.cfg.ChatsTopic, s.cfg.DedupTopic, s.cfg.TimesTopic},
		s.cfg.MinInSyncReplicas, s.log)
	return nil
}

func ms(d time.Duration) string { return strconv.FormatInt(d.Milliseconds(), 10) }

// partitionCounts waits for the topics to appear in the metadata, which the
// transport caches: a topic another process created moments ago shows up
// at the cache's next refresh.
func (s *Store) partitionCounts(ctx context.Context) (map[string]int, error) {
	names := []string{s.cfg.LabelsTopic, s.cfg.ChatsTopic, s.cfg.DedupTopic, s.cfg.TimesTopic}
	for attempt := 0; ; attempt++ {
		meta, err := s.client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
		if err != nil {
			return nil, fmt.Errorf("kafkastate: metadata: %w", err)
		}
		counts := make(map[string]int, len(names))
		missing := ""
		for _, t := range meta.Topics {
			if t.Error == nil && len(t.Partitions) > 0 {
				counts[t.Name] = len(t.Partitions)
			}
		}
		for _, n := range names {
			if counts[n] == 0 {
				missing = n
			}
		}
		if missing == "" {
			return counts, nil
		}
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return nil, fmt.Errorf("kafkastate: topic %s not in metadata: %w", missing, err)
		}
	}
}

// checkTopics refuses state topics whose cleanup would lose state that
// processes still hold: the labels and the chats topics must be compacted,
// and must not delete records by age, but for chats that expire, which
// then must be kept for their TTL and chatsKept (no process holds them
// longer). A topic that only grows is logged: restores read ever more.
func (s *Store) checkTopics(ctx context.Context) error {
	names := []string{s.cfg.LabelsTopic, s.cfg.ChatsTopic, s.cfg.DedupTopic, s.cfg.TimesTopic}
	req := &kafka.DescribeConfigsRequest{}
	for _, n := range names {
		req.Resources = append(req.Resources, kafka.DescribeConfigRequestResource{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: n, ConfigNames: []string{"cleanup.policy", "retention.ms"},
		})
	}
	resp, err := s.client.DescribeConfigs(ctx, req)
	if err != nil {
		return fmt.Errorf("kafkastate: describe topic configs: %w", err)
	}
	for _, r := range resp.Resources {
		if r.Error != nil {
			return fmt.Errorf("kafkastate: describe topic %s: %w", r.ResourceName, r.Error)
		}
		policy, described, retention := "", false, int64(-1)
		for _, e := range r.ConfigEntries {
			switch e.ConfigName {
			case "cleanup.policy":
				policy, described = e.ConfigValue, true
			case "retention.ms":
				if v, err := strconv.ParseInt(e.ConfigValue, 10, 64); err == nil {
					retention = v
				}
			}
		}
		compacts, deletes := false, false
		for _, p := range strings.Split(policy, ",") {
			compacts = compacts || strings.TrimSpace(p) == "compact"
			deletes = deletes || strings.TrimSpace(p) == "delete"
		}
		name, ttl := r.ResourceName, s.cfg.ChatsTTL
		switch {
		case !described:
			// A broker that does not tell: nothing to check.
		case name != s.cfg.LabelsTopic && name != s.cfg.ChatsTopic:
			if !deletes {
				s.log.Warn("state topic keeps every record: restores read ever more", zap.String("topic", name), zap.String("cleanup.policy", policy))
			}
		case !compacts:
			return fmt.Errorf("kafkastate: topic %s has cleanup.policy=%s, want compact", name, policy)
		case deletes && (name == s.cfg.LabelsTopic || ttl == 0):
			return fmt.Errorf("kafkastate: topic %s has cleanup.policy=%s: records deleted by age would take state kept forever; want compact, or for chats a chats TTL",
				name, policy)
		case deletes && retention >= 0 && retention < (ttl+chatsKept).Milliseconds():
			return fmt.Errorf("kafkastate: topic %s has retention.ms=%d: records deleted before chats expire; want at least the chats TTL %s and %s",
				name, retention, ttl, chatsKept)
		case name == s.cfg.ChatsTopic && ttl > 0 && !deletes:
			s.log.Warn("chats topic keeps expired chats: restores read them all; add delete to its cleanup.policy, with retention.ms the chats TTL and an hour",
				zap.String("topic", name), zap.String("cleanup.policy", policy))
		}
	}
	return nil
}

// offsets returns the first and the end (high watermark) offsets of the
// partitions ids of t.
func (s *Store) offsets(ctx context.Context, t *topic, ids []int) (first, last map[int]int64, err error) {
	reqs := make([]kafka.OffsetRequest, 0, 2*len(ids))
	for _, id := range ids {
		reqs = append(reqs, kafka.FirstOffsetOf(id), kafka.LastOffsetOf(id))
	}
	return s.listOffsets(ctx, t, ids, reqs)
}

// endOffsets returns the end (high watermark) offsets of the partitions ids
// of t. kafka-go sends a request per partition and offset asked for, so a
// catch-up, which needs only the end, asks only for it: half the round
// trips of offsets.
func (s *Store) endOffsets(ctx context.Context, t *topic, ids []int) (map[int]int64, error) {
	reqs := make([]kafka.OffsetRequest, 0, len(ids))
	for _, id := range ids {
		reqs = append(reqs, kafka.LastOffsetOf(id))
	}
	_, last, err := s.listOffsets(ctx, t, ids, reqs)
	return last, err
}

// listOffsets sends reqs, offsets of the partitions ids of t, and returns
// the first and end offsets learnt (first only where asked for).
func (s *Store) listOffsets(ctx context.Context, t *topic, ids []int, reqs []kafka.OffsetRequest) (first, last map[int]int64, err error) {
	resp, err := s.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{t.name: reqs}})
	if err != nil {
		return nil, nil, fmt.Errorf("kafkastate: list offsets of %s: %w", t.name, err)
	}
	first, last = make(map[int]int64, len(ids)), make(map[int]int64, len(ids))
	for _, po := range resp.Topics[t.name] {
		if po.Error != nil {
			return nil, nil, fmt.Errorf("kafkastate: list offsets of %s/%d: %w", t.name, po.Partition, po.Error)
		}
		first[po.Partition], last[po.Partition] = po.FirstOffset, po.LastOffset
	}
	for _, id := range ids {
		if _, ok := last[id]; !ok {
			return nil, nil, fmt.Errorf("kafkastate: list offsets of %s: no answer for partition %d", t.name, id)
		}
	}
	return first, last, nil
}

// write appends one record to partition p and returns its offset once every
// in-sync replica has it. The records written to a partition at once go in
// one produce request (Store.writer): a deriver claims a first time and
// marks an event done for each of the raw events it has in flight, so under
// load one round trip serves many of them.
func (s *Store) write(ctx context.Context, p *partition, key string, value []byte) (int64, error) {
	if err := s.alive(ctx); err != nil {
		return 0, err
	}
	w := &pendingWrite{rec: kafka.Record{Time: s.cfg.Now(), Key: kafka.NewBytes([]byte(key)), Value: kafka.NewBytes(value)},
		size: len(key) + len(value), done: make(chan struct{})}
	select {
	case p.writes <- w:
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-s.ctx.Done():
		return 0, ErrClosed
	}
	select {
	case <-w.done:
	case <-ctx.Done():
		// The record may still be written: a claim is settled by the
		// first record of its key, whoever wrote it.
		return 0, ctx.Err()
	case <-s.ctx.Done():
		return 0, ErrClosed
	}
	if w.err != nil {
		return 0, fmt.Errorf("write %s to %s: %w", key, p, w.err)
	}
	return w.off, nil
}

// pendingWrite is one record waiting for the partition's writer, and its
// outcome once done is closed.
type pendingWrite struct {
	rec  kafka.Record
	size int
	done chan struct{}
	off  int64
	err  error
}

// A produce request carries at most maxBatchRecords records, or
// maxBatchBytes of keys and values, whichever comes first: well under a
// topic's default max.message.bytes (1 MB).
const (
	maxBatchRecords = 256
	maxBatchBytes   = 256 << 10
)

// writer sends partition p's queued records, those waiting at the time in
// one request, until Close.
func (s *Store) writer(p *partition) {
	defer s.wg.Done()
	batch := make([]*pendingWrite, 0, maxBatchRecords)
	recs := make([]kafka.Record, 0, maxBatchRecords)
	for {
		select {
		case w := <-p.writes:
			batch = append(batch[:0], w)
		case <-s.ctx.Done():
			return
		}
		size := batch[0].size
	gather:
		for len(batch) < maxBatchRecords && size < maxBatchBytes {
			select {
			case w := <-p.writes:
				batch, size = append(batch, w), size+w.size
			default:
				break gather
			}
		}
		recs = recs[:0]
		for _, w := range batch {
			recs = append(recs, w.rec)
		}
		off, err := s.produce(p, recs)
		for i, w := range batch {
			w.off, w.err = off+int64(i), err
			close(w.done)
		}
		clear(batch)
	}
}

// produce appends recs to p in one request, in order, and returns the first
// one's offset once every in-sync replica has them.
func (s *Store) produce(p *partition, recs []kafka.Record) (int64, error) {
	resp, err := s.client.Produce(s.ctx, &kafka.ProduceRequest{
		Topic:        p.t.name,
		Partition:    p.id,
		RequiredAcks: kafka.RequireAll,
		Records:      kafka.NewRecordReader(recs...),
	})
	if err == nil {
		err = resp.Error
	}
	if err != nil {
		return 0, kafkabroker.Classify(err)
	}
	return resp.BaseOffset, nil
}

// alive reports ctx's error, or ErrClosed after Close.
func (s *Store) alive(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.ctx.Err() != nil {
		return ErrClosed
	}
	return nil
}

// Labels returns the label registry.
func (s *Store) Labels() *Labels { return s.labels }

// Chats returns the known chats.
func (s *Store) Chats() *Chats { return s.chats }

// Aliases returns the LID↔phone aliases, kept on the chats topic.
func (s *Store) Aliases() *Aliases { return s.chats.aliases }

// Dedup returns the deduplication of event ids.
func (s *Store) Dedup() *Dedup { return s.dedup }

// Times returns the first times of raw events stamped at receipt.
func (s *Store) Times() *Times { return s.times }

// Close stops tailing and waits, within ctx, for the background work to
// end. Calls after Close fail with ErrClosed; writes already acknowledged
// are on the topics. Connections still in a long-polling fetch close when
// it ends, within a second.
func (s *Store) Close(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.shutdown()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kafkastate: close: %w", ctx.Err())
	}
}

func (s *Store) shutdown() {
	s.closeOnce.Do(func() {
		s.cancel()
		s.wg.Wait()
		s.transport.CloseIdleConnections()
	})
}

// checkEvent refuses an event id the registries cannot keep exactly: see
// state.CheckEvent.
func checkEvent(eventID string) error {
	if err := state.CheckEvent(eventID); err != nil {
		return fmt.Errorf("kafkastate: %w", err)
	}
	return nil
}

// backoff is the pause before retry attempt (from 0) of a background loop.
func backoff(attempt int) time.Duration {
	return min(10*time.Millisecond<<min(attempt, 8), 2*time.Second)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
