package label_test

import (
	"context"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/derive/label"
	"github.com/wahook/wahook/pkg/fact"
)

// countingAliases counts lookups.
type countingAliases struct {
	*derivetest.AliasRegistry
	lookups int
}

func (c *countingAliases) Lookup(ctx context.Context, p, ch, id string) (string, bool, error) {
	c.lookups++
	return c.AliasRegistry.Lookup(ctx, p, ch, id)
}

// TestAliases: a label put on a …@lid chat whose phone form was learnt is
// about the phone form with chat_lid, with the id it had without the alias;
// only …@lid chats are looked up, once per raw event.
func TestAliases(t *testing.T) {
	const lid, phone = "123456789012345@lid", "5544999999999@s.whatsapp.net"
	raw := func(id string) derive.Raw {
		return derive.Raw{ID: id, Provider: "waha", Channel: "default", Time: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
	}
	aliases := &countingAliases{AliasRegistry: derivetest.NewAliasRegistry()}
	d := label.Deriver{Registry: derivetest.NewLabelRegistry(), Aliases: aliases}
	derivetest.Derive(t, d, derivetest.Input{Raw: raw("e1"), Facts: fact.Facts{Aliases: []fact.Alias{{LID: lid, Phone: phone}}}})
	facts := fact.Facts{LabelAssocs: []fact.LabelAssoc{
		{Chat: lid, Label: fact.Label{ID: "1", Name: "Lead"}, Assigned: true},
		{Chat: lid, Label: fact.Label{ID: "2", Name: "VIP"}, Assigned: true},
		{Chat: "5511888888888@c.us", Label: fact.Label{ID: "1", Name: "Lead"}, Assigned: true},
	}}
	before := derivetest.Derive(t, label.Deriver{Registry: derivetest.NewLabelRegistry()}, derivetest.Input{Raw: raw("e2"), Facts: facts})
	aliases.lookups = 0
	evs, err := d.Derive(t.Context(), raw("e2"), facts)
	if err != nil {
		t.Fatalf("Derive: %v", err)
	}
	if len(evs) != 3 || len(before) != 3 {
		t.Fatalf("derived %d and %d events, want 3 each", len(evs), len(before))
	}
	for i, e := range evs[:2] {
		data := e.Data.(label.Data)
		if e.ID != before[i].ID || e.Chat != phone || data.ChatID != phone || data.ChatLID != lid || data.ChatType != "contact" {
			t.Errorf("event %d = %+v (id %s, want %s), want chat_id %s, chat_lid %s", i, e, e.ID, before[i].ID, phone, lid)
		}
	}
	if data := evs[2].Data.(label.Data); data.ChatLID != "" || data.ChatID != "5511888888888@s.whatsapp.net" {
		t.Errorf("phone-form chat = %+v, want it as given", data)
	}
	if aliases.lookups != 1 {
		t.Errorf("%d lookups, want 1: one …@lid chat", aliases.lookups)
	}
}
