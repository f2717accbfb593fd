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
	s       *Store
	t       *topic
	aliases *Aliases // on the same topic: apply hands them their keys
	locks   keyLocks
	shards  []chatShard // one per partition, written by its tailer
}

var _ derive.ChatRegistry = (*Chats)(nil)

// chatShard holds one partition's chats: most in cold, a slice sorted by
// key at 48 bytes a chat, and those applied since it was last rebuilt in m,
// a map, which costs about three times as much per chat. The map is merged
// into the slice whenever it holds an eighth as many chats, and once the
// store is restored. Merges and sweeps leave out the chats gone (expired
// over chatsKept ago).
type chatShard struct {
	mu   sync.RWMutex
	m    map[hashKey]chatEntry
	cold []coldChat
	// other holds the first events that are not wahook ids (see chatEntry);
	// none in practice.
	other map[hashKey]string
	// nextGone is no later than the time (UnixNano) the first chat held
	// will be gone, so that a sweep skips a shard with nothing to drop:
	// math.MaxInt64 while no chat expires.
	nextGone int64
}

type coldChat struct {
	key hashKey
	e   chatEntry
}

// minMerge is the fewest chats the map holds before a merge, so that a
// small shard is not rebuilt for every new chat.
const minMerge = 4096

// chatsKept is how long after its expiry a chat stays in memory, answered
// as unknown, so that a record applied late against it is decided as in
// the processes that applied it live, not as its key's first (see the
// package doc). The chats topic keeps records as long: its retention.ms is
// the TTL plus chatsKept.
const chatsKept = time.Hour

func newShard() chatShard {
	return chatShard{m: make(map[hashKey]chatEntry), other: make(map[hashKey]string), nextGone: math.MaxInt64}
}

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
func (sh *chatShard) set(key hashKey, e chatEntry, now int64) {
	sh.nextGone = min(sh.nextGone, e.goneAt())
	if i, ok := sh.find(key); ok {
		sh.cold[i].e = e
		return
	}
	sh.m[key] = e
	if len(sh.m) >= max(minMerge, len(sh.cold)/8) {
		sh.merge(now)
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
// a new map: a map does not shrink. Chats gone at now are left out.
func (sh *chatShard) merge(now int64) {
	add := make([]coldChat, 0, len(sh.m))
	for k, e := range sh.m {
		if e.gone(now) {
			delete(sh.other, k)
			continue
		}
		add = append(add, coldChat{k, e})
	}
	slices.SortFunc(add, func(a, b coldChat) int { return bytes.Compare(a.key[:], b.key[:]) })
	// The old slice is dropped: filtering it in place costs nothing.
	old := slices.DeleteFunc(sh.cold, func(c coldChat) bool { return sh.drop(c, now) })
	// An exact size: spare capacity would cost as much as the map saves.
	merged := make([]coldChat, len(old)+len(add))
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
	sh.nextGone = math.MaxInt64
	for _, c := range merged {
		sh.nextGone = min(sh.nextGone, c.e.goneAt())
	}
}

// drop reports whether c is gone at now, forgetting its first event if it
// is not a wahook id. Write lock held.
func (sh *chatShard) drop(c coldChat, now int64) bool {
	if !c.e.gone(now) {
		return false
	}
	delete(sh.other, c.key)
	return true
}

// sweep drops the chats gone at now and returns how many. The slice is
// filtered in place, and copied to one of its size once it uses less than
// half of its capacity. Write lock held.
func (sh *chatShard) sweep(now int64) int {
	if now < sh.nextGone {
		return 0
	}
	n := len(sh.m) + len(sh.cold)
	sh.nextGone = math.MaxInt64
	for k, e := range sh.m {
		if e.gone(now) {
			delete(sh.m, k)
			delete(sh.other, k)
		} else {
			sh.nextGone = min(sh.nextGone, e.goneAt())
		}
	}
	sh.cold = slices.DeleteFunc(sh.cold, func(c coldChat) bool { return sh.drop(c, now) })
	if len(sh.cold) < cap(sh.cold)/2 {
		sh.cold = append(make([]coldChat, 0, len(sh.cold)), sh.cold...)
	}
	for _, c := range sh.cold {
		sh.nextGone = min(sh.nextGone, c.e.goneAt())
	}
	return n - len(sh.m) - len(sh.cold)
}

// compact merges every shard's map into its slice: once the chats are
// restored, so that they start in the compact form.
func (c *Chats) compact() {
	now := c.s.cfg.Now().UnixNano()
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		if len(sh.m) > 0 {
			sh.merge(now)
		}
		sh.mu.Unlock()
	}
}

// sweep drops the chats gone from every shard, one shard locked at a time.
func (c *Chats) sweep() int {
	now := c.s.cfg.Now().UnixNano()
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.Lock()
		n += sh.sweep(now)
		sh.mu.Unlock()
	}
	return n
}

