package derivetest

import (
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/chatid"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/provider"
)

// Received is the time given to items whose payload tells none, as the
// ingress gives them its receive time.
var Received = time.Date(2025, 5, 16, 10, 30, 0, 0, time.UTC)

// Input is one raw event and its facts, as a derived stream's consumer gets
// them.
type Input struct {
	Raw   derive.Raw
	Facts fact.Facts
}

// Split turns one webhook body into raw events the way the ingress does
// (one per item, deterministic ids, canonical subject) and interprets each
// the way the consumer does. Any error fails the test.
func Split(t testing.TB, p provider.Provider, body []byte) []Input {
	t.Helper()
	items, err := p.Split(body, provider.Delivery{Method: http.MethodPost})
	if err != nil {
		t.Fatalf("%s Split: %v", p.Name(), err)
	}
	out := make([]Input, 0, len(items))
	for _, it := range items {
		id, err := provider.EventID(p.Name(), it)
		if err != nil {
			t.Fatalf("%s EventID(%s): %v", p.Name(), it.Kind, err)
		}
		at := it.Time
		if at.IsZero() {
			at = Received
		}
		raw := derive.Raw{
			ID:       id,
			Provider: p.Name(),
			Channel:  it.Channel,
			Kind:     it.Kind,
			Source:   envelope.Source(p.Name(), it.Channel),
			Subject:  chatid.ID(it.Chat),
			Time:     at,
			Data:     it.Data,
		}
		f, err := p.Interpret(it.Kind, it.Data)
		if err != nil {
			t.Fatalf("%s Interpret(%s): %v", p.Name(), it.Kind, err)
		}
		out = append(out, Input{Raw: raw, Facts: f})
	}
	return out
}

// Fixture is Split of the file at path (a provider's testdata payload).
func Fixture(t testing.TB, p provider.Provider, path string) []Input {
	t.Helper()
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	return Split(t, p, body)
}

// One is Split of a body that must hold exactly one item.
func One(t testing.TB, p provider.Provider, body []byte) Input {
	t.Helper()
	in := Split(t, p, body)
	if len(in) != 1 {
		t.Fatalf("%s Split = %d items, want 1", p.Name(), len(in))
	}
	return in[0]
}

// Derive runs d over the inputs in order, checks every event it derives
// with CheckSchema and returns them all. An error fails the test.
func Derive(t testing.TB, d derive.Deriver, in ...Input) []derive.Event {
	t.Helper()
	var out []derive.Event
	for _, i := range in {
		events, err := d.Derive(t.Context(), i.Raw, i.Facts)
		if err != nil {
			t.Fatalf("%s Derive(%s %s): %v", d.Stream(), i.Raw.Kind, i.Raw.ID, err)
		}
		out = append(out, events...)
	}
	CheckSchema(t, out)
	return out
}
