package label_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/derive/label"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/provider/waha"
	"github.com/wahook/wahook/pkg/provider/whapi"
	"github.com/wahook/wahook/pkg/provider/zapi"
)

func TestStream(t *testing.T) {
	if got := (label.Deriver{}).Stream(); got != derive.LabelChanged {
		t.Errorf("Stream() = %q, want %q", got, derive.LabelChanged)
	}
}

// TestDeriveFacts pins the derivation rules on hand-written facts.
func TestDeriveFacts(t *testing.T) {
	raw := derive.Raw{
		ID: "raw-1", Provider: "whapi", Channel: whapiChannel, Kind: "chats.patch", Source: "/whapi/" + whapiChannel,
		Subject: "919984351847@s.whatsapp.net",
		// Not UTC, with milliseconds: occurred_at must be UTC.
		Time: time.Date(2024, 4, 22, 15, 27, 33, 123000000, time.FixedZone("CEST", 2*3600)),
	}
	com := derive.Common{Provider: "whapi", Channel: whapiChannel, OccurredAt: "2024-04-22T13:27:33.123Z", SourceEventID: "raw-1"}
	contact := chat{"919984351847@s.whatsapp.net", "919984351847@s.whatsapp.net", "contact"}
	a := fact.Label{ID: "1", Name: "A", Color: "gold"}
	b := fact.Label{ID: "2", Name: "B", Color: "salmon"}
	c := fact.Label{ID: "10", Name: "C", Color: "#AABBCC", ColorHex: "#AABBCC"}
	for name, tc := range map[string]struct {
		seed  []fact.Label // labels the registry knows, from earlier raw events
		facts fact.Facts
		want  []derive.Event
	}{
		"difference of the lists, additions first, numeric order": {
			facts: fact.Facts{LabelSets: []fact.LabelSet{{
				Chat:   contact.raw,
				Before: []fact.Label{b, a},
				After:  []fact.Label{c, b, {ID: "9"}, c},
			}}},
			want: []derive.Event{
				onChat(raw, true, contact, label.Label{ID: "9"}),
				onChat(raw, true, contact, label.Label{ID: "10", Name: "C", Color: "#AABBCC", ColorHex: "#AABBCC"}),
				onChat(raw, false, contact, label.Label{ID: "1", Name: "A", Color: "gold"}),
			},
		},
		"same lists give nothing, even renamed": {
			facts: fact.Facts{LabelSets: []fact.LabelSet{{Chat: contact.raw, Before: []fact.Label{a, b}, After: []fact.Label{b, {ID: "1", Name: "A2"}}}}},
		},
		"labels without id compare by name": {
			facts: fact.Facts{LabelSets: []fact.LabelSet{{
				Chat:   "120363398750933550@g.us",
				Before: []fact.Label{{Name: "VIP"}, {Name: "Old"}},
				After:  []fact.Label{{ID: "4", Name: "VIP"}},
			}}},
			want: []derive.Event{
				onChat(raw, false, chat{"120363398750933550@g.us", "120363398750933550@g.us", "group"}, label.Label{Name: "Old"}),
			},
		},
		"chat of an unknown kind has no chat_type": {
			facts: fact.Facts{LabelSets: []fact.LabelSet{{Chat: "someone@example.org", After: []fact.Label{a}}}},
			want:  []derive.Event{onChat(raw, true, chat{"someone@example.org", "someone@example.org", ""}, label.Label{ID: "1", Name: "A", Color: "gold"})},
		},
		"a colour that is not hex stays out of color_hex": {
			facts: fact.Facts{LabelSets: []fact.LabelSet{{Chat: contact.raw, After: []fact.Label{{ID: "1", Color: "#gold", ColorHex: "#gold"}}}}},
			want:  []derive.Event{onChat(raw, true, contact, label.Label{ID: "1", Color: "#gold"})},
		},
		"associations, names filled from the registry": {
			seed: []fact.Label{a, {ID: "2", Name: "B", ColorHex: "#FF0000"}},
			facts: fact.Facts{LabelAssocs: []fact.LabelAssoc{
				{Chat: "5544977777777", Label: fact.Label{ID: "1"}, Assigned: true},
				{Chat: "120363019502650977-group", Label: fact.Label{ID: "2", Name: "Bee"}, Assigned: false},
				{Chat: "5544977777777", Label: fact.Label{ID: "3"}, Assigned: false},
				{Chat: "5544977777777@c.us", Label: fact.Label{ID: "1"}, Assigned: true}, // the same as the first
			}},
			want: []derive.Event{
				onChat(raw, true, chat{"5544977777777@s.whatsapp.net", "5544977777777", "contact"}, label.Label{ID: "1", Name: "A", Color: "gold"}),
				onChat(raw, false, chat{"120363019502650977@g.us", "120363019502650977-group", "group"}, label.Label{ID: "2", Name: "Bee", ColorHex: "#FF0000"}),
				onChat(raw, false, chat{"5544977777777@s.whatsapp.net", "5544977777777", "contact"}, label.Label{ID: "3"}),
			},
		},
		"a list difference and an association of one label are one event": {
			facts: fact.Facts{
				LabelSets:   []fact.LabelSet{{Chat: contact.raw, After: []fact.Label{a}}},
				LabelAssocs: []fact.LabelAssoc{{Chat: "919984351847", Label: a, Assigned: true}},
			},
			want: []derive.Event{onChat(raw, true, contact, label.Label{ID: "1", Name: "A", Color: "gold"})},
		},
		"upserts and deletions": {
			seed: []fact.Label{a, b},
			facts: fact.Facts{
				LabelUpserts: []fact.Label{{ID: "1", Name: "A+", Color: "gold"}, c},
				LabelDeletes: []fact.LabelRef{{Name: "B"}, {Name: "Nobody"}, {ID: "77"}},
			},
			want: []derive.Event{
				{
					ID: derive.ID("raw-1", derive.LabelChanged, "upsert", "id", "1"), Stream: derive.LabelChanged, Type: label.TypeUpdated,
					Subject: raw.Subject,
					Data:    label.Data{Common: com, Label: label.Label{ID: "1", Name: "A+", Color: "gold"}, Previous: &label.Previous{Name: "A", Color: "gold"}},
				},
				{
					ID: derive.ID("raw-1", derive.LabelChanged, "upsert", "id", "10"), Stream: derive.LabelChanged, Type: label.TypeCreated,
					Subject: raw.Subject,
					Data:    label.Data{Common: com, Label: label.Label{ID: "10", Name: "C", Color: "#AABBCC", ColorHex: "#AABBCC"}},
				},
				deleted(raw, "name", "B", label.Label{ID: "2", Name: "B", Color: "salmon"}),
				deleted(raw, "name", "Nobody", label.Label{Name: "Nobody"}),
				deleted(raw, "id", "77", label.Label{ID: "77"}),
			},
		},
	} {
		t.Run(name, func(t *testing.T) {
			reg := derivetest.NewLabelRegistry()
			for i, l := range tc.seed {
				if _, _, err := reg.Upsert(t.Context(), raw.Provider, raw.Channel, l, "seed-"+string(rune('a'+i))); err != nil {
					t.Fatalf("seed Upsert: %v", err)
				}
			}
			got := derivetest.Derive(t, label.Deriver{Registry: reg}, derivetest.Input{Raw: raw, Facts: tc.facts})
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Derive mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDeriveErrors(t *testing.T) {
	raw := derive.Raw{ID: "raw-1", Provider: "whapi", Channel: whapiChannel, Time: derivetest.Received}
	for name, tc := range map[string]struct {
		registry      derive.LabelRegistry
		facts         fact.Facts
		wantPermanent bool
	}{
		"upsert without registry":   {facts: fact.Facts{LabelUpserts: []fact.Label{{ID: "1"}}}},
		"delete without registry":   {facts: fact.Facts{LabelDeletes: []fact.LabelRef{{ID: "1"}}}},
		"registry fails":            {registry: failing{}, facts: fact.Facts{LabelUpserts: []fact.Label{{ID: "1"}}}},
		"lookup fails":              {registry: failing{}, facts: fact.Facts{LabelAssocs: []fact.LabelAssoc{{Chat: "1", Label: fact.Label{ID: "1"}}}}},
		"upsert without id":         {registry: derivetest.NewLabelRegistry(), facts: fact.Facts{LabelUpserts: []fact.Label{{Name: "x"}}}, wantPermanent: true},
		"delete naming nothing":     {registry: derivetest.NewLabelRegistry(), facts: fact.Facts{LabelDeletes: []fact.LabelRef{{}}}, wantPermanent: true},
		"label set without chat":    {facts: fact.Facts{LabelSets: []fact.LabelSet{{After: []fact.Label{{ID: "1"}}}}}, wantPermanent: true},
		"label set, nameless label": {facts: fact.Facts{LabelSets: []fact.LabelSet{{Chat: "1", After: []fact.Label{{Color: "red"}}}}}, wantPermanent: true},
		"association without label": {facts: fact.Facts{LabelAssocs: []fact.LabelAssoc{{Chat: "1"}}}, wantPermanent: true},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := label.Deriver{Registry: tc.registry}.Derive(t.Context(), raw, tc.facts)
			if err == nil {
				t.Fatalf("Derive: no error")
			}
			if got := broker.IsPermanent(err); got != tc.wantPermanent {
				t.Errorf("Derive error %v: permanent = %v, want %v", err, got, tc.wantPermanent)
			}
		})
	}
}

var errDown = errors.New("store down")

type failing struct{}

func (failing) Upsert(context.Context, string, string, fact.Label, string) (bool, fact.Label, error) {
	return false, fact.Label{}, errDown
}

func (failing) Delete(context.Context, string, string, fact.LabelRef, string) (fact.Label, bool, error) {
	return fact.Label{}, false, errDown
}

func (failing) Lookup(context.Context, string, string, string) (fact.Label, bool, error) {
	return fact.Label{}, false, errDown
}

// TestWhapiChatsPatch derives Whapi chat label changes from real payloads.
func TestWhapiChatsPatch(t *testing.T) {
	p := whapi.New()
	group := chat{"120363398750933550@g.us", "120363398750933550@g.us", "group"}
	contact := chat{"919984351847@s.whatsapp.net", "919984351847@s.whatsapp.net", "contact"}
	for name, tc := range map[string]struct {
		in   derivetest.Input
		want func(raw derive.Raw) []derive.Event
	}{
		"label assigned (fixture)": {
			in: derivetest.Fixture(t, p, fixture("whapi", "chats.patch_label-assigned.json"))[0],
			want: func(raw derive.Raw) []derive.Event {
				return []derive.Event{onChat(raw, true, group, label.Label{ID: "76", Name: "New order", Color: "gold"})}
			},
		},
		"label removed (fixture)": {
			in: derivetest.Fixture(t, p, fixture("whapi", "chats.patch_label-removed.json"))[0],
			want: func(raw derive.Raw) []derive.Event {
				return []derive.Event{onChat(raw, false, group, label.Label{ID: "76", Name: "New order", Color: "gold"})}
			},
		},
		"mute and labels (fixture)": {
			in: derivetest.Fixture(t, p, fixture("whapi", "chats.patch_mute-and-labels.json"))[0],
			want: func(raw derive.Raw) []derive.Event {
				return []derive.Event{onChat(raw, true, contact, label.Label{ID: "3", Name: "Pending payment", Color: "salmon"})}
			},
		},
		"labels [A,B] to [B,C]: C added, A removed": {
			in: derivetest.One(t, p, whapiBody("chats_updates", "chats", "patch", `{
				"before_update":{"id":"919984351847@s.whatsapp.net","type":"contact","timestamp":1747059575,
					"labels":[{"id":"1","name":"A","color":"gold"},{"id":"2","name":"B","color":"salmon"}]},
				"after_update":{"id":"919984351847@s.whatsapp.net","type":"contact","timestamp":1747059575,
					"labels":[{"id":"2","name":"B","color":"salmon"},{"id":"3","name":"C","color":"lightsteelblue"}]},
				"changes":["labels"]}`)),
			want: func(raw derive.Raw) []derive.Event {
				return []derive.Event{
					onChat(raw, true, contact, label.Label{ID: "3", Name: "C", Color: "lightsteelblue"}),
					onChat(raw, false, contact, label.Label{ID: "1", Name: "A", Color: "gold"}),
				}
			},
		},
		"changes without labels": {
			in: derivetest.One(t, p, whapiBody("chats_updates", "chats", "patch", `{
				"before_update":{"id":"919984351847@s.whatsapp.net","labels":[{"id":"1"}]},
				"after_update":{"id":"919984351847@s.whatsapp.net","labels":[],"mute":true},
				"changes":["mute"]}`)),
			want: func(derive.Raw) []derive.Event { return nil },
		},
	} {
		t.Run(name, func(t *testing.T) {
			d := label.Deriver{Registry: derivetest.NewLabelRegistry()}
			got := derivetest.Derive(t, d, tc.in)
			if diff := cmp.Diff(tc.want(tc.in.Raw), got); diff != "" {
				t.Errorf("Derive mismatch (-want +got):\n%s", diff)
			}
			again := derivetest.Derive(t, d, tc.in)
			if diff := cmp.Diff(got, again); diff != "" {
				t.Errorf("Derive of the same raw event again mismatch (-first +again):\n%s", diff)
			}
		})
	}
}

// step is one raw event of a sequence and the events it must give.
type step struct {
	name string
	in   derivetest.Input
	want func(raw derive.Raw) []derive.Event
}

// runSteps derives the steps in order on one registry, then reprocesses
// each: every reprocessing must give the same events, ids and types alike.
// Only the data may differ, where the registry lent a label's name.
func runSteps(t *testing.T, d derive.Deriver, steps []step) {
	t.Helper()
	first := make([][]derive.Event, len(steps))
	for i, s := range steps {
		first[i] = derivetest.Derive(t, d, s.in)
		if diff := cmp.Diff(s.want(s.in.Raw), first[i]); diff != "" {
			t.Errorf("%s: Derive mismatch (-want +got):\n%s", s.name, diff)
		}
	}
	for i, s := range steps {
		again := derivetest.Derive(t, d, s.in)
		if diff := cmp.Diff(first[i], again, ignoreData); diff != "" {
			t.Errorf("%s reprocessed: Derive mismatch (-first +again):\n%s", s.name, diff)
		}
	}
}

// ignoreData compares events by everything but their data.
var ignoreData = cmp.FilterPath(func(p cmp.Path) bool {
	sf, ok := p.Last().(cmp.StructField)
	return ok && sf.Name() == "Data"
}, cmp.Ignore())

// TestWhapiLabels: labels.post creates then updates, labels.delete names
// the label and gets its id from the registry.
func TestWhapiLabels(t *testing.T) {
	p := whapi.New()
	postNew := derivetest.One(t, p, whapiBody("labels", "labels", "post", `{"id":"76","name":"New order","color":"gold"}`))
	postFixture := derivetest.Fixture(t, p, fixture("whapi", "labels.post.json"))[0]     // 76 "Order complete"
	deleteFixture := derivetest.Fixture(t, p, fixture("whapi", "labels.delete.json"))[0] // "New order"

	t.Run("created, updated, deleted by its current name", func(t *testing.T) {
		runSteps(t, label.Deriver{Registry: derivetest.NewLabelRegistry()}, []step{
			{"labels.post new", postNew, func(raw derive.Raw) []derive.Event {
				return []derive.Event{upserted(raw, label.Label{ID: "76", Name: "New order", Color: "gold"}, nil)}
			}},
			{"labels.post changed", postFixture, func(raw derive.Raw) []derive.Event {
				return []derive.Event{upserted(raw, label.Label{ID: "76", Name: "Order complete", Color: "lightsteelblue"},
					&label.Previous{Name: "New order", Color: "gold"})}
			}},
			{"labels.delete by name", derivetest.One(t, p, whapiBody("labels_removed", "labels", "delete", `"Order complete"`)),
				func(raw derive.Raw) []derive.Event {
					return []derive.Event{deleted(raw, "name", "Order complete", label.Label{ID: "76", Name: "Order complete", Color: "lightsteelblue"})}
				}},
		})
	})

	t.Run("fixture deletion resolves the id", func(t *testing.T) {
		d := label.Deriver{Registry: derivetest.NewLabelRegistry()}
		runSteps(t, d, []step{
			{"labels.post new", postNew, func(raw derive.Raw) []derive.Event {
				return []derive.Event{upserted(raw, label.Label{ID: "76", Name: "New order", Color: "gold"}, nil)}
			}},
			{"labels.delete fixture", deleteFixture, func(raw derive.Raw) []derive.Event {
				return []derive.Event{deleted(raw, "name", "New order", label.Label{ID: "76", Name: "New order", Color: "gold"})}
			}},
		})
		// After the deletion the id names a new label; the deletion,
		// reprocessed, still resolves to the label it deleted.
		runSteps(t, d, []step{
			{"labels.post after the deletion creates anew", postFixture, func(raw derive.Raw) []derive.Event {
				return []derive.Event{upserted(raw, label.Label{ID: "76", Name: "Order complete", Color: "lightsteelblue"}, nil)}
			}},
		})
		want := []derive.Event{deleted(deleteFixture.Raw, "name", "New order", label.Label{ID: "76", Name: "New order", Color: "gold"})}
		if diff := cmp.Diff(want, derivetest.Derive(t, d, deleteFixture)); diff != "" {
			t.Errorf("labels.delete reprocessed after the re-creation mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("deletion of a name never seen", func(t *testing.T) {
		runSteps(t, label.Deriver{Registry: derivetest.NewLabelRegistry()}, []step{
			{"labels.delete fixture", deleteFixture, func(raw derive.Raw) []derive.Event {
				return []derive.Event{deleted(raw, "name", "New order", label.Label{Name: "New order"})}
			}},
			{"labels.delete by id", derivetest.One(t, p, whapiBody("labels_removed", "labels", "delete", `"12"`)),
				func(raw derive.Raw) []derive.Event {
					return []derive.Event{deleted(raw, "id", "12", label.Label{ID: "12"})}
				}},
		})
	})

	t.Run("two labels in one delivery", func(t *testing.T) {
		in := derivetest.Split(t, p, whapiBody("labels", "labels", "post",
			`{"id":"1","name":"A","color":"gold"}`, `{"id":"2","name":"B","color":"#DFE5E7"}`))
		if len(in) != 2 {
			t.Fatalf("Split = %d items, want 2", len(in))
		}
		runSteps(t, label.Deriver{Registry: derivetest.NewLabelRegistry()}, []step{
			{"first", in[0], func(raw derive.Raw) []derive.Event {
				return []derive.Event{upserted(raw, label.Label{ID: "1", Name: "A", Color: "gold"}, nil)}
			}},
			{"second", in[1], func(raw derive.Raw) []derive.Event {
				return []derive.Event{upserted(raw, label.Label{ID: "2", Name: "B", Color: "#DFE5E7", ColorHex: "#DFE5E7"}, nil)}
			}},
		})
	})
}

// TestZapiLabelAssociation: one CHAT_LABEL_ASSOCIATION names other chats
// than its raw event's; each event is about its own chat.
func TestZapiLabelAssociation(t *testing.T) {
	p := zapi.New()
	in := derivetest.Fixture(t, p, fixture("zapi", "ReceivedCallback_notification-CHAT_LABEL_ASSOCIATION.json"))[0]
	reg := derivetest.NewLabelRegistry()
	// Z-API has no label webhooks; a label known from elsewhere lends its name.
	if _, _, err := reg.Upsert(t.Context(), "zapi", in.Raw.Channel, fact.Label{ID: "1", Name: "Novo cliente", ColorHex: "#DFE5E7"}, "seed"); err != nil {
		t.Fatalf("seed Upsert: %v", err)
	}
	runSteps(t, label.Deriver{Registry: reg}, []step{{"CHAT_LABEL_ASSOCIATION", in, func(raw derive.Raw) []derive.Event {
		return []derive.Event{
			onChat(raw, true, chat{"5544977777777@s.whatsapp.net", "5544977777777", "contact"}, label.Label{ID: "1", Name: "Novo cliente", ColorHex: "#DFE5E7"}),
			onChat(raw, false, chat{"5544988888888@s.whatsapp.net", "5544988888888", "contact"}, label.Label{ID: "2"}),
		}
	}}})
	if in.Raw.Subject == "5544977777777@s.whatsapp.net" {
		t.Errorf("raw subject %q is a labelled chat; the test shows nothing", in.Raw.Subject)
	}
}

// TestWaha covers WAHA's and Wawp's label events, in both documented shapes.
func TestWaha(t *testing.T) {
	p := waha.New()
	contact := chat{"11111111111@s.whatsapp.net", "11111111111@c.us", "contact"}
	runSteps(t, label.Deriver{Registry: derivetest.NewLabelRegistry()}, []step{
		{"label.upsert (Wawp fixture)", derivetest.Fixture(t, p, fixture("waha", "label.upsert.json"))[0], func(raw derive.Raw) []derive.Event {
			return []derive.Event{upserted(raw, label.Label{ID: "1", Name: "New Customer", Color: "#DFE5E7", ColorHex: "#DFE5E7"}, nil)}
		}},
		{"label.chat.added (Wawp fixture) named from the registry", derivetest.Fixture(t, p, fixture("waha", "label.chat.added.json"))[0], func(raw derive.Raw) []derive.Event {
			return []derive.Event{onChat(raw, true, contact, label.Label{ID: "1", Name: "New Customer", Color: "#DFE5E7", ColorHex: "#DFE5E7"})}
		}},
		{"label.upsert (WAHA engine: the payload is the label)", derivetest.One(t, p, wahaBody("evt_2", "label.upsert",
			`{"id":"1","name":"Customer","color":3,"colorHex":"#64C4FF"}`)), func(raw derive.Raw) []derive.Event {
			return []derive.Event{upserted(raw, label.Label{ID: "1", Name: "Customer", Color: "3", ColorHex: "#64C4FF"},
				&label.Previous{Name: "New Customer", Color: "#DFE5E7"})}
		}},
		{"label.chat.deleted (WAHA engine, with the label)", derivetest.One(t, p, wahaBody("evt_3", "label.chat.deleted",
			`{"labelId":"1","chatId":"120363019502650977@g.us","label":{"id":"1","name":"Customer","color":3,"colorHex":"#64C4FF"}}`)),
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{onChat(raw, false, chat{"120363019502650977@g.us", "120363019502650977@g.us", "group"},
					label.Label{ID: "1", Name: "Customer", Color: "3", ColorHex: "#64C4FF"})}
			}},
		{"label.deleted (Wawp: labelId)", derivetest.One(t, p, wahaBody("evt_4", "label.deleted", `{"labelId":"1"}`)),
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{deleted(raw, "id", "1", label.Label{ID: "1", Name: "Customer", Color: "3", ColorHex: "#64C4FF"})}
			}},
		{"label.deleted (WAHA engine: the payload is the label)", derivetest.One(t, p, wahaBody("evt_5", "label.deleted",
			`{"id":"2","name":"Lead","color":1,"colorHex":"#A62C71"}`)), func(raw derive.Raw) []derive.Event {
			return []derive.Event{deleted(raw, "id", "2", label.Label{ID: "2", Name: "Lead"})}
		}},
	})
}
