package evolution

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/provider"
)

// TestInterpretFixtures: the facts of each fixture (origins in
// testdata/README.md).
func TestInterpretFixtures(t *testing.T) {
	const (
		maria = "5511988887777@s.whatsapp.net"
		me    = "5511999990000@s.whatsapp.net"
		vip   = "120363041234567890@g.us"
		joao  = "5511944443333@s.whatsapp.net"
	)
	for name, want := range map[string]fact.Facts{
		"messages.upsert.json": {ChatsSeen: []fact.ChatSeen{{Chat: maria, Name: "Maria Souza", Direction: fact.Incoming}}},
		// A group is not named after whoever wrote in it.
		"messages.upsert_outgoing-group.json": {ChatsSeen: []fact.ChatSeen{{Chat: vip, Direction: fact.Outgoing}}},
		"labels.edit.json":                    {LabelUpserts: []fact.Label{{ID: "7", Name: "Novo cliente", Color: "gold", ColorHex: "#ffd429"}}},
		"labels.edit_deleted.json":            {LabelDeletes: []fact.LabelRef{{ID: "7", Name: "Novo cliente"}}},
		"labels.association_add.json":         {LabelAssocs: []fact.LabelAssoc{{Chat: maria, Label: fact.Label{ID: "7"}, Assigned: true}}},
		"labels.association_remove.json":      {LabelAssocs: []fact.LabelAssoc{{Chat: maria, Label: fact.Label{ID: "7"}}}},
		"call_offer.json": {Calls: []fact.Call{{CallID: "2B1C8F3E7D6A5B4C3D2E1F0A9B8C7D6E", Chat: maria, From: maria,
			State: fact.CallOffered, Status: "offer"}}},
		"call_timeout.json": {Calls: []fact.Call{{CallID: "2B1C8F3E7D6A5B4C3D2E1F0A9B8C7D6E", Chat: maria, From: maria,
			State: fact.CallMissed, Status: "timeout"}}},
		// The caller's phone-number form beside its @lid.
		"call_terminate-video-lid.json": {Calls: []fact.Call{{CallID: "9F8E7D6C5B4A39281706F5E4D3C2B1A0", Chat: "201234567890123@lid",
			From: "5511977776666@s.whatsapp.net", ChatPhone: "5511977776666@s.whatsapp.net", Video: true, State: fact.CallEnded, Status: "terminate"}},
			Aliases: []fact.Alias{{LID: "201234567890123@lid", Phone: "5511977776666@s.whatsapp.net"}}},
		"groups.upsert.json": {
			ChatsCreated: []fact.ChatCreated{{Chat: vip, Name: "Clientes VIP"}},
			Groups:       []fact.GroupChange{{Chat: vip, Change: fact.GroupCreated, Subject: "Clientes VIP", Actor: me}},
		},
		"groups.upsert_joined.json": {
			ChatsCreated: []fact.ChatCreated{{Chat: "120363059876543210@g.us", Name: "Fornecedores"}},
			Groups: []fact.GroupChange{{Chat: "120363059876543210@g.us", Change: fact.GroupJoined, Subject: "Fornecedores",
				Actor: "5511966665555@s.whatsapp.net"}},
		},
		"groups.update.json": {Groups: []fact.GroupChange{
			{Chat: vip, Change: fact.GroupSubjectChanged, Subject: "Clientes VIP 2025", Actor: me},
			{Chat: vip, Change: fact.GroupSettingsChanged, Setting: &fact.Setting{Name: "announce", Value: "true"}, Actor: me},
		}},
		"group-participants.update_add.json": {Groups: []fact.GroupChange{{Chat: vip, Change: fact.GroupParticipantsAdded,
			Participants: []string{joao}, Actor: me}}},
		"group-participants.update_leave.json": {Groups: []fact.GroupChange{{Chat: vip, Change: fact.GroupParticipantsLeft,
			Participants: []string{joao}, Actor: joao}}},
		"group-participants.update_promote.json": {Groups: []fact.GroupChange{{Chat: vip, Change: fact.GroupParticipantsPromote,
			Participants: []string{maria}, Actor: me}}},
		"chats.upsert.json":       {ChatsCreated: []fact.ChatCreated{{Chat: "5511933332222@s.whatsapp.net", Name: "Carla", Repeated: true}}},
		"chats.upsert_empty.json": {},
		"connection.update.json":  {},
	} {
		t.Run(name, func(t *testing.T) {
			items, err := New().Split(load(t, name), provider.Delivery{Method: "POST"})
			if err != nil {
				t.Fatalf("Split: %v", err)
			}
			got, err := New().Interpret(items[0].Kind, items[0].Data)
			if err != nil {
				t.Fatalf("Interpret: %v", err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Interpret(%s) mismatch (-want +got):\n%s", name, diff)
			}
		})
	}
}

// TestInterpretShapes: shapes beside the fixtures.
func TestInterpretShapes(t *testing.T) {
	const g = "1@g.us"
	for _, tc := range []struct {
		name, kind, data string
		want             fact.Facts
	}{
		{"removed by an admin", KindGroupParticipantsUpdate,
			`{"id":"1@g.us","author":"2@s.whatsapp.net","participants":["3@s.whatsapp.net"],"action":"remove"}`,
			fact.Facts{Groups: []fact.GroupChange{{Chat: g, Change: fact.GroupParticipantsRemoved, Participants: []string{"3@s.whatsapp.net"}, Actor: "2@s.whatsapp.net"}}}},
		{"left, participant objects with lid author", KindGroupParticipantsUpdate,
			`{"id":"1@g.us","author":"9@lid","participants":[{"id":"9@lid","phoneNumber":"3@s.whatsapp.net","admin":null}],"action":"remove"}`,
			fact.Facts{Groups: []fact.GroupChange{{Chat: g, Change: fact.GroupParticipantsLeft, Participants: []string{"3@s.whatsapp.net"}, Actor: "9@lid"}},
				Aliases: []fact.Alias{{LID: "9@lid", Phone: "3@s.whatsapp.net"}}}},
		{"demote", KindGroupParticipantsUpdate, `{"id":"1@g.us","participants":["3@s.whatsapp.net"],"action":"demote"}`,
			fact.Facts{Groups: []fact.GroupChange{{Chat: g, Change: fact.GroupParticipantsDemote, Participants: []string{"3@s.whatsapp.net"}}}}},
		{"modify is no change", KindGroupParticipantsUpdate, `{"id":"1@g.us","participants":["3@s.whatsapp.net"],"action":"modify"}`, fact.Facts{}},
		{"group call", KindCall, `{"chatId":"5@s.whatsapp.net","from":"5@s.whatsapp.net","isGroup":true,"groupJid":"1@g.us","id":"C","status":"ringing","isVideo":true}`,
			fact.Facts{Calls: []fact.Call{{CallID: "C", Chat: g, From: "5@s.whatsapp.net", Video: true, Group: true, State: fact.CallOffered, Status: "ringing"}}}},
		{"accept", KindCall, `{"from":"5@s.whatsapp.net","id":"C","status":"accept"}`,
			fact.Facts{Calls: []fact.Call{{CallID: "C", Chat: "5@s.whatsapp.net", From: "5@s.whatsapp.net", State: fact.CallAccepted, Status: "accept"}}}},
		{"reject in an array", KindCall, `[{"from":"5@s.whatsapp.net","id":"C","status":"reject"}]`,
			fact.Facts{Calls: []fact.Call{{CallID: "C", Chat: "5@s.whatsapp.net", From: "5@s.whatsapp.net", State: fact.CallRejected, Status: "reject"}}}},
		{"unknown call status", KindCall, `{"from":"5@s.whatsapp.net","id":"C","status":"preaccept"}`, fact.Facts{}},
		{"label colour outside the palette", KindLabelsEdit, `{"id":"3","name":"X","color":25,"deleted":false}`,
			fact.Facts{LabelUpserts: []fact.Label{{ID: "3", Name: "X", Color: "25"}}}},
		{"label colour 19", KindLabelsEdit, `{"id":"3","name":"X","color":19}`,
			fact.Facts{LabelUpserts: []fact.Label{{ID: "3", Name: "X", Color: "rebeccapurple", ColorHex: "#9368cf"}}}},
		{"group description and settings", KindGroupsUpdate, `[{"id":"1@g.us","desc":"D","restrict":false,"memberAddMode":true,"joinApprovalMode":false}]`,
			fact.Facts{Groups: []fact.GroupChange{
				{Chat: g, Change: fact.GroupDescriptionChanged, Description: "D"},
				{Chat: g, Change: fact.GroupSettingsChanged, Setting: &fact.Setting{Name: "restrict", Value: "false"}},
				{Chat: g, Change: fact.GroupSettingsChanged, Setting: &fact.Setting{Name: "memberAddMode", Value: "true"}},
				{Chat: g, Change: fact.GroupSettingsChanged, Setting: &fact.Setting{Name: "joinApprovalMode", Value: "false"}},
			}}},
		{"@lid chat with remoteJidAlt", KindMessagesUpsert, `{"key":{"remoteJid":"27@lid","remoteJidAlt":"5@s.whatsapp.net","fromMe":false,"id":"A"},"pushName":"P"}`,
			fact.Facts{ChatsSeen: []fact.ChatSeen{{Chat: "5@s.whatsapp.net", Name: "P", Direction: fact.Incoming, LID: "27@lid"}},
				Aliases: []fact.Alias{{LID: "27@lid", Phone: "5@s.whatsapp.net"}}}},
		{"@lid chat with senderPn", KindMessagesUpsert, `{"key":{"remoteJid":"27@lid","senderPn":"5@s.whatsapp.net","fromMe":true,"id":"A"}}`,
			fact.Facts{ChatsSeen: []fact.ChatSeen{{Chat: "5@s.whatsapp.net", Direction: fact.Outgoing, LID: "27@lid"}},
				Aliases: []fact.Alias{{LID: "27@lid", Phone: "5@s.whatsapp.net"}}}},
		{"@lid chat alone", KindMessagesUpsert, `{"key":{"remoteJid":"27@lid","remoteJidAlt":"x@lid","id":"A"}}`,
			fact.Facts{ChatsSeen: []fact.ChatSeen{{Chat: "27@lid"}}}},
		// Baileys v7 WAMessageKey (participantAlt) and v6.8 (participantPn,
		// senderLid): a group sender's and a phone-form chat's other form.
		{"group message with participantAlt", KindMessagesUpsert,
			`{"key":{"remoteJid":"1@g.us","participant":"27@lid","participantAlt":"5@s.whatsapp.net","fromMe":false,"id":"A"}}`,
			fact.Facts{ChatsSeen: []fact.ChatSeen{{Chat: g, Direction: fact.Incoming}}, Aliases: []fact.Alias{{LID: "27@lid", Phone: "5@s.whatsapp.net"}}}},
		{"group message with participantPn", KindMessagesUpsert,
			`{"key":{"remoteJid":"1@g.us","participant":"27@lid","participantPn":"5@s.whatsapp.net","id":"A"}}`,
			fact.Facts{ChatsSeen: []fact.ChatSeen{{Chat: g}}, Aliases: []fact.Alias{{LID: "27@lid", Phone: "5@s.whatsapp.net"}}}},
		{"phone chat with senderLid", KindMessagesUpsert,
			`{"key":{"remoteJid":"5@s.whatsapp.net","senderLid":"27@lid","fromMe":true,"id":"A"}}`,
			fact.Facts{ChatsSeen: []fact.ChatSeen{{Chat: "5@s.whatsapp.net", Direction: fact.Outgoing}}, Aliases: []fact.Alias{{LID: "27@lid", Phone: "5@s.whatsapp.net"}}}},
		{"story with participantAlt: only the alias", KindMessagesUpsert,
			`{"key":{"remoteJid":"status@broadcast","participant":"27@lid","participantAlt":"5@s.whatsapp.net","id":"A"}}`,
			fact.Facts{Aliases: []fact.Alias{{LID: "27@lid", Phone: "5@s.whatsapp.net"}}}},
		{"participants as JIDs with participantsData", KindGroupParticipantsUpdate,
			`{"id":"1@g.us","participants":["9@lid"],"participantsData":[{"jid":"9@lid","phoneNumber":"3@s.whatsapp.net"}],"action":"add"}`,
			fact.Facts{Groups: []fact.GroupChange{{Chat: g, Change: fact.GroupParticipantsAdded, Participants: []string{"9@lid"}}},
				Aliases: []fact.Alias{{LID: "9@lid", Phone: "3@s.whatsapp.net"}}}},
		{"participantsData of another shape tells nothing", KindGroupParticipantsUpdate,
			`{"id":"1@g.us","participants":["9@lid"],"participantsData":"x","action":"add"}`,
			fact.Facts{Groups: []fact.GroupChange{{Chat: g, Change: fact.GroupParticipantsAdded, Participants: []string{"9@lid"}}}}},
		{"status broadcast is no chat", KindMessagesUpsert, `{"key":{"remoteJid":"status@broadcast","fromMe":false,"id":"A"}}`, fact.Facts{}},
		{"send.message", KindSendMessage, `{"key":{"remoteJid":"5@s.whatsapp.net","fromMe":true,"id":"A"},"messageTimestamp":"1749564201"}`,
			fact.Facts{ChatsSeen: []fact.ChatSeen{{Chat: "5@s.whatsapp.net", Direction: fact.Outgoing}}}},
		{"chats.upsert with two", KindChatsUpsert, `[{"remoteJid":"5@s.whatsapp.net"},{"remoteJid":"6@s.whatsapp.net","name":"B"},{"unreadMessages":1}]`,
			fact.Facts{ChatsCreated: []fact.ChatCreated{{Chat: "5@s.whatsapp.net", Repeated: true}, {Chat: "6@s.whatsapp.net", Name: "B", Repeated: true}}}},
		{"raw-only kind", KindPresenceUpdate, `{"id":"5@s.whatsapp.net"}`, fact.Facts{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := `{"event":"` + tc.kind + `","instance":"i","data":` + tc.data + `,"sender":"0@s.whatsapp.net"}`
			got, err := New().Interpret(tc.kind, []byte(body))
			if err != nil {
				t.Fatalf("Interpret: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Interpret(%s) mismatch (-want +got):\n%s", tc.data, diff)
			}
		})
	}
}

func TestInterpretInvalid(t *testing.T) {
	for _, tc := range []struct{ kind, data string }{
		{KindLabelsEdit, `{"name":"no id"}`},
		{KindLabelsEdit, `[{"id":"1"}]`},
		{KindLabelsAssociation, `{"type":"add","chatId":"5@s.whatsapp.net"}`},
		{KindLabelsAssociation, `{"type":"toggle","chatId":"5@s.whatsapp.net","labelId":"1"}`},
		{KindCall, `{"from":"5@s.whatsapp.net","status":"offer"}`},
		{KindGroupsUpsert, `[{"subject":"no id"}]`},
		{KindGroupParticipantsUpdate, `{"action":"add"}`},
		{KindMessagesUpsert, `{"key":{"id":"A"}}`},
		{KindMessagesUpsert, `"text"`},
	} {
		body := `{"event":"` + tc.kind + `","instance":"i","data":` + tc.data + `}`
		if _, err := New().Interpret(tc.kind, []byte(body)); !errors.Is(err, provider.ErrInvalid) {
			t.Errorf("Interpret(%s, %s) = %v, want ErrInvalid", tc.kind, tc.data, err)
		}
	}
	if _, err := New().Interpret(KindCall, []byte(`not json`)); !errors.Is(err, provider.ErrInvalid) {
		t.Errorf("Interpret of a non-object = %v, want ErrInvalid", err)
	}
}

// TestPalette: the colours follow WhatsApp's 20, as Whapi names them.
func TestPalette(t *testing.T) {
	seen := map[string]bool{}
	for i, c := range palette {
		if c.name == "" || len(c.hex) != 7 || c.hex[0] != '#' || seen[c.name] || seen[c.hex] {
			t.Errorf("palette[%d] = %+v: empty, malformed or repeated", i, c)
		}
		seen[c.name], seen[c.hex] = true, true
	}
	if palette[0].hex != "#ff9485" || palette[0].name != "salmon" {
		t.Errorf("palette[0] = %+v, want salmon #ff9485 (WAHA's colour 0)", palette[0])
	}
}
