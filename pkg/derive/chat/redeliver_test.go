package chat_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/chat"
	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/fact"
)

func ids(events []derive.Event) []string {
	var out []string
	for _, e := range events {
		out = append(out, e.ID)
	}
	return out
}

// TestAliasesRedelivered: a raw event derived again (its events lost to a
// crash or a failed publish before its ack) gives the same chat.created
// ids, though an alias was learnt and the other form seen meanwhile, and
// the contact has one chat.created, not none.
func TestAliasesRedelivered(t *testing.T) {
	alone := func(id string) fact.Facts { return fact.Facts{ChatsSeen: []fact.ChatSeen{{Chat: id}}} }
	for name, forms := range map[string][2]string{
		"the LID first":   {aliasLID, aliasPhone},
		"the phone first": {aliasPhone, aliasLID},
	} {
		t.Run(name, func(t *testing.T) {
			d := chat.Deriver{Registry: derivetest.NewChatRegistry(), Aliases: derivetest.NewAliasRegistry()}
			first := derivetest.Derive(t, d, derivetest.Input{Raw: aliasRaw("e1"), Facts: alone(forms[0])})
			if len(first) != 1 {
				t.Fatalf("e1 gave %d chat.created, want 1", len(first))
			}
			// Another stream learns the pair; the other form is seen.
			if err := d.Aliases.Learn(t.Context(), "waha", "default", aliasLID, aliasPhone, "e2"); err != nil {
				t.Fatal(err)
			}
			if got := derivetest.Derive(t, d, derivetest.Input{Raw: aliasRaw("e3"), Facts: alone(forms[1])}); len(got) != 0 {
				t.Errorf("e3 gave %v, want nothing: the contact was created by e1", ids(got))
			}
			again := derivetest.Derive(t, d, derivetest.Input{Raw: aliasRaw("e1"), Facts: alone(forms[0])})
			if !slices.Equal(ids(first), ids(again)) {
				t.Errorf("e1 redelivered gave %v, first %v", ids(again), ids(first))
			}
			if got := derivetest.Derive(t, d, derivetest.Input{Raw: aliasRaw("e3"), Facts: alone(forms[1])}); len(got) != 0 {
				t.Errorf("e3 redelivered gave %v, want nothing", ids(got))
			}
		})
	}
}

// gatedChats holds each event's first FirstSeen until both events made
// theirs: two partitions that each see one form of the contact first.
type gatedChats struct {
	*derivetest.ChatRegistry
	mu      sync.Mutex
	started map[string]bool
	both    sync.WaitGroup
}

func (g *gatedChats) FirstSeen(ctx context.Context, provider, channel, chat, eventID string) (bool, error) {
	first, err := g.ChatRegistry.FirstSeen(ctx, provider, channel, chat, eventID)
	g.mu.Lock()
	gate := !g.started[eventID]
	g.started[eventID] = true
	g.mu.Unlock()
	if gate {
		g.both.Done()
		g.both.Wait()
	}
	return first, err
}

// TestAliasesRace: with the pair known, the LID alone and the phone alone
// are derived at once, each seeing its form first: one chat.created, and
// each event answers the same when derived again.
func TestAliasesRace(t *testing.T) {
	reg := &gatedChats{ChatRegistry: derivetest.NewChatRegistry(), started: map[string]bool{}}
	reg.both.Add(2)
	d := chat.Deriver{Registry: reg, Aliases: derivetest.NewAliasRegistry()}
	if err := d.Aliases.Learn(t.Context(), "waha", "default", aliasLID, aliasPhone, "e0"); err != nil {
		t.Fatal(err)
	}
	forms := [2]string{aliasLID, aliasPhone}
	var got [2][]derive.Event
	var errs [2]error
	var wg sync.WaitGroup
	for i, form := range forms {
		wg.Go(func() {
			got[i], errs[i] = d.Derive(t.Context(), aliasRaw("e"+form), fact.Facts{ChatsSeen: []fact.ChatSeen{{Chat: form}}})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Derive(%s): %v", forms[i], err)
		}
	}
	if n := len(got[0]) + len(got[1]); n != 1 {
		t.Errorf("%d chat.created for one contact seen in two forms at once (LID: %v, phone: %v), want 1", n, ids(got[0]), ids(got[1]))
	}
	for i, form := range forms {
		again := derivetest.Derive(t, d, derivetest.Input{Raw: aliasRaw("e" + form), Facts: fact.Facts{ChatsSeen: []fact.ChatSeen{{Chat: form}}}})
		if !slices.Equal(ids(again), ids(got[i])) {
			t.Errorf("%s derived again: %v, first %v", form, ids(again), ids(got[i]))
		}
	}
}
