package derive_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/fact"
)

// countingAliases counts the Learn calls that reach the registry.
type countingAliases struct {
	*derivetest.AliasRegistry
	learnt int
}

func (c *countingAliases) Learn(ctx context.Context, provider, channel, lid, phone, eventID string) error {
	c.learnt++
	return c.AliasRegistry.Learn(ctx, provider, channel, lid, phone, eventID)
}

// A forged payload may name any number of pairs, of ids of any length:
// what is learnt from one raw event is bounded.
func TestLearnAliasesBounds(t *testing.T) {
	raw := derive.Raw{ID: "ev1", Provider: "waha", Channel: "default"}
	var aliases []fact.Alias
	for i := range derive.MaxAliases + 10 {
		a := fact.Alias{LID: fmt.Sprintf("%d@lid", 1000+i), Phone: fmt.Sprintf("55119%08d@s.whatsapp.net", i)}
		aliases = append(aliases, a, a) // repeats cost nothing and do not count
	}
	long := strings.Repeat("9", 1<<12)
	bad := []fact.Alias{
		{LID: long + "@lid", Phone: "5511000000001@s.whatsapp.net"},
		{LID: "7@lid", Phone: long + "@s.whatsapp.net"},
		{LID: "x@lid", Phone: "5511000000002@s.whatsapp.net"},
	}
	reg := &countingAliases{AliasRegistry: derivetest.NewAliasRegistry()}
	if err := derive.LearnAliases(t.Context(), reg, raw, append(bad, aliases...)); err != nil {
		t.Fatalf("LearnAliases: %v", err)
	}
	if reg.learnt != derive.MaxAliases {
		t.Errorf("LearnAliases learnt %d pairs, want %d", reg.learnt, derive.MaxAliases)
	}
	for _, a := range bad {
		if other, ok, _ := reg.Lookup(t.Context(), raw.Provider, raw.Channel, a.Phone); ok {
			t.Errorf("pair %.20s… / %.20s… learnt (%.20s…): ids of no WhatsApp shape", a.LID, a.Phone, other)
		}
	}
	last := aliases[len(aliases)-1]
	if _, ok, _ := reg.Lookup(t.Context(), raw.Provider, raw.Channel, last.LID); ok {
		t.Errorf("pair %d of %d learnt, want only the first %d", derive.MaxAliases+10, derive.MaxAliases+10, derive.MaxAliases)
	}
	if other, _, _ := reg.Lookup(t.Context(), raw.Provider, raw.Channel, aliases[0].LID); other != aliases[0].Phone {
		t.Errorf("first pair: Lookup(%s) = %q, want %q", aliases[0].LID, other, aliases[0].Phone)
	}
}

// A form is looked up both ways, and only a form of the other kind is an
// answer.
func TestOtherForm(t *testing.T) {
	raw := derive.Raw{ID: "ev1", Provider: "waha", Channel: "default"}
	reg := derivetest.NewAliasRegistry()
	const lid, phone = "123456789012345@lid", "5544999999999@s.whatsapp.net"
	if err := reg.Learn(t.Context(), raw.Provider, raw.Channel, lid, phone, raw.ID); err != nil {
		t.Fatal(err)
	}
	// Written by no deriver: a stored answer of the same kind as the id.
	if err := reg.Learn(t.Context(), raw.Provider, raw.Channel, "7@lid", "8@lid", raw.ID); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ chat, other, phone string }{
		{lid, phone, phone},
		{"123456789012345:4@lid", phone, phone},
		{phone, lid, ""},
		{"5544999999999@c.us", lid, ""},
		{"7@lid", "", ""},
		{"120363019502650977@g.us", "", ""},
	} {
		other, err := derive.OtherForm(t.Context(), reg, raw, c.chat)
		if err != nil || other != c.other {
			t.Errorf("OtherForm(%s) = %q, %v, want %q", c.chat, other, err, c.other)
		}
		phone, err := derive.PhoneOf(t.Context(), reg, raw, c.chat)
		if err != nil || phone != c.phone {
			t.Errorf("PhoneOf(%s) = %q, %v, want %q", c.chat, phone, err, c.phone)
		}
	}
	if other, err := derive.OtherForm(t.Context(), nil, raw, lid); other != "" || err != nil {
		t.Errorf("OtherForm without a registry = %q, %v", other, err)
	}
}

// Most raw events give no pair (a Whapi chats.patch never does): learning
// nothing costs nothing.
func TestLearnAliasesNoneFree(t *testing.T) {
	raw := derive.Raw{ID: "ev1", Provider: "whapi", Channel: "CH"}
	reg := derivetest.NewAliasRegistry()
	allocs := testing.AllocsPerRun(100, func() {
		if err := derive.LearnAliases(t.Context(), reg, raw, nil); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("LearnAliases of no pair: %.0f allocations, want 0", allocs)
	}
}
