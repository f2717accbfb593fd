package waha_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/waha"
)

// interpret splits body and interprets its one item.
func interpret(t *testing.T, body []byte) (fact.Facts, error) {
	t.Helper()
	p := waha.New()
	items, err := p.Split(body, provider.Delivery{Method: "POST"})
	if err != nil {
		t.Fatalf("Split: %v", err)
	}
	if len(items) != 1 {
		t.Fatalf("Split: %d items, want 1", len(items))
	}
	f, err := p.Interpret(items[0].Kind, items[0].Data)
	if err == nil {
		derivetest.CheckFacts(t, p, items[0].Kind, f)
	}
	return f, err
}

func TestInterpretFixtures(t *testing.T) {
	const contact, group = "11111111111@c.us", "1234567890@g.us"
	want := map[string]fact.Facts{
		"call.accepted.json": {Calls: []fact.Call{{CallID: "call_12345", State: fact.CallAccepted, Status: "call.accepted"}}},
		"call.received.json": {Calls: []fact.Call{{
			CallID: "call_12345", Chat: contact, From: contact, State: fact.CallOffered, Status: "call.received",
		}}},
		"chat.archive.json": {},
		"group.v2.participants.json": {Groups: []fact.GroupChange{{
			Chat: group, Change: fact.GroupParticipantsPromote, Participants: []string{contact},
		}}},
		"group.v2.update.json": {Groups: []fact.GroupChange{
			{Chat: group, Change: fact.GroupSubjectChanged, Subject: "New Group Name"},
			{Chat: group, Change: fact.GroupDescriptionChanged, Description: "Updated description text"},
		}},
		"label.chat.added.json": {LabelAssocs: []fact.LabelAssoc{{Chat: contact, Label: fact.Label{ID: "1"}, Assigned: true}}},
		"label.upsert.json": {LabelUpserts: []fact.Label{{
			ID: "1", Name: "New Customer", Color: "#DFE5E7", ColorHex: "#DFE5E7",
		}}},
		"message.ack.json":                            {},
		"message.edited.json":                         {},
		"message.json":                                {ChatsSeen: []fact.ChatSeen{{Chat: contact, Direction: fact.Outgoing}}},
		"message.reaction.json":                       {},
		"presence.update.json":                        {},
		"session.status.json":                         {},
		"session.status_lifecycle-guide-variant.json": {},
	}
	for _, name := range fixtures(t) {
		t.Run(name, func(t *testing.T) {
			w, ok := want[name]
			if !ok {
				t.Fatalf("no expectation for %s", name)
			}
			got, err := interpret(t, load(t, name))
			if err != nil {
				t.Fatalf("Interpret(%s): %v", name, err)
			}
			if diff := cmp.Diff(w, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Interpret(%s) mismatch (-want +got):\n%s", name, diff)
			}
		})
	}
}

// wrap puts a payload in a WAHA envelope of the given event.
func wrap(event, payload string) []byte {
	return []byte(`{"id":"evt_01TEST","timestamp":1634567890123,"session":"default","engine":"GOWS","event":"` +
		event + `","payload":` + payload + `,"me":{"id":"5500@c.us","pushName":"Me"}}`)
}

