package kafkastate

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/state"
)

// Labels is the label registry of every channel, a derive.LabelRegistry.
// A channel's labels share a partition (chosen by the channel), so that a
// deletion by name resolves among labels read to one offset.
type Labels struct {
	s      *Store
	t      *topic
	locks  keyLocks // by channel: a deletion by name reads them all
	shards []labelShard
}

var _ derive.LabelRegistry = (*Labels)(nil)

// ErrNoLabelID is returned by Upsert for a label without id: labels are
// kept by id.
var ErrNoLabelID = errors.New("kafkastate: label has no id")

type labelShard struct {
	mu sync.RWMutex
	m  map[string]map[string]labelEntry // channel prefix, then key
	// names holds the records of deletions by name that missed, by key
	// (state.NameKey).
	names map[string]labelEntry
}

// labelEntry is a label's winning record, never changed once applied, and
// whether a record was rejected after it (a repair is due).
type labelEntry struct {
	rec   *labelRecord
	stale bool
}

// labelRecord is a label's value on the topic: natsstate's value and the
// version that orders the writes of one label.
type labelRecord struct {
	state.Label
	Version int64 `json:"version"`
}

// version is the version the entry's successor builds on: 0 for none.
func (e labelEntry) version() int64 {
	if e.rec == nil {
		return 0
	}
	return e.rec.Version
}

// record is the entry's label, nil for no entry.
func (e labelEntry) record() *state.Label {
	if e.rec == nil {
		return nil
	}
	return &e.rec.Label
}

func newLabels(s *Store, t *topic) *Labels {
	l := &Labels{s: s, t: t, shards: make([]labelShard, len(t.parts))}
	for i := range l.shards {
		l.shards[i].m = make(map[string]map[string]labelEntry)
		l.shards[i].names = make(map[string]labelEntry)
	}
	return l
}

