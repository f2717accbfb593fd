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
	if first, ok := c.cache.get(key); ok {
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
		var cur *state.Chat
		e, err := c.kv.Get(ctx, key)
		switch {
		case err == nil:
			cur = new(state.Chat)
			if err := json.Unmarshal(e.Value(), cur); err != nil {
				return false, fmt.Errorf("natsstate: chat %q of %s/%s: decode %s: %w", chat, provider, channel, key, err)
			}
		case !errors.Is(err, jetstream.ErrKeyNotFound):
			return false, fmt.Errorf("natsstate: chat %q of %s/%s: get: %w", chat, provider, channel, natsbroker.Classify(err))
		}
		first, next := state.FirstSeen(cur, eventID, time.Now())
		if next == nil {
			c.cache.put(key, cur.FirstEvent)
			return first, nil
		}
		val, err := json.Marshal(next)
		if err != nil {
			return false, fmt.Errorf("natsstate: chat %q of %s/%s: encode: %w", chat, provider, channel, err)
		}
		_, err = c.kv.Create(ctx, key, val)
		switch {
		case err == nil:
			c.cache.put(key, next.FirstEvent)
			return first, nil
		case !conflict(err):
			return false, fmt.Errorf("natsstate: chat %q of %s/%s: create: %w", chat, provider, channel, natsbroker.Classify(err))
		}
		// Another writer created it first: the next read tells which event.
	}
	return false, fmt.Errorf("natsstate: chat %q of %s/%s: %w", chat, provider, channel, ErrContended)
}

// firstCache remembers chats' first events. When full it forgets an
// arbitrary entry: a forgotten chat costs one read on its next sighting.
type firstCache struct {
	max int

	mu sync.RWMutex
	m  map[string]string
}

func newFirstCache(size int) *firstCache {
	if size <= 0 {
		return nil
	}
	return &firstCache{max: size, m: make(map[string]string, min(size, 1024))}
}

func (c *firstCache) get(key string) (string, bool) {
	if c == nil {
		return "", false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	v, ok := c.m[key]
	return v, ok
}

func (c *firstCache) put(key, first string) {
	if c == nil {
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
	c.m[key] = first
}