func TestInterpret(t *testing.T) {
	const (
		alice = "5511@c.us"
		bob   = "5522@c.us"
		admin = "5599@c.us"
		grp   = "120363000000000001@g.us"
	)
	for name, tc := range map[string]struct {
		event, payload string
		want           fact.Facts
	}{
		// Labels.
		"label.upsert waha: the payload is the label, color an index": {
			"label.upsert", `{"id":"5","name":"Lead","color":0,"colorHex":"#ff9485"}`,
			fact.Facts{LabelUpserts: []fact.Label{{ID: "5", Name: "Lead", Color: "0", ColorHex: "#ff9485"}}},
		},
		"label.upsert wawp: wrapped, hex color, numeric id": {
			"label.upsert", `{"label":{"id":7,"name":"VIP","color":"#00a0f2"}}`,
			fact.Facts{LabelUpserts: []fact.Label{{ID: "7", Name: "VIP", Color: "#00a0f2", ColorHex: "#00a0f2"}}},
		},
		"label.deleted wawp": {
			"label.deleted", `{"labelId":"3"}`,
			fact.Facts{LabelDeletes: []fact.LabelRef{{ID: "3"}}},
		},
		"label.deleted waha: the payload is the label": {
			"label.deleted", `{"id":"3","name":"Lead","color":0,"colorHex":"#ff9485"}`,
			fact.Facts{LabelDeletes: []fact.LabelRef{{ID: "3", Name: "Lead"}}},
		},
		"label.chat.added waha with label": {
			"label.chat.added", `{"labelId":"1","label":{"id":"1","name":"New Customer","color":0,"colorHex":"#ff9485"},"chatId":"` + alice + `"}`,
			fact.Facts{LabelAssocs: []fact.LabelAssoc{{
				Chat: alice, Label: fact.Label{ID: "1", Name: "New Customer", Color: "0", ColorHex: "#ff9485"}, Assigned: true,
			}}},
		},
		"label.chat.deleted waha, label null": {
			"label.chat.deleted", `{"labelId":"1","label":null,"chatId":"` + alice + `"}`,
			fact.Facts{LabelAssocs: []fact.LabelAssoc{{Chat: alice, Label: fact.Label{ID: "1"}}}},
		},
		"label.chat.deleted wawp": {
			"label.chat.deleted", `{"chatId":"` + grp + `","labelId":"2"}`,
			fact.Facts{LabelAssocs: []fact.LabelAssoc{{Chat: grp, Label: fact.Label{ID: "2"}}}},
		},

		// Calls.
		"call.received waha": {
			"call.received", `{"id":"ABCDEFG","from":"` + alice + `","timestamp":1666943582,"isVideo":true,"isGroup":true}`,
			fact.Facts{Calls: []fact.Call{{
				CallID: "ABCDEFG", Chat: alice, From: alice, Video: true, Group: true, State: fact.CallOffered, Status: "call.received",
			}}},
		},
		"call.accepted waha": {
			"call.accepted", `{"id":"ABCDEFG","from":"` + alice + `","timestamp":1666943582,"isVideo":false,"isGroup":false}`,
			fact.Facts{Calls: []fact.Call{{CallID: "ABCDEFG", Chat: alice, From: alice, State: fact.CallAccepted, Status: "call.accepted"}}},
		},
		"call.rejected waha": {
			"call.rejected", `{"id":"ABCDEFG","from":"` + alice + `","timestamp":1666943582,"isVideo":"true","isGroup":false}`,
			fact.Facts{Calls: []fact.Call{{
				CallID: "ABCDEFG", Chat: alice, From: alice, Video: true, State: fact.CallRejected, Status: "call.rejected",
			}}},
		},
		"call.rejected wawp": {
			"call.rejected", `{"id":"call_12345"}`,
			fact.Facts{Calls: []fact.Call{{CallID: "call_12345", State: fact.CallRejected, Status: "call.rejected"}}},
		},

		// Groups.
		"group.v2.join waha": {
			"group.v2.join", `{"timestamp":1666943582,"group":{"id":"` + grp + `","subject":"Team","description":"d","invite":"https://chat.whatsapp.com/X",` +
				`"membersCanAddNewMember":true,"membersCanSendMessages":true,"newMembersApprovalRequired":false,` +
				`"participants":[{"id":"1@lid","pn":"` + admin + `","role":"superadmin"}]},"_data":{}}`,
			fact.Facts{
				ChatsCreated: []fact.ChatCreated{{Chat: grp, Name: "Team"}},
				Groups:       []fact.GroupChange{{Chat: grp, Change: fact.GroupJoined, Subject: "Team"}},
			},
		},
		"group.v2.join wawp-style flat": {
			"group.v2.join", `{"chatId":"` + grp + `","subject":"Team"}`,
			fact.Facts{
				ChatsCreated: []fact.ChatCreated{{Chat: grp, Name: "Team"}},
				Groups:       []fact.GroupChange{{Chat: grp, Change: fact.GroupJoined, Subject: "Team"}},
			},
		},
		"group.v2.leave waha": {
			"group.v2.leave", `{"timestamp":1666943582,"group":{"id":"` + grp + `"},"_data":{}}`,
			fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupParticipantsLeft, Participants: []string{"5500@c.us"}}}},
		},
		"group.v2.leave wawp": {
			"group.v2.leave", `{"chatId":"` + grp + `","participants":{"0":"` + alice + `"}}`,
			fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupParticipantsLeft, Participants: []string{alice}}}},
		},
		"group.v2.update waha partial (gows)": {
			"group.v2.update", `{"timestamp":1666943582000,"group":{"id":"` + grp + `","subject":"New name","membersCanSendMessages":false},"_data":{"JID":"` + grp + `"}}`,
			fact.Facts{Groups: []fact.GroupChange{
				{Chat: grp, Change: fact.GroupSubjectChanged, Subject: "New name"},
				{Chat: grp, Change: fact.GroupSettingsChanged, Setting: &fact.Setting{Name: "membersCanSendMessages", Value: "false"}},
			}},
		},
		"group.v2.update wawp with settings": {
			"group.v2.update", `{"chatId":"` + grp + `","description":"","announce":true}`,
			fact.Facts{Groups: []fact.GroupChange{
				{Chat: grp, Change: fact.GroupDescriptionChanged},
				{Chat: grp, Change: fact.GroupSettingsChanged, Setting: &fact.Setting{Name: "announce", Value: "true"}},
			}},
		},
		"group.v2.participants waha join prefers pn": {
			"group.v2.participants", `{"group":{"id":"` + grp + `"},"type":"join","timestamp":1666943582,` +
				`"participants":[{"id":"9001@lid","pn":"` + alice + `","role":"participant"},{"id":"` + bob + `","pn":null,"role":"participant"}],"_data":{}}`,
			fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupParticipantsAdded, Participants: []string{alice, bob}}}, Aliases: []fact.Alias{{LID: "9001@lid", Phone: "5511@s.whatsapp.net"}}},
		},
		"group.v2.participants waha leave": {
			"group.v2.participants", `{"group":{"id":"` + grp + `"},"type":"leave","participants":[{"id":"` + alice + `","role":"left"}]}`,
			fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupParticipantsLeft, Participants: []string{alice}}}},
		},
		"group.v2.participants webjs remove is a removal": {
			"group.v2.participants", `{"group":{"id":"` + grp + `"},"type":"leave","participants":[{"id":"` + alice + `","pn":"` + alice + `","role":"left"}],` +
				`"_data":{"type":"remove","author":"` + admin + `","recipientIds":["` + alice + `"]}}`,
			fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupParticipantsRemoved, Participants: []string{alice}, Actor: admin}}},
		},
		"group.v2.participants webjs leave": {
			"group.v2.participants", `{"group":{"id":"` + grp + `"},"type":"leave","participants":[{"id":"` + alice + `","role":"left"}],` +
				`"_data":{"type":"leave","author":"` + alice + `"}}`,
			fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupParticipantsLeft, Participants: []string{alice}, Actor: alice}}},
		},
		"group.v2.participants noweb remove by an admin": {
			"group.v2.participants", `{"group":{"id":"` + grp + `"},"type":"leave","participants":[{"id":"9001@lid","pn":"` + alice + `","role":"left"}],` +
				`"_data":{"id":"` + grp + `","author":"9009@lid","participants":["9001@lid"],"action":"remove"}}`,
			fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupParticipantsRemoved, Participants: []string{alice}, Actor: "9009@lid"}}, Aliases: []fact.Alias{{LID: "9001@lid", Phone: "5511@s.whatsapp.net"}}},
		},
		"group.v2.participants noweb remove by themselves (lid author)": {
			"group.v2.participants", `{"group":{"id":"` + grp + `"},"type":"leave","participants":[{"id":"9001@lid","pn":"` + alice + `","role":"left"}],` +
				`"_data":{"id":"` + grp + `","author":"9001@lid","participants":["9001@lid"],"action":"remove"}}`,
			fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupParticipantsLeft, Participants: []string{alice}, Actor: "9001@lid"}}, Aliases: []fact.Alias{{LID: "9001@lid", Phone: "5511@s.whatsapp.net"}}},
		},
		"group.v2.participants waha promote": {
			"group.v2.participants", `{"group":{"id":"` + grp + `"},"type":"promote","participants":[{"id":"` + bob + `","role":"admin"}]}`,
			fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupParticipantsPromote, Participants: []string{bob}}}},
		},
		"group.v2.participants waha demote": {
			"group.v2.participants", `{"group":{"id":"` + grp + `"},"type":"demote","participants":[{"id":"` + bob + `","role":"participant"}]}`,
			fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupParticipantsDemote, Participants: []string{bob}}}},
		},
		"group.v2.participants wawp add, several": {
			"group.v2.participants", `{"chatId":"` + grp + `","action":"add","participants":{"1":"` + bob + `","0":"` + alice + `"}}`,
			fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupParticipantsAdded, Participants: []string{alice, bob}}}},
		},
		"group.v2.participants wawp remove, array": {
			"group.v2.participants", `{"chatId":"` + grp + `","action":"remove","participants":["` + alice + `"]}`,
			fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupParticipantsRemoved, Participants: []string{alice}}}},
		},
		"group.v2.participants wawp demote": {
			"group.v2.participants", `{"chatId":"` + grp + `","action":"demote","participants":{"0":"` + alice + `"}}`,
			fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupParticipantsDemote, Participants: []string{alice}}}},
		},
		"group.v2.participants unknown action tells nothing": {
			"group.v2.participants", `{"chatId":"` + grp + `","action":"modify","participants":[]}`,
			fact.Facts{},
		},
		"group.join v1 (webjs notification)": {
			"group.join", `{"id":{"fromMe":false,"remote":"` + grp + `","id":"N1","_serialized":"false_` + grp + `_N1"},"body":"","type":"add",` +
				`"timestamp":1666943582,"chatId":"` + grp + `","author":"` + admin + `","recipientIds":["` + alice + `"]}`,
			fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupParticipantsAdded, Participants: []string{alice}, Actor: admin}}},
		},
		"group.leave v1 removal": {
			"group.leave", `{"id":{"remote":"` + grp + `","_serialized":"false_` + grp + `_N2"},"type":"remove","author":"` + admin + `","recipientIds":["` + alice + `"]}`,
			fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupParticipantsRemoved, Participants: []string{alice}, Actor: admin}}},
		},
		"group.leave v1 leave": {
			"group.leave", `{"chatId":"` + grp + `","type":"leave","author":"` + alice + `","recipientIds":["` + alice + `"]}`,
			fact.Facts{Groups: []fact.GroupChange{{Chat: grp, Change: fact.GroupParticipantsLeft, Participants: []string{alice}, Actor: alice}}},
		},
		"group.join v1 of another shape tells nothing": {
			"group.join", `{"something":"else"}`,
			fact.Facts{},
		},

		// Messages.
		"message waha incoming": {
			"message", `{"id":"false_` + alice + `_AAA","timestamp":1666943582,"from":"` + alice + `","fromMe":false,"source":"app","to":"5500@c.us","body":"hi","hasMedia":false,"_data":{"notifyName":"Alice"}}`,
			fact.Facts{ChatsSeen: []fact.ChatSeen{{Chat: alice, Direction: fact.Incoming}}},
		},
		"message.any waha outgoing": {
			"message.any", `{"id":"true_` + alice + `_AAA","timestamp":1666943582,"from":"5500@c.us","fromMe":true,"source":"api","to":"` + alice + `","body":"hi"}`,
			fact.Facts{ChatsSeen: []fact.ChatSeen{{Chat: alice, Direction: fact.Outgoing}}},
		},
		"message in a group": {
			"message", `{"id":"false_` + grp + `_AAA_` + alice + `","from":"` + grp + `","participant":"` + alice + `","fromMe":false,"to":"5500@c.us"}`,
			fact.Facts{ChatsSeen: []fact.ChatSeen{{Chat: grp, Direction: fact.Incoming}}},
		},
		"message without fromMe": {
			"message", `{"id":"x","from":"` + alice + `"}`,
			fact.Facts{ChatsSeen: []fact.ChatSeen{{Chat: alice}}},
		},
		"status broadcast is no chat": {
			"message", `{"id":"false_status@broadcast_AAA_` + alice + `","from":"status@broadcast","participant":"` + alice + `","fromMe":false}`,
			fact.Facts{},
		},

		// Kinds that feed no derived stream.
		"chat.archive": {"chat.archive", `{"id":"` + alice + `","archived":true,"timestamp":1666943582}`, fact.Facts{}},
		"message.ack":  {"message.ack", `{"id":"true_` + alice + `_AAA","ack":3}`, fact.Facts{}},
		"message.reaction": {
			"message.reaction", `{"id":"false_` + alice + `_R","from":"` + alice + `","reaction":{"text":"👍","messageId":"true_` + alice + `_AAA"}}`, fact.Facts{},
		},
		"poll.vote":      {"poll.vote", `{"vote":{"id":"v"},"poll":{"id":"p"}}`, fact.Facts{}},
		"session.status": {"session.status", `{"name":"default","status":"WORKING"}`, fact.Facts{}},
		"unknown":        {"group.v2.participants.future", `{"group":{"id":"` + grp + `"},"action":"created"}`, fact.Facts{}},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := interpret(t, wrap(tc.event, tc.payload))
			if err != nil {
				t.Fatalf("Interpret(%s, %s): %v", tc.event, tc.payload, err)
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Interpret(%s, %s) mismatch (-want +got):\n%s", tc.event, tc.payload, diff)
			}
		})
	}
}