// apply implements table, with the rule of Chats.apply.
func (r *Labels) apply(part int, key, value []byte) {
	k := string(key)
	sh := &r.shards[part]
	m := sh.names
	prefix, ok := labelPrefix(k)
	if !ok {
		if !isNameKey(k) {
			r.s.log.Warn("label record ignored: not a label key", zap.ByteString("key", key))
			return
		}
		prefix = ""
	}
	if value == nil {
		sh.mu.Lock()
		if prefix != "" {
			m = sh.m[prefix]
		}
		delete(m, k)
		sh.mu.Unlock()
		return
	}
	rec := new(labelRecord)
	if err := json.Unmarshal(value, rec); err != nil {
		r.s.log.Warn("label record ignored: not a label", zap.String("key", k), zap.Error(err))
		return
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if prefix != "" {
		if m = sh.m[prefix]; m == nil {
			m = make(map[string]labelEntry)
			sh.m[prefix] = m
		}
	}
	cur, ok := m[k]
	if !ok || rec.Version > cur.rec.Version {
		m[k] = labelEntry{rec: rec}
		return
	}
	cur.stale = true
	m[k] = cur
}

// get returns the entry of label id at key, the zero entry for none.
func (r *Labels) get(p *partition, prefix, key, id string) labelEntry {
	sh := &r.shards[p.id]
	sh.mu.RLock()
	e, ok := sh.m[prefix][key]
	sh.mu.RUnlock()
	if ok && e.rec.ID != id {
		// The caller's id is exact; the stored one went through JSON, which
		// replaces invalid UTF-8.
		rec := *e.rec
		rec.ID = id
		e.rec = &rec
	}
	return e
}

// nameEntry returns the entry of the name record at key, the zero entry for
// none.
func (r *Labels) nameEntry(p *partition, key string) labelEntry {
	sh := &r.shards[p.id]
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return sh.names[key]
}

// channelLabels returns the keys and entries of a channel's labels in key
// order, so that a deletion by name that finds several labels it deleted
// before resolves the same in every process.
func (r *Labels) channelLabels(p *partition, prefix string) ([]string, []labelEntry) {
	sh := &r.shards[p.id]
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	m := sh.m[prefix]
	keys := slices.Sorted(maps.Keys(m))
	entries := make([]labelEntry, len(keys))
	for i, k := range keys {
		entries[i] = m[k]
	}
	return keys, entries
}

// begin takes the channel's lock and catches up with its partition, so
// that what the call decides from memory (a miss by name, a lookup) is as
// recent as the call. A read (lock false) takes no lock.
func (r *Labels) begin(ctx context.Context, provider, channel string, lock bool) (prefix string, p *partition, unlock func(), err error) {
	if err := r.s.alive(ctx); err != nil {
		return "", nil, nil, err
	}
	prefix = state.ChannelPrefix(provider, channel)
	p = r.t.partFor(prefix)
	unlock = func() {}
	if lock {
		if unlock, err = r.locks.lock(ctx, prefix); err != nil {
			return "", nil, nil, err
		}
	}
	if err := r.s.catchUp(ctx, p); err != nil {
		unlock()
		return "", nil, nil, err
	}
	return prefix, p, unlock, nil
}

// put writes rec as the version after base's at key and waits until the
// tailer has applied it, or the record that beat it.
func (r *Labels) put(ctx context.Context, p *partition, key string, rec *state.Label, base int64) error {
	val, err := json.Marshal(&labelRecord{Label: *rec, Version: base + 1})
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	off, err := r.s.write(ctx, p, key, val)
	if err != nil {
		return err
	}
	return r.s.waitFor(ctx, p, off+1)
}

// Upsert records label l as set by raw event eventID: see
// derive.LabelRegistry and the package documentation.
func (r *Labels) Upsert(ctx context.Context, provider, channel string, l fact.Label, eventID string) (bool, fact.Label, error) {
	if err := checkEvent(eventID); err != nil {
		return false, fact.Label{}, err
	}
	if l.ID == "" {
		return false, fact.Label{}, ErrNoLabelID
	}
	isNew, prev, err := r.upsert(ctx, provider, channel, l, eventID)
	if err != nil {
		return false, fact.Label{}, fmt.Errorf("kafkastate: upsert label %q of %s/%s: %w", l.ID, provider, channel, err)
	}
	return isNew, prev, nil
}

func (r *Labels) upsert(ctx context.Context, provider, channel string, l fact.Label, eventID string) (bool, fact.Label, error) {
	prefix, p, unlock, err := r.begin(ctx, provider, channel, true)
	if err != nil {
		return false, fact.Label{}, err
	}
	defer unlock()
	key := state.EntryKey(provider, channel, l.ID)
	for range maxAttempts {
		e := r.get(p, prefix, key, l.ID)
		isNew, prev, next := state.UpsertLabel(e.record(), l, eventID)
		if next == nil {
			if !e.stale {
				return isNew, prev, nil
			}
			next = e.record() // repair: the winner again, as the key's last record
		}
		// The answer comes from the record that wins, read back on the
		// next round, not from what was written.
		if err := r.put(ctx, p, key, next, e.version()); err != nil {
			return false, fact.Label{}, err
		}
	}
	return false, fact.Label{}, ErrContended
}

// Delete marks a label deleted by raw event eventID and returns what was
// known of it: see derive.LabelRegistry and the package documentation. An
// unknown label is returned as ref says it.
func (r *Labels) Delete(ctx context.Context, provider, channel string, ref fact.LabelRef, eventID string) (fact.Label, bool, error) {
	if err := checkEvent(eventID); err != nil {
		return fact.Label{}, false, err
	}
	var l fact.Label
	var known bool
	var err error
	switch {
	case ref.ID != "":
		l, known, err = r.deleteByID(ctx, provider, channel, ref.ID, eventID)
	case ref.Name != "":
		l, known, err = r.deleteByName(ctx, provider, channel, ref.Name, eventID)
	default:
		err = r.s.alive(ctx)
	}
	if err != nil {
		return fact.Label{}, false, fmt.Errorf("kafkastate: delete label %q of %s/%s: %w", cmp.Or(ref.ID, ref.Name), provider, channel, err)
	}
	if !known {
		l = fact.Label{ID: ref.ID, Name: ref.Name}
	}
	return l, known, nil
}

func (r *Labels) deleteByID(ctx context.Context, provider, channel, id, eventID string) (fact.Label, bool, error) {
	prefix, p, unlock, err := r.begin(ctx, provider, channel, true)
	if err != nil {
		return fact.Label{}, false, err
	}
	defer unlock()
	key := state.EntryKey(provider, channel, id)
	for range maxAttempts {
		e := r.get(p, prefix, key, id)
		l, known, next := state.DeleteLabel(e.record(), id, eventID)
		if next == nil {
			if !e.stale {
				return l, known, nil
			}
			next = e.record()
		}
		if err := r.put(ctx, p, key, next, e.version()); err != nil {
			return fact.Label{}, false, err
		}
	}
	return fact.Label{}, false, ErrContended
}

func (r *Labels) deleteByName(ctx context.Context, provider, channel, name, eventID string) (fact.Label, bool, error) {
	prefix, p, unlock, err := r.begin(ctx, provider, channel, true)
	if err != nil {
		return fact.Label{}, false, err
	}
	defer unlock()
	nameKey := state.NameKey(provider, channel, name)
	for range maxAttempts {
		missed := r.nameEntry(p, nameKey)
		if state.MissedByName(missed.record(), eventID) {
			if !missed.stale {
				return fact.Label{}, false, nil
			}
			if err := r.put(ctx, p, nameKey, missed.record(), missed.version()); err != nil {
				return fact.Label{}, false, err
			}
			continue
		}
		keys, entries := r.channelLabels(p, prefix)
		recs := make([]*state.Label, len(entries))
		for i, e := range entries {
			recs[i] = e.record()
		}
		i, l, known, next := state.DeleteLabelByName(recs, name, eventID)
		if i < 0 {
			// Remembered, so that reprocessing misses again whatever
			// labels appear meanwhile; the answer comes from the record
			// that wins, read back on the next round.
			if err := r.put(ctx, p, nameKey, state.MissByName(missed.record(), name, eventID), missed.version()); err != nil {
				return fact.Label{}, false, err
			}
			continue
		}
		if next == nil {
			if !entries[i].stale {
				return l, known, nil
			}
			next = recs[i]
		}
		if err := r.put(ctx, p, keys[i], next, entries[i].version()); err != nil {
			return fact.Label{}, false, err
		}
	}
	return fact.Label{}, false, ErrContended
}

// Lookup returns what is known of a label by id: its last state, also once
// deleted.
func (r *Labels) Lookup(ctx context.Context, provider, channel, id string) (fact.Label, bool, error) {
	prefix, p, unlock, err := r.begin(ctx, provider, channel, false)
	if err != nil {
		return fact.Label{}, false, fmt.Errorf("kafkastate: look up label %q of %s/%s: %w", id, provider, channel, err)
	}
	defer unlock()
	e := r.get(p, prefix, state.EntryKey(provider, channel, id), id)
	l, known := state.LookupLabel(e.record())
	return l, known, nil
}

// Channels lists the channels that have labels, in provider and channel
// order, at most state.MaxListed, as this store has read them; channels of
// more than 64 bytes are kept under a hash of their name and are not
// listed.
func (r *Labels) Channels(ctx context.Context) ([]state.ProviderChannel, error) {
	if err := r.s.alive(ctx); err != nil {
		return nil, fmt.Errorf("kafkastate: list label channels: %w", err)
	}
	var out []state.ProviderChannel
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.RLock()
		for prefix := range sh.m {
			if pc, ok := state.ParseChannelPrefix(prefix); ok {
				out = append(out, pc)
			}
		}
		sh.mu.RUnlock()
	}
	slices.SortFunc(out, func(a, b state.ProviderChannel) int {
		return cmp.Or(strings.Compare(a.Provider, b.Provider), strings.Compare(a.Channel, b.Channel))
	})
	return out[:min(len(out), state.MaxListed)], nil
}

// List returns a channel's labels as last known, deleted ones included, in
// id order, at most state.MaxListed. It catches up with the channel's
// partition first, so a label written before the call is in the answer.
func (r *Labels) List(ctx context.Context, provider, channel string) ([]state.Label, error) {
	prefix, p, unlock, err := r.begin(ctx, provider, channel, false)
	if err != nil {
		return nil, fmt.Errorf("kafkastate: list labels of %s/%s: %w", provider, channel, err)
	}
	defer unlock()
	_, entries := r.channelLabels(p, prefix)
	recs := make([]*state.Label, len(entries))
	for i, e := range entries {
		recs[i] = e.record()
	}
	return state.Listed(recs), nil
}
