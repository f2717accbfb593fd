package group_test

import (
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/derive/group"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/provider/meta"
	"github.com/wahook/wahook/pkg/provider/waha"
	"github.com/wahook/wahook/pkg/provider/whapi"
	"github.com/wahook/wahook/pkg/provider/zapi"
)

func fixture(provider, name string) string {
	return filepath.Join("..", "..", "provider", provider, "testdata", name)
}

// grp is a group as an event names it.
type grp struct{ id, raw string }

func ptr(s string) *string { return &s }

// event is the group event of change on g; data's participants default to
// none, the id part after the group is the setting's name.
func event(raw derive.Raw, change string, g grp, data group.Data) derive.Event {
	data.Common = derive.Common{
		Provider:      raw.Provider,
		Channel:       raw.Channel,
		OccurredAt:    raw.Time.UTC().Format(time.RFC3339Nano),
		SourceEventID: raw.ID,
	}
	data.ChatRef = derive.ChatRef{ChatID: g.id, ChatIDRaw: g.raw, ChatType: "group"}
	if data.Participants == nil {
		data.Participants = []string{}
	}
	parts := []string{derive.GroupNotification, change, g.id}
	if data.Setting != nil {
		parts = append(parts, data.Setting.Name)
	}
	return derive.Event{
		ID:      derive.ID(raw.ID, parts...),
		Stream:  derive.GroupNotification,
		Type:    "io.wahook.group." + change,
		Subject: g.id,
		Chat:    g.id,
		Data:    data,
	}
}

func TestStream(t *testing.T) {
	if got := (group.Deriver{}).Stream(); got != derive.GroupNotification {
		t.Errorf("Stream() = %q, want %q", got, derive.GroupNotification)
	}
}

type row struct {
	name string
	in   derivetest.Input
	want func(raw derive.Raw) []derive.Event
}

func run(t *testing.T, rows []row) {
	t.Helper()
	for _, tc := range rows {
		t.Run(tc.name, func(t *testing.T) {
			got := derivetest.Derive(t, group.Deriver{}, tc.in)
			if diff := cmp.Diff(tc.want(tc.in.Raw), got); diff != "" {
				t.Errorf("Derive mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(got, derivetest.Derive(t, group.Deriver{}, tc.in)); diff != "" {
				t.Errorf("Derive reprocessed mismatch (-first +again):\n%s", diff)
			}
		})
	}
}

func whapiBody(collection, typ, event, item string) []byte {
	return fmt.Appendf(nil, `{%q:[%s],"event":{"type":%q,"event":%q},"channel_id":"MANTIS-M72HC"}`, collection, item, typ, event)
}

func TestWhapi(t *testing.T) {
	p := whapi.New()
	g := grp{"120363271212442249@g.us", "120363271212442249@g.us"}
	const member = "61280155346@s.whatsapp.net"
	rows := []row{
		{"groups.post (fixture)", derivetest.Fixture(t, p, fixture("whapi", "groups.post_new-group.json"))[0], func(raw derive.Raw) []derive.Event {
			return []derive.Event{event(raw, fact.GroupCreated, g, group.Data{
				Participants: []string{"61371989950@s.whatsapp.net", "919984351847@s.whatsapp.net"},
				Actor:        "919984351847@s.whatsapp.net",
				Subject:      ptr("Group name! 😃"),
			})}
		}},
		{"groups.put add (fixture)", derivetest.Fixture(t, p, fixture("whapi", "groups.put_participant-add.json"))[0], func(raw derive.Raw) []derive.Event {
			return []derive.Event{event(raw, fact.GroupParticipantsAdded, g, group.Data{Participants: []string{member}})}
		}},
	}
	for action, change := range map[string]string{
		"remove":           fact.GroupParticipantsRemoved,
		"leave":            fact.GroupParticipantsLeft,
		"promote":          fact.GroupParticipantsPromote,
		"demote":           fact.GroupParticipantsDemote,
		"request":          fact.GroupJoinRequested,
		"revoke_request":   fact.GroupJoinRevoked,
		"rejected_request": fact.GroupJoinRejected,
	} {
		rows = append(rows, row{"groups.put " + action, derivetest.One(t, p, whapiBody("groups_participants", "groups", "put",
			`{"group_id":"120363271212442249@g.us","participants":["61280155346","61280155346@s.whatsapp.net","61371989950"],"action":"`+action+`"}`)),
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{event(raw, change, g, group.Data{Participants: []string{member, "61371989950@s.whatsapp.net"}})}
			}})
	}
	rows = append(rows,
		row{"groups.patch subject, description and a setting", derivetest.One(t, p, whapiBody("groups_updates", "groups", "patch", `{
			"before_update":{"id":"120363271212442249@g.us","name":"Old","description":"Old rules"},
			"after_update":{"id":"120363271212442249@g.us","name":"New","name_owner":"919984351847","description_owner":"61371989950","announcements":true},
			"changes":["name","name_owner","description","description_owner","announcements"]}`)),
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{
					event(raw, fact.GroupSubjectChanged, g, group.Data{Subject: ptr("New"), Actor: "919984351847@s.whatsapp.net"}),
					// Whapi leaves out empty fields: the description was cleared.
					event(raw, fact.GroupDescriptionChanged, g, group.Data{Description: ptr(""), Actor: "61371989950@s.whatsapp.net"}),
					event(raw, fact.GroupSettingsChanged, g, group.Data{Setting: &group.Setting{Name: "announcements", Value: "true"}}),
				}
			}},
		row{"groups.patch icon", derivetest.One(t, p, whapiBody("groups_updates", "groups", "patch", `{
			"before_update":{"id":"120363271212442249@g.us","chat_pic":"https://a"},
			"after_update":{"id":"120363271212442249@g.us","chat_pic":"https://b"},"changes":["chat_pic"]}`)),
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{event(raw, fact.GroupIconChanged, g, group.Data{})}
			}},
	)
	run(t, rows)
}

