package call_test

import (
	"testing"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/call"
	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/provider/evolution"
)

// TestEvolution: Baileys' call states as Evolution forwards them.
func TestEvolution(t *testing.T) {
	p := evolution.New()
	maria := chat{"5511988887777@s.whatsapp.net", "5511988887777@s.whatsapp.net", "contact"}
	one := func(name string) derivetest.Input { return derivetest.Fixture(t, p, fixture("evolution", name))[0] }
	const id = "2B1C8F3E7D6A5B4C3D2E1F0A9B8C7D6E"
	run(t, []row{
		{"offer", one("call_offer.json"), func(raw derive.Raw) []derive.Event {
			return []derive.Event{event(raw, call.TypeOffered, fact.CallOffered, maria, call.Data{CallID: id, From: maria.id, Status: "offer"})}
		}},
		{"timeout is missed", one("call_timeout.json"), func(raw derive.Raw) []derive.Event {
			return []derive.Event{event(raw, call.TypeMissed, fact.CallMissed, maria, call.Data{CallID: id, From: maria.id, Status: "timeout"})}
		}},
		{"terminate is ended, caller by phone number", one("call_terminate-video-lid.json"), func(raw derive.Raw) []derive.Event {
			// One-to-one with a LID: the contact's phone form, the LID beside
			// it; the id still hashes the LID, as before chat_lid.
			lid := chat{"201234567890123@lid", "201234567890123@lid", "lid"}
			e := event(raw, call.TypeEnded, fact.CallEnded, lid, call.Data{CallID: "9F8E7D6C5B4A39281706F5E4D3C2B1A0",
				From: "5511977776666@s.whatsapp.net", Video: true, Status: "terminate"})
			d := e.Data.(call.Data)
			d.ChatRef = derive.ChatRef{ChatID: "5511977776666@s.whatsapp.net", ChatIDRaw: "5511977776666@s.whatsapp.net", ChatType: "contact", ChatLID: "201234567890123@lid"}
			e.Data, e.Subject, e.Chat = d, d.ChatID, d.ChatID
			return []derive.Event{e}
		}},
	})
}