func TestInterpretInvalid(t *testing.T) {
	for name, tc := range map[string]struct{ kind, data string }{
		"not json":                  {waha.KindLabelUpsert, `label`},
		"array":                     {waha.KindLabelUpsert, `[]`},
		"string":                    {waha.KindMessage, `"message"`},
		"no payload":                {waha.KindLabelUpsert, `{"event":"label.upsert"}`},
		"payload not an object":     {waha.KindCallReceived, `{"event":"call.received","payload":"call"}`},
		"label without id":          {waha.KindLabelUpsert, `{"event":"label.upsert","payload":{"label":{"name":"x"}}}`},
		"label not an object":       {waha.KindLabelUpsert, `{"event":"label.upsert","payload":{"label":"x"}}`},
		"label.deleted without id":  {waha.KindLabelDeleted, `{"event":"label.deleted","payload":{}}`},
		"association without chat":  {waha.KindLabelChatAdded, `{"event":"label.chat.added","payload":{"labelId":"1"}}`},
		"association without label": {waha.KindLabelChatDeleted, `{"event":"label.chat.deleted","payload":{"chatId":"1@c.us"}}`},
		"call without id":           {waha.KindCallAccepted, `{"event":"call.accepted","payload":{"from":"1@c.us"}}`},
		"group without id":          {waha.KindGroupV2Update, `{"event":"group.v2.update","payload":{"group":{"subject":"x"}}}`},
		"group not an object":       {waha.KindGroupV2Join, `{"event":"group.v2.join","payload":{"group":"1@g.us"}}`},
		"message without chat":      {waha.KindMessageAny, `{"event":"message.any","payload":{"id":"x","fromMe":true}}`},
		"wrong field type":          {waha.KindLabelChatAdded, `{"event":"label.chat.added","payload":{"chatId":{"a":1},"labelId":"1"}}`},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := waha.New().Interpret(tc.kind, []byte(tc.data))
			if !errors.Is(err, provider.ErrInvalid) {
				t.Fatalf("Interpret(%s, %s) = %+v, %v; want an error wrapping ErrInvalid", tc.kind, tc.data, got, err)
			}
		})
	}
}
