package natsstate

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/fact"
)

// Labels is the label registry of every channel, a derive.LabelRegistry.
type Labels struct {
	kv jetstream.KeyValue
}

var _ derive.LabelRegistry = (*Labels)(nil)

// ErrNoLabelID is returned by Upsert for a label without id: labels are
// kept by id.
var ErrNoLabelID = errors.New("natsstate: label has no id")

// maxEvents is how many events' outcomes a label remembers for replays.
// WhatsApp labels change rarely, so this covers a channel's recent history;
// an older event reprocessed is treated as a new one.
const maxEvents = 32

// scanTimeout bounds a name resolution whose ctx has no deadline, as
// jetstream's default timeout bounds every single request.
const scanTimeout = 5 * time.Second

// Outcomes told to events, as remembered in labelRecord.Events.
const (
	outcomeCreated = "created" // Upsert: created
	outcomeUpdated = "updated" // Upsert: changed; Label is the state it replaced
	outcomeDeleted = "deleted" // Delete: known; Label is the state it deleted
	outcomeMissed  = "missed"  // Delete: unknown
)

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

// labelRecord is a label's value in the bucket.
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
// The creator and the last updater are recognised even once the label is
// deleted, as their outcome did not change.
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

// Upsert records label l as set by raw event eventID: see
// derive.LabelRegistry.
func (r *Labels) Upsert(ctx context.Context, provider, channel string, l fact.Label, eventID string) (bool, fact.Label, error) {
	if err := checkEvent(eventID); err != nil {
		return false, fact.Label{}, err
	}
	if l.ID == "" {
		return false, fact.Label{}, ErrNoLabelID
	}
	key := entryKey(provider, channel, l.ID)
	for attempt := range maxAttempts {
		if attempt > 0 {
			if err := pause(ctx, attempt); err != nil {
				return false, fact.Label{}, fmt.Errorf("natsstate: upsert label %q of %s/%s: %w", l.ID, provider, channel, err)
			}
		}
		cur, rev, err := r.get(ctx, key, l.ID)
		if err != nil {
			return false, fact.Label{}, fmt.Errorf("natsstate: upsert label %q of %s/%s: %w", l.ID, provider, channel, err)
		}
		if cur != nil {
			if created, prev, ok := cur.upserted(eventID); ok {
				return created, prev, nil
			}
		}
		var next *labelRecord
		var previous fact.Label
		if cur == nil || !cur.live() {
			next = created(cur, l, eventID)
		} else {
			old := cur.state()
			previous = cur.label()
			next = cur.with(labelEvent{ID: eventID, Outcome: outcomeUpdated, Label: &old})
			next.Name, next.Color, next.ColorHex = l.Name, l.Color, l.ColorHex
			next.UpdatedBy, next.Previous = eventID, &old
		}
		err = r.put(ctx, key, next, cur != nil, rev)
		switch {
		case err == nil:
			return next.CreatedBy == eventID, previous, nil
		case !conflict(err):
			return false, fact.Label{}, fmt.Errorf("natsstate: upsert label %q of %s/%s: %w", l.ID, provider, channel, err)
		}
	}
	return false, fact.Label{}, fmt.Errorf("natsstate: upsert label %q of %s/%s: %w", l.ID, provider, channel, ErrContended)
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
	}
	if err != nil {
		return fact.Label{}, false, fmt.Errorf("natsstate: delete label %q of %s/%s: %w", cmp.Or(ref.ID, ref.Name), provider, channel, err)
	}
	if !known {
		l = fact.Label{ID: ref.ID, Name: ref.Name}
	}
	return l, known, nil
}

