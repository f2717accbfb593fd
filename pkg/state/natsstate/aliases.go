package natsstate

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/state"
)

// Aliases ties contacts' hidden ids to their phone-number ids, a
// derive.AliasRegistry, in the chats bucket: one key per id and direction
// (state.AliasKey), created once and never changed.
type Aliases struct {
	kv    jetstream.KeyValue
	cache *firstCache // positive answers only: an alias never changes
	// ttl is the chats bucket's max age, 0 for none: the cache forgets
	// an alias no later than the bucket does.
	ttl time.Duration
	log *zap.Logger
}

var _ derive.AliasRegistry = (*Aliases)(nil)

// Learn records lid and phone as one contact's: see derive.AliasRegistry.
// The LID's direction is written first and the phone's only when the LID's
// names this phone, so a pair conflicting with the LID's leaves no trace.
func (a *Aliases) Learn(ctx context.Context, provider, channel, lid, phone, eventID string) error {
	if err := checkEvent(eventID); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("natsstate: alias %q of %s/%s: %w", lid, provider, channel, err)
	}
	for _, d := range [...][2]string{{lid, phone}, {phone, lid}} {
		conflict, err := a.learn(ctx, state.AliasKey(provider, channel, d[0]), d[1], eventID)
		if err != nil {
			return fmt.Errorf("natsstate: alias %q of %s/%s: %w", d[0], provider, channel, err)
		}
		if conflict {
			a.log.Debug("alias ignored: another is known", zap.String("provider", provider), zap.String("channel", channel),
				zap.String("id", d[0]), zap.String("alias", d[1]), zap.String("event", eventID))
			return nil
		}
	}
	return nil
}

// learn creates key's alias other unless it has one, and reports whether
// the one it has is another.
func (a *Aliases) learn(ctx context.Context, key, other, eventID string) (bool, error) {
	if cur, ok := a.cache.get(key, time.Now()); ok {
		return cur != other, nil
	}
	for attempt := range maxAttempts {
		if attempt > 0 {
			if err := pause(ctx, attempt); err != nil {
				return false, err
			}
		}
		cur, created, err := a.get(ctx, key)
		if err != nil {
			return false, err
		}
		// Taken before the write: see Chats.FirstSeen.
		now := time.Now()
		clash, next := state.LearnAlias(cur, other, eventID, now)
		if next == nil {
			a.cache.put(key, cur.ID, entryExpiry(created, a.ttl))
			return clash, nil
		}
		val, err := json.Marshal(next)
		if err != nil {
			return false, fmt.Errorf("encode: %w", err)
		}
		_, err = a.kv.Create(ctx, key, val)
		switch {
		case err == nil:
			a.cache.put(key, other, entryExpiry(now, a.ttl))
			return false, nil
		case !conflict(err):
			return false, fmt.Errorf("create: %w", natsbroker.Classify(err))
		}
		// Another writer created it first: the next read tells which.
	}
	return false, ErrContended
}

// get reads key's alias and when its entry was created, nil when there is
// none.
func (a *Aliases) get(ctx context.Context, key string) (*state.Alias, time.Time, error) {
	cur, created, err := getEntry[state.Alias](ctx, a.kv, key)
	if err == nil && cur != nil && cur.ID == "" {
		err = fmt.Errorf("decode %s: not an alias", key)
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	return cur, created, nil
}

// Lookup returns id's other form: see derive.AliasRegistry. An id without
// one costs a read each time: that answer may change.
func (a *Aliases) Lookup(ctx context.Context, provider, channel, id string) (string, bool, error) {
	if err := ctx.Err(); err != nil {
		return "", false, fmt.Errorf("natsstate: alias %q of %s/%s: %w", id, provider, channel, err)
	}
	key := state.AliasKey(provider, channel, id)
	if other, ok := a.cache.get(key, time.Now()); ok {
		return other, true, nil
	}
	cur, created, err := a.get(ctx, key)
	if err != nil {
		return "", false, fmt.Errorf("natsstate: alias %q of %s/%s: %w", id, provider, channel, err)
	}
	if cur == nil {
		return "", false, nil
	}
	a.cache.put(key, cur.ID, entryExpiry(created, a.ttl))
	return cur.ID, true, nil
}
