package natsstate

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/state"
)

// Default bucket names and sizes.
const (
	DefaultLabelsBucket  = "WAHOOK_LABELS"
	DefaultChatsBucket   = "WAHOOK_CHATS"
	DefaultChatCacheSize = 65536
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
	// ChatCacheSize is how many chats' first events a Store remembers in
	// memory, which spares a read for every repeat sighting;
	// DefaultChatCacheSize when zero, none when negative. A chat's first
	// event never changes, so the cache is never stale.
	ChatCacheSize int
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
}

// Validate checks a configuration after defaults are applied.
func (c Config) Validate() error {
	if c.LabelsBucket == c.ChatsBucket {
		return fmt.Errorf("natsstate: labels and chats share bucket %q", c.LabelsBucket)
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return fmt.Errorf("natsstate: %d replicas, want 1 to 5", c.Replicas)
	}
	if c.Storage != jetstream.FileStorage && c.Storage != jetstream.MemoryStorage {
		return fmt.Errorf("natsstate: unknown storage %d", c.Storage)
	}
	return nil
}

// Store is the derived streams' state on JetStream. It is safe for
// concurrent use, also with Stores of other processes on the same buckets.
type Store struct {
	labels *Labels
	chats  *Chats
}

// Open creates the buckets, or updates them to cfg, and returns a Store on
// them. It is idempotent: every process opens the same buckets at start.
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
	})
	if err != nil {
		return nil, err
	}
	chats, err := ensureBucket(ctx, js, jetstream.KeyValueConfig{
		Bucket:      cfg.ChatsBucket,
		Description: "wahook: each channel's known chats and the event that first saw them",
		History:     1,
		Storage:     cfg.Storage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, err
	}
	return &Store{
		labels: &Labels{kv: labels},
		chats:  &Chats{kv: chats, cache: newFirstCache(cfg.ChatCacheSize)},
	}, nil
}

func ensureBucket(ctx context.Context, js jetstream.JetStream, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, cfg)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		// Another process created the bucket between our update and create
		// attempts; it now exists, so updating it succeeds.
		kv, err = js.CreateOrUpdateKeyValue(ctx, cfg)
	}
	if err != nil {
		return nil, fmt.Errorf("natsstate: bucket %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// Labels returns the label registry.
func (s *Store) Labels() *Labels { return s.labels }

// Chats returns the known chats.
func (s *Store) Chats() *Chats { return s.chats }

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
