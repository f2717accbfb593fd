package derivetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/fact"
)

// Provider and channel the conformance tests use; others check isolation.
const (
	confProvider = "whapi"
	confChannel  = "CHANNEL-1"
)

// TestLabelRegistry checks that registries made by newRegistry behave as
// derive.LabelRegistry documents, with the replay semantics of the in-memory
// LabelRegistry: each subtest gets a new, empty registry.
func TestLabelRegistry(t *testing.T, newRegistry func(t *testing.T) derive.LabelRegistry) {
	t.Helper()
	a1 := fact.Label{ID: "1", Name: "New order", Color: "gold"}
	a2 := fact.Label{ID: "1", Name: "Order complete", Color: "lightsteelblue", ColorHex: "#B0C4DE"}
	a3 := fact.Label{ID: "1", Name: "Paid", Color: "salmon"}
	b1 := fact.Label{ID: "2", Name: "Pending payment", Color: "salmon"}

	t.Run("created then updated, replays answer the same", func(t *testing.T) {
		r := newRegistry(t)
		steps := []upsertStep{
			{"create", a1, "ev1", true, fact.Label{}},
			{"replay create", a1, "ev1", true, fact.Label{}},
			{"update", a2, "ev2", false, a1},
			{"replay update", a2, "ev2", false, a1},
			{"replay create after update", a1, "ev1", true, fact.Label{}},
			{"second update", a3, "ev3", false, a2},
			{"replay second update", a3, "ev3", false, a2},
			{"other label", b1, "ev4", true, fact.Label{}},
		}
		for _, s := range steps {
			s.check(t, r, confProvider, confChannel)
		}
		lookup(t, r, confProvider, confChannel, "1", a3, true)
		lookup(t, r, confProvider, confChannel, "2", b1, true)
		lookup(t, r, confProvider, confChannel, "3", fact.Label{}, false)
	})

	t.Run("channels and providers are apart", func(t *testing.T) {
		r := newRegistry(t)
		upsertStep{"create", a1, "ev1", true, fact.Label{}}.check(t, r, confProvider, confChannel)
		upsertStep{"same id, other channel", a2, "ev2", true, fact.Label{}}.check(t, r, confProvider, "CHANNEL-2")
		upsertStep{"same id, other provider", a3, "ev3", true, fact.Label{}}.check(t, r, "zapi", confChannel)
		lookup(t, r, confProvider, confChannel, "1", a1, true)
		lookup(t, r, confProvider, "CHANNEL-2", "1", a2, true)
		lookup(t, r, "zapi", confChannel, "1", a3, true)
		deleteStep{"by name in another channel", fact.LabelRef{Name: a1.Name}, "ev4", fact.Label{Name: a1.Name}, false}.check(t, r, confProvider, "CHANNEL-3")
		lookup(t, r, confProvider, confChannel, "1", a1, true)
	})

	t.Run("delete by name resolves the id, replays too", func(t *testing.T) {
		r := newRegistry(t)
		upsertStep{"create", a1, "ev1", true, fact.Label{}}.check(t, r, confProvider, confChannel)
		upsertStep{"create other", b1, "ev2", true, fact.Label{}}.check(t, r, confProvider, confChannel)
		for _, s := range []deleteStep{
			{"delete by name", fact.LabelRef{Name: a1.Name}, "ev3", a1, true},
			{"replay delete", fact.LabelRef{Name: a1.Name}, "ev3", a1, true},
			{"delete again by another event", fact.LabelRef{Name: a1.Name}, "ev4", a1, true},
			{"unknown name", fact.LabelRef{Name: "Nope"}, "ev5", fact.Label{Name: "Nope"}, false},
			{"unknown id", fact.LabelRef{ID: "99"}, "ev6", fact.Label{ID: "99"}, false},
			{"by id", fact.LabelRef{ID: "2"}, "ev7", b1, true},
			{"replay by id", fact.LabelRef{ID: "2"}, "ev7", b1, true},
		} {
			s.check(t, r, confProvider, confChannel)
		}
	})

	t.Run("upsert after delete is a new creation", func(t *testing.T) {
		r := newRegistry(t)
		p, c := confProvider, confChannel
		upsertStep{"create", a1, "ev1", true, fact.Label{}}.check(t, r, p, c)
		deleteStep{"delete", fact.LabelRef{Name: a1.Name}, "ev2", a1, true}.check(t, r, p, c)
		upsertStep{"create again", a2, "ev3", true, fact.Label{}}.check(t, r, p, c)
		upsertStep{"replay create again", a2, "ev3", true, fact.Label{}}.check(t, r, p, c)
		deleteStep{"replay delete after re-creation", fact.LabelRef{Name: a1.Name}, "ev2", a1, true}.check(t, r, p, c)
		lookup(t, r, p, c, "1", a2, true)
		upsertStep{"update", a3, "ev4", false, a2}.check(t, r, p, c)
	})

	t.Run("a delete that missed misses again when reprocessed", func(t *testing.T) {
		r := newRegistry(t)
		p, c := confProvider, confChannel
		deleteStep{"unknown id", fact.LabelRef{ID: "1"}, "ev1", fact.Label{}, false}.check(t, r, p, c)
		lookup(t, r, p, c, "1", fact.Label{}, false)
		deleteStep{"unknown id again, another event", fact.LabelRef{ID: "1"}, "ev2", fact.Label{}, false}.check(t, r, p, c)
		upsertStep{"create", a1, "ev3", true, fact.Label{}}.check(t, r, p, c)
		deleteStep{"replay the miss", fact.LabelRef{ID: "1"}, "ev1", fact.Label{}, false}.check(t, r, p, c)
		lookup(t, r, p, c, "1", a1, true)
		upsertStep{"the label is live", a2, "ev4", false, a1}.check(t, r, p, c)
		deleteStep{"delete it", fact.LabelRef{ID: "1"}, "ev5", a2, true}.check(t, r, p, c)
		deleteStep{"replay the deletion", fact.LabelRef{ID: "1"}, "ev5", a2, true}.check(t, r, p, c)
	})

	t.Run("a delete by name that missed misses again when reprocessed", func(t *testing.T) {
		r := newRegistry(t)
		p, c := confProvider, confChannel
		lead := fact.Label{ID: "5", Name: "Lead", Color: "gold"}
		deleteStep{"no label of that name", fact.LabelRef{Name: "Lead"}, "ev1", fact.Label{}, false}.check(t, r, p, c)
		deleteStep{"another miss", fact.LabelRef{Name: "Lead"}, "ev2", fact.Label{}, false}.check(t, r, p, c)
		upsertStep{"a label of that name", lead, "ev3", true, fact.Label{}}.check(t, r, p, c)
		deleteStep{"replay the miss", fact.LabelRef{Name: "Lead"}, "ev2", fact.Label{}, false}.check(t, r, p, c)
		closed := fact.Label{ID: "5", Name: "Closed"}
		upsertStep{"the label is still live", closed, "ev4", false, lead}.check(t, r, p, c)
		deleteStep{"a new delete by the new name finds it", fact.LabelRef{Name: "Closed"}, "ev5", closed, true}.check(t, r, p, c)
		deleteStep{"a miss by name apart from one by id", fact.LabelRef{ID: "Lead"}, "ev6", fact.Label{}, false}.check(t, r, p, c)
	})

	t.Run("delete by name prefers the live label", func(t *testing.T) {
		r := newRegistry(t)
		old := fact.Label{ID: "5", Name: "Lead"}
		cur := fact.Label{ID: "6", Name: "Lead"}
		upsertStep{"create old", old, "ev1", true, fact.Label{}}.check(t, r, confProvider, confChannel)
		deleteStep{"delete old", fact.LabelRef{ID: "5"}, "ev2", old, true}.check(t, r, confProvider, confChannel)
		upsertStep{"create new of that name", cur, "ev3", true, fact.Label{}}.check(t, r, confProvider, confChannel)
		deleteStep{"delete by name", fact.LabelRef{Name: "Lead"}, "ev4", cur, true}.check(t, r, confProvider, confChannel)
		deleteStep{"replay delete old by name", fact.LabelRef{Name: "Lead"}, "ev2", old, true}.check(t, r, confProvider, confChannel)
	})

	t.Run("concurrent upserts of one label create it once", func(t *testing.T) {
		r := newRegistry(t)
		const n = 8
		created := make([]bool, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				created[i], _, errs[i] = r.Upsert(t.Context(), confProvider, confChannel, a1, fmt.Sprintf("ev%d", i))
			})
		}
		wg.Wait()
		count := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("Upsert(ev%d) error: %v", i, errs[i])
			}
			if created[i] {
				count++
				upsertStep{"replay the creating event", a1, fmt.Sprintf("ev%d", i), true, fact.Label{}}.check(t, r, confProvider, confChannel)
			}
		}
		if count != 1 {
			t.Errorf("%d of %d concurrent Upserts created the label, want 1", count, n)
		}
	})

	t.Run("cancelled context", func(t *testing.T) {
		r := newRegistry(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, _, err := r.Upsert(ctx, confProvider, confChannel, a1, "ev1"); err == nil {
			t.Errorf("Upsert with a cancelled context: no error")
		}
	})
}

