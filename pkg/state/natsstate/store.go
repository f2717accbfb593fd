package natsstate

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/state"
)

// Default bucket names and sizes.
const (
	DefaultLabelsBucket   = "WAHOOK_LABELS"
	DefaultChatsBucket    = "WAHOOK_CHATS"
	DefaultChatCacheSize  = 65536
	DefaultLabelsMaxBytes = 64 << 20
	DefaultChatsMaxBytes  = 512 << 20
	DefaultTimesBucket    = "WAHOOK_TIMES"
	// DefaultTimesMaxBytes holds some seven million first times (about 150
	// bytes each with the bucket's overhead).
	DefaultTimesMaxBytes = 1 << 30
	// DefaultTimesTTL covers the longest retry horizon documented by a
	// provider (7 days).
	DefaultTimesTTL = 7 * 24 * time.Hour
)

// ErrContended reports that a write lost its compare-and-set race too many
// times in a row; the caller may retry the call later (it wraps
// broker.ErrUnavailable).
var ErrContended = fmt.Errorf("natsstate: too many concurrent writers: %w", broker.ErrUnavailable)

// maxAttempts bounds the compare-and-set rounds of one call. Each round has a
// winner, so it is enough for this many writers racing on one key.
const maxAttempts = 32

// Config configures a Store. The zero value is usable.
type Config struct {
	// LabelsBucket names the label registry's bucket, DefaultLabelsBucket
	// when empty.
	LabelsBucket string
	// ChatsBucket names the known chats' bucket, DefaultChatsBucket when
	// empty.
	ChatsBucket string
	// Replicas is each bucket's replica count in a cluster, 1 when zero.
	Replicas int
	// Storage is the buckets' storage, jetstream.FileStorage (the zero
	// value) unless set.
	Storage jetstream.StorageType
	// ChatCacheSize is how many chats' first events, and known aliases, a
	// Store remembers in memory, which spares a read for every repeat
	// sighting; DefaultChatCacheSize when zero, none when negative. Neither
	// changes once written, and an entry is kept no longer than the
	// bucket's max age (ChatsTTL), so the cache is never stale.
	ChatCacheSize int

	// LabelsMaxBytes (64 MiB) and ChatsMaxBytes (512 MiB, some two million
	// chats) cap the buckets' sizes when they are created, -1 unlimited.
	// A full bucket refuses new keys (KV buckets discard new), so nothing
	// known is forgotten: the writes fail and the consumer retries in place
	// until an operator makes room. Labels never expire: a label forgotten
	// would be "created" again and a delete by name could not be resolved.
	LabelsMaxBytes, ChatsMaxBytes int64
	// ChatsTTL forgets a known chat that long after it was first seen; 0
	// (the default) never does. A chat forgotten and seen again is announced
	// again (a second chat.created, with another id), so only set it when
	// that is acceptable, and above the raw stream's max age so that a
	// replayed raw event still finds the chat it made known.
	ChatsTTL time.Duration
	// Logger receives what Open finds on existing buckets; nothing is
	// logged when nil.
	Logger *zap.Logger
	// TimesBucket names the bucket of raw events' first times (see Times),
	// DefaultTimesBucket when empty.
	TimesBucket string
	// TimesTTL is how long a raw event's first time is kept, the bucket's
	// max age: a copy of the event stored later than that derives events
	// with its own receive time. DefaultTimesTTL when zero.
	TimesTTL time.Duration
	// TimesMaxBytes caps the times bucket, DefaultTimesMaxBytes when zero,
	// -1 unlimited. Like the other buckets it refuses new keys when full
	// (the consumers then retry in place, and their readiness says so)
	// until entries older than TimesTTL expire or an operator raises it.
	TimesMaxBytes int64
}

