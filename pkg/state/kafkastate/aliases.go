package kafkastate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/state"
)

// Aliases ties contacts' hidden ids to their phone-number ids, a
// derive.AliasRegistry, on the chats topic (state.AliasKey: one token more
// than a chat key) with the versions of the times: an id's first record in
// its partition wins, in every process, and so does a later one of a higher
// version, which only a repair writes, naming the winner again. Memory
// holds every alias, until ChatsTTL after it was learnt when the claimer
// had one.
type Aliases struct {
	s     *Store
	t     *topic
	locks keyLocks

	mu sync.RWMutex
	m  map[hashKey]aliasEntry
	// expiring: some alias applied carries an expiry, so sweeps look.
	expiring bool
}

var _ derive.AliasRegistry = (*Aliases)(nil)

// aliasRecord is an alias's value on the topic. ExpiresAt, written when the
// claimer had a chats TTL, forgets it then.
type aliasRecord struct {
	state.Alias
	Version   int64  `json:"version"`
	ExpiresAt *int64 `json:"expires_at,omitempty"` // UnixNano
}

type aliasEntry struct {
	other   string
	version int64
	expires int64 // UnixNano, 0: never
	stale   bool  // a record lost after the winner: a repair is due
}

func (e aliasEntry) gone(now int64) bool { return e.expires != 0 && now >= e.expires }

func newAliases(s *Store, t *topic) *Aliases {
	return &Aliases{s: s, t: t, m: make(map[hashKey]aliasEntry)}
}

// isAliasKey reports whether a chats topic key is an alias's: three dots,
// where a chat key has two.
func isAliasKey(key []byte) bool {
	return bytes.HasSuffix(key, aliasSuffix) && bytes.Count(key, dot) == 3
}

var aliasSuffix, dot = []byte(".a"), []byte(".")

// sweep drops the aliases expired at now and returns how many.
func (a *Aliases) sweep() int {
	now := a.s.cfg.Now().UnixNano()
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.expiring {
		return 0
	}
	n := 0
	for h, e := range a.m {
		if e.gone(now) {
			delete(a.m, h)
			n++
		}
	}
	return n
}

// apply is Chats.apply's for alias keys.
func (a *Aliases) apply(key, value []byte) {
	h := hashOf(string(key))
	if value == nil {
		a.mu.Lock()
		delete(a.m, h)
		a.mu.Unlock()
		return
	}
	var rec aliasRecord
	if err := json.Unmarshal(value, &rec); err != nil || rec.ID == "" {
		a.s.log.Warn("alias record ignored: not an alias", zap.ByteString("key", key), zap.Error(err))
		return
	}
	e := aliasEntry{other: rec.ID, version: rec.Version}
	if rec.ExpiresAt != nil {
		e.expires = max(*rec.ExpiresAt, 1)
	}
	now := a.s.cfg.Now().UnixNano()
	a.mu.Lock()
	defer a.mu.Unlock()
	if cur, ok := a.m[h]; ok && !cur.gone(now) {
		if rec.Version > cur.version {
			cur.other, cur.version, cur.expires, cur.stale = e.other, e.version, e.expires, false
			a.expiring = a.expiring || e.expires != 0
		} else {
			cur.stale = true
		}
		a.m[h] = cur
		return
	}
	if e.gone(now) {
		delete(a.m, h)
		return
	}
	a.expiring = a.expiring || e.expires != 0
	a.m[h] = e
}

func (a *Aliases) get(h hashKey) (aliasEntry, bool) {
	now := a.s.cfg.Now().UnixNano()
	a.mu.RLock()
	defer a.mu.RUnlock()
	e, ok := a.m[h]
	if !ok || e.gone(now) {
		return aliasEntry{}, false
	}
	return e, true
}

// Learn records lid and phone as one contact's: see derive.AliasRegistry.
// The LID's direction is claimed first and the phone's only when the LID's
// names this phone, so a pair conflicting with the LID's leaves no trace.
func (a *Aliases) Learn(ctx context.Context, provider, channel, lid, phone, eventID string) error {
	if err := checkEvent(eventID); err != nil {
		return err
	}
	if err := a.s.alive(ctx); err != nil {
		return fmt.Errorf("kafkastate: alias %q of %s/%s: %w", lid, provider, channel, err)
	}
	for _, d := range [...][2]string{{lid, phone}, {phone, lid}} {
		key := state.AliasKey(provider, channel, d[0])
		h := hashOf(key)
		won, ok := "", false
		if e, known := a.get(h); known && !e.stale {
			won, ok = e.other, true
		}
		if !ok {
			var err error
			if won, err = a.claim(ctx, key, h, d[1], eventID); err != nil {
				return fmt.Errorf("kafkastate: alias %q of %s/%s: %w", d[0], provider, channel, err)
			}
		}
		if won != d[1] {
			a.s.log.Debug("alias ignored: another is known", zap.String("provider", provider), zap.String("channel", channel),
				zap.String("id", d[0]), zap.String("alias", d[1]), zap.String("event", eventID))
			return nil
		}
	}
	return nil
}

// claim writes other as key's alias, or repairs it, until the winner is
// known and is the key's last record; it returns the winner.
func (a *Aliases) claim(ctx context.Context, key string, h hashKey, other, eventID string) (string, error) {
	unlock, err := a.locks.lock(ctx, key)
	if err != nil {
		return "", err
	}
	defer unlock()
	p := a.t.partFor(key)
	for range maxAttempts {
		e, ok := a.get(h)
		if ok && !e.stale {
			return e.other, nil
		}
		now := a.s.cfg.Now()
		_, next := state.LearnAlias(nil, other, eventID, now)
		rec := aliasRecord{Alias: *next, Version: 1}
		if ttl := a.s.cfg.ChatsTTL; ttl > 0 {
			exp := now.Add(ttl).UnixNano()
			rec.ExpiresAt = &exp
		}
		if ok { // the repair: the winner again, one version up
			rec.ID, rec.Version = e.other, e.version+1
			rec.ExpiresAt = nil
			if e.expires != 0 {
				rec.ExpiresAt = &e.expires
			}
		}
		val, err := json.Marshal(rec)
		if err != nil {
			return "", fmt.Errorf("encode %s: %w", key, err)
		}
		off, err := a.s.write(ctx, p, key, val)
		if err != nil {
			return "", err
		}
		if err := a.s.waitFor(ctx, p, off+1); err != nil {
			return "", err
		}
	}
	return "", ErrContended
}

// Lookup returns id's other form: see derive.AliasRegistry. An id memory
// does not know is looked up again once the partition is caught up, so
// that an alias another process learnt before the call is found.
func (a *Aliases) Lookup(ctx context.Context, provider, channel, id string) (string, bool, error) {
	if err := a.s.alive(ctx); err != nil {
		return "", false, fmt.Errorf("kafkastate: alias %q of %s/%s: %w", id, provider, channel, err)
	}
	key := state.AliasKey(provider, channel, id)
	h := hashOf(key)
	if e, ok := a.get(h); ok {
		return e.other, true, nil
	}
	if err := a.s.catchUp(ctx, a.t.partFor(key)); err != nil {
		return "", false, fmt.Errorf("kafkastate: alias %q of %s/%s: %w", id, provider, channel, err)
	}
	e, ok := a.get(h)
	return e.other, ok, nil
}
