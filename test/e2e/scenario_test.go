package e2e

import (
	"encoding/json"
	"fmt"
	"sort"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"
)

// backbone is what a scenario needs of a pipeline, whatever its broker.
type backbone interface {
	post(path string, body []byte) []string
	fixture(dir, name string) []byte
	// awaitEvents waits until a derived stream holds want events of a
	// provider's channel ("" for all its channels), and returns them in
	// stream order.
	awaitEvents(stream, provider, channel string, want int) []cloudevents.Event
	// storesDuplicates reports a broker without a duplicate window: two
	// publishes of one derived id are both stored (subscribers dedupe).
	storesDuplicates() bool
}

// callsAndGroups posts the providers' documented calls and group
// notifications and checks the call and group-notification streams.
func callsAndGroups(t *testing.T, p backbone) {
	t.Helper()
	for _, f := range []string{"ReceivedCallback_notification-CALL_VOICE.json", "ReceivedCallback_notification-CALL_MISSED_VIDEO.json"} {
		p.post("/v1/webhooks/zapi", p.fixture("zapi", f))
	}
	for _, f := range []string{"calls.post_initiated.json", "calls.post_ringing.json", "calls.post_missed.json"} {
		p.post("/v1/webhooks/whapi", p.fixture("whapi", f))
	}
	p.post("/v1/webhooks/waha", p.fixture("waha", "call.received.json"))
	zapiCalls := p.awaitEvents("call", "zapi", "", 2)
	// One call, one chat, one partition: in order. Initiated and ringing
	// are one offer, one derived id: NATS keeps it once, and on Kafka a
	// subscriber drops the second copy by id.
	stored := 2
	if p.storesDuplicates() {
		stored = 3
	}
	whapiCalls := byID(p.awaitEvents("call", "whapi", "", stored))
	wahaCalls := p.awaitEvents("call", "waha", "", 1)
	var video struct {
		Video  bool
		Status string
		CallID string `json:"call_id"`
	}
	for _, ev := range zapiCalls {
		if ev.Type() == "io.wahook.call.missed" {
			_ = json.Unmarshal(ev.Data(), &video)
		}
	}
	if !video.Video || video.Status != "CALL_MISSED_VIDEO" || video.CallID != "F44E0E2011E7C784BB9A4AC11749C436" {
		t.Errorf("Z-API missed video call = %+v (%v)", video, types(zapiCalls))
	}
	if len(whapiCalls) != 2 || whapiCalls[0].Type() != "io.wahook.call.offered" || whapiCalls[1].Type() != "io.wahook.call.missed" ||
		wahaCalls[0].Type() != "io.wahook.call.offered" {
		t.Errorf("calls = %v / %v", types(whapiCalls), types(wahaCalls))
	}

	p.post("/v1/webhooks/whapi", p.fixture("whapi", "groups.put_participant-add.json"))
	p.post("/v1/webhooks/zapi", p.fixture("zapi", "ReceivedCallback_notification-MEMBERSHIP_APPROVAL_REQUEST-invite_link.json"))
	p.post("/v1/webhooks/waha", p.fixture("waha", "group.v2.participants.json"))
	whapiGroups := p.awaitEvents("group-notification", "whapi", "", 1)
	zapiGroups := p.awaitEvents("group-notification", "zapi", "", 1)
	wahaGroups := p.awaitEvents("group-notification", "waha", "", 1)
	var g struct{ Participants []string }
	_ = json.Unmarshal(whapiGroups[0].Data(), &g)
	if whapiGroups[0].Type() != "io.wahook.group.participants.added" || fmt.Sprint(g.Participants) != "[61280155346@s.whatsapp.net]" {
		t.Errorf("Whapi group = %v", types(whapiGroups))
	}
	if zapiGroups[0].Type() != "io.wahook.group.join.requested" || wahaGroups[0].Type() != "io.wahook.group.participants.promoted" {
		t.Errorf("groups = %v / %v", types(zapiGroups), types(wahaGroups))
	}
}

