package natsstate_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/fact"
)

const (
	prov  = "whapi"
	chan1 = "MANTIS-M72HC"
)

// result is what one registry call answered.
type result struct {
	Created bool // Upsert
	Known   bool // Delete, Lookup
	Label   fact.Label
}

// step is one registry call and its expected answer.
type step struct {
	desc    string
	upsert  *fact.Label
	delete  *fact.LabelRef
	lookup  string
	channel string // chan1 when empty
	event   string
	want    result
}

func upsertStep(desc string, l fact.Label, ev string, want result) step {
	return step{desc: desc, upsert: &l, event: ev, want: want}
}

func deleteStep(desc string, ref fact.LabelRef, ev string, want result) step {
	return step{desc: desc, delete: &ref, event: ev, want: want}
}

func lookupStep(desc, id string, want result) step {
	return step{desc: desc, lookup: id, want: want}
}

func (s step) in(channel string) step { s.channel = channel; return s }

func (s step) run(t *testing.T, r derive.LabelRegistry) result {
	t.Helper()
	ctx := testCtx(t)
	ch := s.channel
	if ch == "" {
		ch = chan1
	}
	var got result
	var err error
	switch {
	case s.upsert != nil:
		got.Created, got.Label, err = r.Upsert(ctx, prov, ch, *s.upsert, s.event)
	case s.delete != nil:
		got.Label, got.Known, err = r.Delete(ctx, prov, ch, *s.delete, s.event)
	default:
		got.Label, got.Known, err = r.Lookup(ctx, prov, ch, s.lookup)
	}
	if err != nil {
		t.Fatalf("%s: %v", s.desc, err)
	}
	return got
}

func runSteps(t *testing.T, r derive.LabelRegistry, steps []step) {
	t.Helper()
	for i, s := range steps {
		if diff := cmp.Diff(s.want, s.run(t, r)); diff != "" {
			t.Errorf("step %d, %s: mismatch (-want +got):\n%s", i, s.desc, diff)
		}
	}
}

func lbl(id, name, color string) fact.Label { return fact.Label{ID: id, Name: name, Color: color} }

var (
	vip  = fact.Label{ID: "1", Name: "VIP", Color: "gold", ColorHex: "#FFD700"}
	vips = fact.Label{ID: "1", Name: "VIPs", Color: "gold", ColorHex: "#FFD700"}
	top  = fact.Label{ID: "1", Name: "Top", Color: "red"}
	neu  = fact.Label{ID: "1", Name: "New", Color: "blue"}
)

func TestLabelsUpsertAndReprocess(t *testing.T) {
	_, s := newStore(t)
	runSteps(t, s.Labels(), []step{
		lookupStep("lookup before any upsert", "1", result{}),
		upsertStep("first sighting creates", vip, "e1", result{Created: true}),
		upsertStep("creating event reprocessed", vip, "e1", result{Created: true}),
		upsertStep("change", vips, "e2", result{Label: vip}),
		upsertStep("changing event reprocessed", vips, "e2", result{Label: vip}),
		upsertStep("second change", top, "e3", result{Label: vips}),
		upsertStep("first change reprocessed after a later one", vips, "e2", result{Label: vip}),
		upsertStep("creation reprocessed after changes", vip, "e1", result{Created: true}),
		lookupStep("reprocessing wrote nothing", "1", result{Known: true, Label: top}),
		upsertStep("same state by a new event is a change", top, "e3b", result{Label: top}),
		deleteStep("delete by id", fact.LabelRef{ID: "1"}, "e4", result{Known: true, Label: top}),
		deleteStep("delete reprocessed", fact.LabelRef{ID: "1"}, "e4", result{Known: true, Label: top}),
		lookupStep("deleted label: its last state", "1", result{Known: true, Label: top}),
		upsertStep("deleted label reprocessed: still its creation", vip, "e1", result{Created: true}),
		upsertStep("upsert after delete creates anew", neu, "e5", result{Created: true}),
		upsertStep("change before the delete reprocessed", top, "e3", result{Label: vips}),
		deleteStep("delete reprocessed after re-creation", fact.LabelRef{ID: "1"}, "e4", result{Known: true, Label: top}),
		lookupStep("re-created label", "1", result{Known: true, Label: neu}),
		deleteStep("second delete", fact.LabelRef{ID: "1", Name: "ignored: the id wins"}, "e6", result{Known: true, Label: neu}),
		deleteStep("delete of a deleted label", fact.LabelRef{ID: "1"}, "e7", result{Known: true, Label: neu}),
		deleteStep("that delete reprocessed", fact.LabelRef{ID: "1"}, "e7", result{Known: true, Label: neu}),
		upsertStep("re-created once more", vip, "e7b", result{Created: true}),
		deleteStep("second delete reprocessed after re-creation", fact.LabelRef{ID: "1"}, "e7", result{Known: true, Label: neu}),
		lookupStep("re-created label untouched by the reprocessing", "1", result{Known: true, Label: vip}),
		deleteStep("earlier delete still answers the same", fact.LabelRef{ID: "1"}, "e6", result{Known: true, Label: neu}),
		upsertStep("other label is independent", lbl("2", "Gold", ""), "e8", result{Created: true}),
		upsertStep("same id on another channel is another label", vip, "e9", result{Created: true}).in("OTHER"),
		lookupStep("label on the other channel", "1", result{Known: true, Label: vip}).in("OTHER"),
	})
}