// sweepEvery is how often the chats gone are dropped: every minute, or a
// quarter of a shorter TTL.
func sweepEvery(ttl time.Duration) time.Duration {
	if ttl <= 0 {
		return time.Minute
	}
	return min(time.Minute, max(ttl/4, 100*time.Millisecond))
}

// Held returns how many chats memory holds: the known ones, and those that
// expired less than an hour ago until a sweep drops them.
func (c *Chats) Held() int {
	n := 0
	for i := range c.shards {
		sh := &c.shards[i]
		sh.mu.RLock()
		n += len(sh.m) + len(sh.cold)
		sh.mu.RUnlock()
	}
	return n
}

// chatEntry is what memory keeps of a chat: its winning record, and whether
// a record was rejected after it (a repair is due, see the package doc). It
// is 32 bytes, as every chat seen within the TTL (ever, without one) is
// held: the first event, a wahook
// id (32 lower-case hex digits), is kept as its 16 bytes, the expiry as
// whole seconds after first_seen_at, the version in 16 bits.
type chatEntry struct {
	first  [16]byte
	seenAt int64 // UnixNano of first_seen_at
	// life is expires_at - first_seen_at in seconds, rounded up and at
	// least 1; 0 when the record has no expiry or one over 136 years away.
	life uint32
	// version is the record's, at most 65535: a key's version grows by
	// one per lost race.
	version uint16
	stale   bool
	other   bool // the first event is no wahook id: chatShard.other has it
}

// expires returns when the chat expires (UnixNano), math.MaxInt64 for
// never.
func (e chatEntry) expires() int64 {
	if e.life == 0 {
		return math.MaxInt64
	}
	return addSat(e.seenAt, int64(e.life)*int64(time.Second))
}

// goneAt returns when memory drops the chat: chatsKept after its expiry.
func (e chatEntry) goneAt() int64 { return addSat(e.expires(), int64(chatsKept)) }

func (e chatEntry) gone(now int64) bool { return now >= e.goneAt() }

