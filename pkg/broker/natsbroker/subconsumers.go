package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// SubscriberConsumer is a durable pull consumer wahook keeps on one of its
// streams for a subscriber, who may pull from it, ack and read its info,
// and nothing else (WAHOOK_NATS_SUBSCRIBER_CONSUMERS). Subscribers cannot
// create consumers themselves: see access.go.
type SubscriberConsumer struct {
	// User is the subscriber's user name.
	User string
	// Name tells one user's consumers apart: 1 to 64 letters, digits or
	// '_'. The consumer is named Durable().
	Name string
	// Filter is the subjects it delivers, within one of wahook's streams,
	// which it names: wahook.label-changed.> is on WAHOOK_DERIVED.
	Filter string
	// DeliverNew starts a new consumer at the next event rather than at the
	// oldest the stream keeps.
	DeliverNew bool
	// AckWait is how long a delivered event waits for its ack before it is
	// delivered again, DefaultSubscriberAckWait when zero.
	AckWait time.Duration
}

const (
	// SubscriberConsumerPrefix starts the name of every consumer wahook
	// keeps for a subscriber, and no name of wahook's own consumers.
	SubscriberConsumerPrefix = "sub-"
	// DefaultSubscriberAckWait is SubscriberConsumer.AckWait's default.
	DefaultSubscriberAckWait = 30 * time.Second
	// DefaultSubscriberConsumerCheck is how often KeepSubscriberConsumers
	// looks for configured consumers that were deleted.
	DefaultSubscriberConsumerCheck = time.Minute
	// subscriberMaxRequestExpires bounds a pull request's wait below the
	// time nats-server keeps the route of answers to another account
	// (2 minutes): a longer one would lose what it delivers late, and is
	// refused at once instead.
	subscriberMaxRequestExpires = time.Minute
	// subscriberMetaKey in a consumer's metadata names the subscriber it
	// is kept for; wahook touches no consumer without it.
	subscriberMetaKey  = "wahook_subscriber"
	maxConsumerNameLen = 64
	maxFilterLen       = 256
)

// Durable is the consumer's name, sub-{user}-{name}, with any '.' of the
// user as '_'. Name has no '-', so the last '-' separates the two: two
// entries never share a name.
func (c SubscriberConsumer) Durable() string {
	return SubscriberConsumerPrefix + userToken(c.User) + "-" + c.Name
}

// Stream is the stream Filter lies in, "" when none.
func (c SubscriberConsumer) Stream() string {
	s, _ := StreamFor(c.Filter)
	return s
}

func (c SubscriberConsumer) validate() error {
	switch {
	case !validUser(c.User):
		return fmt.Errorf("subscriber consumer: user name must be 1 to %d letters, digits, '-', '_' or '.'", maxUserLen)
	case !validName(c.Name):
		return fmt.Errorf("subscriber consumer %q of %q: name must be 1 to %d letters, digits or '_'", c.Name, c.User, maxConsumerNameLen)
	case !validFilter(c.Filter):
		return fmt.Errorf("subscriber consumer %s: filter %q: want a subject of at most %d letters, digits and '._-~*>'", c.Durable(), c.Filter, maxFilterLen)
	case c.Stream() == "":
		return fmt.Errorf("subscriber consumer %s: filter %q lies in none of wahook's streams (wahook.ingress.…, wahook.deadletter.…, wahook.label-changed.…, wahook.chat-created.…, wahook.call.…, wahook.group-notification.…)", c.Durable(), c.Filter)
	case c.AckWait < 0:
		return fmt.Errorf("subscriber consumer %s: negative ack wait", c.Durable())
	}
	return nil
}