func TestLabelsDeleteByName(t *testing.T) {
	_, s := newStore(t)
	runSteps(t, s.Labels(), []step{
		upsertStep("create VIP", vip, "e1", result{Created: true}),
		upsertStep("create Gold", lbl("2", "Gold", "yellow"), "e2", result{Created: true}),
		upsertStep("VIP on another channel", lbl("9", "VIP", ""), "e2b", result{Created: true}).in("OTHER"),
		deleteStep("delete VIP by name", fact.LabelRef{Name: "VIP"}, "e3", result{Known: true, Label: vip}),
		deleteStep("reprocessed", fact.LabelRef{Name: "VIP"}, "e3", result{Known: true, Label: vip}),
		lookupStep("VIP deleted, still known", "1", result{Known: true, Label: vip}),
		lookupStep("Gold untouched", "2", result{Known: true, Label: lbl("2", "Gold", "yellow")}),
		lookupStep("other channel's VIP untouched", "9", result{Known: true, Label: lbl("9", "VIP", "")}).in("OTHER"),
		upsertStep("new label named VIP", lbl("3", "VIP", "pink"), "e4", result{Created: true}),
		deleteStep("delete reprocessed resolves to the label it deleted", fact.LabelRef{Name: "VIP"}, "e3", result{Known: true, Label: vip}),
		lookupStep("new VIP untouched by the reprocessing", "3", result{Known: true, Label: lbl("3", "VIP", "pink")}),
		deleteStep("delete the new VIP", fact.LabelRef{Name: "VIP"}, "e5", result{Known: true, Label: lbl("3", "VIP", "pink")}),
		deleteStep("no live label named VIP: the deleted one of smallest id", fact.LabelRef{Name: "VIP"}, "e6", result{Known: true, Label: vip}),
		deleteStep("no label of that name", fact.LabelRef{Name: "Nope"}, "e7", result{Label: fact.Label{Name: "Nope"}}),
		deleteStep("empty reference", fact.LabelRef{}, "e8", result{}),
		upsertStep("rename Gold", lbl("2", "Golden", "yellow"), "e9", result{Label: lbl("2", "Gold", "yellow")}),
		deleteStep("old name no longer resolves", fact.LabelRef{Name: "Gold"}, "e10", result{Label: fact.Label{Name: "Gold"}}),
		upsertStep("two live labels of one name", lbl("10", "Twin", ""), "e12", result{Created: true}),
		upsertStep("the other twin", lbl("09", "Twin", ""), "e13", result{Created: true}),
		deleteStep("the smallest id wins, whatever was written last", fact.LabelRef{Name: "Twin"}, "e14", result{Known: true, Label: lbl("09", "Twin", "")}),
		deleteStep("new name resolves", fact.LabelRef{Name: "Golden"}, "e11", result{Known: true, Label: lbl("2", "Golden", "yellow")}),
	})
}

func TestLabelsDeleteUnknownID(t *testing.T) {
	_, s := newStore(t)
	runSteps(t, s.Labels(), []step{
		deleteStep("delete of a label never seen", fact.LabelRef{ID: "7", Name: "Later"}, "e1", result{Label: fact.Label{ID: "7", Name: "Later"}}),
		deleteStep("another miss", fact.LabelRef{ID: "7"}, "e1b", result{Label: fact.Label{ID: "7"}}),
		lookupStep("still unknown", "7", result{}),
		upsertStep("its first upsert creates it", lbl("7", "Later", ""), "e2", result{Created: true}),
		deleteStep("the miss reprocessed still misses", fact.LabelRef{ID: "7", Name: "Later"}, "e1", result{Label: fact.Label{ID: "7", Name: "Later"}}),
		lookupStep("and left the label alone", "7", result{Known: true, Label: lbl("7", "Later", "")}),
		upsertStep("creation reprocessed", lbl("7", "Later", ""), "e2", result{Created: true}),
	})
}

