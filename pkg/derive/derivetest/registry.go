package derivetest

import (
	"cmp"
	"context"
	"errors"
	"sync"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/fact"
)

// ErrNoLabelID is returned by LabelRegistry.Upsert for a label without id:
// labels are stored by id.
var ErrNoLabelID = errors.New("derivetest: label has no id")

// LabelRegistry is an in-memory derive.LabelRegistry, safe for concurrent
// use; the zero value is empty and ready.
//
// Labels are kept per provider and channel by id. For each label it keeps
// the current state, the event that created it, the event that last updated
// it with the state before that update, and, once deleted, the deleting
// event with the state it deleted. That is what makes the latest creation,
// update and deletion of a label answer the same when their events are
// reprocessed, without changing anything:
//   - Upsert by the creating event: created, whatever happened since.
//   - Upsert by the last updating event: not created, the same previous.
//   - Upsert by any other event: created when the label is unknown or
//     deleted (a new label, whose creating event this is), else an update
//     whose previous is the current state.
//   - Delete by the deleting event: the same label, known, even after the
//     label was created again.
//   - Delete by another event: by id, or by name (a live label of that name
//     first, else a deleted one; the smallest id, as text, among several); the
//     label is marked deleted unless it already was. Unknown: the reference
//     itself, not known. A miss is remembered with its event, by id or by
//     name, so that reprocessing it after a label of that id or name was
//     created misses again.
//   - Lookup: the last known state, deleted labels included; never an id
//     that was only missed.
//
// Only the latest of each is remembered: reprocessing an older update, or
// the creation of a label that was since deleted and created again,
// re-applies it like a new event.
type LabelRegistry struct {
	mu     sync.Mutex
	scopes map[scope]map[string]*labelRecord
	// missed is the last event whose delete by a name missed, per name.
	missed map[scope]map[string]string
}

var _ derive.LabelRegistry = (*LabelRegistry)(nil)

// NewLabelRegistry returns an empty registry.
func NewLabelRegistry() *LabelRegistry { return &LabelRegistry{} }

type scope struct{ provider, channel string }

type labelRecord struct {
	current      fact.Label
	createdBy    string // "" for an id only missed by a deletion so far
	updatedBy    string
	beforeUpdate fact.Label
	deleted      bool
	deletedBy    string
	deletedState fact.Label
	deletedKnown bool // what Delete told deletedBy
}

// labels returns a channel's labels, creating the map when create is set.
func (r *LabelRegistry) labels(provider, channel string, create bool) map[string]*labelRecord {
	s := scope{provider, channel}
	m := r.scopes[s]
	if m == nil && create {
		if r.scopes == nil {
			r.scopes = map[scope]map[string]*labelRecord{}
		}
		m = map[string]*labelRecord{}
		r.scopes[s] = m
	}
	return m
}

