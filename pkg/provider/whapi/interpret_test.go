package whapi

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/provider"
)

const (
	contact = "919984351847@s.whatsapp.net"
	group   = "120363271212442249@g.us"
)

var fixtureFacts = map[string]fact.Facts{
	"calls.post_initiated.json": {Calls: []fact.Call{{CallID: "ED3D9B4864F90327F10D24BAEED6CFB9", Chat: contact, From: contact, State: fact.CallOffered, Status: "initiated", PerCall: true}}},
	"calls.post_ringing.json":   {Calls: []fact.Call{{CallID: "ED3D9B4864F90327F10D24BAEED6CFB9", Chat: contact, From: contact, State: fact.CallOffered, Status: "ringing", PerCall: true}}},
	"calls.post_missed.json":    {Calls: []fact.Call{{CallID: "ED3D9B4864F90327F10D24BAEED6CFB9", Chat: contact, From: contact, State: fact.CallMissed, Status: "missed"}}},

	"channel.post_health-init.json":   {},
	"channel.post_health-launch.json": {},
	"channel.post_health-qr.json":     {},
	"chats.delete.json":               {},

	"chats.patch_label-assigned.json": {LabelSets: []fact.LabelSet{{
		Chat:   "120363398750933550@g.us",
		Before: []fact.Label{},
		After:  []fact.Label{{ID: "76", Name: "New order", Color: "gold"}},
	}}},
	"chats.patch_label-removed.json": {LabelSets: []fact.LabelSet{{
		Chat:   "120363398750933550@g.us",
		Before: []fact.Label{{ID: "76", Name: "New order", Color: "gold"}},
		After:  []fact.Label{},
	}}},
	"chats.patch_mute-and-labels.json": {LabelSets: []fact.LabelSet{{
		Chat:   contact,
		Before: []fact.Label{},
		After:  []fact.Label{{ID: "3", Name: "Pending payment", Color: "salmon"}},
	}}},

	"chats.post_incoming-new-chat.json": {ChatsCreated: []fact.ChatCreated{{Chat: contact, Direction: fact.Incoming}}},
	"chats.post_outgoing-new-chat.json": {ChatsCreated: []fact.ChatCreated{{Chat: contact}}},
	"contacts.post.json":                {},

	"groups.post_new-group.json": {
		ChatsCreated: []fact.ChatCreated{{Chat: group, Name: "Group name! 😃"}},
		Groups: []fact.GroupChange{{
			Chat: group, Change: fact.GroupCreated, Participants: []string{"61371989950", "919984351847"},
			Actor: "919984351847", Subject: "Group name! 😃",
		}},
	},
	"groups.put_participant-add.json": {Groups: []fact.GroupChange{{Chat: group, Change: fact.GroupParticipantsAdded, Participants: []string{"61280155346"}}}},

	"labels.delete.json": {LabelDeletes: []fact.LabelRef{{Name: "New order"}}},
	"labels.post.json":   {LabelUpserts: []fact.Label{{ID: "76", Name: "Order complete", Color: "lightsteelblue"}}},

	// Whapi tells chat creations itself: a message feeds nothing.
	"messages.post_action-ephemeral.json": {},
	"messages.post_group-text.json":       {},
	"messages.post_incoming-text.json":    {},
	"messages.post_outgoing-api.json":     {},
	"messages.post_outgoing-mobile.json":  {},

	"presences.post_online.json":       {},
	"presences.post_recording.json":    {},
	"presences.post_typing.json":       {},
	"statuses.post_delivered.json":     {},
	"statuses.post_read-incoming.json": {},
	"statuses.post_read.json":          {},
	"users.post.json":                  {},
}

func TestInterpretFixtures(t *testing.T) {
	names := fixtures(t)
	if len(names) != len(fixtureFacts) {
		t.Errorf("testdata has %d fixtures, the table %d: every fixture needs a row", len(names), len(fixtureFacts))
	}
	p := New()
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			want, ok := fixtureFacts[name]
			if !ok {
				t.Fatalf("no expectation for %s", name)
			}
			items := split(t, load(t, name), provider.Delivery{})
			if len(items) != 1 {
				t.Fatalf("Split(%s) = %d items, want 1", name, len(items))
			}
			got, err := p.Interpret(items[0].Kind, items[0].Data)
			if err != nil {
				t.Fatalf("Interpret(%s) error: %v", name, err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Interpret(%s) mismatch (-want +got):\n%s", name, diff)
			}
		})
	}
}

