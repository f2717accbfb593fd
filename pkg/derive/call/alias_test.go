package call_test

import (
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/call"
	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/fact"
)

// TestAliases: a one-to-one call whose chat is a …@lid, after a payload tied
// it to a phone-number id, is about the phone form with chat_lid; its id
// is the one it had without the alias. A group call and an unknown LID stay
// as given.
func TestAliases(t *testing.T) {
	const lid, phone = "123456789012345@lid", "5544999999999@s.whatsapp.net"
	at := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	raw := func(id string) derive.Raw { return derive.Raw{ID: id, Provider: "waha", Channel: "default", Time: at} }
	aliases := derivetest.NewAliasRegistry()
	d := call.Deriver{Aliases: aliases}
	calls := fact.Facts{Calls: []fact.Call{
		{CallID: "c1", Chat: lid, From: lid, State: fact.CallOffered},
		{CallID: "c2", Chat: "999@lid", State: fact.CallOffered},
	}}
	before := derivetest.Derive(t, call.Deriver{}, derivetest.Input{Raw: raw("e2"), Facts: calls})
	// The pair comes with another raw event, read by another stream.
	derivetest.Derive(t, d, derivetest.Input{Raw: raw("e1"), Facts: fact.Facts{Aliases: []fact.Alias{{LID: lid, Phone: phone}}}})
	got := derivetest.Derive(t, d, derivetest.Input{Raw: raw("e2"), Facts: calls})
	if len(got) != 2 || len(before) != 2 {
		t.Fatalf("derived %d and %d events, want 2 each", len(got), len(before))
	}
	first := got[0].Data.(call.Data)
	if got[0].ID != before[0].ID || got[0].Chat != phone || got[0].Subject != phone ||
		first.ChatID != phone || first.ChatLID != lid || first.ChatType != "contact" || first.ChatIDRaw != lid {
		t.Errorf("call with a learnt alias = %+v (id %s, want %s), want chat_id %s, chat_lid %s", got[0], got[0].ID, before[0].ID, phone, lid)
	}
	if other := got[1].Data.(call.Data); other.ChatID != "999@lid" || other.ChatLID != "" {
		t.Errorf("call with an unknown LID = %+v, want it as given", other)
	}
	group := fact.Facts{Calls: []fact.Call{{CallID: "c3", Chat: lid, Group: true, State: fact.CallOffered}}}
	if g := derivetest.Derive(t, d, derivetest.Input{Raw: raw("e3"), Facts: group}); g[0].Data.(call.Data).ChatID != lid {
		t.Errorf("group call = %+v, want its chat as given", g[0].Data)
	}
}
