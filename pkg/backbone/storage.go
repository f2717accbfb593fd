package backbone

import (
	"flag"
	"fmt"
	"time"

	"github.com/wahook/wahook/pkg/broker/kafkabroker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/state/natsstate"
)

// StorageConfig limits what JetStream keeps: the streams, the state
// buckets and the embedded server's store. Zero values take the defaults of
// natsbroker and natsstate.
type StorageConfig struct {
	// Byte limits (-1 unlimited) and ages of the streams, applied when a
	// stream is created; an existing stream keeps the operator's.
	IngressMaxBytes, DeadLetterMaxBytes, DerivedMaxBytes int64
	IngressMaxAge, DeadLetterMaxAge, DerivedMaxAge       time.Duration
	// UpdateStreams applies them (and the replicas and duplicates window)
	// to existing streams as well.
	UpdateStreams bool
	// Byte limits of the state buckets and how long a known chat is
	// remembered (0: forever), applied when a bucket is created.
	LabelsMaxBytes, ChatsMaxBytes, TimesMaxBytes int64
	ChatsTTL                                     time.Duration
	// MaxStore and MaxMemory cap the embedded server's stores.
	MaxStore, MaxMemory int64
	// HighWater is the share of a limit above which readiness fails.
	HighWater float64
}

// RegisterFlags declares the storage flags on fs (WAHOOK_NATS_* variables
// with ff).
func (c *StorageConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.Var(newByteSize(&c.IngressMaxBytes, natsbroker.DefaultIngressMaxBytes), "nats-ingress-max-bytes",
		"raw stream byte limit at creation (-1 unlimited); when full the ingress answers 503")
	fs.DurationVar(&c.IngressMaxAge, "nats-ingress-max-age", natsbroker.DefaultIngressMaxAge, "raw stream retention at creation")
	fs.Var(newByteSize(&c.DeadLetterMaxBytes, natsbroker.DefaultDeadLetterMaxBytes), "nats-deadletter-max-bytes",
		"dead-letter stream byte limit at creation (-1 unlimited); when full dead-lettering fails and is retried")
	fs.DurationVar(&c.DeadLetterMaxAge, "nats-deadletter-max-age", natsbroker.DefaultDeadLetterMaxAge, "dead-letter stream retention at creation")
	fs.Var(newByteSize(&c.DerivedMaxBytes, natsbroker.DefaultDerivedMaxBytes), "nats-derived-max-bytes",
		"derived stream byte limit at creation (-1 unlimited); when full its oldest events are dropped")
	fs.DurationVar(&c.DerivedMaxAge, "nats-derived-max-age", natsbroker.DefaultDerivedMaxAge, "derived stream retention at creation")
	fs.Var(newByteSize(&c.LabelsMaxBytes, natsstate.DefaultLabelsMaxBytes), "nats-labels-max-bytes", "label registry bucket byte limit at creation (-1 unlimited)")
	fs.Var(newByteSize(&c.ChatsMaxBytes, natsstate.DefaultChatsMaxBytes), "nats-chats-max-bytes", "known chats bucket byte limit at creation (-1 unlimited)")
	fs.Var(newByteSize(&c.TimesMaxBytes, natsstate.DefaultTimesMaxBytes), "nats-times-max-bytes",
		"first receive times bucket byte limit at creation (-1 unlimited); about 150 bytes per raw event without a provider time, kept -received-time-ttl")
	fs.DurationVar(&c.ChatsTTL, "nats-chats-ttl", 0, "forget a known chat this long after it was first seen (0: never); a chat seen again after that is announced again")
	fs.Var(newByteSize(&c.MaxStore, natsbroker.DefaultMaxStore), "nats-max-store", "embedded server: file store limit; stream and bucket limits must fit in it")
	fs.Var(newByteSize(&c.MaxMemory, natsbroker.DefaultMaxMemory), "nats-max-memory", "embedded server: memory store limit")
	fs.BoolVar(&c.UpdateStreams, "nats-update-streams", false,
		"apply the stream settings above to existing streams too, undoing an operator's edits (default: only create; existing streams keep their settings)")
	fs.Float64Var(&c.HighWater, "nats-storage-high-water", natsbroker.DefaultStorageHighWater,
		"readiness fails when the raw stream or a store is fuller than this share of its limit")
}

