package kafkastate

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/state"
)

// Dedup remembers which event ids a subscriber has handled, per scope (a
// stream, a subscriber), so that it can drop the duplicates Kafka delivers:
// Kafka has no broker-side duplicate window, so a provider's retried
// webhook can be in the raw topic twice, and every consumer redelivers
// what it had not committed when it stopped. See the package documentation
// for the bounds and the recipe.
type Dedup struct {
	s      *Store
	t      *topic
	window time.Duration
	maxIDs int

	mu     sync.Mutex
	scopes map[string]*dedupScope // by scope token
}

// dedupRecord is a mark's value on the topic.
type dedupRecord struct {
	At time.Time `json:"at"`
}

// dedupScope is one scope's ids in memory: their last mark time, and a
// min-heap of the marks by time, to forget the oldest first.
type dedupScope struct {
	at    map[hashKey]int64 // UnixNano of the last mark
	marks marks             // an id marked again is in it twice
	// floor is the newest time forgotten for the bound: a mark that old or
	// older comes too late to be kept (the tailer echoing a Mark, or a
	// partition restored after the others), as newer ones took its place.
	floor int64
}

func newDedup(s *Store, t *topic) *Dedup {
	return &Dedup{s: s, t: t, window: s.cfg.DedupWindow, maxIDs: s.cfg.DedupMaxIDs, scopes: make(map[string]*dedupScope)}
}

// Seen reports whether id was marked in scope within the window (and is
// among the scope's last DedupMaxIDs marks). It first catches up with the
// partition that holds the id, so that a mark another process made before
// the call is seen: after a rebalance, the marks of the partition's
// previous owner.
func (d *Dedup) Seen(ctx context.Context, scope, id string) (bool, error) {
	if err := d.s.alive(ctx); err != nil {
		return false, fmt.Errorf("kafkastate: seen %q in %q: %w", id, scope, err)
	}
	p := d.t.partFor(dedupKey(scope, id))
	if err := d.s.catchUp(ctx, p); err != nil {
		return false, fmt.Errorf("kafkastate: seen %q in %q: %w", id, scope, err)
	}
	now := d.s.cfg.Now().UnixNano()
	h := hashOf(state.Token(id))
	d.mu.Lock()
	defer d.mu.Unlock()
	sc := d.scopes[state.Token(scope)]
	if sc == nil {
		return false, nil
	}
	sc.evict(now, d.window, d.maxIDs)
	at, ok := sc.at[h]
	return ok && now-at < int64(d.window), nil
}

// Mark records id as handled in scope, now, on the topic (acknowledged by
// every in-sync replica before it returns) and in memory.
func (d *Dedup) Mark(ctx context.Context, scope, id string) error {
	if err := d.s.alive(ctx); err != nil {
		return fmt.Errorf("kafkastate: mark %q in %q: %w", id, scope, err)
	}
	now := d.s.cfg.Now()
	val, err := json.Marshal(dedupRecord{At: now.UTC()})
	if err != nil {
		return fmt.Errorf("kafkastate: mark %q in %q: encode: %w", id, scope, err)
	}
	key := dedupKey(scope, id)
	if _, err := d.s.write(ctx, d.t.partFor(key), key, val); err != nil {
		return fmt.Errorf("kafkastate: mark %q in %q: %w", id, scope, err)
	}
	// The tailer applies the record too; applying it twice is harmless and
	// this makes the mark visible to this process at once.
	d.record(state.Token(scope), hashOf(state.Token(id)), now.UnixNano())
	return nil
}

// apply implements table.
func (d *Dedup) apply(_ int, key, value []byte) {
	scope, id, ok := strings.Cut(string(key), ".")
	if !ok {
		d.s.log.Warn("dedup record ignored: not a dedup key", zap.ByteString("key", key))
		return
	}
	if value == nil {
		d.mu.Lock()
		if sc := d.scopes[scope]; sc != nil {
			delete(sc.at, hashOf(id))
		}
		d.mu.Unlock()
		return
	}
	var rec dedupRecord
	if err := json.Unmarshal(value, &rec); err != nil {
		d.s.log.Warn("dedup record ignored: not a mark", zap.ByteString("key", key), zap.Error(err))
		return
	}
	d.record(scope, hashOf(id), rec.At.UnixNano())
}

// record keeps a mark in memory unless it is out of the window already.
func (d *Dedup) record(scope string, id hashKey, at int64) {
	now := d.s.cfg.Now().UnixNano()
	if now-at >= int64(d.window) {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	sc := d.scopes[scope]
	if sc == nil {
		sc = &dedupScope{at: make(map[hashKey]int64)}
		d.scopes[scope] = sc
	}
	if cur, ok := sc.at[id]; ok && cur >= at || at <= sc.floor {
		return // this mark again (the tailer echoing Mark), or an older one
	}
	sc.at[id] = at
	sc.marks.push(mark{id: id, at: at})
	sc.evict(now, d.window, d.maxIDs)
}

// evict forgets the oldest marks while there are more than maxIDs, and those
// out of the window.
func (sc *dedupScope) evict(now int64, window time.Duration, maxIDs int) {
	for len(sc.marks) > 0 {
		m := sc.marks[0]
		full := len(sc.marks) > maxIDs
		if !full && now-m.at < int64(window) {
			return
		}
		if full {
			sc.floor = max(sc.floor, m.at)
		}
		if sc.at[m.id] == m.at { // not marked again since
			delete(sc.at, m.id)
		}
		sc.marks.pop()
	}
}

// size returns how many ids of scope are in memory; for tests.
func (d *Dedup) size(scope string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if sc := d.scopes[state.Token(scope)]; sc != nil {
		return len(sc.at)
	}
	return 0
}
