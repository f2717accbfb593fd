package e2e

import (
	"encoding/json"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/wahook/wahook/pkg/derive"
)

// lidMessages follow an Evolution message giving a contact's LID and phone
// form: the same contact's next message giving the LID alone, and another
// contact's first message. The first is awaited before the others are
// posted: raw events of different chat keys are derived concurrently.
var lidMessages = []string{"messages.upsert_lid-only.json", "messages.upsert.json"}

// checkLIDChats checks that the contact of lidMessages is one chat, named
// by its phone form with its LID beside it.
func checkLIDChats(t *testing.T, evs []cloudevents.Event) {
	t.Helper()
	byChat := map[string]string{}
	for _, ev := range evs {
		var d struct {
			ChatID  string `json:"chat_id"`
			ChatLID string `json:"chat_lid"`
		}
		if err := json.Unmarshal(ev.Data(), &d); err != nil {
			t.Fatal(err)
		}
		byChat[d.ChatID] = d.ChatLID
	}
	want := map[string]string{"5511977776666@s.whatsapp.net": "27033333333333@lid", "5511988887777@s.whatsapp.net": ""}
	if len(byChat) != len(want) || byChat["5511977776666@s.whatsapp.net"] != want["5511977776666@s.whatsapp.net"] {
		t.Errorf("chat.created chats (chat_id: chat_lid) = %v; want %v", byChat, want)
	}
}

func TestLIDAndPhoneAreOneChat(t *testing.T) {
	p := newPipeline(t)
	p.consumers([]string{derive.ChatCreated}, "e2e-", 0, 1)
	p.post("/v1/webhooks/evolution", p.fixture("evolution", "messages.upsert_lid.json"))
	p.await("wahook.chat-created.evolution.>", 1)
	for _, name := range lidMessages {
		p.post("/v1/webhooks/evolution", p.fixture("evolution", name))
	}
	checkLIDChats(t, p.await("wahook.chat-created.evolution.>", 2))
}

func TestKafkaLIDAndPhoneAreOneChat(t *testing.T) {
	p := newKafkaPipeline(t)
	p.consumers([]string{derive.ChatCreated}, "e2e-", 0, 1, instanceOpts{})
	p.post("/v1/webhooks/evolution", p.fixture("evolution", "messages.upsert_lid.json"))
	p.await(derive.ChatCreated, "evolution", "", 1)
	for _, name := range lidMessages {
		p.post("/v1/webhooks/evolution", p.fixture("evolution", name))
	}
	checkLIDChats(t, p.await(derive.ChatCreated, "evolution", "", 2))
}