func TestInterpretCases(t *testing.T) {
	for name, tc := range map[string]struct {
		kind string
		give string
		want fact.Facts
	}{
		// chats.patch
		"chats.patch without labels in changes": {
			kind: "chats.patch",
			give: `{"before_update":{"id":"1@s.whatsapp.net","labels":[{"id":"1"}]},"after_update":{"id":"1@s.whatsapp.net","mute":true},"changes":["mute","mute_until"]}`,
		},
		"chats.patch story from a contact": {
			kind: "chats.patch",
			give: `{"before_update":{"id":"status@broadcast","type":"broadcast","timestamp":1735220224},"after_update":{"id":"status@broadcast","type":"broadcast","timestamp":1735220295},"changes":["last_message","unread","timestamp"]}`,
		},
		"chats.patch numeric label ids, both lists": {
			kind: "chats.patch",
			give: `{"before_update":{"id":"1@s.whatsapp.net","labels":[{"id":3,"name":"A","color":"salmon"},{"id":"4","name":"B","color":"gold"}]},
				"after_update":{"id":"1@s.whatsapp.net","labels":[{"id":4,"name":"B","color":"gold"},{"id":"5","name":"C","color":"#AABBCC"}]},"changes":["labels"]}`,
			want: fact.Facts{LabelSets: []fact.LabelSet{{
				Chat:   "1@s.whatsapp.net",
				Before: []fact.Label{{ID: "3", Name: "A", Color: "salmon"}, {ID: "4", Name: "B", Color: "gold"}},
				After:  []fact.Label{{ID: "4", Name: "B", Color: "gold"}, {ID: "5", Name: "C", Color: "#AABBCC", ColorHex: "#AABBCC"}},
			}}},
		},
		"chats.patch null labels": {
			kind: "chats.patch",
			give: `{"before_update":{"id":"1@s.whatsapp.net","labels":null},"after_update":{"id":"1@s.whatsapp.net","labels":["7"]},"changes":["labels"]}`,
			want: fact.Facts{LabelSets: []fact.LabelSet{{Chat: "1@s.whatsapp.net", Before: []fact.Label{}, After: []fact.Label{{ID: "7"}}}}},
		},

		// chats.post
		"chats.post named, outgoing first message": {
			kind: "chats.post",
			give: `{"id":"1@s.whatsapp.net","name":"Jonathan","type":"contact","last_message":{"id":"x","from_me":true}}`,
			want: fact.Facts{ChatsCreated: []fact.ChatCreated{{Chat: "1@s.whatsapp.net", Name: "Jonathan", Direction: fact.Outgoing}}},
		},
		"chats.post incoming by last message": {
			kind: "chats.post",
			give: `{"id":"1@s.whatsapp.net","unread":0,"last_message":{"id":"x","from_me":false}}`,
			want: fact.Facts{ChatsCreated: []fact.ChatCreated{{Chat: "1@s.whatsapp.net", Direction: fact.Incoming}}},
		},
		"chats.post unread as a string": {
			kind: "chats.post",
			give: `{"id":"1@s.whatsapp.net","unread":"2","last_message":{"from_me":true}}`,
			want: fact.Facts{ChatsCreated: []fact.ChatCreated{{Chat: "1@s.whatsapp.net", Direction: fact.Incoming}}},
		},
		"chats.put tells nothing": {kind: "chats.put", give: `{"id":"1@s.whatsapp.net","unread":1}`},

		// groups.put
		"groups.put remove": {
			kind: "groups.put",
			give: `{"group_id":"120363271212442249@g.us","participants":["61280155346"],"action":"remove"}`,
			want: fact.Facts{Groups: []fact.GroupChange{{Chat: group, Change: fact.GroupParticipantsRemoved, Participants: []string{"61280155346"}}}},
		},
		"groups.put promote two": {
			kind: "groups.put",
			give: `{"group_id":"120363271212442249@g.us","participants":["61280155346","61371989950"],"action":"promote"}`,
			want: fact.Facts{Groups: []fact.GroupChange{{Chat: group, Change: fact.GroupParticipantsPromote, Participants: []string{"61280155346", "61371989950"}}}},
		},
		"groups.put demote": {
			kind: "groups.put",
			give: `{"group_id":"120363271212442249@g.us","participants":["61280155346"],"action":"demote"}`,
			want: fact.Facts{Groups: []fact.GroupChange{{Chat: group, Change: fact.GroupParticipantsDemote, Participants: []string{"61280155346"}}}},
		},
		"groups.put request": {
			kind: "groups.put",
			give: `{"group_id":"120363271212442249@g.us","participants":["61280155346"],"action":"request"}`,
			want: fact.Facts{Groups: []fact.GroupChange{{Chat: group, Change: fact.GroupJoinRequested, Participants: []string{"61280155346"}}}},
		},
		"groups.put revoke_request": {
			kind: "groups.put",
			give: `{"group_id":"120363271212442249@g.us","participants":["61280155346"],"action":"revoke_request"}`,
			want: fact.Facts{Groups: []fact.GroupChange{{Chat: group, Change: fact.GroupJoinRevoked, Participants: []string{"61280155346"}}}},
		},
		"groups.put rejected_request": {
			kind: "groups.put",
			give: `{"group_id":"120363271212442249@g.us","participants":["61280155346"],"action":"rejected_request"}`,
			want: fact.Facts{Groups: []fact.GroupChange{{Chat: group, Change: fact.GroupJoinRejected, Participants: []string{"61280155346"}}}},
		},
		"groups.put leave, participants as objects": {
			kind: "groups.put",
			give: `{"group_id":"120363271212442249@g.us","participants":[{"id":"61280155346","rank":"member"}],"action":"leave"}`,
			want: fact.Facts{Groups: []fact.GroupChange{{Chat: group, Change: fact.GroupParticipantsLeft, Participants: []string{"61280155346"}}}},
		},
		"groups.put null action tells nothing": {
			kind: "groups.put",
			give: `{"group_id":"120363271212442249@g.us","participants":["61280155346"],"action":null}`,
		},

		// groups.patch
		"groups.patch subject": {
			kind: "groups.patch",
			give: `{"before_update":{"id":"120363271212442249@g.us","name":"Old"},"after_update":{"id":"120363271212442249@g.us","name":"New","name_owner":"919984351847","name_at":1713791999},"changes":["name","name_at","name_owner"]}`,
			want: fact.Facts{Groups: []fact.GroupChange{{Chat: group, Change: fact.GroupSubjectChanged, Subject: "New", Actor: "919984351847"}}},
		},
		"groups.patch description": {
			kind: "groups.patch",
			give: `{"before_update":{"id":"120363271212442249@g.us"},"after_update":{"id":"120363271212442249@g.us","description":"Rules","description_owner":"61371989950","description_id":"D1"},"changes":["description","description_owner","description_id"]}`,
			want: fact.Facts{Groups: []fact.GroupChange{{Chat: group, Change: fact.GroupDescriptionChanged, Description: "Rules", Actor: "61371989950"}}},
		},
		"groups.patch icon once": {
			kind: "groups.patch",
			give: `{"before_update":{"id":"120363271212442249@g.us"},"after_update":{"id":"120363271212442249@g.us","chat_pic":"https://x/p.jpg","chat_pic_full":"https://x/f.jpg"},"changes":["chat_pic","chat_pic_full"]}`,
			want: fact.Facts{Groups: []fact.GroupChange{{Chat: group, Change: fact.GroupIconChanged}}},
		},
		"groups.patch settings, absent means false": {
			kind: "groups.patch",
			give: `{"before_update":{"id":"120363271212442249@g.us","restricted":true},"after_update":{"id":"120363271212442249@g.us","announcements":true,"ephemeral":86400},"changes":["announcements","restricted","ephemeral","participants"]}`,
			want: fact.Facts{Groups: []fact.GroupChange{
				{Chat: group, Change: fact.GroupSettingsChanged, Setting: &fact.Setting{Name: "announcements", Value: "true"}},
				{Chat: group, Change: fact.GroupSettingsChanged, Setting: &fact.Setting{Name: "restricted", Value: "false"}},
				{Chat: group, Change: fact.GroupSettingsChanged, Setting: &fact.Setting{Name: "ephemeral", Value: "86400"}},
			}},
		},
		"groups.patch with nothing of interest": {
			kind: "groups.patch",
			give: `{"before_update":{"id":"120363271212442249@g.us"},"after_update":{"id":"120363271212442249@g.us"},"changes":["participants_count","invite_code"]}`,
		},

		// labels
		"labels.post numeric id": {
			kind: "labels.post",
			give: `{"id":5,"name":"VIP","color":"gold","count":3}`,
			want: fact.Facts{LabelUpserts: []fact.Label{{ID: "5", Name: "VIP", Color: "gold"}}},
		},
		"labels.delete by id": {
			kind: "labels.delete",
			give: `"76"`,
			want: fact.Facts{LabelDeletes: []fact.LabelRef{{ID: "76"}}},
		},
		"labels.delete by numeric id": {
			kind: "labels.delete",
			give: `76`,
			want: fact.Facts{LabelDeletes: []fact.LabelRef{{ID: "76"}}},
		},
		"labels.delete as a label object": {
			kind: "labels.delete",
			give: `{"id":"76","name":"New order"}`,
			want: fact.Facts{LabelDeletes: []fact.LabelRef{{ID: "76", Name: "New order"}}},
		},

		// calls
		"calls.post answered": {
			kind: "calls.post",
			give: `{"id":"9A8D1BC9430628934B085167CC0AF026","from":"919984351847@s.whatsapp.net","chat_id":"61371989950@s.whatsapp.net","status":"answered","timestamp":1713792568000,"group_call":false,"video_call":false,"offline_call":false}`,
			want: fact.Facts{Calls: []fact.Call{{CallID: "9A8D1BC9430628934B085167CC0AF026", Chat: "61371989950@s.whatsapp.net", From: contact, State: fact.CallAccepted, Status: "answered"}}},
		},
		// groups.post (Group in Whapi's OpenAPI 1.8.7: created_at, created_by,
		// timestamp; groups.post_new-group.json is a creation, created_at =
		// timestamp). Added to a group created earlier: joined.
		"groups.post added to an existing group": {
			kind: "groups.post",
			give: `{"id":"120363271212442249@g.us","name":"Old group","type":"group","timestamp":1713791253,` +
				`"participants":[{"id":"61371989950","rank":"creator"},{"id":"919984351847","rank":"member"}],"created_at":1700000000,"created_by":"61371989950"}`,
			want: fact.Facts{
				ChatsCreated: []fact.ChatCreated{{Chat: group, Name: "Old group"}},
				Groups:       []fact.GroupChange{{Chat: group, Change: fact.GroupJoined, Subject: "Old group"}},
			},
		},
		"groups.post created within the window": {
			kind: "groups.post",
			give: `{"id":"120363271212442249@g.us","name":"G","timestamp":1713791313,"created_at":1713791253,"created_by":"919984351847"}`,
			want: fact.Facts{
				ChatsCreated: []fact.ChatCreated{{Chat: group, Name: "G"}},
				Groups:       []fact.GroupChange{{Chat: group, Change: fact.GroupCreated, Actor: "919984351847", Subject: "G"}},
			},
		},
		"groups.post one second past the window is joined": {
			kind: "groups.post",
			give: `{"id":"120363271212442249@g.us","name":"G","timestamp":1713791314000,"created_at":1713791253,"created_by":"919984351847"}`,
			want: fact.Facts{
				ChatsCreated: []fact.ChatCreated{{Chat: group, Name: "G"}},
				Groups:       []fact.GroupChange{{Chat: group, Change: fact.GroupJoined, Subject: "G"}},
			},
		},
		"groups.post without created_at is the creation": {
			kind: "groups.post",
			give: `{"id":"120363271212442249@g.us","name":"G","timestamp":1713791314,"created_by":"919984351847"}`,
			want: fact.Facts{
				ChatsCreated: []fact.ChatCreated{{Chat: group, Name: "G"}},
				Groups:       []fact.GroupChange{{Chat: group, Change: fact.GroupCreated, Actor: "919984351847", Subject: "G"}},
			},
		},
		"calls.post video ringing": {
			kind: "calls.post",
			give: `{"id":"5FC111DE89BCE0BD3401A2718382B314","from":"919984351847@s.whatsapp.net","chat_id":"919984351847@s.whatsapp.net","status":"ringing","timestamp":1713792526000,"group_call":false,"video_call":true,"offline_call":false}`,
			want: fact.Facts{Calls: []fact.Call{{CallID: "5FC111DE89BCE0BD3401A2718382B314", Chat: contact, From: contact, Video: true, State: fact.CallOffered, Status: "ringing", PerCall: true}}},
		},
		"calls.post canceled group call": {
			kind: "calls.post",
			give: `{"id":"C1","from":"919984351847@s.whatsapp.net","chat_id":"120363271212442249@g.us","status":"canceled","group_call":true}`,
			want: fact.Facts{Calls: []fact.Call{{CallID: "C1", Chat: group, From: contact, Group: true, State: fact.CallEnded, Status: "canceled"}}},
		},
		"calls.post rejected, chat from from": {
			kind: "calls.post",
			give: `{"id":"C1","from":"919984351847@s.whatsapp.net","status":"rejected"}`,
			want: fact.Facts{Calls: []fact.Call{{CallID: "C1", Chat: contact, From: contact, State: fact.CallRejected, Status: "rejected"}}},
		},
		"calls.post unknown status tells nothing": {
			kind: "calls.post",
			give: `{"id":"C1","from":"919984351847@s.whatsapp.net","status":"transferred"}`,
		},

		// kinds that feed nothing; messages too: Whapi tells chat
		// creations itself (chats.post), none is inferred from a message
		"messages.put":    {kind: "messages.put", give: `{"id":"A","from_me":true,"chat_id":"120363271212442249@g.us","chat_name":"Team"}`},
		"messages.post":   {kind: "messages.post", give: `{"id":"A","chat_id":"120363271212442249@g.us"}`},
		"statuses.put":    {kind: "statuses.put", give: `{"id":"A","status":"read"}`},
		"messages.patch":  {kind: "messages.patch", give: `{"id":"A","changes":["text"]}`},
		"messages.delete": {kind: "messages.delete", give: `"A"`},
		"contacts.patch":  {kind: "contacts.patch", give: `{"before_update":{},"after_update":{},"changes":[]}`},
		"channel.patch":   {kind: "channel.patch", give: `{"status":"OK"}`},
		"users.delete":    {kind: "users.delete", give: `{"id":"61371989950"}`},
		"unknown":         {kind: provider.KindUnknown, give: `[1,2]`},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := New().Interpret(tc.kind, []byte(tc.give))
			if err != nil {
				t.Fatalf("Interpret(%s, %s) error: %v", tc.kind, tc.give, err)
			}
			derivetest.CheckFacts(t, New(), tc.kind, got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Interpret(%s, %s) mismatch (-want +got):\n%s", tc.kind, tc.give, diff)
			}
		})
	}
}