func (c StorageConfig) streams(replicas int, duplicates time.Duration) natsbroker.StreamsConfig {
	return natsbroker.StreamsConfig{
		Replicas: replicas, Duplicates: duplicates,
		IngressMaxAge: c.IngressMaxAge, DeadLetterMaxAge: c.DeadLetterMaxAge, DerivedMaxAge: c.DerivedMaxAge,
		IngressMaxBytes: c.IngressMaxBytes, DeadLetterMaxBytes: c.DeadLetterMaxBytes, DerivedMaxBytes: c.DerivedMaxBytes,
		UpdateSettings: c.UpdateStreams,
	}
}

func (c StorageConfig) state(replicas int) natsstate.Config {
	return natsstate.Config{Replicas: replicas, LabelsMaxBytes: c.LabelsMaxBytes, ChatsMaxBytes: c.ChatsMaxBytes,
		TimesMaxBytes: c.TimesMaxBytes, ChatsTTL: c.ChatsTTL}
}

func (c StorageConfig) embedded() natsbroker.EmbeddedStorageConfig {
	return natsbroker.EmbeddedStorageConfig{MaxStore: c.MaxStore, MaxMemory: c.MaxMemory}
}

// validate checks the settings together: a chat TTL shorter than the raw
// stream's age would let a replay announce a chat twice, and on the
// embedded server the streams' and buckets' limits must fit in its store,
// which refuses to create a stream whose limit it cannot reserve.
func (c StorageConfig) validate(embedded bool, replicas int, duplicates time.Duration) error {
	streams := c.streams(replicas, duplicates)
	ingressAge := streams.IngressMaxAge
	if ingressAge == 0 {
		ingressAge = natsbroker.DefaultIngressMaxAge
	}
	if c.ChatsTTL < 0 || (c.ChatsTTL > 0 && c.ChatsTTL < ingressAge) {
		return fmt.Errorf("chats TTL %s: want 0 (never) or at least the raw stream's max age %s", c.ChatsTTL, ingressAge)
	}
	if c.HighWater < 0 || c.HighWater > 1 {
		return fmt.Errorf("storage high-water mark %g: want 0 (the default) to 1", c.HighWater)
	}
	if !embedded {
		return nil
	}
	maxStore := c.MaxStore
	if maxStore == 0 {
		maxStore = natsbroker.DefaultMaxStore
	}
	s, _ := streams.ReservedBytes()
	b, _ := c.state(replicas).ReservedBytes()
	b += natsbroker.LeaseBucketBytes * int64(replicas)
	if s+b > maxStore {
		return fmt.Errorf("the streams' (%s) and buckets' (%s) byte limits exceed the embedded store limit %s: raise WAHOOK_NATS_MAX_STORE or lower WAHOOK_NATS_*_MAX_BYTES",
			formatByteSize(s), formatByteSize(b), formatByteSize(maxStore))
	}
	return nil
}

// checkKafkaChatsTTL refuses a Kafka chat TTL shorter than the raw topic's
// retention (its default when zero, -1 forever), for the NATS TTL's reason:
// a replayed raw event must still find the chat it made known.
func checkKafkaChatsTTL(ttl, ingressRetention time.Duration) error {
	if ingressRetention == 0 {
		ingressRetention = kafkabroker.DefaultIngressRetention
	}
	switch {
	case ttl == 0:
		return nil
	case ingressRetention < 0:
		return fmt.Errorf("kafka chats TTL %s: want 0 (never), as the raw topic keeps its records forever", ttl)
	case ttl < ingressRetention:
		return fmt.Errorf("kafka chats TTL %s: want 0 (never) or at least the raw topic's retention %s", ttl, ingressRetention)
	}
	return nil
}
