package chat_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/chat"
	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/fact"
)

const (
	aliasLID   = "123456789012345@lid"
	aliasPhone = "5544999999999@s.whatsapp.net"
)

func aliasRaw(id string) derive.Raw {
	return derive.Raw{ID: id, Provider: "waha", Channel: "default", Kind: "message", Time: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)}
}

// inLIDForm is the creation of the contact's chat from a raw event that gave
// only the LID: chat_id the phone form, chat_lid the LID, the id hashing
// the LID as before aliases were learnt.
func inLIDForm(raw derive.Raw, inferred bool, phone string) derive.Event {
	e := created(raw, phone, aliasLID, "contact", inferred, "", "")
	e.ID = derive.ID(raw.ID, derive.ChatCreated, "chat.created", aliasLID)
	return withLID(e, aliasLID)
}

func TestAliases(t *testing.T) {
	seen := func(id string) fact.Facts { return fact.Facts{ChatsSeen: []fact.ChatSeen{{Chat: id}}} }
	pair := []fact.Alias{{LID: aliasLID, Phone: aliasPhone}}
	type step struct {
		raw   string
		facts fact.Facts
		want  func(derive.Raw) []derive.Event
	}
	none := func(derive.Raw) []derive.Event { return nil }
	for name, steps := range map[string][]step{
		"an alias learnt, then the LID alone: the phone form with chat_lid": {
			{"e1", fact.Facts{Aliases: pair, Calls: []fact.Call{{CallID: "c", Chat: aliasLID, State: fact.CallOffered}}}, none},
			{"e2", seen(aliasLID), func(raw derive.Raw) []derive.Event { return []derive.Event{inLIDForm(raw, true, aliasPhone)} }},
			{"e3", seen(aliasPhone), none},
			{"e4", seen(aliasLID), none},
		},
		"the LID first, then the alias, then the phone alone: one chat": {
			{"e1", seen(aliasLID), func(raw derive.Raw) []derive.Event {
				return []derive.Event{created(raw, aliasLID, aliasLID, "lid", true, "", "")}
			}},
			{"e2", fact.Facts{Aliases: pair, Groups: []fact.GroupChange{{Chat: "1203630@g.us", Change: fact.GroupJoined}}}, none},
			{"e3", seen(aliasPhone), none},
		},
		"the phone first, then the alias, then the LID alone: one chat": {
			{"e1", seen(aliasPhone), func(raw derive.Raw) []derive.Event {
				return []derive.Event{created(raw, aliasPhone, aliasPhone, "contact", true, "", "")}
			}},
			{"e2", fact.Facts{Aliases: pair}, none},
			{"e3", seen(aliasLID), none},
		},
		"an alias learnt, then the phone alone: chat_lid is the learnt LID": {
			{"e1", fact.Facts{Aliases: pair}, none},
			{"e2", seen(aliasPhone), func(raw derive.Raw) []derive.Event {
				return []derive.Event{withLID(created(raw, aliasPhone, aliasPhone, "contact", true, "", ""), aliasLID)}
			}},
			{"e3", seen(aliasLID), none},
		},
		"the alias and the LID in one raw event: learnt before deriving": {
			{"e1", fact.Facts{Aliases: pair, ChatsSeen: []fact.ChatSeen{{Chat: aliasLID}}}, func(raw derive.Raw) []derive.Event {
				return []derive.Event{inLIDForm(raw, true, aliasPhone)}
			}},
			{"e2", seen(aliasPhone), none},
		},
		"an explicit creation of a LID with an alias: the phone form": {
			{"e1", fact.Facts{Aliases: pair}, none},
			{"e2", fact.Facts{ChatsCreated: []fact.ChatCreated{{Chat: aliasLID}}}, func(raw derive.Raw) []derive.Event {
				return []derive.Event{inLIDForm(raw, false, aliasPhone)}
			}},
			{"e3", seen(aliasPhone), none},
		},
		"an explicit creation of a LID, then the alias, then the phone alone: one chat": {
			{"e1", fact.Facts{ChatsCreated: []fact.ChatCreated{{Chat: aliasLID}}}, func(raw derive.Raw) []derive.Event {
				return []derive.Event{created(raw, aliasLID, aliasLID, "lid", false, "", "")}
			}},
			{"e2", fact.Facts{Aliases: pair}, none},
			{"e3", seen(aliasPhone), none},
		},
		"an explicit creation of a phone, then the alias, then the LID alone: one chat": {
			{"e1", fact.Facts{ChatsCreated: []fact.ChatCreated{{Chat: aliasPhone}}}, func(raw derive.Raw) []derive.Event {
				return []derive.Event{created(raw, aliasPhone, aliasPhone, "contact", false, "", "")}
			}},
			{"e2", fact.Facts{Aliases: pair}, none},
			{"e3", seen(aliasLID), none},
		},
		"a conflicting pair is ignored": {
			{"e1", fact.Facts{Aliases: pair}, none},
			{"e2", fact.Facts{Aliases: []fact.Alias{{LID: aliasLID, Phone: "5511888888888@s.whatsapp.net"}}}, none},
			{"e3", seen(aliasLID), func(raw derive.Raw) []derive.Event { return []derive.Event{inLIDForm(raw, true, aliasPhone)} }},
			{"e4", seen("5511888888888@s.whatsapp.net"), func(raw derive.Raw) []derive.Event {
				return []derive.Event{created(raw, "5511888888888@s.whatsapp.net", "5511888888888@s.whatsapp.net", "contact", true, "", "")}
			}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			aliases := derivetest.NewAliasRegistry()
			d := chat.Deriver{Registry: derivetest.NewChatRegistry(), Aliases: aliases}
			for _, s := range steps {
				raw := aliasRaw(s.raw)
				got := derivetest.Derive(t, d, derivetest.Input{Raw: raw, Facts: s.facts})
				if diff := cmp.Diff(s.want(raw), got); diff != "" {
					t.Errorf("%s: Derive mismatch (-want +got):\n%s", s.raw, diff)
				}
			}
		})
	}
}

// TestAliasesWithoutRegistry: without an alias registry a LID alone stays
// the LID, as before aliases.
func TestAliasesWithoutRegistry(t *testing.T) {
	d := chat.Deriver{Registry: derivetest.NewChatRegistry()}
	raw := aliasRaw("e1")
	got := derivetest.Derive(t, d, derivetest.Input{Raw: raw, Facts: fact.Facts{
		Aliases: []fact.Alias{{LID: aliasLID, Phone: aliasPhone}}, ChatsSeen: []fact.ChatSeen{{Chat: aliasLID}},
	}})
	if diff := cmp.Diff([]derive.Event{created(raw, aliasLID, aliasLID, "lid", true, "", "")}, got); diff != "" {
		t.Errorf("Derive mismatch (-want +got):\n%s", diff)
	}
}
