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

// Contacts of the alias tests: A's LID is seen alone before any payload
// ties it to A's phone form; B's tie comes first.
const (
	lidA, phoneA = "27044444444444@lid", "5511966665555@s.whatsapp.net"
	lidB, phoneB = "27055555555555@lid", "5511955554444@s.whatsapp.net"
)

// evolutionMessage is an Evolution messages.upsert (as in
// messages.upsert_lid-only.json) in chat remoteJid.
func evolutionMessage(id, remoteJid string) []byte {
	return []byte(`{"event":"messages.upsert","instance":"evo-sales","data":{"key":{"remoteJid":"` + remoteJid +
		`","fromMe":false,"id":"` + id + `"},"message":{"conversation":"oi"},"messageType":"conversation","messageTimestamp":1749564301},` +
		`"date_time":"2025-06-10T14:03:21.118Z","sender":"5511999990000@s.whatsapp.net","apikey":"B6D711FCDE4D4FD5936544120E713976"}`)
}

// evolutionCall is an Evolution call offer (as in call_offer.json) from a
// contact's LID with its phone form in callerPn (Baileys' WACallEvent).
func evolutionCall(id, lid, phone string) []byte {
	return []byte(`{"event":"call","instance":"evo-sales","data":{"chatId":"` + lid + `","from":"` + lid + `","callerPn":"` + phone +
		`","isGroup":false,"id":"` + id + `","date":"2025-06-10T14:15:00.000Z","isVideo":false,"status":"offer","offline":false},` +
		`"date_time":"2025-06-10T14:15:00.402Z","sender":"5511999990000@s.whatsapp.net","apikey":"B6D711FCDE4D4FD5936544120E713976"}`)
}

// aliasSteps are posted in two rounds, each awaited (chat-created, call
// events): A's LID alone and the calls tying A's and B's forms, then A's
// phone alone and B's LID alone.
var aliasSteps = [2][][]byte{
	{evolutionMessage("AL1", lidA), evolutionCall("CALLA", lidA, phoneA), evolutionCall("CALLB", lidB, phoneB)},
	{evolutionMessage("AL2", phoneA), evolutionMessage("AL3", lidB)},
}

// checkAliasChats checks one chat per contact: A's under the form the
// race of the first round gave it, B's under its phone form with its LID.
func checkAliasChats(t *testing.T, evs []cloudevents.Event) {
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
	lidOnly, ok := byChat[lidA]
	a := ok && lidOnly == "" || byChat[phoneA] == lidA
	if len(byChat) != 2 || !a || byChat[phoneB] != lidB {
		t.Errorf("chat.created chats (chat_id: chat_lid) = %v; want A as %s or %s with %s, and %s with %s", byChat, lidA, phoneA, lidA, phoneB, lidB)
	}
}

func TestLIDAliasLearntFromACall(t *testing.T) {
	p := newPipeline(t)
	p.consumers([]string{derive.ChatCreated, derive.Call}, "e2e-", 0, 1)
	for _, body := range aliasSteps[0] {
		p.post("/v1/webhooks/evolution", body)
	}
	p.await("wahook.call.evolution.>", 2)
	p.await("wahook.chat-created.evolution.>", 1)
	for _, body := range aliasSteps[1] {
		p.post("/v1/webhooks/evolution", body)
	}
	checkAliasChats(t, p.await("wahook.chat-created.evolution.>", 2))
}

func TestKafkaLIDAliasLearntFromACall(t *testing.T) {
	p := newKafkaPipeline(t)
	p.consumers([]string{derive.ChatCreated, derive.Call}, "e2e-", 0, 1, instanceOpts{})
	for _, body := range aliasSteps[0] {
		p.post("/v1/webhooks/evolution", body)
	}
	p.await(derive.Call, "evolution", "", 2)
	p.await(derive.ChatCreated, "evolution", "", 1)
	for _, body := range aliasSteps[1] {
		p.post("/v1/webhooks/evolution", body)
	}
	checkAliasChats(t, p.await(derive.ChatCreated, "evolution", "", 2))
}
