package kafkastate

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/fact"
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

// maxEvents is how many events' outcomes a label remembers for replays, as
// in natsstate: WhatsApp labels change rarely, so this covers a channel's
// recent history; an older event reprocessed is treated as a new one.
const maxEvents = 32

// Outcomes told to events, as remembered in labelRecord.Events.
const (
	outcomeCreated = "created" // Upsert: created
	outcomeUpdated = "updated" // Upsert: changed; Label is the state it replaced
	outcomeDeleted = "deleted" // Delete: known; Label is the state it deleted
	outcomeMissed  = "missed"  // Delete: unknown
)

type labelShard struct {
	mu sync.RWMutex
	m  map[string]map[string]labelEntry // channel prefix, then key
}

// labelEntry is a label's winning record, never changed once applied, and
// whether a record was rejected after it (a repair is due).
type labelEntry struct {
	rec   *labelRecord
	stale bool
}

// labelState is what a provider tells of a label besides its id.
type labelState struct {
	Name     string `json:"name,omitempty"`
	Color    string `json:"color,omitempty"`
	ColorHex string `json:"color_hex,omitempty"`
}

// labelEvent is the outcome told to one event that wrote a label.
type labelEvent struct {
	ID      string      `json:"id"`
	Outcome string      `json:"outcome"`
	Label   *labelState `json:"label,omitempty"`
}

// labelRecord is a label's value on the topic: natsstate's value and the
// version that orders the writes of one label.
type labelRecord struct {
	ID        string       `json:"id"`
	Name      string       `json:"name,omitempty"`
	Color     string       `json:"color,omitempty"`
	ColorHex  string       `json:"color_hex,omitempty"`
	CreatedBy string       `json:"created_by,omitempty"`
	UpdatedBy string       `json:"updated_by,omitempty"`
	Previous  *labelState  `json:"previous,omitempty"`
	DeletedBy string       `json:"deleted_by,omitempty"`
	Events    []labelEvent `json:"events,omitempty"`
	Version   int64        `json:"version"`
}

func (r *labelRecord) live() bool { return r.DeletedBy == "" }

// known reports whether the label was ever set: a record can be only the
// memory of a Delete that missed.
func (r *labelRecord) known() bool { return r.CreatedBy != "" }

func (r *labelRecord) state() labelState {
	return labelState{Name: r.Name, Color: r.Color, ColorHex: r.ColorHex}
}

func (r *labelRecord) label() fact.Label { return r.labelOf(r.state()) }

func (r *labelRecord) labelOf(s labelState) fact.Label {
	return fact.Label{ID: r.ID, Name: s.Name, Color: s.Color, ColorHex: s.ColorHex}
}

// event returns the outcome remembered for eventID among outcomes.
func (r *labelRecord) event(eventID string, outcomes ...string) (labelEvent, bool) {
	for i := len(r.Events) - 1; i >= 0; i-- {
		ev := r.Events[i]
		if ev.ID != eventID {
			continue
		}
		for _, o := range outcomes {
			if ev.Outcome == o {
				return ev, true
			}
		}
	}
	return labelEvent{}, false
}

// with returns a copy of r with ev appended to its events, oldest dropped.
func (r *labelRecord) with(ev labelEvent) *labelRecord {
	next := *r
	keep := r.Events[max(0, len(r.Events)-(maxEvents-1)):]
	next.Events = append(append(make([]labelEvent, 0, len(keep)+1), keep...), ev)
	return &next
}

// upserted returns what Upsert told eventID before, if it wrote this label.
func (r *labelRecord) upserted(eventID string) (created bool, previous fact.Label, ok bool) {
	if ev, ok := r.event(eventID, outcomeCreated, outcomeUpdated); ok {
		if ev.Outcome == outcomeCreated || ev.Label == nil {
			return true, fact.Label{}, true
		}
		return false, r.labelOf(*ev.Label), true
	}
	switch {
	case r.CreatedBy == eventID:
		return true, fact.Label{}, true
	case r.UpdatedBy == eventID && r.Previous != nil:
		return false, r.labelOf(*r.Previous), true
	}
	return false, fact.Label{}, false
}

