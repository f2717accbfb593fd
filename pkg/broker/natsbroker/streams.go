package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
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

// Stream defaults. The byte limits fit, with the state buckets'
// (natsstate), inside the embedded server's default store limit
// (DefaultMaxStore), leaving room for consumer state and other streams.
const (
	DefaultDuplicates         = 10 * time.Minute
	DefaultIngressMaxAge      = 30 * 24 * time.Hour
	DefaultDeadLetterMaxAge   = 90 * 24 * time.Hour
	DefaultDerivedMaxAge      = 30 * 24 * time.Hour
	DefaultIngressMaxBytes    = 4 << 30
	DefaultDeadLetterMaxBytes = 512 << 20
	DefaultDerivedMaxBytes    = 1 << 30
)

// StreamsConfig sizes the three streams. Zero values take the defaults.
//
// Discard policies are fixed, not configurable: the raw stream and the
// dead-letter stream refuse new messages when full (DiscardNew), so a full
// stream fails publishes (ErrUnavailable: the ingress answers 503 and the
// provider retries; a consumer retries in place) and nothing accepted is
// ever dropped to make room. The derived stream drops its oldest events
// when full (DiscardOld): derivation keeps flowing, and what was dropped
// can be derived again from the raw stream.
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
	// IngressMaxBytes (4 GiB), DeadLetterMaxBytes (512 MiB) and
	// DerivedMaxBytes (1 GiB) cap each stream's size; -1 is unlimited (the
	// server's store limit then applies). A stream with a limit reserves it
	// in the server's store at creation. The raw stream must hold what
	// arrives in IngressMaxAge: once full it refuses events until old ones
	// age out or an operator raises the limit.
	IngressMaxBytes    int64
	DeadLetterMaxBytes int64
	DerivedMaxBytes    int64
	// UpdateSettings makes EnsureStreams apply these settings to existing
	// streams too (limits, duplicates window, replicas, discard policy).
	// Off by default: an operator's edits then survive restarts.
	UpdateSettings bool
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
	if c.IngressMaxBytes == 0 {
		c.IngressMaxBytes = DefaultIngressMaxBytes
	}
	if c.DeadLetterMaxBytes == 0 {
		c.DeadLetterMaxBytes = DefaultDeadLetterMaxBytes
	}
	if c.DerivedMaxBytes == 0 {
		c.DerivedMaxBytes = DefaultDerivedMaxBytes
	}
}

// minStreamBytes is the smallest byte limit Validate accepts: one message
// of the embedded server's largest size.
const minStreamBytes = embeddedMaxPayload

// Validate checks a configuration after defaults are applied.
func (c StreamsConfig) Validate() error {
	if c.Replicas < 1 || c.Replicas > 5 {
		return fmt.Errorf("natsbroker: streams: replicas %d, want 1 to 5", c.Replicas)
	}
	if c.Duplicates < 0 {
		return fmt.Errorf("natsbroker: streams: negative duplicates window %s", c.Duplicates)
	}
	for _, s := range [...]struct {
		name     string
		age      time.Duration
		maxBytes int64
	}{
		{IngressStream, c.IngressMaxAge, c.IngressMaxBytes},
		{DeadLetterStream, c.DeadLetterMaxAge, c.DeadLetterMaxBytes},
		{DerivedStream, c.DerivedMaxAge, c.DerivedMaxBytes},
	} {
		if s.age < 0 {
			return fmt.Errorf("natsbroker: streams: %s: negative max age %s", s.name, s.age)
		}
		// The server refuses a duplicates window longer than the retention.
		if s.age < c.Duplicates {
			return fmt.Errorf("natsbroker: streams: %s: max age %s shorter than duplicates window %s", s.name, s.age, c.Duplicates)
		}
		if s.maxBytes != -1 && s.maxBytes < minStreamBytes {
			return fmt.Errorf("natsbroker: streams: %s: max bytes %d, want -1 (unlimited) or at least %d", s.name, s.maxBytes, minStreamBytes)
		}
	}
	return nil
}

// ReservedBytes is what the streams reserve in the server's store: the sum
// of their byte limits times the replicas, and whether every stream has a
// limit (false: some stream may grow up to the server's store limit).
func (c StreamsConfig) ReservedBytes() (int64, bool) {
	c.setDefaults()
	var sum int64
	bounded := true
	for _, sc := range c.StreamConfigs() {
		if sc.MaxBytes < 0 {
			bounded = false
			continue
		}
		sum += sc.MaxBytes * int64(sc.Replicas)
	}
	return sum, bounded
}

