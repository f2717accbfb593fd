package label_test

import (
	"fmt"
	"testing"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/derive/label"
	"github.com/wahook/wahook/pkg/provider/evolution"
)

// evolutionBody is an Evolution delivery of event with data, sent at dateTime.
func evolutionBody(event, data, dateTime string) []byte {
	return fmt.Appendf(nil, `{"event":%q,"instance":"evo-sales","data":%s,"date_time":%q,"sender":"5511999990000@s.whatsapp.net"}`,
		event, data, dateTime)
}

// TestEvolution: labels.edit and labels.association give the same events as
// the other providers' label events, colours named and in hex.
func TestEvolution(t *testing.T) {
	p := evolution.New()
	maria := chat{"5511988887777@s.whatsapp.net", "5511988887777@s.whatsapp.net", "contact"}
	gold := label.Label{ID: "7", Name: "Novo cliente", Color: "gold", ColorHex: "#ffd429"}
	runSteps(t, label.Deriver{Registry: derivetest.NewLabelRegistry()}, []step{
		{"labels.edit (fixture): created", derivetest.Fixture(t, p, fixture("evolution", "labels.edit.json"))[0], func(raw derive.Raw) []derive.Event {
			return []derive.Event{upserted(raw, gold, nil)}
		}},
		{"labels.association add (fixture) named from the registry", derivetest.Fixture(t, p, fixture("evolution", "labels.association_add.json"))[0],
			func(raw derive.Raw) []derive.Event { return []derive.Event{onChat(raw, true, maria, gold)} }},
		{"labels.edit: renamed and recoloured", derivetest.One(t, p, evolutionBody("labels.edit", `{"id":"7","name":"Cliente","color":13,"deleted":false}`, "2025-06-10T14:13:00.000Z")),
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{upserted(raw, label.Label{ID: "7", Name: "Cliente", Color: "orangered", ColorHex: "#f74848"},
					&label.Previous{Name: "Novo cliente", Color: "gold"})}
			}},
		{"labels.association remove (fixture)", derivetest.Fixture(t, p, fixture("evolution", "labels.association_remove.json"))[0],
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{onChat(raw, false, maria, label.Label{ID: "7", Name: "Cliente", Color: "orangered", ColorHex: "#f74848"})}
			}},
		{"labels.edit deleted (fixture)", derivetest.Fixture(t, p, fixture("evolution", "labels.edit_deleted.json"))[0], func(raw derive.Raw) []derive.Event {
			return []derive.Event{deleted(raw, "id", "7", label.Label{ID: "7", Name: "Novo cliente", Color: "orangered", ColorHex: "#f74848"})}
		}},
	})
}

// TestEvolutionDeleteSentTwice: Evolution sends a label's deletion twice,
// seconds apart; both are one raw event (same id), so one deleted event.
func TestEvolutionDeleteSentTwice(t *testing.T) {
	p := evolution.New()
	data := `{"id":"7","name":"Novo cliente","color":2,"deleted":true,"instance":"evo-sales"}`
	a := derivetest.One(t, p, evolutionBody("labels.edit", data, "2025-06-10T14:20:00.000Z"))
	b := derivetest.One(t, p, evolutionBody("labels.edit", data, "2025-06-10T14:20:01.000Z"))
	if a.Raw.ID != b.Raw.ID {
		t.Fatalf("the two deletions have raw ids %s and %s; want one", a.Raw.ID, b.Raw.ID)
	}
	d := label.Deriver{Registry: derivetest.NewLabelRegistry()}
	ea, eb := derivetest.Derive(t, d, a), derivetest.Derive(t, d, b)
	if len(ea) != 1 || len(eb) != 1 || ea[0].ID != eb[0].ID {
		t.Errorf("deletions derived %v and %v; want one event, the same", ea, eb)
	}
}
