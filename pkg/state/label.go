package state

import (
	"slices"
	"strings"

	"github.com/wahook/wahook/pkg/fact"
)

// maxEvents is how many events' outcomes a label remembers for replays.
// WhatsApp labels change rarely, so this covers a channel's recent history;
// an older event reprocessed is treated as a new one.
const maxEvents = 32

// Outcomes told to events, as remembered in Label.Events.
const (
	outcomeCreated = "created" // Upsert: created
	outcomeUpdated = "updated" // Upsert: changed; Label is the state it replaced
	outcomeDeleted = "deleted" // Delete: known; Label is the state it deleted
	outcomeMissed  = "missed"  // Delete: unknown
)

// LabelState is what a provider tells of a label besides its id.
type LabelState struct {
	Name     string `json:"name,omitempty"`
	Color    string `json:"color,omitempty"`
	ColorHex string `json:"color_hex,omitempty"`
}

// LabelEvent is the outcome told to one event that wrote a label.
type LabelEvent struct {
	ID      string      `json:"id"`
	Outcome string      `json:"outcome"`
	Label   *LabelState `json:"label,omitempty"`
}

// Label is a label's stored value. The decision functions never change a
// Label they are given: backends may share records between readers.
type Label struct {
	ID        string       `json:"id"`
	Name      string       `json:"name,omitempty"`
	Color     string       `json:"color,omitempty"`
	ColorHex  string       `json:"color_hex,omitempty"`
	CreatedBy string       `json:"created_by,omitempty"`
	UpdatedBy string       `json:"updated_by,omitempty"`
	Previous  *LabelState  `json:"previous,omitempty"`
	DeletedBy string       `json:"deleted_by,omitempty"`
	Events    []LabelEvent `json:"events,omitempty"`
}

func (r *Label) live() bool { return r.DeletedBy == "" }

// known reports whether the label was ever set: a record can be only the
// memory of a Delete that missed.
func (r *Label) known() bool { return r.CreatedBy != "" }

func (r *Label) state() LabelState {
	return LabelState{Name: r.Name, Color: r.Color, ColorHex: r.ColorHex}
}

func (r *Label) label() fact.Label { return r.labelOf(r.state()) }

func (r *Label) labelOf(s LabelState) fact.Label {
	return fact.Label{ID: r.ID, Name: s.Name, Color: s.Color, ColorHex: s.ColorHex}
}

// event returns the outcome remembered for eventID among outcomes.
func (r *Label) event(eventID string, outcomes ...string) (LabelEvent, bool) {
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
	return LabelEvent{}, false
}

// with returns a copy of r with ev appended to its events, oldest dropped.
func (r *Label) with(ev LabelEvent) *Label {
	next := *r
	keep := r.Events[max(0, len(r.Events)-(maxEvents-1)):]
	next.Events = append(append(make([]LabelEvent, 0, len(keep)+1), keep...), ev)
	return &next
}

