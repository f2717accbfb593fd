package state_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/state"
)

// memory is the simplest backend of the decisions: a map under a lock, so
// that the conformance suites test the decisions alone.
type memory struct {
	mu     sync.Mutex
	labels map[string]*state.Label
	chats  map[string]*state.Chat
}

func newMemory(*testing.T) *memory {
	return &memory{labels: map[string]*state.Label{}, chats: map[string]*state.Chat{}}
}

func (m *memory) Upsert(ctx context.Context, provider, channel string, l fact.Label, eventID string) (bool, fact.Label, error) {
	if err := ctx.Err(); err != nil {
		return false, fact.Label{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	key := state.EntryKey(provider, channel, l.ID)
	isNew, prev, next := state.UpsertLabel(m.labels[key], l, eventID)
	if next != nil {
		m.labels[key] = next
	}
	return isNew, prev, nil
}

func (m *memory) Delete(ctx context.Context, provider, channel string, ref fact.LabelRef, eventID string) (fact.Label, bool, error) {
	if err := ctx.Err(); err != nil {
		return fact.Label{}, false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var l fact.Label
	var known bool
	switch {
	case ref.ID != "":
		key := state.EntryKey(provider, channel, ref.ID)
		var next *state.Label
		l, known, next = state.DeleteLabel(m.labels[key], ref.ID, eventID)
		if next != nil {
			m.labels[key] = next
		}
	case ref.Name != "":
		nameKey := state.NameKey(provider, channel, ref.Name)
		if state.MissedByName(m.labels[nameKey], eventID) {
			break
		}
		prefix := state.ChannelPrefix(provider, channel) + "."
		var keys []string
		for k := range m.labels {
			// A label's key, not a name's (one token more).
			if rest, ok := strings.CutPrefix(k, prefix); ok && !strings.Contains(rest, ".") {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		recs := make([]*state.Label, len(keys))
		for i, k := range keys {
			recs[i] = m.labels[k]
		}
		var i int
		var next *state.Label
		i, l, known, next = state.DeleteLabelByName(recs, ref.Name, eventID)
		switch {
		case i < 0:
			m.labels[nameKey] = state.MissByName(m.labels[nameKey], ref.Name, eventID)
		case next != nil:
			m.labels[keys[i]] = next
		}
	}
	if !known {
		l = fact.Label{ID: ref.ID, Name: ref.Name}
	}
	return l, known, nil
}

func (m *memory) Lookup(ctx context.Context, provider, channel, id string) (fact.Label, bool, error) {
	if err := ctx.Err(); err != nil {
		return fact.Label{}, false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	l, known := state.LookupLabel(m.labels[state.EntryKey(provider, channel, id)])
	return l, known, nil
}

func (m *memory) FirstSeen(ctx context.Context, provider, channel, chat, eventID string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	key := state.EntryKey(provider, channel, chat)
	first, next := state.FirstSeen(m.chats[key], eventID, time.Now())
	if next != nil {
		m.chats[key] = next
	}
	return first, nil
}

func TestDecisionsLabelRegistry(t *testing.T) {
	derivetest.TestLabelRegistry(t, func(t *testing.T) derive.LabelRegistry { return newMemory(t) })
}

func TestDecisionsChatRegistry(t *testing.T) {
	derivetest.TestChatRegistry(t, func(t *testing.T) derive.ChatRegistry { return newMemory(t) })
}

// The decisions must not change the records they are given: kafkastate
// shares applied records between callers.
func TestDecisionsKeepInput(t *testing.T) {
	_, _, rec := state.UpsertLabel(nil, fact.Label{ID: "1", Name: "A"}, "ev1")
	_, _, rec = state.UpsertLabel(rec, fact.Label{ID: "1", Name: "B"}, "ev2")
	before := *rec
	before.Events = slices.Clone(rec.Events)
	state.UpsertLabel(rec, fact.Label{ID: "1", Name: "C"}, "ev3")
	state.DeleteLabel(rec, "1", "ev4")
	state.DeleteLabelByName([]*state.Label{rec}, "B", "ev5")
	if diff := cmp.Diff(&before, rec); diff != "" {
		t.Errorf("record changed by decisions (-before +after):\n%s", diff)
	}
}

// A label remembers the outcomes of its last 32 events only: the oldest
// update reprocessed is then a new one.
func TestDecisionsEventLog(t *testing.T) {
	_, _, rec := state.UpsertLabel(nil, fact.Label{ID: "1", Name: "v0"}, "ev0")
	for i := 1; i <= 40; i++ {
		_, _, rec = state.UpsertLabel(rec, fact.Label{ID: "1", Name: fmt.Sprint("v", i)}, fmt.Sprint("ev", i))
	}
	if len(rec.Events) != 32 {
		t.Errorf("%d events remembered, want 32", len(rec.Events))
	}
	// The creator is recognised beyond the log by created_by.
	if isNew, _, next := state.UpsertLabel(rec, fact.Label{ID: "1"}, "ev0"); !isNew || next != nil {
		t.Errorf("replayed creation = %v, write %v; want created, no write", isNew, next != nil)
	}
	// The second event's update fell out of the log.
	if _, _, next := state.UpsertLabel(rec, fact.Label{ID: "1"}, "ev1"); next == nil {
		t.Error("an update older than the log was answered from it")
	}
}

// A delete by name that missed is remembered on the name's record, which a
// later miss of the same name extends.
func TestDecisionsMissByName(t *testing.T) {
	if state.MissedByName(nil, "ev1") {
		t.Error("no record, yet a miss")
	}
	rec := state.MissByName(nil, "Lead", "ev1")
	rec2 := state.MissByName(rec, "Lead", "ev2")
	for _, tc := range []struct {
		rec  *state.Label
		ev   string
		want bool
	}{{rec, "ev1", true}, {rec, "ev2", false}, {rec2, "ev1", true}, {rec2, "ev2", true}, {rec2, "ev3", false}} {
		if got := state.MissedByName(tc.rec, tc.ev); got != tc.want {
			t.Errorf("MissedByName(%d events, %s) = %t, want %t", len(tc.rec.Events), tc.ev, got, tc.want)
		}
	}
	if k := state.NameKey("whapi", "C.1", "Lead"); k != "whapi.C_2E1.Lead.n" {
		t.Errorf("NameKey = %q", k)
	}
}
