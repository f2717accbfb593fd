package kafkastate

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"slices"
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

// chatShard holds one partition's chats: most in cold, a slice sorted by
// key at 48 bytes a chat, and those applied since it was last rebuilt in m,
// a map, which costs about three times as much per chat. The map is merged
// into the slice whenever it holds an eighth as many chats, and once the
// store is restored.
type chatShard struct {
	mu   sync.RWMutex
	m    map[hashKey]chatEntry
	cold []coldChat
	// other holds the first events that are not wahook ids (see chatEntry);
	// none in practice.
	other map[hashKey]string
}

type coldChat struct {
	key hashKey
	e   chatEntry
}

// minMerge is the fewest chats the map holds before a merge, so that a
// small shard is not rebuilt for every new chat.
const minMerge = 4096

// find returns the index of key in cold, and whether it is there.
func (sh *chatShard) find(key hashKey) (int, bool) {
	return slices.BinarySearchFunc(sh.cold, key, func(c coldChat, k hashKey) int { return bytes.Compare(c.key[:], k[:]) })
}

// entry returns key's entry. Lock held.
func (sh *chatShard) entry(key hashKey) (chatEntry, bool) {
	if e, ok := sh.m[key]; ok {
		return e, true
	}
	if i, ok := sh.find(key); ok {
		return sh.cold[i].e, true
	}
	return chatEntry{}, false
}

// set stores key's entry, where it is, and merges the map into the slice
// when it is due. Write lock held.
func (sh *chatShard) set(key hashKey, e chatEntry) {
	if i, ok := sh.find(key); ok {
		sh.cold[i].e = e
		return
	}
	sh.m[key] = e
	if len(sh.m) >= max(minMerge, len(sh.cold)/8) {
		sh.merge()
	}
}

// remove forgets key (a tombstone). Write lock held.
func (sh *chatShard) remove(key hashKey) {
	delete(sh.m, key)
	delete(sh.other, key)
	if i, ok := sh.find(key); ok {
		sh.cold = slices.Delete(sh.cold, i, i+1)
	}
}

// merge moves the map's chats into the sorted slice, a new one, and starts
// a new map: a map does not shrink.
func (sh *chatShard) merge() {
	add := make([]coldChat, 0, len(sh.m))
	for k, e := range sh.m {
		add = append(add, coldChat{k, e})
	}
	slices.SortFunc(add, func(a, b coldChat) int { return bytes.Compare(a.key[:], b.key[:]) })
	// An exact size: spare capacity would cost as much as the map saves.
	old, merged := sh.cold, make([]coldChat, len(sh.cold)+len(add))
	i, j := len(old)-1, len(add)-1
	for k := len(merged) - 1; k >= 0; k-- {
		if j < 0 || i >= 0 && bytes.Compare(old[i].key[:], add[j].key[:]) > 0 {
			merged[k] = old[i]
			i--
		} else {
			merged[k] = add[j]
			j--
		}
	}
	sh.cold = merged
	sh.m = make(map[hashKey]chatEntry)
}

// compact merges every shard's map into its slice: once the chats are
// restored, so that they start in the compact form.
func (c *Chats) compact() {
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		if len(sh.m) > 0 {
			sh.merge()
		}
		sh.mu.Unlock()
	}
}

// chatEntry is what memory keeps of a chat: its winning record, and whether
// a record was rejected after it (a repair is due, see the package doc). It
// is 32 bytes, as every chat ever seen is held: the first event, a wahook
// id (32 lower-case hex digits), is kept as its 16 bytes.
type chatEntry struct {
	first   [16]byte
	seenAt  int64 // UnixNano of first_seen_at
	version uint32
	stale   bool
	other   bool // the first event is no wahook id: chatShard.other has it
}

// chat is a chat's entry as callers use it.
type chat struct {
	first   string
	seenAt  int64
	version int64
	stale   bool
}

// packID returns the 16 bytes of a wahook id, false for any other string.
func packID(id string) (b [16]byte, ok bool) {
	if len(id) != 32 {
		return b, false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return b, false
		}
	}
	_, err := hex.Decode(b[:], []byte(id))
	return b, err == nil
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
		c.shards[i].other = make(map[hashKey]string)
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
		sh.remove(h)
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
	cur, ok := sh.entry(h)
	if ok && rec.Version <= int64(cur.version) {
		cur.stale = true
		sh.set(h, cur)
		return
	}
	e := chatEntry{seenAt: rec.FirstSeenAt.UnixNano(), version: uint32(min(max(rec.Version, 0), math.MaxUint32))}
	if e.first, ok = packID(rec.FirstEvent); ok {
		delete(sh.other, h)
	} else {
		e.other = true
		sh.other[h] = rec.FirstEvent
	}
	sh.set(h, e)
}

func (c *Chats) get(p *partition, h hashKey) (chat, bool) {
	sh := &c.shards[p.id]
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	e, ok := sh.entry(h)
	if !ok {
		return chat{}, false
	}
	first := sh.other[h]
	if !e.other {
		first = hex.EncodeToString(e.first[:])
	}
	return chat{first: first, seenAt: e.seenAt, version: int64(e.version), stale: e.stale}, true
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