type upsertStep struct {
	name        string
	label       fact.Label
	eventID     string
	wantCreated bool
	wantPrev    fact.Label
}

func (s upsertStep) check(t *testing.T, r derive.LabelRegistry, provider, channel string) {
	t.Helper()
	created, prev, err := r.Upsert(t.Context(), provider, channel, s.label, s.eventID)
	if err != nil {
		t.Fatalf("%s: Upsert(%s, %s) error: %v", s.name, s.label.ID, s.eventID, err)
	}
	if created != s.wantCreated {
		t.Errorf("%s: Upsert(%s, %s) created = %v, want %v", s.name, s.label.ID, s.eventID, created, s.wantCreated)
	}
	if diff := cmp.Diff(s.wantPrev, prev); diff != "" {
		t.Errorf("%s: Upsert(%s, %s) previous mismatch (-want +got):\n%s", s.name, s.label.ID, s.eventID, diff)
	}
}

type deleteStep struct {
	name      string
	ref       fact.LabelRef
	eventID   string
	want      fact.Label
	wantKnown bool
}

func (s deleteStep) check(t *testing.T, r derive.LabelRegistry, provider, channel string) {
	t.Helper()
	l, known, err := r.Delete(t.Context(), provider, channel, s.ref, s.eventID)
	if err != nil {
		t.Fatalf("%s: Delete(%+v, %s) error: %v", s.name, s.ref, s.eventID, err)
	}
	if known != s.wantKnown {
		t.Errorf("%s: Delete(%+v, %s) known = %v, want %v", s.name, s.ref, s.eventID, known, s.wantKnown)
	}
	// What an unknown label is returned as is up to the implementation.
	if known {
		if diff := cmp.Diff(s.want, l); diff != "" {
			t.Errorf("%s: Delete(%+v, %s) label mismatch (-want +got):\n%s", s.name, s.ref, s.eventID, diff)
		}
	}
}