// byID keeps the first event of each id, in order, as a subscriber does.
func byID(evs []cloudevents.Event) []cloudevents.Event {
	seen := map[string]bool{}
	var out []cloudevents.Event
	for _, ev := range evs {
		if !seen[ev.ID()] {
			seen[ev.ID()] = true
			out = append(out, ev)
		}
	}
	return out
}

// labelChanged checks the label-changed stream: a label list's difference,
// created then updated then deleted by name, Z-API associations and WAHA's
// label.chat.added. It returns the ids of the chats.patch delivery, which
// it posts twice as a retrying provider would.
func labelChanged(t *testing.T, p backbone) []string {
	t.Helper()
	// [A,B] -> [B,C]: C added, A removed, nothing for B.
	body := whapiChatsPatch("919984351847@s.whatsapp.net", []string{"1", "2"}, []string{"2", "3"})
	ids := p.post("/v1/webhooks/whapi", body)
	p.post("/v1/webhooks/whapi", body) // a provider retry changes nothing
	evs := p.awaitEvents("label-changed", "whapi", "MANTIS-M72HC", 2)
	got := map[string]string{}
	for _, ev := range evs {
		id, _, _ := labelOf(t, ev)
		got[ev.Type()] = id
		if ev.Subject() != "919984351847@s.whatsapp.net" {
			t.Errorf("subject %q", ev.Subject())
		}
	}
	if got["io.wahook.label.added"] != "3" || got["io.wahook.label.removed"] != "1" {
		t.Errorf("label changes = %v; want added 3, removed 1", got)
	}

	// labels.post twice for one id: created, then updated; delete by name.
	// The channel's label events share a key: they stay in order.
	p.post("/v1/webhooks/whapi", []byte(`{"labels":[{"id":"76","name":"New order","color":"gold"}],"event":{"type":"labels","event":"post"},"channel_id":"CH-L"}`))
	p.awaitEvents("label-changed", "whapi", "CH-L", 1)
	p.post("/v1/webhooks/whapi", []byte(`{"labels":[{"id":"76","name":"Order complete","color":"lightsteelblue"}],"event":{"type":"labels","event":"post"},"channel_id":"CH-L"}`))
	p.awaitEvents("label-changed", "whapi", "CH-L", 2)
	p.post("/v1/webhooks/whapi", []byte(`{"labels_removed":["Order complete"],"event":{"type":"labels","event":"delete"},"channel_id":"CH-L"}`))
	evs = p.awaitEvents("label-changed", "whapi", "CH-L", 3)
	wantTypes := []string{"io.wahook.label.created", "io.wahook.label.updated", "io.wahook.label.deleted"}
	for i, ev := range evs {
		id, name, prev := labelOf(t, ev)
		if ev.Type() != wantTypes[i] || id != "76" {
			t.Errorf("event %d = %s label %s; want %s label 76", i, ev.Type(), id, wantTypes[i])
		}
		if i == 1 && (name != "Order complete" || prev["name"] != "New order") {
			t.Errorf("update = %s, previous %v", name, prev)
		}
	}

	// Z-API label associations: one event per parameter, about each chat.
	p.post("/v1/webhooks/zapi", p.fixture("zapi", "ReceivedCallback_notification-CHAT_LABEL_ASSOCIATION.json"))
	evs = p.awaitEvents("label-changed", "zapi", "", 2)
	sort.Slice(evs, func(i, j int) bool { return evs[i].Subject() < evs[j].Subject() })
	if evs[0].Type() != "io.wahook.label.added" || evs[0].Subject() != "5544977777777@s.whatsapp.net" ||
		evs[1].Type() != "io.wahook.label.removed" || evs[1].Subject() != "5544988888888@s.whatsapp.net" {
		t.Errorf("Z-API associations = %v", types(evs))
	}

	// WAHA: label.chat.added.
	p.post("/v1/webhooks/waha", p.fixture("waha", "label.chat.added.json"))
	evs = p.awaitEvents("label-changed", "waha", "", 1)
	if evs[0].Type() != "io.wahook.label.added" || evs[0].Subject() != "11111111111@s.whatsapp.net" {
		t.Errorf("WAHA label.chat.added = %v", types(evs))
	}
	return ids
}