func (c *Config) setDefaults() {
	if c.LabelsBucket == "" {
		c.LabelsBucket = DefaultLabelsBucket
	}
	if c.ChatsBucket == "" {
		c.ChatsBucket = DefaultChatsBucket
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.ChatCacheSize == 0 {
		c.ChatCacheSize = DefaultChatCacheSize
	}
	if c.LabelsMaxBytes == 0 {
		c.LabelsMaxBytes = DefaultLabelsMaxBytes
	}
	if c.ChatsMaxBytes == 0 {
		c.ChatsMaxBytes = DefaultChatsMaxBytes
	}
	if c.TimesBucket == "" {
		c.TimesBucket = DefaultTimesBucket
	}
	if c.TimesTTL == 0 {
		c.TimesTTL = DefaultTimesTTL
	}
	if c.TimesMaxBytes == 0 {
		c.TimesMaxBytes = DefaultTimesMaxBytes
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

// ReservedBytes is what the buckets reserve in the server's store: the sum
// of their byte limits times the replicas, and whether all have a limit.
func (c Config) ReservedBytes() (int64, bool) {
	c.setDefaults()
	var sum int64
	bounded := true
	for _, n := range [...]int64{c.LabelsMaxBytes, c.ChatsMaxBytes, c.TimesMaxBytes} {
		if n < 0 {
			bounded = false
			continue
		}
		sum += n * int64(c.Replicas)
	}
	return sum, bounded
}

// Validate checks a configuration after defaults are applied.
func (c Config) Validate() error {
	if c.LabelsBucket == c.ChatsBucket || c.TimesBucket == c.LabelsBucket || c.TimesBucket == c.ChatsBucket {
		return fmt.Errorf("natsstate: buckets %q, %q and %q are not distinct: registries share a bucket", c.LabelsBucket, c.ChatsBucket, c.TimesBucket)
	}
	if c.TimesTTL < time.Second {
		return fmt.Errorf("natsstate: times TTL %v, want at least 1s", c.TimesTTL)
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return fmt.Errorf("natsstate: %d replicas, want 1 to 5", c.Replicas)
	}
	if c.Storage != jetstream.FileStorage && c.Storage != jetstream.MemoryStorage {
		return fmt.Errorf("natsstate: unknown storage %d", c.Storage)
	}
	for name, n := range map[string]int64{"labels": c.LabelsMaxBytes, "chats": c.ChatsMaxBytes, "times": c.TimesMaxBytes} {
		if n != -1 && n < minBucketBytes {
			return fmt.Errorf("natsstate: %s bucket max bytes %d, want -1 (unlimited) or at least %d", name, n, minBucketBytes)
		}
	}
	if c.ChatsTTL < 0 {
		return fmt.Errorf("natsstate: negative chats TTL %s", c.ChatsTTL)
	}
	return nil
}

// minBucketBytes is the smallest bucket byte limit Validate accepts.
const minBucketBytes = 1 << 20

// Store is the derived streams' state on JetStream. It is safe for
// concurrent use, also with Stores of other processes on the same buckets.
type Store struct {
	labels  *Labels
	chats   *Chats
	aliases *Aliases
	times   *Times
}

// Open creates the buckets that do not exist, checks those that do, and
// returns a Store on them. Every process opens the same buckets at start;
// an existing bucket is updated only when a setting the registries rely on
// is wrong (see ensureBucket).
func Open(ctx context.Context, js jetstream.JetStream, cfg Config) (*Store, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	labels, err := ensureBucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:      cfg.LabelsBucket,
		Description: "wahook: last known state of each channel's labels",
		History:     1,
		Storage:     cfg.Storage,
		Replicas:    cfg.Replicas,
		MaxBytes:    cfg.LabelsMaxBytes,
	}, cfg.Logger)
	if err != nil {
		return nil, err
	}
	chats, err := ensureBucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:      cfg.ChatsBucket,
		Description: "wahook: each channel's known chats and the event that first saw them",
		History:     1,
		Storage:     cfg.Storage,
		Replicas:    cfg.Replicas,
		MaxBytes:    cfg.ChatsMaxBytes,
		TTL:         cfg.ChatsTTL,
	}, cfg.Logger)
	if err != nil {
		return nil, err
	}
	times, err := ensureBucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:      cfg.TimesBucket,
		Description: "wahook: the time of raw events stamped at receipt, for their later copies",
		History:     1,
		TTL:         cfg.TimesTTL,
		Storage:     cfg.Storage,
		Replicas:    cfg.Replicas,
		MaxBytes:    cfg.TimesMaxBytes,
	}, cfg.Logger)
	if err != nil {
		return nil, err
	}
	// The bucket's stream, to list a channel's label keys (see Labels.scan).
	stream, err := js.Stream(ctx, "KV_"+cfg.LabelsBucket)
	if err != nil {
		return nil, fmt.Errorf("natsstate: bucket %s: stream: %w", cfg.LabelsBucket, err)
	}
	return newStore(ctx, js, cfg, labels, chats, times, stream)
}

// newStore returns a Store on the buckets. The chats cache keeps entries
// for the bucket's max age as it is, which may not be the configured one:
// an existing bucket's TTL is the operator's.
func newStore(ctx context.Context, js jetstream.JetStream, cfg Config, labels, chats, times jetstream.KeyValue, stream jetstream.Stream) (*Store, error) {
	st, err := chats.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("natsstate: bucket %s: status: %w", cfg.ChatsBucket, natsbroker.Classify(err))
	}
	timesStream, err := js.Stream(ctx, "KV_"+cfg.TimesBucket)
	if err != nil {
		return nil, fmt.Errorf("natsstate: bucket %s: stream: %w", cfg.TimesBucket, natsbroker.Classify(err))
	}
	cache := newFirstCache(cfg.ChatCacheSize)
	return &Store{
		labels:  &Labels{kv: labels, stream: stream, subjects: "$KV." + cfg.LabelsBucket + "."},
		chats:   &Chats{kv: chats, cache: cache, ttl: st.TTL()},
		aliases: &Aliases{kv: chats, cache: cache, ttl: st.TTL(), log: cfg.Logger},
		times:   newTimes(times, js, timesStream.CachedInfo()),
	}, nil
}

// ErrNoState reports that a bucket OpenExisting needs does not exist: no
// process deriving streams has opened the state yet.
var ErrNoState = errors.New("natsstate: no state yet: no process deriving streams has created its buckets")

