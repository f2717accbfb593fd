// Package broker is the small abstraction wahook's services publish and
// consume through. It knows subjects, keys, headers and bytes; CloudEvents are
// mapped onto it by package envelope, and each backbone (NATS JetStream, Kafka)
// implements it in its own package so no client type leaks into providers,
// derivation or HTTP handlers.
package broker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Header holds message headers. Its shape matches nats.Header so the NATS
// implementation converts it without copying.
type Header map[string][]string

// Get returns the first value of key, or "".
func (h Header) Get(key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set replaces the values of key with value.
func (h Header) Set(key, value string) { h[key] = []string{value} }

// Message is one record to publish or one record received.
type Message struct {
	// Topic is the logical stream the message belongs to, e.g.
	// "wahook.ingress". Kafka publishes to the topic of that name.
	Topic string
	// Subject is Topic followed by routing tokens, e.g.
	// "wahook.ingress.whapi.MANTIS-M72HC.chats.patch". NATS publishes on it.
	Subject string
	// Key orders messages: records with one key keep their order. It
	// reaches consumers unchanged (the Kafka message key; a header on NATS).
	Key string
	// ID is the de-duplication id (Nats-Msg-Id on NATS).
	ID     string
	Header Header
	Data   []byte
}

// Publisher stores messages durably.
type Publisher interface {
	// Publish returns nil only after the broker has durably stored every
	// message (a JetStream PubAck, a Kafka write acknowledged by all in-sync
	// replicas). Messages are published concurrently; on error some of them
	// may be stored, and publishing them again with the same IDs is safe.
	// A broker that is down or too slow yields an error wrapping ErrUnavailable.
	Publish(ctx context.Context, msgs ...Message) error
}

// ErrUnavailable marks errors that mean the broker could not be reached or did
// not acknowledge in time: the caller should retry later.
var ErrUnavailable = errors.New("broker unavailable")

// ErrClosed is returned by operations on a closed publisher or subscriber.
var ErrClosed = errors.New("broker closed")

// ErrRejected marks a message the broker refuses for what it is, not for
// the broker's state: no stream captures its subject, a subject or header
// the server would refuse, a payload over the broker's limit. Publishing it
// again never succeeds, so callers must not answer "retry later": they keep
// it elsewhere (a dead letter) and say why.
var ErrRejected = errors.New("message rejected by the broker")

// ErrTooLarge marks a message over the broker's size limit. Errors wrapping
// it wrap ErrRejected too.
var ErrTooLarge = errors.New("message too large for the broker")

// Rejected wraps err with ErrRejected.
func Rejected(err error) error { return fmt.Errorf("%w: %w", ErrRejected, err) }

// TooLarge returns an error wrapping ErrRejected and ErrTooLarge that says
// how large the message was and what the limit is.
func TooLarge(size, limit int) error {
	return fmt.Errorf("%w: %w: %d bytes, limit %d", ErrRejected, ErrTooLarge, size, limit)
}

// Limits is implemented by publishers that know the largest message the
// broker takes, so that callers can split what would not fit (dead letters
// of large bodies).
type Limits interface {
	// MaxMessageBytes is the largest Size of a message the broker accepts.
	MaxMessageBytes() int
}

// Received is a message handed to a Handler.
type Received struct {
	Message
	// Attempt counts the handler calls for this message, earlier
	// deliveries included where the broker tells them: 1 the first time.
	Attempt int
}

// Handler processes one received message. Returning nil acknowledges it; an
// error wrapped by Permanent terminates it (it is never redelivered: the
// handler has dead-lettered it). Any other error is retried in place after
// a backoff, so that the messages after it with the same Key wait: for as
// long as it takes when the error wraps ErrUnavailable (the broker or a
// store is down or slow), else up to Subscription.MaxAttempts failed
// attempts, after which the message is given to Subscription.Poison. A
// panic is recovered and given to Poison at once. Without a Poison hook
// every failure, panics included, is retried in place forever. When
// Subscribe's ctx ends, a running handler's ctx stays usable for a grace
// period so that it can finish what it started.
type Handler func(ctx context.Context, m Received) error

// Subscription says what to consume and how.
type Subscription struct {
	// Topic is the logical topic, e.g. "wahook.ingress".
	Topic string
	// Group names the durable position shared by the instances of one
	// consumer (a JetStream durable consumer, a Kafka consumer group).
	Group string
	// Filter narrows the topic to these subjects (NATS wildcards); empty
	// means all of it.
	Filter []string
	// StartTime is where a group that does not exist yet starts; zero means
	// the beginning of the topic. An existing group resumes where it was.
	StartTime time.Time
	// Concurrency is how many messages are processed at once; messages with
	// the same Key are processed one at a time, in order. 1 when zero.
	Concurrency int
	// Partition and Partitions split the work among instances: an instance
	// processes the keys that hash to its partition (0 <= Partition <
	// Partitions). Partitions 0 or 1 means one instance does everything.
	Partition, Partitions int
	// MaxAttempts is how many times a message whose handler fails with an
	// error not wrapping ErrUnavailable is tried before it is given to
	// Poison; 10 when zero. Only with a Poison hook.
	MaxAttempts int
	// Poison, when set, receives a message given up on (see Handler) with
	// the error that ended it (wrapping ErrPanic after a panic). It stores
	// the message elsewhere (a dead letter) and returns nil: the message
	// is then terminated, as with a Permanent error, and the key's later
	// messages go on. An error from Poison is retried in place, holding
	// the key, until it succeeds or Subscribe's ctx ends.
	Poison func(ctx context.Context, m Received, cause error) error
	// Progress, when set, reports the subscription's progress while
	// Subscribe runs (see Progress).
	Progress *Progress
	// Skip, when set, is asked about each message, by its headers alone,
	// before the message is queued: a message it reports is acknowledged
	// at once (Kafka: committed), without calling the handler or waiting
	// for the key's earlier messages. It passes over what a subscriber
	// does not read where Filter cannot (Kafka records have no subject),
	// and what a narrowed Filter no longer matches but the server still
	// holds for redelivery. It must be quick and must not block.
	Skip func(Header) bool
}

// ErrPanic is wrapped by the error a handler's panic becomes.
var ErrPanic = errors.New("handler panicked")

// Stats is a subscription's progress at one moment.
type Stats struct {
	// Pending counts the messages received and not settled: queued,
	// being handled, or waiting to be tried again.
	Pending int
	// Retrying counts the pending messages whose last attempt failed and
	// that wait for the next one.
	Retrying int
	// Oldest is when the oldest pending message was received; zero when
	// none is pending.
	Oldest time.Time
	// LastProgress is when a message was last settled (acknowledged,
	// terminated or poisoned), or when Subscribe started.
	LastProgress time.Time
	// Handled, Terminated and Poisoned count the messages settled since
	// Subscribe started: acknowledged, terminated by their handler
	// (Permanent), and given up on and stored by Poison.
	Handled, Terminated, Poisoned uint64
}

// Stalled is how long the subscription has held work without settling any
// message: zero when nothing is pending, else the time since the later of
// the last progress and the oldest pending message's arrival.
func (s Stats) Stalled(now time.Time) time.Duration {
	if s.Pending == 0 {
		return 0
	}
	since := s.LastProgress
	if s.Oldest.After(since) {
		since = s.Oldest
	}
	return max(now.Sub(since), 0)
}

// Progress lets the caller of Subscribe watch a subscription: put one in
// Subscription.Progress and call Stats at any time, from any goroutine.
type Progress struct {
	mu  sync.Mutex
	src func() Stats
}

// Stats returns the subscription's progress; the zero Stats until
// Subscribe started consuming.
func (p *Progress) Stats() Stats {
	p.mu.Lock()
	src := p.src
	p.mu.Unlock()
	if src == nil {
		return Stats{}
	}
	return src()
}

// Report is for Subscriber implementations: Stats calls src from now on.
func (p *Progress) Report(src func() Stats) {
	p.mu.Lock()
	p.src = src
	p.mu.Unlock()
}

// Backlog is how far a durable consumer is behind its topic.
type Backlog struct {
	// Group is the broker's name of the consumer: the JetStream durable
	// consumer or the Kafka consumer group (partitioned: that partition's).
	Group string
	// Pending counts the messages stored after the consumer's position:
	// not delivered yet (JetStream NumPending), or after the group's
	// commit up to the high watermark (Kafka, summed over partitions).
	Pending int64
	// Unacked counts the messages delivered and not acknowledged
	// (JetStream NumAckPending); -1 on Kafka, which counts them in
	// Pending.
	Unacked int64
}

// BacklogReader is a Subscriber that can tell a subscription's backlog. The
// answer is the broker's, whether or not this process is consuming.
type BacklogReader interface {
	Backlog(ctx context.Context, s Subscription) (Backlog, error)
}

// Subscriber consumes messages durably. One Subscriber may run several
// Subscribe calls at once.
type Subscriber interface {
	// Subscribe hands messages to h until ctx is done, then waits for the
	// handlers in flight and returns ctx's error. Messages not acknowledged
	// by then are redelivered later, to this or another instance. An
	// invalid Subscription fails at once; a closed broker gives ErrClosed.
	Subscribe(ctx context.Context, s Subscription, h Handler) error
}

// PermanentError marks an error that retrying cannot fix.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err so that the message is not redelivered.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err was wrapped by Permanent.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// PartitionOf returns the partition of key among n (FNV-1a), the same on
// every broker and instance.
func PartitionOf(key string, n int) int {
	if n <= 1 {
		return 0
	}
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}