func lookup(t *testing.T, r derive.LabelRegistry, provider, channel, id string, want fact.Label, wantKnown bool) {
	t.Helper()
	l, known, err := r.Lookup(t.Context(), provider, channel, id)
	if err != nil {
		t.Fatalf("Lookup(%s/%s, %s) error: %v", provider, channel, id, err)
	}
	if known != wantKnown {
		t.Errorf("Lookup(%s/%s, %s) known = %v, want %v", provider, channel, id, known, wantKnown)
	}
	if known {
		if diff := cmp.Diff(want, l); diff != "" {
			t.Errorf("Lookup(%s/%s, %s) mismatch (-want +got):\n%s", provider, channel, id, diff)
		}
	}
}

// TestChatRegistry checks that registries made by newRegistry behave as
// derive.ChatRegistry documents: each subtest gets a new, empty registry.
func TestChatRegistry(t *testing.T, newRegistry func(t *testing.T) derive.ChatRegistry) {
	t.Helper()
	const chat = "5544999999999@s.whatsapp.net"

	t.Run("first sighting and its replays", func(t *testing.T) {
		r := newRegistry(t)
		for _, s := range []struct {
			provider, channel, chat, eventID string
			want                             bool
		}{
			{confProvider, confChannel, chat, "ev1", true},
			{confProvider, confChannel, chat, "ev1", true},
			{confProvider, confChannel, chat, "ev2", false},
			{confProvider, confChannel, chat, "ev1", true},
			{confProvider, confChannel, chat, "ev2", false},
			{confProvider, confChannel, "120363019502650977@g.us", "ev2", true},
			{confProvider, "CHANNEL-2", chat, "ev3", true},
			{"zapi", confChannel, chat, "ev4", true},
			{confProvider, confChannel, chat, "ev4", false},
		} {
			got, err := r.FirstSeen(t.Context(), s.provider, s.channel, s.chat, s.eventID)
			if err != nil {
				t.Fatalf("FirstSeen(%s/%s, %s, %s) error: %v", s.provider, s.channel, s.chat, s.eventID, err)
			}
			if got != s.want {
				t.Errorf("FirstSeen(%s/%s, %s, %s) = %v, want %v", s.provider, s.channel, s.chat, s.eventID, got, s.want)
			}
		}
	})

	t.Run("concurrent sightings: exactly one first", func(t *testing.T) {
		r := newRegistry(t)
		const n = 8
		first := make([]bool, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				first[i], errs[i] = r.FirstSeen(t.Context(), confProvider, confChannel, chat, fmt.Sprintf("ev%d", i))
			})
		}
		wg.Wait()
		count := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("FirstSeen(ev%d) error: %v", i, errs[i])
			}
			if first[i] {
				count++
			}
			// Every event answers the same when reprocessed.
			again, err := r.FirstSeen(t.Context(), confProvider, confChannel, chat, fmt.Sprintf("ev%d", i))
			if err != nil {
				t.Fatalf("FirstSeen(ev%d) again error: %v", i, err)
			}
			if again != first[i] {
				t.Errorf("FirstSeen(ev%d) = %v, then %v when reprocessed", i, first[i], again)
			}
		}
		if count != 1 {
			t.Errorf("%d of %d concurrent FirstSeen calls were first, want 1", count, n)
		}
	})

	t.Run("cancelled context", func(t *testing.T) {
		r := newRegistry(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := r.FirstSeen(ctx, confProvider, confChannel, chat, "ev1"); err == nil {
			t.Errorf("FirstSeen with a cancelled context: no error")
		}
	})
}

