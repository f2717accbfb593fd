package group_test

import (
	"testing"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/derive/group"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/provider/evolution"
)

// TestEvolution: Evolution's group events (fixtures built from its source)
// give the same events as the other providers'.
func TestEvolution(t *testing.T) {
	p := evolution.New()
	g := grp{"120363041234567890@g.us", "120363041234567890@g.us"}
	const me, maria, joao = "5511999990000@s.whatsapp.net", "5511988887777@s.whatsapp.net", "5511944443333@s.whatsapp.net"
	one := func(name string) derivetest.Input { return derivetest.Fixture(t, p, fixture("evolution", name))[0] }
	run(t, []row{
		{"groups.upsert created by the instance", one("groups.upsert.json"), func(raw derive.Raw) []derive.Event {
			return []derive.Event{event(raw, fact.GroupCreated, g, group.Data{Subject: ptr("Clientes VIP"), Actor: me})}
		}},
		{"groups.upsert joined", one("groups.upsert_joined.json"), func(raw derive.Raw) []derive.Event {
			j := grp{"120363059876543210@g.us", "120363059876543210@g.us"}
			return []derive.Event{event(raw, fact.GroupJoined, j, group.Data{Subject: ptr("Fornecedores"), Actor: "5511966665555@s.whatsapp.net"})}
		}},
		{"groups.update", one("groups.update.json"), func(raw derive.Raw) []derive.Event {
			return []derive.Event{
				event(raw, fact.GroupSubjectChanged, g, group.Data{Subject: ptr("Clientes VIP 2025"), Actor: me}),
				event(raw, fact.GroupSettingsChanged, g, group.Data{Setting: &group.Setting{Name: "announce", Value: "true"}, Actor: me}),
			}
		}},
		{"participants added", one("group-participants.update_add.json"), func(raw derive.Raw) []derive.Event {
			return []derive.Event{event(raw, fact.GroupParticipantsAdded, g, group.Data{Participants: []string{joao}, Actor: me})}
		}},
		{"participant left (author is the participant)", one("group-participants.update_leave.json"), func(raw derive.Raw) []derive.Event {
			return []derive.Event{event(raw, fact.GroupParticipantsLeft, g, group.Data{Participants: []string{joao}, Actor: joao})}
		}},
		{"participant promoted", one("group-participants.update_promote.json"), func(raw derive.Raw) []derive.Event {
			return []derive.Event{event(raw, fact.GroupParticipantsPromote, g, group.Data{Participants: []string{maria}, Actor: me})}
		}},
	})
}
