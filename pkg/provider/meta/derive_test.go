package meta_test

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/call"
	"github.com/wahook/wahook/pkg/derive/chat"
	"github.com/wahook/wahook/pkg/derive/derivetest"
	groupderive "github.com/wahook/wahook/pkg/derive/group"
	"github.com/wahook/wahook/pkg/provider/meta"
)

// summary is what a test compares of a derived event: its type, subject and
// the data members that matter here.
type summary struct {
	Type, Subject string
	Data          map[string]any
}

func summarize(t *testing.T, events []derive.Event, keep ...string) []summary {
	t.Helper()
	out := make([]summary, 0, len(events))
	for _, ev := range events {
		b, err := json.Marshal(ev.Data)
		if err != nil {
			t.Fatal(err)
		}
		var all map[string]any
		if err := json.Unmarshal(b, &all); err != nil {
			t.Fatal(err)
		}
		data := map[string]any{}
		for _, k := range keep {
			if v, ok := all[k]; ok {
				data[k] = v
			}
		}
		if all["provider"] != "meta" {
			t.Errorf("%s: provider %v", ev.Type, all["provider"])
		}
		out = append(out, summary{ev.Type, ev.Subject, data})
	}
	return out
}

func inputs(t *testing.T, names ...string) []derivetest.Input {
	t.Helper()
	var in []derivetest.Input
	for _, n := range names {
		in = append(in, derivetest.Fixture(t, meta.New(), filepath.Join("testdata", n))...)
	}
	return in
}

// TestDeriveChats: a chat is created the first time it is seen, by a message
// or a status of one the business sent, with the contact's profile name.
func TestDeriveChats(t *testing.T) {
	d := chat.Deriver{Registry: derivetest.NewChatRegistry()}
	got := summarize(t, derivetest.Derive(t, d, inputs(t, "messages_text.json", "statuses_sent.json", "messages_batch.json", "groups_create.json")...),
		"channel", "chat_id", "chat_id_raw", "chat_type", "inferred", "name", "direction")
	want := []summary{
		{"io.wahook.chat.created", "16505551234@s.whatsapp.net", map[string]any{"channel": phone, "chat_id": "16505551234@s.whatsapp.net",
			"chat_id_raw": "16505551234", "chat_type": "contact", "inferred": true, "name": "Sheena Nelson", "direction": "incoming"}},
		{"io.wahook.chat.created", "16505559876@s.whatsapp.net", map[string]any{"channel": phone, "chat_id": "16505559876@s.whatsapp.net",
			"chat_id_raw": "16505559876", "chat_type": "contact", "inferred": true, "name": "Pablo Morales", "direction": "incoming"}},
		// The second phone number's chats are its own.
		{"io.wahook.chat.created", "4915123456789@s.whatsapp.net", map[string]any{"channel": "107654321098765", "chat_id": "4915123456789@s.whatsapp.net",
			"chat_id_raw": "4915123456789", "chat_type": "contact", "inferred": true, "name": "Kim", "direction": "incoming"}},
		// Group ids are opaque: kept as written, without a chat type.
		{"io.wahook.chat.created", group, map[string]any{"channel": phone, "chat_id": group, "chat_id_raw": group, "inferred": false,
			"name": "Order 1234 support"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("chat-created mismatch (-want +got):\n%s", diff)
	}
}

func TestDeriveCalls(t *testing.T) {
	got := summarize(t, derivetest.Derive(t, call.Deriver{}, inputs(t, "calls_connect.json", "calls_terminate.json",
		"calls_terminate_failed.json", "calls_terminate_failed_answered.json", "calls_status_ringing.json",
		"calls_status_accepted.json")...),
		"call_id", "from", "status", "video", "group_call")
	want := []summary{
		{"io.wahook.call.offered", "16315553602@s.whatsapp.net", map[string]any{"call_id": call1, "from": "16315553602@s.whatsapp.net",
			"status": "connect", "video": false, "group_call": false}},
		{"io.wahook.call.ended", "16315553602@s.whatsapp.net", map[string]any{"call_id": call1, "from": "16315553602@s.whatsapp.net",
			"status": "COMPLETED", "video": false, "group_call": false}},
		{"io.wahook.call.missed", "16315553603@s.whatsapp.net", map[string]any{"call_id": call2, "from": "16315553603@s.whatsapp.net",
			"status": "FAILED", "video": false, "group_call": false}},
		{"io.wahook.call.ended", "16315553604@s.whatsapp.net", map[string]any{"call_id": call4, "from": "16315553604@s.whatsapp.net",
			"status": "FAILED", "video": false, "group_call": false}},
		{"io.wahook.call.offered", "163155536021@s.whatsapp.net", map[string]any{"call_id": call3, "status": "RINGING",
			"video": false, "group_call": false}},
		{"io.wahook.call.accepted", "163155536021@s.whatsapp.net", map[string]any{"call_id": call3, "status": "ACCEPTED",
			"video": false, "group_call": false}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("call mismatch (-want +got):\n%s", diff)
	}
}

func TestDeriveGroups(t *testing.T) {
	got := summarize(t, derivetest.Derive(t, groupderive.Deriver{}, inputs(t, "groups_create.json", "groups_create_failed.json",
		"groups_participants_add.json", "groups_participants_remove.json", "groups_participants_leave.json",
		"groups_join_request_created.json", "groups_join_request_revoked.json", "groups_settings_update.json",
		"groups_status_suspend.json", "groups_delete.json")...),
		"participants", "actor", "subject", "setting", "request_method")
	none := []any{}
	want := []summary{
		{"io.wahook.group.created", group, map[string]any{"participants": none, "subject": "Order 1234 support"}},
		{"io.wahook.group.participants.added", group, map[string]any{"participants": []any{"16505551234@s.whatsapp.net"},
			"request_method": "invite_link"}},
		{"io.wahook.group.participants.removed", group, map[string]any{"participants": []any{"16505559876@s.whatsapp.net"}}},
		{"io.wahook.group.participants.left", group, map[string]any{"participants": []any{"16505551234@s.whatsapp.net"},
			"actor": "16505551234@s.whatsapp.net"}},
		{"io.wahook.group.join.requested", group, map[string]any{"participants": []any{"4915123456789@s.whatsapp.net"}}},
		{"io.wahook.group.join.revoked", group, map[string]any{"participants": []any{"4915123456789@s.whatsapp.net"}}},
		{"io.wahook.group.subject.changed", group, map[string]any{"participants": none, "subject": "Order 1234 support (closed)"}},
		{"io.wahook.group.icon.changed", group, map[string]any{"participants": none}},
		{"io.wahook.group.settings.changed", group, map[string]any{"participants": none,
			"setting": map[string]any{"name": "suspended", "value": "true"}}},
		{"io.wahook.group.deleted", group, map[string]any{"participants": none}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("group-notification mismatch (-want +got):\n%s", diff)
	}
}