func validName(n string) bool {
	if n == "" || len(n) > maxConsumerNameLen {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}

// validFilter accepts subjects of wahook's alphabet (channels are escaped
// to [A-Za-z0-9_~-]) with '*' and a final '>' as whole tokens.
func validFilter(f string) bool {
	if f == "" || len(f) > maxFilterLen {
		return false
	}
	tokens := strings.Split(f, ".")
	for i, t := range tokens {
		switch {
		case t == "":
			return false
		case t == ">" && i != len(tokens)-1:
			return false
		case t == "*" || t == ">":
			continue
		}
		for j := 0; j < len(t); j++ {
			c := t[j]
			if !(c == '_' || c == '-' || c == '~' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
				return false
			}
		}
	}
	return true
}

// validateConsumers checks each entry and that no two share a name.
func validateConsumers(cs []SubscriberConsumer) error {
	names := map[string]bool{}
	tokens := map[string]string{}
	for _, c := range cs {
		if err := c.validate(); err != nil {
			return err
		}
		if names[c.Durable()] {
			return fmt.Errorf("subscriber consumer %s given twice", c.Durable())
		}
		names[c.Durable()] = true
		if u, ok := tokens[userToken(c.User)]; ok && u != c.User {
			return fmt.Errorf("subscriber consumers of %q and %q: user names that differ only in '.' and '_' would share consumer names", u, c.User)
		}
		tokens[userToken(c.User)] = c.User
	}
	return nil
}

// ParseSubscriberConsumers reads comma-separated user:name:filter[:start]
// entries (WAHOOK_NATS_SUBSCRIBER_CONSUMERS), start being all (the oldest
// event the stream keeps, the default) or new (the next event).
func ParseSubscriberConsumers(list string) ([]SubscriberConsumer, error) {
	var cs []SubscriberConsumer
	for i, entry := range strings.Split(list, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		parts := strings.Split(entry, ":")
		if len(parts) < 3 || len(parts) > 4 {
			return nil, fmt.Errorf("natsbroker: subscriber consumer %d: want user:name:filter[:all|new]", i+1)
		}
		c := SubscriberConsumer{User: parts[0], Name: parts[1], Filter: parts[2]}
		if len(parts) == 4 {
			switch parts[3] {
			case "all":
			case "new":
				c.DeliverNew = true
			default:
				return nil, fmt.Errorf("natsbroker: subscriber consumer %d: start %q, want all or new", i+1, parts[3])
			}
		}
		cs = append(cs, c)
	}
	if err := validateConsumers(cs); err != nil {
		return nil, fmt.Errorf("natsbroker: %w", err)
	}
	return cs, nil
}

// config is the consumer's definition. The filter, ack wait and limits
// follow the configuration; the start applies when it is created.
func (c SubscriberConsumer) config() jetstream.ConsumerConfig {
	cc := jetstream.ConsumerConfig{
		Durable:           c.Durable(),
		Description:       "wahook: durable consumer of subscriber " + c.User,
		FilterSubject:     c.Filter,
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckExplicitPolicy,
		AckWait:           c.AckWait,
		MaxDeliver:        -1,
		MaxRequestExpires: subscriberMaxRequestExpires,
		Metadata:          map[string]string{subscriberMetaKey: c.User},
	}
	if cc.AckWait == 0 {
		cc.AckWait = DefaultSubscriberAckWait
	}
	if c.DeliverNew {
		cc.DeliverPolicy = jetstream.DeliverNewPolicy
	}
	return cc
}

// EnsureSubscriberConsumers creates the configured subscriber consumers
// that do not exist and brings the others' filter and ack wait to the
// configuration. A changed filter applies from the consumer's position
// on: what it has delivered stays delivered, and events of the new filter
// stored before that position are not delivered (delete the consumer to
// start over). A changed start does not apply to an existing consumer; it
// is logged. Consumers kept for subscribers that the configuration no
// longer names are logged and kept: wahook never deletes them.
func (b *Broker) EnsureSubscriberConsumers(ctx context.Context, cs []SubscriberConsumer) error {
	if err := validateConsumers(cs); err != nil {
		return fmt.Errorf("natsbroker: %w", err)
	}
	for _, c := range cs {
		created, err := b.ensureSubscriberConsumer(ctx, c)
		if err != nil {
			return fmt.Errorf("natsbroker: subscriber consumer %s: %w", c.Durable(), err)
		}
		if created {
			b.log.Info("subscriber consumer created", zap.String("consumer", c.Durable()), zap.String("stream", c.Stream()),
				zap.String("user", c.User), zap.String("filter", c.Filter), zap.Bool("deliver_new", c.DeliverNew))
		}
	}
	return b.reportUnconfigured(ctx, cs)
}

// ensureSubscriberConsumer creates or updates c and reports whether it had
// to create it.
func (b *Broker) ensureSubscriberConsumer(ctx context.Context, c SubscriberConsumer) (bool, error) {
	want := c.config()
	stream := c.Stream()
	cons, err := b.js.Consumer(ctx, stream, want.Durable)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		if _, err = b.js.CreateConsumer(ctx, stream, want); err == nil {
			return true, nil
		}
		if !errors.Is(err, jetstream.ErrConsumerExists) {
			return false, classify(err)
		}
		// Another instance created it meanwhile.
		cons, err = b.js.Consumer(ctx, stream, want.Durable)
	}
	if err != nil {
		return false, classify(err)
	}
	have := cons.CachedInfo().Config
	if have.Metadata[subscriberMetaKey] != c.User {
		return false, fmt.Errorf("a consumer of that name exists on %s that wahook did not create for %q: delete it or rename the entry", stream, c.User)
	}
	fixed, update := have, false
	if have.FilterSubject != want.FilterSubject || len(have.FilterSubjects) > 0 {
		b.log.Warn("subscriber consumer's filter changed in the configuration: updated; it keeps its position",
			zap.String("consumer", want.Durable), zap.String("was", have.FilterSubject), zap.Strings("was_subjects", have.FilterSubjects),
			zap.String("filter", want.FilterSubject))
		fixed.FilterSubject, fixed.FilterSubjects, update = want.FilterSubject, nil, true
	}
	if have.AckWait != want.AckWait || have.MaxDeliver != want.MaxDeliver || have.MaxRequestExpires != want.MaxRequestExpires {
		fixed.AckWait, fixed.MaxDeliver, fixed.MaxRequestExpires, update = want.AckWait, want.MaxDeliver, want.MaxRequestExpires, true
	}
	if have.DeliverPolicy != want.DeliverPolicy {
		b.log.Info("subscriber consumer's start differs from the configuration, which applies to a new consumer only: delete it to start over",
			zap.String("consumer", want.Durable), zap.Stringer("start", have.DeliverPolicy), zap.Stringer("configured", want.DeliverPolicy))
	}
	if update {
		if _, err := b.js.UpdateConsumer(ctx, stream, fixed); err != nil {
			return false, fmt.Errorf("update: %w", classify(err))
		}
	}
	return false, nil
}