// TestAliasRegistry checks that registries made by newRegistry behave as
// derive.AliasRegistry documents: each subtest gets a new, empty registry.
func TestAliasRegistry(t *testing.T, newRegistry func(t *testing.T) derive.AliasRegistry) {
	t.Helper()
	const (
		lid    = "123456789012345@lid"
		phone  = "5544999999999@s.whatsapp.net"
		lid2   = "999999999999999@lid"
		phone2 = "5511888888888@s.whatsapp.net"
	)
	learn := func(t *testing.T, r derive.AliasRegistry, provider, channel, lid, phone, eventID string) {
		t.Helper()
		if err := r.Learn(t.Context(), provider, channel, lid, phone, eventID); err != nil {
			t.Fatalf("Learn(%s/%s, %s, %s, %s) error: %v", provider, channel, lid, phone, eventID, err)
		}
	}
	check := func(t *testing.T, r derive.AliasRegistry, provider, channel, id, want string) {
		t.Helper()
		got, ok, err := r.Lookup(t.Context(), provider, channel, id)
		if err != nil {
			t.Fatalf("Lookup(%s/%s, %s) error: %v", provider, channel, id, err)
		}
		if ok != (want != "") || got != want {
			t.Errorf("Lookup(%s/%s, %s) = %q, %v, want %q", provider, channel, id, got, ok, want)
		}
	}

	t.Run("both ways, per channel", func(t *testing.T) {
		r := newRegistry(t)
		check(t, r, confProvider, confChannel, lid, "")
		learn(t, r, confProvider, confChannel, lid, phone, "ev1")
		check(t, r, confProvider, confChannel, lid, phone)
		check(t, r, confProvider, confChannel, phone, lid)
		check(t, r, confProvider, "CHANNEL-2", lid, "")
		check(t, r, "waha", confChannel, phone, "")
		// Learning it again, by any event, changes nothing.
		learn(t, r, confProvider, confChannel, lid, phone, "ev2")
		learn(t, r, confProvider, confChannel, lid, phone, "ev1")
		check(t, r, confProvider, confChannel, lid, phone)
		check(t, r, confProvider, confChannel, phone, lid)
	})

	t.Run("first pair wins", func(t *testing.T) {
		r := newRegistry(t)
		learn(t, r, confProvider, confChannel, lid, phone, "ev1")
		// Another phone for the LID: ignored both ways.
		learn(t, r, confProvider, confChannel, lid, phone2, "ev2")
		check(t, r, confProvider, confChannel, lid, phone)
		check(t, r, confProvider, confChannel, phone2, "")
		// Another LID for the phone: the new LID keeps its own pair, the
		// phone its first.
		learn(t, r, confProvider, confChannel, lid2, phone, "ev3")
		check(t, r, confProvider, confChannel, phone, lid)
		check(t, r, confProvider, confChannel, lid2, phone)
	})

	t.Run("concurrent pairs for one LID: one wins, both ways", func(t *testing.T) {
		r := newRegistry(t)
		const n = 8
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				errs[i] = r.Learn(t.Context(), confProvider, confChannel, lid, fmt.Sprintf("55119000000%02d@s.whatsapp.net", i), fmt.Sprintf("ev%d", i))
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("Learn(ev%d) error: %v", i, err)
			}
		}
		won, ok, err := r.Lookup(t.Context(), confProvider, confChannel, lid)
		if err != nil || !ok {
			t.Fatalf("Lookup(%s) = %q, %v, %v after the race", lid, won, ok, err)
		}
		for i := range n {
			p := fmt.Sprintf("55119000000%02d@s.whatsapp.net", i)
			want := ""
			if p == won {
				want = lid
			}
			check(t, r, confProvider, confChannel, p, want)
		}
	})

	t.Run("concurrent LIDs for one phone: each keeps it, the phone names one", func(t *testing.T) {
		r := newRegistry(t)
		const n = 8
		lids := make([]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			lids[i] = fmt.Sprintf("9000000000%02d@lid", i)
			wg.Go(func() {
				errs[i] = r.Learn(t.Context(), confProvider, confChannel, lids[i], phone, fmt.Sprintf("ev%d", i))
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("Learn(ev%d) error: %v", i, err)
			}
		}
		won, ok, err := r.Lookup(t.Context(), confProvider, confChannel, phone)
		if err != nil || !ok || !slices.Contains(lids, won) {
			t.Fatalf("Lookup(%s) = %q, %v, %v after the race, want one of the LIDs", phone, won, ok, err)
		}
		for _, l := range lids {
			check(t, r, confProvider, confChannel, l, phone)
		}
		// The losers' pairs are known now: learning them again writes
		// nothing and changes nothing.
		learn(t, r, confProvider, confChannel, lids[0], phone, "ev9")
		check(t, r, confProvider, confChannel, phone, won)
	})

	t.Run("cancelled context", func(t *testing.T) {
		r := newRegistry(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if err := r.Learn(ctx, confProvider, confChannel, lid, phone, "ev1"); err == nil {
			t.Errorf("Learn with a cancelled context: no error")
		}
		if _, _, err := r.Lookup(ctx, confProvider, confChannel, lid); err == nil {
			t.Errorf("Lookup with a cancelled context: no error")
		}
	})
}
