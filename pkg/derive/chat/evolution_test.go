package chat_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/chat"
	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/provider/evolution"
)

// TestEvolution: chats.upsert creates a chat the first time only (Evolution
// re-sends known chats), groups.upsert creates its group, and a message
// infers its chat when nothing said it before.
func TestEvolution(t *testing.T) {
	p := evolution.New()
	d := chat.Deriver{Registry: derivetest.NewChatRegistry()}
	const carla, maria, vip = "5511933332222@s.whatsapp.net", "5511988887777@s.whatsapp.net", "120363041234567890@g.us"
	one := func(name string) derivetest.Input { return derivetest.Fixture(t, p, fixture("evolution", name))[0] }
	carlaAgain := derivetest.One(t, p, []byte(`{"event":"chats.upsert","instance":"evo-sales","data":[{"remoteJid":"`+carla+`","name":"Carla","unreadMessages":3}],"date_time":"2025-06-10T15:00:00.000Z"}`))
	for _, tc := range []struct {
		name string
		in   derivetest.Input
		want func(raw derive.Raw) []derive.Event
	}{
		{"chats.upsert (fixture): created", one("chats.upsert.json"), func(raw derive.Raw) []derive.Event {
			return []derive.Event{created(raw, carla, carla, "contact", false, "Carla", "")}
		}},
		{"chats.upsert of the same chat again: nothing", carlaAgain, func(derive.Raw) []derive.Event { return nil }},
		{"chats.upsert []: nothing", one("chats.upsert_empty.json"), func(derive.Raw) []derive.Event { return nil }},
		{"messages.upsert (fixture): inferred", one("messages.upsert.json"), func(raw derive.Raw) []derive.Event {
			return []derive.Event{created(raw, maria, maria, "contact", true, "Maria Souza", "incoming")}
		}},
		{"groups.upsert (fixture): the group is a new chat", one("groups.upsert.json"), func(raw derive.Raw) []derive.Event {
			return []derive.Event{created(raw, vip, vip, "group", false, "Clientes VIP", "")}
		}},
		{"a message in it infers nothing", one("messages.upsert_outgoing-group.json"), func(derive.Raw) []derive.Event { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := derivetest.Derive(t, d, tc.in)
			if diff := cmp.Diff(tc.want(tc.in.Raw), got); diff != "" {
				t.Errorf("Derive mismatch (-want +got):\n%s", diff)
			}
		})
	}
	// Reprocessing the first chats.upsert gives its event again, same id.
	first := one("chats.upsert.json")
	if got := derivetest.Derive(t, d, first); len(got) != 1 {
		t.Errorf("reprocessed chats.upsert derived %d events; want its one again", len(got))
	}
}