func (r *Labels) deleteByID(ctx context.Context, provider, channel, id, eventID string) (fact.Label, bool, error) {
	key := entryKey(provider, channel, id)
	for attempt := range maxAttempts {
		if attempt > 0 {
			if err := pause(ctx, attempt); err != nil {
				return fact.Label{}, false, err
			}
		}
		cur, rev, err := r.get(ctx, key, id)
		if err != nil {
			return fact.Label{}, false, err
		}
		if cur != nil {
			if l, known, ok := cur.deleted(eventID); ok {
				return l, known, nil
			}
		}
		var next *labelRecord
		switch {
		case cur == nil:
			// Remember the miss, so that reprocessing this event after the
			// label is created still misses, and that creation is one.
			next = (&labelRecord{ID: id, DeletedBy: eventID}).with(labelEvent{ID: eventID, Outcome: outcomeMissed})
		case !cur.known():
			next = cur.with(labelEvent{ID: eventID, Outcome: outcomeMissed})
		default:
			next = deletion(cur, eventID)
		}
		err = r.put(ctx, key, next, cur != nil, rev)
		switch {
		case err == nil:
			if cur == nil || !cur.known() {
				return fact.Label{}, false, nil
			}
			return cur.label(), true, nil
		case !conflict(err):
			return fact.Label{}, false, err
		}
	}
	return fact.Label{}, false, ErrContended
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

func (r *Labels) deleteByName(ctx context.Context, provider, channel, name, eventID string) (fact.Label, bool, error) {
	for attempt := range maxAttempts {
		if attempt > 0 {
			if err := pause(ctx, attempt); err != nil {
				return fact.Label{}, false, err
			}
		}
		entries, err := r.scan(ctx, channelPrefix(provider, channel)+".*")
		if err != nil {
			return fact.Label{}, false, err
		}
		var live, dead *scanned
		for i := range entries {
			e := &entries[i]
			if l, known, ok := e.rec.deleted(eventID); ok && known {
				return l, true, nil
			}
			switch {
			case !e.rec.known() || e.rec.Name != name:
			case e.rec.live():
				live = smaller(e, live)
			default:
				dead = smaller(e, dead)
			}
		}
		pick := cmp.Or(live, dead)
		if pick == nil {
			return fact.Label{}, false, nil
		}
		err = r.put(ctx, pick.key, deletion(pick.rec, eventID), true, pick.rev)
		switch {
		case err == nil:
			return pick.rec.label(), true, nil
		case !conflict(err):
			return fact.Label{}, false, err
		}
	}
	return fact.Label{}, false, ErrContended
}

// smaller returns the label of smaller id, so that a name several labels
// share resolves the same in every process, whatever the order of writes.
func smaller(a, b *scanned) *scanned {
	if b == nil || a.rec.ID < b.rec.ID {
		return a
	}
	return b
}

// Lookup returns what is known of a label by id: its last state, also once
// deleted.
func (r *Labels) Lookup(ctx context.Context, provider, channel, id string) (fact.Label, bool, error) {
	cur, _, err := r.get(ctx, entryKey(provider, channel, id), id)
	if err != nil {
		return fact.Label{}, false, fmt.Errorf("natsstate: look up label %q of %s/%s: %w", id, provider, channel, err)
	}
	if cur == nil || !cur.known() {
		return fact.Label{}, false, nil
	}
	return cur.label(), true, nil
}

// get reads the record and revision of label id at key: nil and 0 when
// absent.
func (r *Labels) get(ctx context.Context, key, id string) (*labelRecord, uint64, error) {
	e, err := r.kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, 0, nil
	case err != nil:
		return nil, 0, fmt.Errorf("get %s: %w", key, err)
	}
	rec, err := decodeLabel(key, e.Value())
	if err != nil {
		return nil, 0, err
	}
	// The caller's id is exact; the stored one went through JSON, which
	// replaces invalid UTF-8.
	rec.ID = id
	return rec, e.Revision(), nil
}

// put writes rec at key: Create when it was absent, else Update at rev, so
// that a concurrent writer makes it fail with a conflict.
func (r *Labels) put(ctx context.Context, key string, rec *labelRecord, exists bool, rev uint64) error {
	val, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	if exists {
		_, err = r.kv.Update(ctx, key, val, rev)
	} else {
		_, err = r.kv.Create(ctx, key, val)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	return nil
}

func decodeLabel(key string, val []byte) (*labelRecord, error) {
	var rec labelRecord
	if err := json.Unmarshal(val, &rec); err != nil {
		return nil, fmt.Errorf("decode %s: %w", key, err)
	}
	return &rec, nil
}

// scanned is one label read by scan.
type scanned struct {
	key string
	rev uint64
	rec *labelRecord
}

// scan reads the last value of every key matching filter. A channel holds
// a few labels (WhatsApp allows 20) and deletes by name are rare, so a scan
// is cheaper than keeping a name index consistent across writers.
func (r *Labels) scan(ctx context.Context, filter string) ([]scanned, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, scanTimeout)
		defer cancel()
	}
	w, err := r.kv.Watch(ctx, filter, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", filter, err)
	}
	defer w.Stop()
	var out []scanned
	at := make(map[string]int) // a key written during the scan comes twice
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("watch %s: closed before the last value", filter)
			}
			if e == nil { // every current value delivered
				return out, nil
			}
			rec, err := decodeLabel(e.Key(), e.Value())
			if err != nil {
				return nil, err
			}
			s := scanned{key: e.Key(), rev: e.Revision(), rec: rec}
			if i, ok := at[s.key]; ok {
				if s.rev > out[i].rev {
					out[i] = s
				}
				continue
			}
			at[s.key] = len(out)
			out = append(out, s)
		case <-ctx.Done():
			return nil, fmt.Errorf("watch %s: %w", filter, ctx.Err())
		}
	}
}