// TestLabelsEventMemory reprocesses the oldest events after many changes:
// beyond the remembered window only the creation is still recognised.
func TestLabelsEventMemory(t *testing.T) {
	_, s := newStore(t)
	r := s.Labels()
	ctx := testCtx(t)
	name := func(i int) string { return fmt.Sprintf("n%d", i) }
	for i := range 40 {
		created, prev, err := r.Upsert(ctx, prov, chan1, lbl("1", name(i), ""), fmt.Sprintf("e%d", i))
		if err != nil {
			t.Fatalf("Upsert %d: %v", i, err)
		}
		want := result{Created: i == 0}
		if i > 0 {
			want.Label = lbl("1", name(i-1), "")
		}
		if diff := cmp.Diff(want, result{Created: created, Label: prev}); diff != "" {
			t.Fatalf("Upsert %d mismatch (-want +got):\n%s", i, diff)
		}
	}
	runSteps(t, r, []step{
		upsertStep("creation, long ago", lbl("1", name(0), ""), "e0", result{Created: true}),
		upsertStep("recent change", lbl("1", name(20), ""), "e20", result{Label: lbl("1", name(19), "")}),
		upsertStep("latest change", lbl("1", name(39), ""), "e39", result{Label: lbl("1", name(38), "")}),
		lookupStep("nothing written", "1", result{Known: true, Label: lbl("1", name(39), "")}),
	})
}