// reportUnconfigured logs the consumers kept for subscribers on wahook's
// streams that cs does not name.
func (b *Broker) reportUnconfigured(ctx context.Context, cs []SubscriberConsumer) error {
	known := map[string]bool{}
	for _, c := range cs {
		known[c.Stream()+"/"+c.Durable()] = true
	}
	for _, stream := range streamNames {
		s, err := b.js.Stream(ctx, stream)
		if err != nil {
			return fmt.Errorf("natsbroker: subscriber consumers on %s: %w", stream, classify(err))
		}
		list := s.ListConsumers(ctx)
		for info := range list.Info() {
			user, ok := info.Config.Metadata[subscriberMetaKey]
			if ok && !known[stream+"/"+info.Name] {
				b.log.Warn("subscriber consumer no longer configured: kept, wahook never deletes one; delete it with `nats consumer rm` when its subscriber is done",
					zap.String("consumer", info.Name), zap.String("stream", stream), zap.String("user", user),
					zap.Uint64("pending", info.NumPending))
			}
		}
		if err := list.Err(); err != nil {
			return fmt.Errorf("natsbroker: subscriber consumers on %s: %w", stream, classify(err))
		}
	}
	return nil
}

// KeepSubscriberConsumers re-creates, every interval until ctx ends, the
// configured subscriber consumers that someone deleted, logging each.
// A re-created consumer starts over as configured.
func (b *Broker) KeepSubscriberConsumers(ctx context.Context, cs []SubscriberConsumer, interval time.Duration) {
	if len(cs) == 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, c := range cs {
			created, err := b.ensureSubscriberConsumer(ctx, c)
			switch {
			case ctx.Err() != nil:
				return
			case err != nil:
				b.log.Warn("subscriber consumer check failed", zap.String("consumer", c.Durable()), zap.Error(err))
			case created:
				b.log.Warn("subscriber consumer had disappeared: re-created, starting over", zap.String("consumer", c.Durable()),
					zap.String("stream", c.Stream()), zap.String("user", c.User), zap.Bool("deliver_new", c.DeliverNew))
			}
		}
	}
}