// zapiNotification is a Z-API group notification on group 120363019502650977.
func zapiNotification(notification, params, extra string) []byte {
	return fmt.Appendf(nil, `{"isGroup":true,"instanceId":"I1","messageId":"M-%s","phone":"120363019502650977-group",
		"connectedPhone":"5544999999999","fromMe":false,"momment":1682017970000,"chatName":"Team","participantPhone":"5544977777777",
		"type":"ReceivedCallback","notification":%q,"notificationParameters":%s%s}`, notification, notification, params, extra)
}

func TestZapi(t *testing.T) {
	p := zapi.New()
	fg := grp{"5544999999999@g.us", "5544999999999-group"}
	g := grp{"120363019502650977@g.us", "120363019502650977-group"}
	const actor = "5544977777777@s.whatsapp.net"
	run(t, []row{
		{"MEMBERSHIP_APPROVAL_REQUEST invite_link (fixture)", derivetest.Fixture(t, p, fixture("zapi", "ReceivedCallback_notification-MEMBERSHIP_APPROVAL_REQUEST-invite_link.json"))[0],
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{event(raw, fact.GroupJoinRequested, fg, group.Data{
					Participants: []string{"5544999999999@s.whatsapp.net"}, Actor: "5544999999999@s.whatsapp.net", RequestMethod: "invite_link",
				})}
			}},
		{"MEMBERSHIP_APPROVAL_REQUEST non_admin_add (fixture)", derivetest.Fixture(t, p, fixture("zapi", "ReceivedCallback_notification-MEMBERSHIP_APPROVAL_REQUEST-non_admin_add.json"))[0],
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{event(raw, fact.GroupJoinRequested, fg, group.Data{
					// The adder (participantPhone) is the actor, not a requester.
					Participants: []string{"5544888888888@s.whatsapp.net"},
					Actor:        "5544999999999@s.whatsapp.net", RequestMethod: "non_admin_add",
				})}
			}},
		{"REVOKED_MEMBERSHIP_REQUESTS (fixture)", derivetest.Fixture(t, p, fixture("zapi", "ReceivedCallback_notification-REVOKED_MEMBERSHIP_REQUESTS.json"))[0],
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{event(raw, fact.GroupJoinRevoked, fg, group.Data{
					Participants: []string{"5544999999999@s.whatsapp.net"}, Actor: "5544999999999@s.whatsapp.net",
				})}
			}},
		{"GROUP_MEMBER_LINK_PROPERTY_UPDATE (fixture)", derivetest.Fixture(t, p, fixture("zapi", "ReceivedCallback_notification-GROUP_MEMBER_LINK_PROPERTY_UPDATE-admin.json"))[0],
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{event(raw, fact.GroupSettingsChanged, grp{"120363423529374305@g.us", "120363423529374305-group"}, group.Data{
					Actor: "5544999999999@s.whatsapp.net", Setting: &group.Setting{Name: "member_link_mode", Value: "ADMIN_LINK"},
				})}
			}},
		{"GROUP_PARTICIPANT_ADD with a hidden id", derivetest.One(t, p, zapiNotification("GROUP_PARTICIPANT_ADD", `["253438017437856@lid","5511988887777"]`, "")),
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{event(raw, fact.GroupParticipantsAdded, g, group.Data{
					Participants: []string{"253438017437856@lid", "5511988887777@s.whatsapp.net"}, Actor: actor,
				})}
			}},
		{"GROUP_PARTICIPANT_LEAVE", derivetest.One(t, p, zapiNotification("GROUP_PARTICIPANT_LEAVE", `["5544977777777"]`, "")),
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{event(raw, fact.GroupParticipantsLeft, g, group.Data{Participants: []string{actor}, Actor: actor})}
			}},
		{"GROUP_CREATE", derivetest.One(t, p, zapiNotification("GROUP_CREATE", `["Team"]`, "")),
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{event(raw, fact.GroupCreated, g, group.Data{Actor: actor, Subject: ptr("Team")})}
			}},
		{"GROUP_CHANGE_SUBJECT", derivetest.One(t, p, zapiNotification("GROUP_CHANGE_SUBJECT", `["New team"]`, "")),
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{event(raw, fact.GroupSubjectChanged, g, group.Data{Actor: actor, Subject: ptr("New team")})}
			}},
		{"GROUP_CHANGE_DESCRIPTION cleared", derivetest.One(t, p, zapiNotification("GROUP_CHANGE_DESCRIPTION", `[]`, "")),
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{event(raw, fact.GroupDescriptionChanged, g, group.Data{Actor: actor, Description: ptr("")})}
			}},
		{"GROUP_CHANGE_ANNOUNCE", derivetest.One(t, p, zapiNotification("GROUP_CHANGE_ANNOUNCE", `["on"]`, "")),
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{event(raw, fact.GroupSettingsChanged, g, group.Data{Actor: actor, Setting: &group.Setting{Name: "announcements", Value: "on"}})}
			}},
		{"GROUP_PARTICIPANT_INVITE", derivetest.One(t, p, zapiNotification("GROUP_PARTICIPANT_INVITE", `["5511988887777"]`, "")),
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{event(raw, fact.GroupParticipantsAdded, g, group.Data{
					Participants: []string{"5511988887777@s.whatsapp.net"}, Actor: actor, RequestMethod: "invite_link",
				})}
			}},
	})
}

