package kafkastate

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/state"
)

// Chats is the set of known chats per channel, a derive.ChatRegistry.
type Chats struct {
	s      *Store
	t      *topic
	locks  keyLocks
	shards []chatShard // one per partition, written by its tailer
}

var _ derive.ChatRegistry = (*Chats)(nil)

type chatShard struct {
	mu sync.RWMutex
	m  map[hashKey]chatEntry
}

// chatEntry is what memory keeps of a chat: its winning record, and whether
// a record was rejected after it (a repair is due, see the package doc).
type chatEntry struct {
	first   string
	seenAt  int64 // UnixNano of first_seen_at
	version int64
	stale   bool
}

// chatRecord is a chat's value on the topic. Every record of a chat after
// its first names the same first event: a later record is only ever a
// repair.
type chatRecord struct {
	state.Chat
	Version int64 `json:"version"`
}

func newChats(s *Store, t *topic) *Chats {
	c := &Chats{s: s, t: t, shards: make([]chatShard, len(t.parts))}
	for i := range c.shards {
		c.shards[i].m = make(map[hashKey]chatEntry)
	}
	return c
}

// apply implements table: a record wins when it is the key's first or its
// version is above the winner's; any other record lost a race.
func (c *Chats) apply(part int, key, value []byte) {
	h := hashOf(string(key))
	sh := &c.shards[part]
	if value == nil {
		sh.mu.Lock()
		delete(sh.m, h)
		sh.mu.Unlock()
		return
	}
	var rec chatRecord
	if err := json.Unmarshal(value, &rec); err != nil || rec.FirstEvent == "" {
		c.s.log.Warn("chat record ignored: not a chat", zap.ByteString("key", key), zap.Error(err))
		return
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	cur, ok := sh.m[h]
	if !ok || rec.Version > cur.version {
		sh.m[h] = chatEntry{first: rec.FirstEvent, seenAt: rec.FirstSeenAt.UnixNano(), version: rec.Version}
		return
	}
	cur.stale = true
	sh.m[h] = cur
}

func (c *Chats) get(p *partition, h hashKey) (chatEntry, bool) {
	sh := &c.shards[p.id]
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	e, ok := sh.m[h]
	return e, ok
}

// FirstSeen records chat as known and reports whether eventID is the event
// that first saw it: see derive.ChatRegistry and the package documentation.
// A chat known in memory is answered from memory, as its first event never
// changes; an unknown one is claimed by a write, then read back: the
// claim that comes first in the partition wins, in every process.
func (c *Chats) FirstSeen(ctx context.Context, provider, channel, chat, eventID string) (bool, error) {
	if err := checkEvent(eventID); err != nil {
		return false, err
	}
	// A memory hit would not notice a cancelled caller, which then could
	// not tell the answer from a store that was reached.
	if err := c.s.alive(ctx); err != nil {
		return false, fmt.Errorf("kafkastate: chat %q of %s/%s: %w", chat, provider, channel, err)
	}
	key := state.EntryKey(provider, channel, chat)
	h := hashOf(key)
	p := c.t.partFor(key)
	if e, ok := c.get(p, h); ok && !e.stale {
		return e.first == eventID, nil
	}
	first, err := c.claim(ctx, p, key, h, eventID)
	if err != nil {
		return false, fmt.Errorf("kafkastate: chat %q of %s/%s: %w", chat, provider, channel, err)
	}
	return first == eventID, nil
}

// claim writes eventID as the chat's first event, or repairs the chat, until
// the chat's winner is known and its last record is the winner's; it
// returns the winner.
func (c *Chats) claim(ctx context.Context, p *partition, key string, h hashKey, eventID string) (string, error) {
	unlock, err := c.locks.lock(ctx, key)
	if err != nil {
		return "", err
	}
	defer unlock()
	for range maxAttempts {
		e, ok := c.get(p, h)
		if ok && !e.stale {
			return e.first, nil
		}
		var rec chatRecord
		if ok {
			// A losing claim is the chat's last record: write the winner
			// again, so that compaction, which keeps a key's last record,
			// keeps the winner.
			rec = chatRecord{Chat: state.Chat{FirstEvent: e.first, FirstSeenAt: time.Unix(0, e.seenAt).UTC()}, Version: e.version + 1}
		} else {
			_, claim := state.FirstSeen(nil, eventID, c.s.cfg.Now())
			rec = chatRecord{Chat: *claim, Version: 1}
		}
		val, err := json.Marshal(rec)
		if err != nil {
			return "", fmt.Errorf("encode %s: %w", key, err)
		}
		off, err := c.s.write(ctx, p, key, val)
		if err != nil {
			return "", err
		}
		// Reading back to our own record is the catch-up: every record
		// acknowledged before the call comes before it.
		if err := c.s.waitFor(ctx, p, off+1); err != nil {
			return "", err
		}
	}
	return "", ErrContended
}
