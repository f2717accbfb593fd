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