func TestInterpretInvalid(t *testing.T) {
	for name, tc := range map[string]struct{ kind, give string }{
		"not JSON":                  {"messages.post", `{"id":`},
		"not JSON, kind unknown":    {provider.KindUnknown, `nope`},
		"chat update as a string":   {"chats.patch", `"1@s.whatsapp.net"`},
		"label change without chat": {"chats.patch", `{"before_update":{},"after_update":{"labels":[]},"changes":["labels"]}`},
		"new chat without id":       {"chats.post", `{"name":"x"}`},
		"new group without id":      {"groups.post", `{"name":"x"}`},
		"participants without id":   {"groups.put", `{"participants":["1"],"action":"add"}`},
		"group update without id":   {"groups.patch", `{"before_update":{},"after_update":{},"changes":["name"]}`},
		"label without id":          {"labels.post", `{"name":"x"}`},
		"label as a string":         {"labels.post", `"76"`},
		"removed label empty":       {"labels.delete", `""`},
		"removed label null":        {"labels.delete", `null`},
		"call without id":           {"calls.post", `{"status":"ringing"}`},
		"call as a number":          {"calls.post", `1`},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := New().Interpret(tc.kind, []byte(tc.give))
			if !errors.Is(err, provider.ErrInvalid) {
				t.Errorf("Interpret(%s, %s) = %+v, %v; want an error wrapping ErrInvalid", tc.kind, tc.give, got, err)
			}
		})
	}
}
