package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream names and the subjects they capture (contract sections 2 and 3).
const (
	IngressStream    = "WAHOOK_INGRESS"
	DeadLetterStream = "WAHOOK_DEADLETTER"
	DerivedStream    = "WAHOOK_DERIVED"

	IngressSubjects           = "wahook.ingress.>"
	DeadLetterSubjects        = "wahook.deadletter.>"
	LabelChangedSubjects      = "wahook.label-changed.>"
	ChatCreatedSubjects       = "wahook.chat-created.>"
	CallSubjects              = "wahook.call.>"
	GroupNotificationSubjects = "wahook.group-notification.>"
)

// Stream defaults.
const (
	DefaultDuplicates       = 10 * time.Minute
	DefaultIngressMaxAge    = 30 * 24 * time.Hour
	DefaultDeadLetterMaxAge = 90 * 24 * time.Hour
	DefaultDerivedMaxAge    = 30 * 24 * time.Hour
)

// StreamsConfig sizes the three streams. Zero values take the defaults.
type StreamsConfig struct {
	// Replicas per stream, 1 when zero; 3 in a production cluster, where a
	// PubAck then means a quorum stored the message.
	Replicas int
	// Duplicates is the de-duplication window on Nats-Msg-Id, 10m when zero.
	// It must cover the providers' retry delays: a webhook redelivered after
	// the window has passed is stored a second time (with the same id).
	Duplicates time.Duration
	// IngressMaxAge (30 days), DeadLetterMaxAge (90 days) and DerivedMaxAge
	// (30 days) bound how long messages are kept, which is how far back a
	// consumer can replay.
	IngressMaxAge    time.Duration
	DeadLetterMaxAge time.Duration
	DerivedMaxAge    time.Duration
	// MaxBytes caps each stream's size, -1 (unlimited) when zero; the oldest
	// messages are discarded first.
	MaxBytes int64
}

func (c *StreamsConfig) setDefaults() {
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.Duplicates == 0 {
		c.Duplicates = DefaultDuplicates
	}
	if c.IngressMaxAge == 0 {
		c.IngressMaxAge = DefaultIngressMaxAge
	}
	if c.DeadLetterMaxAge == 0 {
		c.DeadLetterMaxAge = DefaultDeadLetterMaxAge
	}
	if c.DerivedMaxAge == 0 {
		c.DerivedMaxAge = DefaultDerivedMaxAge
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = -1
	}
}

// Validate checks a configuration after defaults are applied.
func (c StreamsConfig) Validate() error {
	if c.Replicas < 1 || c.Replicas > 5 {
		return fmt.Errorf("natsbroker: streams: replicas %d, want 1 to 5", c.Replicas)
	}
	if c.Duplicates < 0 {
		return fmt.Errorf("natsbroker: streams: negative duplicates window %s", c.Duplicates)
	}
	if c.MaxBytes < -1 {
		return fmt.Errorf("natsbroker: streams: max bytes %d, want -1 or more", c.MaxBytes)
	}
	// The server refuses a duplicates window longer than the retention.
	for name, age := range map[string]time.Duration{
		IngressStream: c.IngressMaxAge, DeadLetterStream: c.DeadLetterMaxAge, DerivedStream: c.DerivedMaxAge,
	} {
		if age < 0 {
			return fmt.Errorf("natsbroker: streams: %s: negative max age %s", name, age)
		}
		if age < c.Duplicates {
			return fmt.Errorf("natsbroker: streams: %s: max age %s shorter than duplicates window %s", name, age, c.Duplicates)
		}
	}
	return nil
}

// StreamConfigs returns the definitions EnsureStreams applies.
func (c StreamsConfig) StreamConfigs() []jetstream.StreamConfig {
	def := func(name, desc string, maxAge time.Duration, subjects ...string) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:        name,
			Description: desc,
			Subjects:    subjects,
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Discard:     jetstream.DiscardOld,
			Replicas:    c.Replicas,
			Duplicates:  c.Duplicates,
			MaxAge:      maxAge,
			MaxBytes:    c.MaxBytes,
			MaxMsgs:     -1,
		}
	}
	return []jetstream.StreamConfig{
		def(IngressStream, "wahook raw provider events", c.IngressMaxAge, IngressSubjects),
		def(DeadLetterStream, "wahook dead letters", c.DeadLetterMaxAge, DeadLetterSubjects),
		def(DerivedStream, "wahook derived events", c.DerivedMaxAge,
			LabelChangedSubjects, ChatCreatedSubjects, CallSubjects, GroupNotificationSubjects),
	}
}

// streamNames lists the streams Ready checks.
var streamNames = [...]string{IngressStream, DeadLetterStream, DerivedStream}

// subjectPrefixes maps each subject filter without its ">" to its stream.
var subjectPrefixes = [...]struct{ prefix, stream string }{
	{strings.TrimSuffix(IngressSubjects, ">"), IngressStream},
	{strings.TrimSuffix(DeadLetterSubjects, ">"), DeadLetterStream},
	{strings.TrimSuffix(LabelChangedSubjects, ">"), DerivedStream},
	{strings.TrimSuffix(ChatCreatedSubjects, ">"), DerivedStream},
	{strings.TrimSuffix(CallSubjects, ">"), DerivedStream},
	{strings.TrimSuffix(GroupNotificationSubjects, ">"), DerivedStream},
}

// StreamFor names the stream that stores subject, or reports false when
// none of wahook's streams captures it.
func StreamFor(subject string) (string, bool) {
	for _, p := range subjectPrefixes {
		// ">" needs at least one more token after the prefix.
		if len(subject) > len(p.prefix) && strings.HasPrefix(subject, p.prefix) {
			return p.stream, true
		}
	}
	return "", false
}

// ErrNoStream is returned by Publish for a subject no wahook stream captures.
// It is not ErrUnavailable: retrying cannot help.
var ErrNoStream = errors.New("natsbroker: no stream for subject")

// EnsureStreams creates the three streams or updates them to the
// configuration. It is idempotent, so every service runs it at start.
func (b *Broker) EnsureStreams(ctx context.Context) error {
	for _, sc := range b.cfg.Streams.StreamConfigs() {
		if _, err := b.js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("natsbroker: ensure stream %s: %w", sc.Name, classify(err))
		}
	}
	return nil
}