// StreamConfigs returns the definitions EnsureStreams creates.
func (c StreamsConfig) StreamConfigs() []jetstream.StreamConfig {
	def := func(name, desc string, maxAge time.Duration, maxBytes int64, discard jetstream.DiscardPolicy, subjects ...string) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:        name,
			Description: desc,
			Subjects:    subjects,
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Discard:     discard,
			Replicas:    c.Replicas,
			Duplicates:  c.Duplicates,
			MaxAge:      maxAge,
			MaxBytes:    maxBytes,
			MaxMsgs:     -1,
			// Subscribers read history with direct gets: they may not
			// create consumers (access.go).
			AllowDirect: true,
		}
	}
	return []jetstream.StreamConfig{
		def(IngressStream, "wahook raw provider events", c.IngressMaxAge, c.IngressMaxBytes, jetstream.DiscardNew, IngressSubjects),
		def(DeadLetterStream, "wahook dead letters", c.DeadLetterMaxAge, c.DeadLetterMaxBytes, jetstream.DiscardNew, DeadLetterSubjects),
		def(DerivedStream, "wahook derived events", c.DerivedMaxAge, c.DerivedMaxBytes, jetstream.DiscardOld,
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

// EnsureStreams creates the streams that do not exist and checks those
// that do, so every service runs it at start. An existing stream is updated
// only when a property wahook relies on is wrong (see Reconcile): its
// limits, replicas above the configured ones and everything else are the
// operator's, and a difference from the configuration is only logged. An
// unchanged stream gets no update request: updating a stream while another
// instance creates its consumers races inside nats-server. With
// StreamsConfig.UpdateSettings every difference is applied instead.
func (b *Broker) EnsureStreams(ctx context.Context) error {
	for _, want := range b.cfg.Streams.StreamConfigs() {
		if err := b.ensureStream(ctx, want); err != nil {
			return fmt.Errorf("natsbroker: ensure stream %s: %w", want.Name, err)
		}
	}
	return nil
}

func (b *Broker) ensureStream(ctx context.Context, want jetstream.StreamConfig) error {
	s, err := b.js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = b.js.CreateStream(ctx, want)
		if err == nil {
			b.log.Info("stream created", zap.String("stream", want.Name), zap.Int64("max_bytes", want.MaxBytes),
				zap.Duration("max_age", want.MaxAge), zap.Stringer("discard", want.Discard), zap.Int("replicas", want.Replicas))
			return nil
		}
		if !errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			return reservationHint(want, classify(err))
		}
		// Another instance created it with other settings meanwhile.
		s, err = b.js.Stream(ctx, want.Name)
	}
	if err != nil {
		return classify(err)
	}
	have := s.CachedInfo().Config
	fixed, diffs := Reconcile(have, want)
	if b.cfg.Streams.UpdateSettings && len(diffs) > 0 {
		fixed = applySettings(have, want)
		for _, d := range diffs {
			b.log.Warn("stream setting differs from the configuration: updating it, as asked", zap.String("stream", want.Name),
				zap.String("setting", d.Setting), zap.String("have", d.Have), zap.String("want", d.Want))
		}
		diffs = nil
	}
	for _, d := range diffs {
		if d.Required {
			b.log.Warn("stream setting is not what wahook requires: updating it", zap.String("stream", want.Name),
				zap.String("setting", d.Setting), zap.String("have", d.Have), zap.String("want", d.Want))
		} else {
			b.log.Info("stream setting differs from the configuration: kept, the operator's to tune", zap.String("stream", want.Name),
				zap.String("setting", d.Setting), zap.String("have", d.Have), zap.String("configured", d.Want))
		}
	}
	if fixed == nil {
		return nil
	}
	if fixed.Storage != have.Storage {
		return fmt.Errorf("storage is %s, want %s: JetStream cannot change it, recreate the stream", have.Storage, want.Storage)
	}
	if _, err := b.js.UpdateStream(ctx, *fixed); err != nil {
		return fmt.Errorf("update: %w", reservationHint(*fixed, classify(err)))
	}
	return nil
}