// addSat returns a+b, b >= 0, or math.MaxInt64 when that overflows.
func addSat(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// lifeOf returns chatEntry.life of a record.
func lifeOf(rec chatRecord) uint32 {
	if rec.ExpiresAt == nil {
		return 0
	}
	d := rec.ExpiresAt.Sub(rec.FirstSeenAt)
	s := d / time.Second
	if d%time.Second > 0 {
		s++
	}
	if s > math.MaxUint32 {
		return 0
	}
	return uint32(max(s, 1))
}

// wins reports whether record r, of version v, replaces the applied cur:
// the package doc's rule.
func wins(cur, r chatEntry, v int64) bool {
	switch {
	case r.seenAt >= cur.expires():
		return true // claimed once cur had expired: a new epoch
	case r.expires() <= cur.seenAt:
		return false // of an older epoch, a late repair whatever its version
	default:
		return v > int64(cur.version)
	}
}

// chat is a chat's entry as callers use it.
type chat struct {
	first   string
	seenAt  int64
	expires int64 // math.MaxInt64: never
	version int64
	stale   bool
}

// record returns the chat's record at version v.
func (c chat) record(v int64) chatRecord {
	rec := chatRecord{Chat: state.Chat{FirstEvent: c.first, FirstSeenAt: time.Unix(0, c.seenAt).UTC()}, Version: v}
	if c.expires != math.MaxInt64 {
		exp := time.Unix(0, c.expires).UTC()
		rec.ExpiresAt = &exp
	}
	return rec
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

// chatRecord is a chat's value on the topic. Every record of a chat's
// epoch after its first names the same first event: a later record is
// only ever a repair. ExpiresAt, written when the claimer had a TTL, ends
// the epoch; nil never does.
type chatRecord struct {
	state.Chat
	Version   int64      `json:"version"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

func newChats(s *Store, t *topic) *Chats {
	c := &Chats{s: s, t: t, aliases: newAliases(s, t), shards: make([]chatShard, len(t.parts))}
	for i := range c.shards {
		c.shards[i] = newShard()
	}
	return c
}

// apply implements table with the package doc's rule. An entry gone at
// now counts as none, as if a sweep had dropped it already, so that what a
// record does never depends on when this process swept.
func (c *Chats) apply(part int, key, value []byte) {
	if isAliasKey(key) {
		c.aliases.apply(key, value)
		return
	}
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
	e := chatEntry{seenAt: rec.FirstSeenAt.UnixNano(), life: lifeOf(rec), version: uint16(min(max(rec.Version, 0), math.MaxUint16))}
	now := c.s.cfg.Now().UnixNano()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	cur, ok := sh.entry(h)
	if ok && !cur.gone(now) && !wins(cur, e, rec.Version) {
		cur.stale = true
		sh.set(h, cur, now)
		return
	}
	if e.gone(now) {
		sh.remove(h) // it won, but is forgotten already
		return
	}
	if e.first, ok = packID(rec.FirstEvent); ok {
		delete(sh.other, h)
	} else {
		e.other = true
		sh.other[h] = rec.FirstEvent
	}
	sh.set(h, e, now)
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
	return chat{first: first, seenAt: e.seenAt, expires: e.expires(), version: int64(e.version), stale: e.stale}, true
}

// FirstSeen records chat as known and reports whether eventID is the event
// that first saw it: see derive.ChatRegistry and the package documentation.
// A chat known in memory is answered from memory until it expires, as its
// first event never changes before; an unknown or expired one is claimed by
// a write, then read back: the claim that comes first in the partition
// wins, in every process.
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
	if e, ok := c.get(p, h); ok && !e.stale && c.s.cfg.Now().UnixNano() < e.expires {
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
		// One reading of the clock: a claim's first_seen_at is the instant
		// that found the chat expired, so the rule takes it as a new epoch.
		now := c.s.cfg.Now()
		e, ok := c.get(p, h)
		live := ok && now.UnixNano() < e.expires
		if live && !e.stale {
			return e.first, nil
		}
		var rec chatRecord
		if live {
			// A losing record is the chat's last record: write the winner
			// again, so that compaction, which keeps a key's last record,
			// keeps the winner.
			rec = e.record(e.version + 1)
		} else {
			// Unknown, or expired: a new epoch.
			_, claim := state.FirstSeen(nil, eventID, now)
			rec = chatRecord{Chat: *claim, Version: 1}
			if ttl := c.s.cfg.ChatsTTL; ttl > 0 {
				exp := claim.FirstSeenAt.Add(ttl)
				rec.ExpiresAt = &exp
			}
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

// Lookup returns what is known of chat: the raw event that first saw it
// and when, from memory as the partition's tail last applied it. It writes
// nothing, so a claim another process has not yet seen applied here may be
// missing; an expired chat is unknown.
func (c *Chats) Lookup(ctx context.Context, provider, channel, chat string) (state.Chat, bool, error) {
	if err := c.s.alive(ctx); err != nil {
		return state.Chat{}, false, fmt.Errorf("kafkastate: look up chat %q of %s/%s: %w", chat, provider, channel, err)
	}
	key := state.EntryKey(provider, channel, chat)
	e, ok := c.get(c.t.partFor(key), hashOf(key))
	if !ok || c.s.cfg.Now().UnixNano() >= e.expires {
		return state.Chat{}, false, nil
	}
	return state.Chat{FirstEvent: e.first, FirstSeenAt: time.Unix(0, e.seenAt).UTC()}, true, nil
}