// OpenExisting returns a Store on the buckets as they are, for reading:
// it creates, checks and updates nothing, and fails with ErrNoState when a
// bucket is missing. Only processes that derive streams Open the state.
func OpenExisting(ctx context.Context, js jetstream.JetStream, cfg Config) (*Store, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var kvs [3]jetstream.KeyValue
	for i, name := range [...]string{cfg.LabelsBucket, cfg.ChatsBucket, cfg.TimesBucket} {
		kv, err := js.KeyValue(ctx, name)
		switch {
		case errors.Is(err, jetstream.ErrBucketNotFound):
			return nil, fmt.Errorf("%w (bucket %s is missing)", ErrNoState, name)
		case err != nil:
			return nil, fmt.Errorf("natsstate: bucket %s: %w", name, natsbroker.Classify(err))
		}
		kvs[i] = kv
	}
	stream, err := js.Stream(ctx, "KV_"+cfg.LabelsBucket)
	if err != nil {
		return nil, fmt.Errorf("natsstate: bucket %s: stream: %w", cfg.LabelsBucket, natsbroker.Classify(err))
	}
	return newStore(ctx, js, cfg, kvs[0], kvs[1], kvs[2], stream)
}

// ensureBucket creates the bucket when it does not exist. An existing one
// is updated only when what the registries rely on is wrong: one value per
// key (history 1), the storage, at least the configured replicas. Its byte
// limit, TTL, more replicas and the rest are the operator's: a difference
// from cfg is logged and kept. An unchanged bucket gets no update request,
// which would race inside nats-server with consumers being created.
func ensureBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig, log *zap.Logger) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = js.CreateKeyValue(ctx, cfg)
		if err == nil {
			log.Info("bucket created", zap.String("bucket", cfg.Bucket), zap.Int64("max_bytes", cfg.MaxBytes), zap.Duration("ttl", cfg.TTL))
			return kv, nil
		}
		if errors.Is(err, jetstream.ErrBucketExists) {
			// Another process created it, with other settings, meanwhile.
			kv, err = js.KeyValue(ctx, cfg.Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("natsstate: bucket %s: %w", cfg.Bucket, err)
	}
	if err := checkBucket(ctx, js, cfg, log); err != nil {
		return nil, fmt.Errorf("natsstate: bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

func checkBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig, log *zap.Logger) error {
	s, err := js.Stream(ctx, "KV_"+cfg.Bucket)
	if err != nil {
		return err
	}
	have := s.CachedInfo().Config
	fixed := have
	required := false
	differs := func(setting string, h, w any, req bool) {
		if req {
			required = true
			log.Warn("bucket setting is not what wahook requires: updating it", zap.String("bucket", cfg.Bucket),
				zap.String("setting", setting), zap.Any("have", h), zap.Any("want", w))
			return
		}
		log.Info("bucket setting differs from the configuration: kept, the operator's to tune", zap.String("bucket", cfg.Bucket),
			zap.String("setting", setting), zap.Any("have", h), zap.Any("configured", w))
	}
	if have.Storage != cfg.Storage {
		return fmt.Errorf("storage is %s, want %s: JetStream cannot change it, recreate the bucket", have.Storage, cfg.Storage)
	}
	if have.MaxMsgsPerSubject != int64(cfg.History) {
		differs("history", have.MaxMsgsPerSubject, cfg.History, true)
		fixed.MaxMsgsPerSubject = int64(cfg.History)
	}
	if have.Replicas != cfg.Replicas {
		req := have.Replicas < cfg.Replicas
		differs("replicas", have.Replicas, cfg.Replicas, req)
		if req {
			fixed.Replicas = cfg.Replicas
		}
	}
	if have.MaxBytes != cfg.MaxBytes {
		differs("max_bytes", have.MaxBytes, cfg.MaxBytes, false)
	}
	if have.MaxAge != cfg.TTL {
		differs("ttl", have.MaxAge, cfg.TTL, false)
	}
	if !required {
		return nil
	}
	if _, err := js.UpdateStream(ctx, fixed); err != nil {
		return fmt.Errorf("update: %w", err)
	}
	return nil
}

// Labels returns the label registry.
func (s *Store) Labels() *Labels { return s.labels }

// Chats returns the known chats.
func (s *Store) Chats() *Chats { return s.chats }

// Aliases returns the LID↔phone aliases, kept in the chats bucket.
func (s *Store) Aliases() *Aliases { return s.aliases }

// Times returns the first times of raw events stamped at receipt.
func (s *Store) Times() *Times { return s.times }

// checkEvent refuses an event id the registries cannot keep exactly: see
// state.CheckEvent.
func checkEvent(eventID string) error {
	if err := state.CheckEvent(eventID); err != nil {
		return fmt.Errorf("natsstate: %w", err)
	}
	return nil
}

// conflict reports whether err is a lost compare-and-set.
var conflict = natsbroker.KVConflict

// pause waits before compare-and-set round attempt (from 1), a random
// while growing with the attempt, so racing writers spread out.
func pause(ctx context.Context, attempt int) error {
	d := time.Duration(rand.Int64N(int64(min(attempt, 8)) * int64(250*time.Microsecond)))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
