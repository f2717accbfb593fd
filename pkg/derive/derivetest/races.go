package derivetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/fact"
)

// labelAnswer is what one label registry call answered.
type labelAnswer struct {
	Created bool
	Known   bool
	Label   fact.Label
}

// TestLabelRegistryRaces checks label registries that several processes
// share: newPair returns two registries on one fresh backing store, as two
// processes would open them. Calls race across both, and every event is
// then reprocessed on the other one, which must answer as the first time:
// a registry must remember the outcome of each of a label's recent events,
// as natsstate and kafkastate do, not only the latest ones as LabelRegistry.
func TestLabelRegistryRaces(t *testing.T, newPair func(t *testing.T) [2]derive.LabelRegistry) {
	t.Helper()
	vip := fact.Label{ID: "1", Name: "VIP", Color: "gold", ColorHex: "#FFD700"}
	p, c := confProvider, confChannel

	// race runs call for n events on each registry at once and returns
	// every event's answer.
	race := func(t *testing.T, rs [2]derive.LabelRegistry, n int, call func(r derive.LabelRegistry, ev string, i int) (labelAnswer, error)) map[string]labelAnswer {
		t.Helper()
		var (
			mu  sync.Mutex
			got = map[string]labelAnswer{}
			wg  sync.WaitGroup
		)
		start := make(chan struct{})
		for ri, r := range rs {
			for i := range n {
				ev := fmt.Sprintf("ev-%d-%d", ri, i)
				wg.Go(func() {
					<-start
					a, err := call(r, ev, i)
					if err != nil {
						t.Errorf("%s: %v", ev, err)
						return
					}
					mu.Lock()
					got[ev] = a
					mu.Unlock()
				})
			}
		}
		close(start)
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		return got
	}
	// reprocess calls every event again on the registry that did not
	// answer it first.
	reprocess := func(t *testing.T, rs [2]derive.LabelRegistry, got map[string]labelAnswer, call func(r derive.LabelRegistry, ev string, i int) (labelAnswer, error)) {
		t.Helper()
		for ev, first := range got {
			ri, i := eventIndex(t, ev)
			again, err := call(rs[1-ri], ev, i)
			if err != nil {
				t.Fatalf("reprocess %s: %v", ev, err)
			}
			if diff := cmp.Diff(first, again); diff != "" {
				t.Errorf("reprocess %s mismatch (-first +again):\n%s", ev, diff)
			}
		}
	}

	t.Run("deletes by id and by name", func(t *testing.T) {
		rs := newPair(t)
		upsertStep{"create", vip, "e0", true, fact.Label{}}.check(t, rs[0], p, c)
		refs := []fact.LabelRef{{ID: vip.ID}, {Name: vip.Name}}
		call := func(r derive.LabelRegistry, ev string, i int) (labelAnswer, error) {
			l, known, err := r.Delete(callCtx(t), p, c, refs[i%2], ev)
			return labelAnswer{Known: known, Label: l}, err
		}
		got := race(t, rs, 8, call)
		for ev, a := range got {
			// Deleting a deleted label answers its last state, known.
			if diff := cmp.Diff(labelAnswer{Known: true, Label: vip}, a); diff != "" {
				t.Errorf("%s mismatch (-want +got):\n%s", ev, diff)
			}
		}
		reprocess(t, rs, got, call)
		lookup(t, rs[1], p, c, vip.ID, vip, true)
	})

	t.Run("upserts and deletes", func(t *testing.T) {
		rs := newPair(t)
		upsertStep{"create", vip, "e0", true, fact.Label{}}.check(t, rs[0], p, c)
		call := func(r derive.LabelRegistry, ev string, i int) (labelAnswer, error) {
			if i%2 == 0 {
				created, prev, err := r.Upsert(callCtx(t), p, c, fact.Label{ID: vip.ID, Name: ev}, ev)
				return labelAnswer{Created: created, Label: prev}, err
			}
			l, known, err := r.Delete(callCtx(t), p, c, fact.LabelRef{ID: vip.ID}, ev)
			return labelAnswer{Known: known, Label: l}, err
		}
		got := race(t, rs, 8, call)
		set := map[string]bool{vip.Name: true} // the states that were set
		for ev := range got {
			set[ev] = true
		}
		replaced := map[string]string{} // state -> the update that replaced it
		creations := 0
		for ev, a := range got {
			_, i := eventIndex(t, ev)
			switch {
			case a.Created:
				creations++
				continue
			case i%2 == 0:
				if other, dup := replaced[a.Label.Name]; dup {
					t.Errorf("%s and %s both replaced state %q", other, ev, a.Label.Name)
				}
				replaced[a.Label.Name] = ev
			case !a.Known:
				t.Errorf("delete %s: unknown, but the label existed", ev)
			}
			if !set[a.Label.Name] || a.Label.ID != vip.ID {
				t.Errorf("%s told %+v, a state never set", ev, a.Label)
			}
		}
		if creations > len(got)/2 {
			t.Errorf("%d creations, more than the %d deletes", creations, len(got)/2)
		}
		reprocess(t, rs, got, call)
	})

	t.Run("deletes by name racing the creation of that name", func(t *testing.T) {
		rs := newPair(t)
		call := func(r derive.LabelRegistry, ev string, i int) (labelAnswer, error) {
			if i%2 == 0 {
				created, prev, err := r.Upsert(callCtx(t), p, c, fact.Label{ID: ev, Name: "New"}, ev)
				return labelAnswer{Created: created, Label: prev}, err
			}
			l, known, err := r.Delete(callCtx(t), p, c, fact.LabelRef{Name: "New"}, ev)
			return labelAnswer{Known: known, Label: l}, err
		}
		got := race(t, rs, 8, call)
		for ev, a := range got {
			if _, i := eventIndex(t, ev); i%2 == 1 && a.Known && a.Label.Name != "New" {
				t.Errorf("%s deleted %+v, not a label named New", ev, a.Label)
			}
		}
		// A miss reprocessed after the labels exist still misses.
		reprocess(t, rs, got, call)
	})

	t.Run("delete by name while the label is rewritten", func(t *testing.T) {
		rs := newPair(t)
		upsertStep{"create", vip, "e0", true, fact.Label{}}.check(t, rs[0], p, c)
		for i := range 200 {
			// Each registry rewrites the label (its name stays) while a
			// delete by name resolves it: every delete finds it.
			var wg sync.WaitGroup
			for ri, r := range rs {
				wg.Go(func() {
					l := vip
					l.Color = fmt.Sprint(i)
					if _, _, err := r.Upsert(callCtx(t), p, c, l, fmt.Sprintf("up-%d-%d", ri, i)); err != nil {
						t.Errorf("Upsert: %v", err)
					}
				})
			}
			l, known, err := rs[i%2].Delete(callCtx(t), p, c, fact.LabelRef{Name: vip.Name}, fmt.Sprintf("del-%d", i))
			wg.Wait()
			if err != nil {
				t.Fatalf("Delete %d: %v", i, err)
			}
			if !known || l.ID != vip.ID || l.Name != vip.Name {
				t.Fatalf("Delete %d by name = %+v, known %t; want label %s, known", i, l, known, vip.ID)
			}
		}
	})
}

// callCtx bounds one registry call of TestLabelRegistryRaces. A context
// without a deadline would get the broker client's default per request
// (5s for JetStream), which a loaded machine running the race detector
// can exceed.
func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// eventIndex parses the registry index and call index of an event id of
// TestLabelRegistryRaces.
func eventIndex(t *testing.T, ev string) (ri, i int) {
	t.Helper()
	if _, err := fmt.Sscanf(ev, "ev-%d-%d", &ri, &i); err != nil {
		t.Fatalf("event %s: %v", ev, err)
	}
	return ri, i
}
