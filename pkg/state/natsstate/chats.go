package natsstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/state"
)

// Chats is the set of known chats per channel, a derive.ChatRegistry.
type Chats struct {
	kv    jetstream.KeyValue
	cache *firstCache
	// ttl is the bucket's max age when it was opened, 0 for none: a chat
	// is forgotten that long after its entry was created.
	ttl time.Duration
}

var _ derive.ChatRegistry = (*Chats)(nil)

// FirstSeen records chat as known and reports whether eventID is the event
// that first saw it: see derive.ChatRegistry.
func (c *Chats) FirstSeen(ctx context.Context, provider, channel, chat, eventID string) (bool, error) {
	if err := checkEvent(eventID); err != nil {
		return false, err
	}
	// A cache hit would not notice a cancelled caller, which then could not
	// tell the answer from a store that was reached.
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("natsstate: chat %q of %s/%s: %w", chat, provider, channel, err)
	}
	key := state.EntryKey(provider, channel, chat)
	if first, ok := c.cache.get(key, time.Now()); ok {
		return first == eventID, nil
	}
	// Read first: most sightings are repeats, and a read is cheaper than a
	// Create that fails.
	for attempt := range maxAttempts {
		if attempt > 0 {
			if err := pause(ctx, attempt); err != nil {
				return false, fmt.Errorf("natsstate: chat %q of %s/%s: %w", chat, provider, channel, err)
			}
		}
		cur, created, err := c.get(ctx, key)
		if err != nil {
			return false, fmt.Errorf("natsstate: chat %q of %s/%s: %w", chat, provider, channel, err)
		}
		// Taken before the write: the entry the server creates is no
		// older, so the cache forgets it no later than the bucket does.
		now := time.Now()
		first, next := state.FirstSeen(cur, eventID, now)
		if next == nil {
			c.cache.put(key, cur.FirstEvent, c.expiry(created))
			return first, nil
		}
		val, err := json.Marshal(next)
		if err != nil {
			return false, fmt.Errorf("natsstate: chat %q of %s/%s: encode: %w", chat, provider, channel, err)
		}
		_, err = c.kv.Create(ctx, key, val)
		switch {
		case err == nil:
			c.cache.put(key, next.FirstEvent, c.expiry(now))
			return first, nil
		case !conflict(err):
			return false, fmt.Errorf("natsstate: chat %q of %s/%s: create: %w", chat, provider, channel, natsbroker.Classify(err))
		}
		// Another writer created it first: the next read tells which event.
	}
	return false, fmt.Errorf("natsstate: chat %q of %s/%s: %w", chat, provider, channel, ErrContended)
}

// Lookup returns what is known of chat: the raw event that first saw it
// and when. It reads the bucket, never the cache, and writes nothing; an
// entry older than the bucket's max age is unknown, as the server is about
// to remove it.
func (c *Chats) Lookup(ctx context.Context, provider, channel, chat string) (state.Chat, bool, error) {
	if err := ctx.Err(); err != nil {
		return state.Chat{}, false, fmt.Errorf("natsstate: look up chat %q of %s/%s: %w", chat, provider, channel, err)
	}
	cur, created, err := c.get(ctx, state.EntryKey(provider, channel, chat))
	if err != nil {
		return state.Chat{}, false, fmt.Errorf("natsstate: look up chat %q of %s/%s: %w", chat, provider, channel, err)
	}
	if cur == nil {
		return state.Chat{}, false, nil
	}
	if exp := c.expiry(created); !exp.IsZero() && !time.Now().Before(exp) {
		return state.Chat{}, false, nil
	}
	return *cur, true, nil
}

// get reads the chat at key and when its entry was created: nil when
// there is none.
func (c *Chats) get(ctx context.Context, key string) (*state.Chat, time.Time, error) {
	return getEntry[state.Chat](ctx, c.kv, key)
}

// getEntry reads the JSON value at key and when its entry was created: nil
// when there is none.
func getEntry[T any](ctx context.Context, kv jetstream.KeyValue, key string) (*T, time.Time, error) {
	e, err := kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, time.Time{}, nil
	case err != nil:
		return nil, time.Time{}, fmt.Errorf("get: %w", natsbroker.Classify(err))
	}
	cur := new(T)
	if err := json.Unmarshal(e.Value(), cur); err != nil {
		return nil, time.Time{}, fmt.Errorf("decode %s: %w", key, err)
	}
	return cur, e.Created(), nil
}

// expiry returns when an entry created at created expires: the zero time
// for never.
func (c *Chats) expiry(created time.Time) time.Time {
	return entryExpiry(created, c.ttl)
}

// entryExpiry returns when a bucket entry created at created expires with
// the bucket's max age ttl: the zero time for never.
func entryExpiry(created time.Time, ttl time.Duration) time.Time {
	if ttl <= 0 {
		return time.Time{}
	}
	return created.Add(ttl)
}

// firstCache remembers chats' first events (and aliases), each until the
// bucket's entry expires. When full it forgets an arbitrary entry: a
// forgotten chat costs one read on its next sighting.
type firstCache struct {
	max int

	mu sync.RWMutex
	m  map[string]cached
}

type cached struct {
	value string
	// expires is when the bucket's entry expires, zero for never: past
	// it, another process may have created the key again with another
	// value.
	expires time.Time
}

func newFirstCache(size int) *firstCache {
	if size <= 0 {
		return nil
	}
	return &firstCache{max: size, m: make(map[string]cached, min(size, 1024))}
}

// get returns key's value unless it expired at now.
func (c *firstCache) get(key string, now time.Time) (string, bool) {
	if c == nil {
		return "", false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	v, ok := c.m[key]
	if !ok || !v.expires.IsZero() && !now.Before(v.expires) {
		return "", false
	}
	return v.value, true
}

// put remembers key's value until expires (zero: as long as there is
// room); a value expired already is not kept.
func (c *firstCache) put(key, value string, expires time.Time) {
	if c == nil || !expires.IsZero() && !time.Now().Before(expires) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[key]; !ok && len(c.m) >= c.max {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[key] = cached{value: value, expires: expires}
}