// applySettings is have with every setting Reconcile compares set as in
// want; subjects others added are kept.
func applySettings(have, want jetstream.StreamConfig) *jetstream.StreamConfig {
	fixed := have
	fixed.Subjects = slices.Clone(have.Subjects)
	for _, subj := range want.Subjects {
		if !slices.Contains(fixed.Subjects, subj) {
			fixed.Subjects = append(fixed.Subjects, subj)
		}
	}
	fixed.Retention, fixed.Storage, fixed.NoAck, fixed.AllowDirect = want.Retention, want.Storage, false, want.AllowDirect
	fixed.Duplicates, fixed.Discard, fixed.Replicas = want.Duplicates, want.Discard, want.Replicas
	fixed.MaxBytes, fixed.MaxAge, fixed.MaxMsgs = want.MaxBytes, want.MaxAge, want.MaxMsgs
	return &fixed
}

// reservationHint explains the server's refusal to reserve a stream's byte
// limit in its store.
func reservationHint(sc jetstream.StreamConfig, err error) error {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == errCodeStorageResourcesExceeded ||
		apiErr.ErrorCode == errCodeMemoryResourcesExceeded || apiErr.ErrorCode == errCodeAccountResourcesExceeded) {
		return fmt.Errorf("the server cannot reserve max bytes %d x %d replicas: raise its store limit (max_file_store, WAHOOK_NATS_MAX_STORE) or lower the stream's: %w",
			sc.MaxBytes, sc.Replicas, err)
	}
	return err
}

// Diff is one setting of an existing stream that differs from wahook's
// definition.
type Diff struct {
	Setting    string
	Have, Want string
	// Required: wahook relies on it and EnsureStreams sets it. Otherwise
	// the setting is the operator's and is left as it is.
	Required bool
}

// Reconcile compares an existing stream's configuration with wahook's
// definition. It returns the configuration to update the stream to (have,
// with only the required settings changed), or nil when nothing required
// differs, and every difference found.
//
// Required: the subjects (wahook's must be captured; others may be added),
// limits retention, file storage, acknowledgements, direct gets (the
// subscribers' way to read history), DiscardNew where wahook sets it, and
// at least the configured replicas. The operator's: byte, age and message
// limits, the duplicates window (services started with other settings must
// not flip it back and forth), more replicas, DiscardNew where wahook sets
// DiscardOld, and everything wahook does not set.
func Reconcile(have, want jetstream.StreamConfig) (*jetstream.StreamConfig, []Diff) {
	var diffs []Diff
	fixed := have
	fixed.Subjects = slices.Clone(have.Subjects)
	add := func(setting string, h, w any, required bool) {
		diffs = append(diffs, Diff{Setting: setting, Have: fmt.Sprint(h), Want: fmt.Sprint(w), Required: required})
	}
	for _, subj := range want.Subjects {
		if !slices.Contains(have.Subjects, subj) {
			fixed.Subjects = append(fixed.Subjects, subj)
		}
	}
	if len(fixed.Subjects) != len(have.Subjects) {
		add("subjects", have.Subjects, fixed.Subjects, true)
	}
	if have.Retention != want.Retention {
		add("retention", have.Retention, want.Retention, true)
		fixed.Retention = want.Retention
	}
	if have.Storage != want.Storage {
		add("storage", have.Storage, want.Storage, true)
		fixed.Storage = want.Storage
	}
	if have.NoAck {
		add("no_ack", have.NoAck, false, true)
		fixed.NoAck = false
	}
	if have.AllowDirect != want.AllowDirect {
		add("allow_direct", have.AllowDirect, want.AllowDirect, true)
		fixed.AllowDirect = want.AllowDirect
	}
	if have.Duplicates != want.Duplicates {
		add("duplicate_window", have.Duplicates, want.Duplicates, false)
	}
	if have.Discard != want.Discard {
		required := want.Discard == jetstream.DiscardNew
		add("discard", have.Discard, want.Discard, required)
		if required {
			fixed.Discard = want.Discard
		}
	}
	if have.Replicas != want.Replicas {
		required := have.Replicas < want.Replicas
		add("replicas", have.Replicas, want.Replicas, required)
		if required {
			fixed.Replicas = want.Replicas
		}
	}
	if have.MaxBytes != want.MaxBytes {
		add("max_bytes", have.MaxBytes, want.MaxBytes, false)
	}
	if have.MaxAge != want.MaxAge {
		add("max_age", have.MaxAge, want.MaxAge, false)
	}
	if have.MaxMsgs != want.MaxMsgs {
		add("max_msgs", have.MaxMsgs, want.MaxMsgs, false)
	}
	for _, d := range diffs {
		if d.Required {
			return &fixed, diffs
		}
	}
	return nil, diffs
}