func wahaBody(id, event, payload string) []byte {
	return wahaBodyOn("NOWEB", id, event, payload)
}

func wahaBodyOn(engine, id, event, payload string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"timestamp":1666943582000,"session":"default","engine":%q,"event":%q,"payload":%s,"me":{"id":"5511933333333@c.us"}}`,
		id, engine, event, payload)
}

func TestWaha(t *testing.T) {
	p := waha.New()
	fg := grp{"1234567890@g.us", "1234567890@g.us"}
	g := grp{"120363019502650977@g.us", "120363019502650977@g.us"}
	const alice, bob, admin = "5511911111111@s.whatsapp.net", "5511922222222@s.whatsapp.net", "5511900000000@s.whatsapp.net"
	run(t, []row{
		{"group.v2.participants promote (Wawp fixture)", derivetest.Fixture(t, p, fixture("waha", "group.v2.participants.json"))[0],
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{event(raw, fact.GroupParticipantsPromote, fg, group.Data{Participants: []string{"11111111111@s.whatsapp.net"}})}
			}},
		{"group.v2.update (Wawp fixture)", derivetest.Fixture(t, p, fixture("waha", "group.v2.update.json"))[0],
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{
					event(raw, fact.GroupSubjectChanged, fg, group.Data{Subject: ptr("New Group Name")}),
					event(raw, fact.GroupDescriptionChanged, fg, group.Data{Description: ptr("Updated description text")}),
				}
			}},
		{"group.v2.participants join (WAHA engine)", derivetest.One(t, p, wahaBody("evt_1", "group.v2.participants",
			`{"group":{"id":"`+g.id+`"},"type":"join","timestamp":1666943582,"participants":[{"id":"9001@lid","pn":"5511911111111@c.us","role":"participant"},`+
				`{"id":"5511922222222@c.us","pn":null,"role":"participant"}],"_data":{}}`)),
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{event(raw, fact.GroupParticipantsAdded, g, group.Data{Participants: []string{alice, bob}})}
			}},
		{"group.v2.participants removed by an admin (WAHA engine)", derivetest.One(t, p, wahaBody("evt_2", "group.v2.participants",
			`{"group":{"id":"`+g.id+`"},"type":"leave","participants":[{"id":"9001@lid","pn":"5511911111111@c.us","role":"left"}],`+
				`"_data":{"id":"`+g.id+`","author":"9009@lid","participants":["9001@lid"],"action":"remove"}}`)),
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{event(raw, fact.GroupParticipantsRemoved, g, group.Data{Participants: []string{alice}, Actor: "9009@lid"})}
			}},
		{"group.v2.participants demote (WAHA engine)", derivetest.One(t, p, wahaBody("evt_3", "group.v2.participants",
			`{"group":{"id":"`+g.id+`"},"type":"demote","participants":[{"id":"5511922222222@c.us","role":"participant"}]}`)),
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{event(raw, fact.GroupParticipantsDemote, g, group.Data{Participants: []string{bob}})}
			}},
		{"group.v2.update settings (WAHA engine, partial)", derivetest.One(t, p, wahaBody("evt_4", "group.v2.update",
			`{"timestamp":1666943582000,"group":{"id":"`+g.id+`","subject":"New name","membersCanSendMessages":false,"announce":true}}`)),
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{
					event(raw, fact.GroupSubjectChanged, g, group.Data{Subject: ptr("New name")}),
					// NOWEB's membersCanSendMessages is the raw announce flag.
					event(raw, fact.GroupSettingsChanged, g, group.Data{Setting: &group.Setting{Name: "membersCanSendMessages", Value: "true"}}),
					event(raw, fact.GroupSettingsChanged, g, group.Data{Setting: &group.Setting{Name: "announce", Value: "true"}}),
				}
			}},
		{"group.v2.update picture (WAHA webjs)", derivetest.One(t, p, wahaBodyOn("WEBJS", "evt_5", "group.v2.update",
			`{"group":{"id":"`+g.id+`","subject":"Team","description":""},"_data":{"type":"picture","author":"5511900000000@c.us"}}`)),
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{event(raw, fact.GroupIconChanged, g, group.Data{Actor: admin})}
			}},
		{"group.v2.join (WAHA engine)", derivetest.One(t, p, wahaBody("evt_6", "group.v2.join",
			`{"timestamp":1666943582,"group":{"id":"`+g.id+`","subject":"Team","participants":[{"id":"1@lid","pn":"5511900000000@c.us","role":"superadmin"}]},"_data":{}}`)),
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{event(raw, fact.GroupJoined, g, group.Data{Subject: ptr("Team")})}
			}},
		{"group.v2.leave (WAHA engine): the participant is me", derivetest.One(t, p, wahaBody("evt_7", "group.v2.leave", `{"timestamp":1666943582,"group":{"id":"`+g.id+`"},"_data":{}}`)),
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{event(raw, fact.GroupParticipantsLeft, g, group.Data{Participants: []string{"5511933333333@s.whatsapp.net"}})}
			}},
		{"group.v2.leave (GOWS): removed by an admin", derivetest.One(t, p, wahaBodyOn("GOWS", "evt_10", "group.v2.leave",
			`{"group":{"id":"`+g.id+`"},"_data":{"JID":"`+g.id+`","Sender":"5511900000000@s.whatsapp.net","Leave":["5511933333333@s.whatsapp.net"]}}`)),
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{event(raw, fact.GroupParticipantsRemoved, g, group.Data{Participants: []string{"5511933333333@s.whatsapp.net"}, Actor: admin})}
			}},
		{"group.v2.participants.join-request (GOWS)", derivetest.One(t, p, wahaBodyOn("GOWS", "evt_11", "group.v2.participants.join-request",
			`{"group":{"id":"`+g.id+`"},"action":"created","requesterId":"9001@lid","requesterPn":"5511911111111@c.us","requestMethod":"invite_link","_data":{"JID":"`+g.id+`","Sender":"9001@lid"}}`)),
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{event(raw, fact.GroupJoinRequested, g, group.Data{Participants: []string{alice}, Actor: "9001@lid", RequestMethod: "invite_link"})}
			}},
		{"group.v2.leave (Wawp doc shape)", derivetest.One(t, p, wahaBody("evt_8", "group.v2.leave", `{"chatId":"`+g.id+`","participants":{"0":"5511911111111@c.us"}}`)),
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{event(raw, fact.GroupParticipantsLeft, g, group.Data{Participants: []string{alice}})}
			}},
		{"group.v2.participants add (Wawp doc shape)", derivetest.One(t, p, wahaBody("evt_9", "group.v2.participants",
			`{"chatId":"`+g.id+`","action":"add","participants":{"1":"5511922222222@c.us","0":"5511911111111@c.us"}}`)),
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{event(raw, fact.GroupParticipantsAdded, g, group.Data{Participants: []string{alice, bob}})}
			}},
	})
}

func TestDeriveFacts(t *testing.T) {
	raw := derive.Raw{ID: "r1", Provider: "p", Channel: "C1", Time: time.Date(2024, 4, 22, 13, 27, 33, 0, time.UTC)}
	g := grp{"120363019502650977@g.us", "120363019502650977-group"}
	got := derivetest.Derive(t, group.Deriver{}, derivetest.Input{Raw: raw, Facts: fact.Facts{Groups: []fact.GroupChange{
		{Chat: g.raw, Change: fact.GroupParticipantsAdded, Participants: []string{"1"}},
		{Chat: g.raw, Change: fact.GroupParticipantsAdded, Participants: []string{"2", "", " "}},
		{Chat: g.raw, Change: "ephemeral.changed", Description: "kept when given"},
	}}})
	second := event(raw, fact.GroupParticipantsAdded, g, group.Data{Participants: []string{"2@s.whatsapp.net"}})
	// The second alike change keeps apart by its place.
	second.ID = derive.ID(raw.ID, derive.GroupNotification, fact.GroupParticipantsAdded, g.id, "#"+strconv.Itoa(2))
	want := []derive.Event{
		event(raw, fact.GroupParticipantsAdded, g, group.Data{Participants: []string{"1@s.whatsapp.net"}}),
		second,
		event(raw, "ephemeral.changed", g, group.Data{Description: ptr("kept when given")}),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Derive mismatch (-want +got):\n%s", diff)
	}

	for name, f := range map[string]fact.GroupChange{
		"no group":             {Change: fact.GroupCreated},
		"no change":            {Chat: g.raw},
		"setting without name": {Chat: g.raw, Change: fact.GroupSettingsChanged, Setting: &fact.Setting{Value: "x"}},
	} {
		if _, err := (group.Deriver{}).Derive(t.Context(), raw, fact.Facts{Groups: []fact.GroupChange{f}}); !broker.IsPermanent(err) {
			t.Errorf("%s: Derive error = %v, want a permanent error", name, err)
		}
	}
}

// TestMeta: Meta's Groups API names groups by opaque ids (no chat type);
// a group deleted is io.wahook.group.deleted.
func TestMeta(t *testing.T) {
	p := meta.New()
	const gid = "Y2FwaV9ncm91cDoxNTU1MDc4Mzg4MToxMjAzNjMzOTY0OTQyODY4MjQ"
	opaque := func(ev derive.Event) derive.Event {
		d := ev.Data.(group.Data)
		d.ChatType = ""
		ev.Data = d
		return ev
	}
	g := grp{gid, gid}
	run(t, []row{
		{"group_lifecycle_update delete (fixture)", derivetest.Fixture(t, p, fixture("meta", "groups_delete.json"))[0], func(raw derive.Raw) []derive.Event {
			return []derive.Event{opaque(event(raw, fact.GroupDeleted, g, group.Data{}))}
		}},
		{"group_participants_update leave (fixture)", derivetest.Fixture(t, p, fixture("meta", "groups_participants_leave.json"))[0], func(raw derive.Raw) []derive.Event {
			return []derive.Event{opaque(event(raw, fact.GroupParticipantsLeft, g, group.Data{
				Participants: []string{"16505551234@s.whatsapp.net"}, Actor: "16505551234@s.whatsapp.net",
			}))}
		}},
	})
}
