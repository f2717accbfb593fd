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

// Times remembers the time of raw events stamped at receipt, a
// derive.TimeRegistry, on the compacted times topic, with the versions of
// the chats: an id's first record in its partition wins, in every process,
// and so does a later one of a higher version. A caller that finds no time
// in memory writes its own at version 1 and reads the partition back to it;
// if it lost, it writes the winner again one version up (a repair), so that
// compaction, which keeps a key's last record, keeps the winner. Memory keeps at most
// Config.TimesMaxIDs ids, none older than Config.TimesTTL, the oldest
// forgotten first.
type Times struct {
	s      *Store
	t      *topic
	ttl    time.Duration
	maxIDs int
	locks  keyLocks

	mu sync.Mutex
	m  map[hashKey]timeEntry
	// byAge is a min-heap of the entries by record time, to forget the
	// oldest first.
	byAge marks
}

// timesRecord is a time's value on the topic: the raw event's time, when
// the record was written (for the TTL) and its version.
type timesRecord struct {
	Time    time.Time `json:"time"`
	At      time.Time `json:"at"`
	Version int64     `json:"version"`
}

type timeEntry struct {
	time    int64 // UnixNano of the raw event's first time
	at      int64 // UnixNano of the id's first record applied
	version int64
	stale   bool // a record lost after the winner: a repair is due
}

var _ derive.TimeRegistry = (*Times)(nil)

func newTimes(s *Store, t *topic) *Times {
	return &Times{s: s, t: t, ttl: s.cfg.TimesTTL, maxIDs: s.cfg.TimesMaxIDs, m: make(map[hashKey]timeEntry)}
}

// FirstTime returns the time recorded for raw event id, recording t when
// there is none: see derive.TimeRegistry.
func (r *Times) FirstTime(ctx context.Context, id string, t time.Time) (time.Time, error) {
	if err := checkEvent(id); err != nil {
		return time.Time{}, err
	}
	if err := r.s.alive(ctx); err != nil {
		return time.Time{}, fmt.Errorf("kafkastate: first time of %q: %w", id, err)
	}
	key := state.Token(id)
	h := hashOf(key)
	if e, ok := r.get(h); ok && !e.stale {
		return time.Unix(0, e.time).UTC(), nil
	}
	first, err := r.claim(ctx, key, h, t)
	if err != nil {
		return time.Time{}, fmt.Errorf("kafkastate: first time of %q: %w", id, err)
	}
	return first, nil
}

// claim writes t as the id's time, or repairs it, until the winner is known
// and is the key's last record; it returns the winner's time.
func (r *Times) claim(ctx context.Context, key string, h hashKey, t time.Time) (time.Time, error) {
	unlock, err := r.locks.lock(ctx, key)
	if err != nil {
		return time.Time{}, err
	}
	defer unlock()
	p := r.t.partFor(key)
	for range maxAttempts {
		e, ok := r.get(h)
		if ok && !e.stale {
			return time.Unix(0, e.time).UTC(), nil
		}
		rec := timesRecord{Time: t.UTC(), At: r.s.cfg.Now().UTC(), Version: 1}
		if ok { // the repair: the winner again, one version up
			rec.Time, rec.Version = time.Unix(0, e.time).UTC(), e.version+1
		}
		val, err := json.Marshal(rec)
		if err != nil {
			return time.Time{}, fmt.Errorf("encode %s: %w", key, err)
		}
		off, err := r.s.write(ctx, p, key, val)
		if err != nil {
			return time.Time{}, err
		}
		if err := r.s.waitFor(ctx, p, off+1); err != nil {
			return time.Time{}, err
		}
	}
	return time.Time{}, ErrContended
}

func (r *Times) get(h hashKey) (timeEntry, bool) {
	now := r.s.cfg.Now().UnixNano()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evict(now)
	e, ok := r.m[h]
	return e, ok
}

// apply implements table, with the rule of Chats.apply; records older than
// the TTL are ignored.
func (r *Times) apply(_ int, key, value []byte) {
	h := hashOf(string(key))
	if value == nil {
		r.mu.Lock()
		delete(r.m, h)
		r.mu.Unlock()
		return
	}
	var rec timesRecord
	if err := json.Unmarshal(value, &rec); err != nil || rec.Time.IsZero() {
		r.s.log.Warn("time record ignored: not a time", zap.ByteString("key", key), zap.Error(err))
		return
	}
	now := r.s.cfg.Now().UnixNano()
	at, tm := rec.At.UnixNano(), rec.Time.UnixNano()
	if now-at >= int64(r.ttl) {
		return // out of the TTL: forgotten already
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evict(now)
	if cur, ok := r.m[h]; ok {
		if rec.Version > cur.version {
			cur.time, cur.version, cur.stale = tm, rec.Version, false
		} else {
			cur.stale = true
		}
		r.m[h] = cur // at stays: the heap knows the entry by it
		return
	}
	r.m[h] = timeEntry{time: tm, at: at, version: rec.Version}
	r.byAge.push(mark{id: h, at: at})
	r.evict(now)
}

// evict forgets the oldest entries while there are more than maxIDs, and
// those out of the TTL. Lock held.
func (r *Times) evict(now int64) {
	for len(r.byAge) > 0 {
		m := r.byAge[0]
		if len(r.byAge) <= r.maxIDs && now-m.at < int64(r.ttl) {
			return
		}
		if e, ok := r.m[m.id]; ok && e.at == m.at {
			delete(r.m, m.id)
		}
		r.byAge.pop()
	}
}