// deleted returns what Delete told eventID before, if it wrote this label.
func (r *labelRecord) deleted(eventID string) (l fact.Label, known bool, ok bool) {
	if ev, ok := r.event(eventID, outcomeDeleted, outcomeMissed); ok {
		if ev.Outcome == outcomeMissed || ev.Label == nil {
			return fact.Label{}, false, true
		}
		return r.labelOf(*ev.Label), true, true
	}
	if r.DeletedBy == eventID {
		return r.label(), r.known(), true
	}
	return fact.Label{}, false, false
}

// created is a new label set by eventID, after old (nil or a tombstone).
func created(old *labelRecord, l fact.Label, eventID string) *labelRecord {
	rec := &labelRecord{}
	if old != nil {
		rec.Events = old.Events
	}
	rec = rec.with(labelEvent{ID: eventID, Outcome: outcomeCreated})
	rec.ID, rec.Name, rec.Color, rec.ColorHex = l.ID, l.Name, l.Color, l.ColorHex
	rec.CreatedBy, rec.UpdatedBy = eventID, eventID
	return rec
}

// updated is live label cur set to l by eventID.
func updated(cur *labelRecord, l fact.Label, eventID string) *labelRecord {
	old := cur.state()
	next := cur.with(labelEvent{ID: eventID, Outcome: outcomeUpdated, Label: &old})
	next.Name, next.Color, next.ColorHex = l.Name, l.Color, l.ColorHex
	next.UpdatedBy, next.Previous = eventID, &old
	return next
}

// deletion is known label cur deleted by eventID. A label deleted already
// keeps its deleting event; eventID's outcome is remembered all the same, so
// that reprocessing it after a re-creation does not delete the new label.
func deletion(cur *labelRecord, eventID string) *labelRecord {
	old := cur.state()
	next := cur.with(labelEvent{ID: eventID, Outcome: outcomeDeleted, Label: &old})
	if next.live() {
		next.DeletedBy = eventID
	}
	return next
}

func newLabels(s *Store, t *topic) *Labels {
	l := &Labels{s: s, t: t, shards: make([]labelShard, len(t.parts))}
	for i := range l.shards {
		l.shards[i].m = make(map[string]map[string]labelEntry)
	}
	return l
}