// Upsert implements derive.LabelRegistry.
func (r *LabelRegistry) Upsert(ctx context.Context, provider, channel string, l fact.Label, eventID string) (bool, fact.Label, error) {
	if err := ctx.Err(); err != nil {
		return false, fact.Label{}, err
	}
	if l.ID == "" {
		return false, fact.Label{}, ErrNoLabelID
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.labels(provider, channel, true)
	rec := m[l.ID]
	switch {
	case rec == nil:
		m[l.ID] = &labelRecord{current: l, createdBy: eventID}
		return true, fact.Label{}, nil
	case eventID == rec.createdBy:
		return true, fact.Label{}, nil
	case eventID == rec.updatedBy:
		return false, rec.beforeUpdate, nil
	case rec.deleted:
		// A new label under an old id; its deletion is still remembered
		// so that reprocessing it answers the same.
		*rec = labelRecord{current: l, createdBy: eventID, deletedBy: rec.deletedBy, deletedState: rec.deletedState, deletedKnown: rec.deletedKnown}
		return true, fact.Label{}, nil
	}
	rec.beforeUpdate, rec.current, rec.updatedBy = rec.current, l, eventID
	return false, rec.beforeUpdate, nil
}

// Delete implements derive.LabelRegistry.
func (r *LabelRegistry) Delete(ctx context.Context, provider, channel string, ref fact.LabelRef, eventID string) (fact.Label, bool, error) {
	if err := ctx.Err(); err != nil {
		return fact.Label{}, false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	miss := fact.Label{ID: ref.ID, Name: ref.Name}
	var rec *labelRecord
	if ref.ID != "" {
		m := r.labels(provider, channel, true)
		if rec = m[ref.ID]; rec == nil {
			m[ref.ID] = &labelRecord{deleted: true, deletedBy: eventID, deletedState: miss}
			return miss, false, nil
		}
	} else {
		s := scope{provider, channel}
		if r.missed[s][ref.Name] == eventID {
			return miss, false, nil
		}
		if rec = byName(r.labels(provider, channel, false), ref.Name, eventID); rec == nil {
			if r.missed == nil {
				r.missed = map[scope]map[string]string{}
			}
			if r.missed[s] == nil {
				r.missed[s] = map[string]string{}
			}
			r.missed[s][ref.Name] = eventID
			return miss, false, nil
		}
	}
	switch {
	case eventID == rec.deletedBy:
		return rec.deletedState, rec.deletedKnown, nil
	case rec.createdBy == "":
		return miss, false, nil
	case rec.deleted:
		return rec.current, true, nil
	}
	rec.deleted, rec.deletedBy, rec.deletedState, rec.deletedKnown = true, eventID, rec.current, true
	return rec.current, true, nil
}

// byName finds the label a deletion by name means: the one eventID deleted
// (a reprocessing), else a live label of that name, else a deleted one.
func byName(m map[string]*labelRecord, name, eventID string) *labelRecord {
	if name == "" {
		return nil
	}
	var redo, live, dead *labelRecord
	smaller := func(a, b *labelRecord) bool { return b == nil || cmp.Less(a.current.ID, b.current.ID) }
	for _, rec := range m {
		switch {
		case rec.deletedBy == eventID && rec.deletedKnown && rec.deletedState.Name == name:
			if smaller(rec, redo) {
				redo = rec
			}
		case rec.createdBy == "" || rec.current.Name != name:
		case !rec.deleted:
			if smaller(rec, live) {
				live = rec
			}
		default:
			if smaller(rec, dead) {
				dead = rec
			}
		}
	}
	switch {
	case redo != nil:
		return redo
	case live != nil:
		return live
	}
	return dead
}

// Lookup implements derive.LabelRegistry.
func (r *LabelRegistry) Lookup(ctx context.Context, provider, channel, id string) (fact.Label, bool, error) {
	if err := ctx.Err(); err != nil {
		return fact.Label{}, false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if rec := r.labels(provider, channel, false)[id]; rec != nil && rec.createdBy != "" {
		return rec.current, true, nil
	}
	return fact.Label{}, false, nil
}

// ChatRegistry is an in-memory derive.ChatRegistry, safe for concurrent use;
// the zero value is empty and ready. It remembers, per provider, channel and
// chat, the event that first saw the chat.
type ChatRegistry struct {
	mu    sync.Mutex
	first map[chatKey]string
}

var _ derive.ChatRegistry = (*ChatRegistry)(nil)

// NewChatRegistry returns an empty registry.
func NewChatRegistry() *ChatRegistry { return &ChatRegistry{} }

type chatKey struct{ provider, channel, chat string }

// FirstSeen implements derive.ChatRegistry.
func (r *ChatRegistry) FirstSeen(ctx context.Context, provider, channel, chat, eventID string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	k := chatKey{provider, channel, chat}
	if first, ok := r.first[k]; ok {
		return first == eventID, nil
	}
	if r.first == nil {
		r.first = map[chatKey]string{}
	}
	r.first[k] = eventID
	return true, nil
}

// AliasRegistry is an in-memory derive.AliasRegistry, safe for concurrent
// use; the zero value is empty and ready. It keeps, per provider and
// channel, the first other form learnt for each id, both ways.
type AliasRegistry struct {
	mu    sync.Mutex
	other map[chatKey]string
	// Conflicts counts the pairs ignored for naming another form of an id
	// already tied.
	Conflicts int
}

var _ derive.AliasRegistry = (*AliasRegistry)(nil)

// NewAliasRegistry returns an empty registry.
func NewAliasRegistry() *AliasRegistry { return &AliasRegistry{} }

// Learn implements derive.AliasRegistry: the LID's direction first, and the
// phone's only when the LID's holds this pair, as the backends do.
func (r *AliasRegistry) Learn(ctx context.Context, provider, channel, lid, phone, eventID string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.other == nil {
		r.other = map[chatKey]string{}
	}
	for _, d := range [...][2]string{{lid, phone}, {phone, lid}} {
		k := chatKey{provider, channel, d[0]}
		if cur, ok := r.other[k]; ok {
			if cur != d[1] {
				r.Conflicts++
				return nil
			}
			continue
		}
		r.other[k] = d[1]
	}
	return nil
}

// Lookup implements derive.AliasRegistry.
func (r *AliasRegistry) Lookup(ctx context.Context, provider, channel, id string) (string, bool, error) {
	if err := ctx.Err(); err != nil {
		return "", false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	other, ok := r.other[chatKey{provider, channel, id}]
	return other, ok, nil
}