// upserted returns what Upsert told eventID before, if it wrote this label.
// The creator and the last updater are recognised even once the label is
// deleted, as their outcome did not change.
func (r *Label) upserted(eventID string) (created bool, previous fact.Label, ok bool) {
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
func (r *Label) deleted(eventID string) (l fact.Label, known bool, ok bool) {
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
func created(old *Label, l fact.Label, eventID string) *Label {
	rec := &Label{}
	if old != nil {
		rec.Events = old.Events
	}
	rec = rec.with(LabelEvent{ID: eventID, Outcome: outcomeCreated})
	rec.ID, rec.Name, rec.Color, rec.ColorHex = l.ID, l.Name, l.Color, l.ColorHex
	rec.CreatedBy, rec.UpdatedBy = eventID, eventID
	return rec
}

// updated is live label cur set to l by eventID.
func (r *Label) updated(l fact.Label, eventID string) *Label {
	old := r.state()
	next := r.with(LabelEvent{ID: eventID, Outcome: outcomeUpdated, Label: &old})
	next.Name, next.Color, next.ColorHex = l.Name, l.Color, l.ColorHex
	next.UpdatedBy, next.Previous = eventID, &old
	return next
}

// deletion is known label r deleted by eventID. A label deleted already
// keeps its deleting event; eventID's outcome is remembered all the same, so
// that reprocessing it after a re-creation does not delete the new label.
func (r *Label) deletion(eventID string) *Label {
	old := r.state()
	next := r.with(LabelEvent{ID: eventID, Outcome: outcomeDeleted, Label: &old})
	if next.live() {
		next.DeletedBy = eventID
	}
	return next
}

// The decisions below take the current record (nil when the key has none)
// and return the answer for eventID with the record to write. A nil next
// means no write: the answer is final (the event was answered before, or
// nothing changes). Otherwise the answer holds if next is written over cur
// and wins; a backend that loses the race reads again and decides again.

// UpsertLabel decides derive.LabelRegistry.Upsert of label l (its id is the
// key's) by eventID. Upsert of an absent label, or of a deleted one by a new
// event, is a creation; an event that wrote the label before is answered
// as then; any other event updates the label and is told the state it
// replaced.
func UpsertLabel(cur *Label, l fact.Label, eventID string) (isNew bool, previous fact.Label, next *Label) {
	if cur != nil {
		if isNew, previous, ok := cur.upserted(eventID); ok {
			return isNew, previous, nil
		}
		if cur.live() {
			return false, cur.label(), cur.updated(l, eventID)
		}
	}
	return true, fact.Label{}, created(cur, l, eventID)
}

// DeleteLabel decides derive.LabelRegistry.Delete of label id by eventID.
// A miss is recorded too (next is then a record of an unknown label), so
// that reprocessing the Delete after a later creation still misses, and that
// creation is one. Deleting a deleted label answers its last state.
func DeleteLabel(cur *Label, id, eventID string) (l fact.Label, known bool, next *Label) {
	missed := LabelEvent{ID: eventID, Outcome: outcomeMissed}
	if cur == nil {
		return fact.Label{}, false, (&Label{ID: id, DeletedBy: eventID}).with(missed)
	}
	if l, known, ok := cur.deleted(eventID); ok {
		return l, known, nil
	}
	if !cur.known() {
		return fact.Label{}, false, cur.with(missed)
	}
	return cur.label(), true, cur.deletion(eventID)
}

// DeleteLabelByName decides derive.LabelRegistry.Delete of the label named
// name by eventID, among labels, a channel's records (none nil). It resolves
// the name to the label this event deleted before (a reprocessing; the
// first such in labels' order), else a live label of that name, else a
// deleted one, the smallest id (as text) among several, so that a name
// several labels share resolves the same in every process. i is the index in
// labels of the label resolved, -1 for none: the backend then records the
// miss on the name's record (MissByName), so that reprocessing the Delete
// after a label of that name appeared misses again (MissedByName) instead of
// deleting that label.
func DeleteLabelByName(labels []*Label, name, eventID string) (i int, l fact.Label, known bool, next *Label) {
	live, dead := -1, -1
	smaller := func(a, b int) int {
		if b < 0 || labels[a].ID < labels[b].ID {
			return a
		}
		return b
	}
	for i, rec := range labels {
		if l, known, ok := rec.deleted(eventID); ok && known {
			return i, l, true, nil
		}
		switch {
		case !rec.known() || rec.Name != name:
		case rec.live():
			live = smaller(i, live)
		default:
			dead = smaller(i, dead)
		}
	}
	pick := live
	if pick < 0 {
		pick = dead
	}
	if pick < 0 {
		return -1, fact.Label{}, false, nil
	}
	return pick, labels[pick].label(), true, labels[pick].deletion(eventID)
}

// NameKey is the key of the record of a label name's deletions that
// missed: "{provider}.{channel}.{name}.n", one token more than a label's,
// so that a channel's labels ("{provider}.{channel}.*") never include it.
func NameKey(provider, channel, name string) string {
	return EntryKey(provider, channel, name) + ".n"
}

// MissedByName reports whether a Delete by name by eventID missed before,
// from the name's record rec (nil when there is none).
func MissedByName(rec *Label, eventID string) bool {
	if rec == nil {
		return false
	}
	_, ok := rec.event(eventID, outcomeMissed)
	return ok
}

// MissByName returns the name's record rec (nil when there is none) with the
// miss of eventID's Delete by name remembered, among the last 32.
func MissByName(rec *Label, name, eventID string) *Label {
	if rec == nil {
		rec = &Label{Name: name}
	}
	return rec.with(LabelEvent{ID: eventID, Outcome: outcomeMissed})
}

// LookupLabel answers derive.LabelRegistry.Lookup from a label's record
// (nil when there is none): its last state, also once deleted.
func LookupLabel(cur *Label) (l fact.Label, known bool) {
	if cur == nil || !cur.known() {
		return fact.Label{}, false
	}
	return cur.label(), true
}

// MaxListed bounds what one listing of a registry returns: channels, or a
// channel's labels (WhatsApp allows 20 labels a chat account).
const MaxListed = 1000

// Listed returns the labels among recs that were ever set (a record can be
// only the memory of a Delete that missed), deleted ones included, in id
// order and at most MaxListed; the records' event memories are left out.
func Listed(recs []*Label) []Label {
	out := make([]Label, 0, min(len(recs), MaxListed))
	for _, r := range recs {
		if r == nil || !r.known() {
			continue
		}
		l := *r
		l.Events = nil
		out = append(out, l)
	}
	slices.SortFunc(out, func(a, b Label) int { return strings.Compare(a.ID, b.ID) })
	return out[:min(len(out), MaxListed)]
}