// apply implements table, with the rule of Chats.apply.
func (r *Labels) apply(part int, key, value []byte) {
	k := string(key)
	prefix, ok := labelPrefix(k)
	if !ok {
		r.s.log.Warn("label record ignored: not a label key", zap.ByteString("key", key))
		return
	}
	sh := &r.shards[part]
	if value == nil {
		sh.mu.Lock()
		delete(sh.m[prefix], k)
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
	m := sh.m[prefix]
	if m == nil {
		m = make(map[string]labelEntry)
		sh.m[prefix] = m
	}
	cur, ok := m[k]
	if !ok || rec.Version > cur.rec.Version {
		m[k] = labelEntry{rec: rec}
		return
	}
	cur.stale = true
	m[k] = cur
}

// get returns the entry of label id at key.
func (r *Labels) get(p *partition, prefix, key, id string) (labelEntry, bool) {
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
	return e, ok
}

// channelLabels returns the entries of a channel's labels.
func (r *Labels) channelLabels(p *partition, prefix string) map[string]labelEntry {
	sh := &r.shards[p.id]
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	out := make(map[string]labelEntry, len(sh.m[prefix]))
	for k, e := range sh.m[prefix] {
		out[k] = e
	}
	return out
}

// begin takes the channel's lock and catches up with its partition, so
// that what the call decides from memory (a miss by name, a lookup) is as
// recent as the call. A read (lock false) takes no lock.
func (r *Labels) begin(ctx context.Context, provider, channel string, lock bool) (prefix string, p *partition, unlock func(), err error) {
	if err := r.s.alive(ctx); err != nil {
		return "", nil, nil, err
	}
	prefix = channelPrefix(provider, channel)
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
func (r *Labels) put(ctx context.Context, p *partition, key string, rec *labelRecord, base int64) error {
	next := *rec
	next.Version = base + 1
	val, err := json.Marshal(&next)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	off, err := r.s.write(ctx, p, key, val)
	if err != nil {
		return err
	}
	return r.s.waitFor(ctx, p, off+1)
}

// version is the version an entry's successor builds on: 0 for none.
func version(e labelEntry, ok bool) int64 {
	if !ok {
		return 0
	}
	return e.rec.Version
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
	key := entryKey(provider, channel, l.ID)
	for range maxAttempts {
		e, ok := r.get(p, prefix, key, l.ID)
		var next *labelRecord
		switch {
		case ok:
			if isNew, prev, done := e.rec.upserted(eventID); done {
				if !e.stale {
					return isNew, prev, nil
				}
				next = e.rec // repair: the winner again, as the key's last record
			} else if e.rec.live() {
				next = updated(e.rec, l, eventID)
			} else {
				next = created(e.rec, l, eventID)
			}
		default:
			next = created(nil, l, eventID)
		}
		// The answer comes from the record that wins, read back on the
		// next round, not from what was written.
		if err := r.put(ctx, p, key, next, version(e, ok)); err != nil {
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
	key := entryKey(provider, channel, id)
	for range maxAttempts {
		e, ok := r.get(p, prefix, key, id)
		var next *labelRecord
		switch {
		case !ok:
			// Remember the miss, so that reprocessing this event after the
			// label is created still misses, and that creation is one.
			next = (&labelRecord{ID: id, DeletedBy: eventID}).with(labelEvent{ID: eventID, Outcome: outcomeMissed})
		default:
			if l, known, done := e.rec.deleted(eventID); done {
				if !e.stale {
					return l, known, nil
				}
				next = e.rec
			} else if !e.rec.known() {
				next = e.rec.with(labelEvent{ID: eventID, Outcome: outcomeMissed})
			} else {
				next = deletion(e.rec, eventID)
			}
		}
		if err := r.put(ctx, p, key, next, version(e, ok)); err != nil {
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
	for range maxAttempts {
		var redo, live, dead *named
		for key, e := range r.channelLabels(p, prefix) {
			n := &named{key: key, entry: e}
			if l, known, ok := e.rec.deleted(eventID); ok && known {
				if redo == nil || key < redo.key {
					redo, n.l = n, l
				}
				continue
			}
			switch {
			case !e.rec.known() || e.rec.Name != name:
			case e.rec.live():
				live = smaller(n, live)
			default:
				dead = smaller(n, dead)
			}
		}
		var key string
		var e labelEntry
		var next *labelRecord
		switch {
		case redo != nil && !redo.entry.stale:
			return redo.l, true, nil
		case redo != nil:
			key, e, next = redo.key, redo.entry, redo.entry.rec
		default:
			pick := cmp.Or(live, dead)
			if pick == nil {
				// A miss by name leaves no trace (see derivetest.LabelRegistry).
				return fact.Label{}, false, nil
			}
			key, e, next = pick.key, pick.entry, deletion(pick.entry.rec, eventID)
		}
		if err := r.put(ctx, p, key, next, e.rec.Version); err != nil {
			return fact.Label{}, false, err
		}
	}
	return fact.Label{}, false, ErrContended
}

// named is a label found while resolving a name.
type named struct {
	key   string
	entry labelEntry
	l     fact.Label // what a deletion told the event, for a replay
}

// smaller returns the label of smaller id, so that a name several labels
// share resolves the same in every process, whatever the order of writes.
func smaller(a, b *named) *named {
	if b == nil || a.entry.rec.ID < b.entry.rec.ID {
		return a
	}
	return b
}

// Lookup returns what is known of a label by id: its last state, also once
// deleted.
func (r *Labels) Lookup(ctx context.Context, provider, channel, id string) (fact.Label, bool, error) {
	prefix, p, unlock, err := r.begin(ctx, provider, channel, false)
	if err != nil {
		return fact.Label{}, false, fmt.Errorf("kafkastate: look up label %q of %s/%s: %w", id, provider, channel, err)
	}
	defer unlock()
	e, ok := r.get(p, prefix, entryKey(provider, channel, id), id)
	if !ok || !e.rec.known() {
		return fact.Label{}, false, nil
	}
	return e.rec.label(), true, nil
}