// TestLabelsUpsertRace races upserts of one label by distinct events from
// two processes: exactly one creates it, and the others' previous states
// chain every event once, ending at the stored state.
func TestLabelsUpsertRace(t *testing.T) {
	s1, s2, _ := twoStores(t)
	stores := []derive.LabelRegistry{s1.Labels(), s2.Labels()}
	const perStore = 8
	type outcome struct {
		created bool
		prev    fact.Label
	}
	var (
		mu  sync.Mutex
		got = map[string]outcome{}
		wg  sync.WaitGroup
	)
	for si, r := range stores {
		for g := range perStore {
			ev := fmt.Sprintf("ev-%d-%d", si, g)
			wg.Go(func() {
				created, prev, err := r.Upsert(testCtx(t), prov, chan1, lbl("L", ev, ""), ev)
				if err != nil {
					t.Errorf("Upsert(%s): %v", ev, err)
					return
				}
				mu.Lock()
				got[ev] = outcome{created, prev}
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	var creators []string
	next := map[string]string{} // event -> the event that changed its state
	for ev, o := range got {
		if o.created {
			creators = append(creators, ev)
			continue
		}
		if o.prev.ID != "L" {
			t.Errorf("Upsert(%s) previous = %+v, want label L", ev, o.prev)
		}
		if other, dup := next[o.prev.Name]; dup {
			t.Errorf("events %s and %s both replaced the state set by %s", other, ev, o.prev.Name)
		}
		next[o.prev.Name] = ev
	}
	if len(creators) != 1 {
		t.Fatalf("creators = %v, want exactly one", creators)
	}
	last, n := creators[0], 1
	for next[last] != "" {
		last, n = next[last], n+1
	}
	if n != len(got) {
		t.Errorf("chain from the creator covers %d of %d events", n, len(got))
	}
	cur, known, err := s1.Labels().Lookup(testCtx(t), prov, chan1, "L")
	if err != nil || !known || cur.Name != last {
		t.Errorf("Lookup(L) = %+v, %t, %v; want the label set by %s, the chain's end", cur, known, err, last)
	}

	// Reprocessing anywhere answers as the first time.
	for ev, o := range got {
		created, prev, err := stores[1].Upsert(testCtx(t), prov, chan1, lbl("L", ev, ""), ev)
		if err != nil {
			t.Fatalf("reprocess Upsert(%s): %v", ev, err)
		}
		if created != o.created || prev != o.prev {
			t.Errorf("reprocess Upsert(%s) = %t, %+v; first answer %t, %+v", ev, created, prev, o.created, o.prev)
		}
	}
}

// TestLabelsDeleteRace races deletes of one label by id and by name from two
// processes: every event is told the label's last state (deleting a deleted
// label is known too), exactly one of them marked it deleted, and every
// event reprocessed answers the same.
func TestLabelsDeleteRace(t *testing.T) {
	s1, s2, js := twoStores(t)
	stores := []derive.LabelRegistry{s1.Labels(), s2.Labels()}
	if _, _, err := s1.Labels().Upsert(testCtx(t), prov, chan1, vip, "e0"); err != nil {
		t.Fatalf("Upsert: %v", err)
	}
	refs := []fact.LabelRef{{ID: vip.ID}, {Name: vip.Name}}
	var (
		mu  sync.Mutex
		got = map[string]result{}
		wg  sync.WaitGroup
	)
	for si, r := range stores {
		for g := range 8 {
			ev, ref := fmt.Sprintf("del-%d-%d", si, g), refs[g%2]
			wg.Go(func() {
				l, known, err := r.Delete(testCtx(t), prov, chan1, ref, ev)
				if err != nil {
					t.Errorf("Delete(%s, %+v): %v", ev, ref, err)
					return
				}
				mu.Lock()
				got[ev] = result{Known: known, Label: l}
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for ev, res := range got {
		if diff := cmp.Diff(result{Known: true, Label: vip}, res); diff != "" {
			t.Errorf("Delete(%s) mismatch (-want +got):\n%s", ev, diff)
		}
	}
	rec := storedLabel(t, js, "whapi.MANTIS-M72HC.1")
	if _, ok := got[fmt.Sprint(rec["deleted_by"])]; !ok {
		t.Errorf("stored deleted_by = %v, want one of the racing events", rec["deleted_by"])
	}
	if n := len(rec["events"].([]any)); n != len(got)+1 {
		t.Errorf("stored events: %d, want %d: one per event", n, len(got)+1)
	}
	for ev, want := range got {
		ref := refs[int(ev[len(ev)-1]-'0')%2]
		l, known, err := stores[0].Delete(testCtx(t), prov, chan1, ref, ev)
		if err != nil {
			t.Fatalf("reprocess Delete(%s): %v", ev, err)
		}
		if diff := cmp.Diff(want, result{Known: known, Label: l}); diff != "" {
			t.Errorf("reprocess Delete(%s) mismatch (-first +again):\n%s", ev, diff)
		}
	}
}

// TestLabelsUpsertDeleteRace races upserts and deletes of one label. Each
// state is replaced by at most one update, every state told is one that was
// set, a creation needs a delete before it, and every event reprocessed
// answers as the first time.
func TestLabelsUpsertDeleteRace(t *testing.T) {
	s1, s2, _ := twoStores(t)
	stores := []derive.LabelRegistry{s1.Labels(), s2.Labels()}
	if _, _, err := s1.Labels().Upsert(testCtx(t), prov, chan1, vip, "e0"); err != nil {
		t.Fatalf("Upsert: %v", err)
	}
	isUpsert := func(ev string) bool { return (ev[len(ev)-1]-'0')%2 == 0 }
	var (
		mu  sync.Mutex
		got = map[string]result{}
		wg  sync.WaitGroup
	)
	call := func(r derive.LabelRegistry, ev string) (result, error) {
		var res result
		var err error
		if isUpsert(ev) {
			res.Created, res.Label, err = r.Upsert(testCtx(t), prov, chan1, fact.Label{ID: "1", Name: ev}, ev)
		} else {
			res.Label, res.Known, err = r.Delete(testCtx(t), prov, chan1, fact.LabelRef{ID: "1"}, ev)
		}
		return res, err
	}
	for si, r := range stores {
		for g := range 8 {
			ev := fmt.Sprintf("ev-%d-%d", si, g)
			wg.Go(func() {
				res, err := call(r, ev)
				if err != nil {
					t.Errorf("%s: %v", ev, err)
					return
				}
				mu.Lock()
				got[ev] = res
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	set := map[string]bool{vip.Name: true} // states that were set
	for ev := range got {
		if isUpsert(ev) {
			set[ev] = true
		}
	}
	creations, replaced := 0, map[string]string{}
	for ev, res := range got {
		switch {
		case res.Created:
			creations++
		case isUpsert(ev):
			if other, dup := replaced[res.Label.Name]; dup {
				t.Errorf("events %s and %s both replaced state %q", other, ev, res.Label.Name)
			}
			replaced[res.Label.Name] = ev
			fallthrough
		default:
			if !set[res.Label.Name] || res.Label.ID != "1" {
				t.Errorf("%s told %+v, a state never set", ev, res.Label)
			}
		}
		if !isUpsert(ev) && !res.Known {
			t.Errorf("Delete(%s) known = false, want true: the label existed", ev)
		}
	}
	if creations > len(got)/2 {
		t.Errorf("%d creations from %d deletes", creations, len(got)/2)
	}
	for ev, want := range got {
		res, err := call(stores[1], ev)
		if err != nil {
			t.Fatalf("reprocess %s: %v", ev, err)
		}
		if diff := cmp.Diff(want, res); diff != "" {
			t.Errorf("reprocess %s mismatch (-first +again):\n%s", ev, diff)
		}
	}
}
