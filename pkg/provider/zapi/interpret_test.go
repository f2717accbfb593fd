package zapi

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/provider"
)

func seen(chat, name, direction string) []fact.ChatSeen {
	return []fact.ChatSeen{{Chat: chat, Name: name, Direction: direction}}
}

func interpret(t *testing.T, kind string, data []byte) fact.Facts {
	t.Helper()
	got, err := New().Interpret(kind, data)
	if err != nil {
		t.Fatalf("Interpret(%s, %s) error: %v", kind, data, err)
	}
	derivetest.CheckFacts(t, New(), kind, got)
	return got
}

// TestInterpretFixtures interprets every fixture as Split names it; fixtures
// missing from the table must give no facts (statuses, presence, connection,
// channel roles, payments, profile changes).
func TestInterpretFixtures(t *testing.T) {
	const one = "5544999999999"
	in := func(name string) fact.Facts { return fact.Facts{ChatsSeen: seen(one, name, fact.Incoming)} }
	want := map[string]fact.Facts{
		"DeliveryCallback.json":                         {ChatsSeen: seen("554499999999", "", fact.Outgoing)},
		"ReceivedCallback_audio.json":                   in("name"),
		"ReceivedCallback_broadcast-list.json":          {ChatsSeen: seen("1774895799-broadcast", "", fact.Outgoing)},
		"ReceivedCallback_buttons-response.json":        in("Nome"),
		"ReceivedCallback_buttons-with-image.json":      {ChatsSeen: seen("554499999999", "name", fact.Incoming)},
		"ReceivedCallback_buttons-with-video.json":      {ChatsSeen: seen("554499999999", "name", fact.Incoming)},
		"ReceivedCallback_cart-order.json":              in("name"),
		"ReceivedCallback_contact.json":                 in("name"),
		"ReceivedCallback_document.json":                in("name"),
		"ReceivedCallback_event.json":                   {ChatsSeen: seen("120363019502650977-group", "name", fact.Incoming)},
		"ReceivedCallback_gif.json":                     in("name"),
		"ReceivedCallback_image.json":                   in("name"),
		"ReceivedCallback_list-response.json":           in("Nome"),
		"ReceivedCallback_location.json":                in("name"),
		"ReceivedCallback_newsletter-admin-invite.json": in("name"),
		"ReceivedCallback_notification-CALL_MISSED_VIDEO.json": {
			Calls: []fact.Call{{CallID: "F44E0E2011E7C784BB9A4AC11749C436", Chat: one, From: one, Video: true,
				State: fact.CallMissed, Status: "CALL_MISSED_VIDEO"}},
			ChatsSeen: seen(one, "name", fact.Incoming),
		},
		"ReceivedCallback_notification-CALL_MISSED_VOICE.json": {
			Calls: []fact.Call{{CallID: "F44E0E2011E7C784BB9A4AC11749C436", Chat: one, From: one,
				State: fact.CallMissed, Status: "CALL_MISSED_VOICE"}},
			ChatsSeen: seen(one, "name", fact.Incoming),
		},
		"ReceivedCallback_notification-CALL_VOICE.json": {
			Calls: []fact.Call{{CallID: "F44E0E2011E7C784BB9A4AC11749C436", Chat: one, From: one,
				State: fact.CallOffered, Status: "CALL_VOICE"}},
			ChatsSeen: seen(one, "name", fact.Incoming),
		},
		"ReceivedCallback_notification-CHAT_LABEL_ASSOCIATION.json": {
			LabelAssocs: []fact.LabelAssoc{
				{Chat: "5544977777777", Label: fact.Label{ID: "1"}, Assigned: true},
				{Chat: "5544988888888", Label: fact.Label{ID: "2"}, Assigned: false},
			},
		},
		"ReceivedCallback_notification-GROUP_MEMBER_LINK_PROPERTY_UPDATE-admin.json": {
			Groups: []fact.GroupChange{{Chat: "120363423529374305-group", Change: fact.GroupSettingsChanged, Actor: one,
				Setting: &fact.Setting{Name: "member_link_mode", Value: "ADMIN_LINK"}}},
			ChatsSeen: seen("120363423529374305-group", "Linux Foundation", fact.Incoming),
		},
		"ReceivedCallback_notification-MEMBERSHIP_APPROVAL_REQUEST-invite_link.json": {
			Groups: []fact.GroupChange{{Chat: one + "-group", Change: fact.GroupJoinRequested, Participants: []string{one},
				Actor: one, RequestMethod: "invite_link"}},
			ChatsSeen: seen(one+"-group", "name", fact.Incoming),
		},
		// The first parameter is participantPhone, the member who added the
		// other: the adder is the actor, not a requester (providers.md §6).
		"ReceivedCallback_notification-MEMBERSHIP_APPROVAL_REQUEST-non_admin_add.json": {
			Groups: []fact.GroupChange{{Chat: one + "-group", Change: fact.GroupJoinRequested,
				Participants: []string{"5544888888888"}, Actor: one, RequestMethod: "non_admin_add"}},
			ChatsSeen: seen(one+"-group", "name", fact.Incoming),
		},
		"ReceivedCallback_notification-REVOKED_MEMBERSHIP_REQUESTS.json": {
			Groups: []fact.GroupChange{{Chat: one + "-group", Change: fact.GroupJoinRevoked, Participants: []string{one},
				Actor: one}},
			ChatsSeen: seen(one+"-group", "name", fact.Incoming),
		},
		"ReceivedCallback_payment-request.json":            in("name"),
		"ReceivedCallback_payment-sent.json":               in("name"),
		"ReceivedCallback_pin-message.json":                {ChatsSeen: seen(one, "name", fact.Outgoing)},
		"ReceivedCallback_pix-key-button.json":             {ChatsSeen: seen("554499999999", "name", fact.Incoming)},
		"ReceivedCallback_poll-vote.json":                  in("name"),
		"ReceivedCallback_poll.json":                       in("name"),
		"ReceivedCallback_product.json":                    in(""),
		"ReceivedCallback_ptv.json":                        {ChatsSeen: seen(one, "eu", fact.Outgoing)},
		"ReceivedCallback_reaction.json":                   in("name"),
		"ReceivedCallback_review-and-pay-order.json":       in("name"),
		"ReceivedCallback_status-reply.json":               in("name"),
		"ReceivedCallback_sticker.json":                    in("name"),
		"ReceivedCallback_template-document.json":          {ChatsSeen: seen("554499999999", "name", fact.Incoming)},
		"ReceivedCallback_template-image.json":             {ChatsSeen: seen("554499999999", "name", fact.Incoming)},
		"ReceivedCallback_template-location.json":          {ChatsSeen: seen("554499999999", "name", fact.Incoming)},
		"ReceivedCallback_template-text.json":              in("Test Number"),
		"ReceivedCallback_template-video.json":             in("name"),
		"ReceivedCallback_text-from-ad.json":               in("name"),
		"ReceivedCallback_text.json":                       in("name"),
		"ReceivedCallback_text_notify-sent-by-me-doc.json": in("name"),
		"ReceivedCallback_video.json":                      in("name"),
		"ReceivedCallback_waiting-message.json":            {ChatsSeen: seen(one, "chat", fact.Outgoing)},
	}
	// The examples giving a chatLid beside a contact's phone (the docs'
	// placeholders tie one LID to two numbers: the registry keeps the first
	// pair it learns) or a participantLid beside participantPhone.
	lid := func(phone string) []fact.Alias {
		return []fact.Alias{{LID: "81896604192873@lid", Phone: phone + "@s.whatsapp.net"}}
	}
	for name, a := range map[string][]fact.Alias{
		"ReceivedCallback_buttons-with-image.json": lid("554499999999"),
		"ReceivedCallback_buttons-with-video.json": lid("554499999999"),
		"ReceivedCallback_pix-key-button.json":     lid("554499999999"),
		"ReceivedCallback_template-document.json":  lid("554499999999"),
		"ReceivedCallback_template-image.json":     lid("554499999999"),
		"ReceivedCallback_template-location.json":  lid("554499999999"),
		"ReceivedCallback_template-text.json":      lid(one),
		"ReceivedCallback_template-video.json":     lid(one),
		"ReceivedCallback_notification-GROUP_MEMBER_LINK_PROPERTY_UPDATE-admin.json": {
			{LID: "99999999999999@lid", Phone: one + "@s.whatsapp.net"}},
	} {
		w := want[name]
		w.Aliases = a
		want[name] = w
	}
	names := map[string]bool{}
	for _, name := range fixtures(t) {
		names[name] = true
		t.Run(name, func(t *testing.T) {
			it := split(t, load(t, name))
			got := interpret(t, it.Kind, it.Data)
			if diff := cmp.Diff(want[name], got); diff != "" {
				t.Errorf("Interpret(%s, %s) mismatch (-want +got):\n%s", it.Kind, name, diff)
			}
		})
	}
	for name := range want {
		if !names[name] {
			t.Errorf("table names %s, which is not in testdata", name)
		}
	}
}

// notification builds a group notification in the documented shape.
func notification(n, extra string) string {
	return `{"isGroup":true,"instanceId":"i","messageId":"m","phone":"120363019502650977-group","connectedPhone":"5544999999999",` +
		`"fromMe":false,"momment":1682017970000,"status":"RECEIVED","chatName":"Team","type":"ReceivedCallback",` +
		`"notification":"` + n + `"` + extra + `}`
}

func TestInterpretCases(t *testing.T) {
	const group = "120363019502650977-group"
	inGroup := seen(group, "Team", fact.Incoming)
	for name, tc := range map[string]struct {
		kind string
		give string
		want fact.Facts
	}{
		"group created": {
			give: notification("GROUP_CREATE", `,"notificationParameters":["Family"],"participantPhone":"5544111111111"`),
			want: fact.Facts{Groups: []fact.GroupChange{{Chat: group, Change: fact.GroupCreated, Subject: "Family",
				Actor: "5544111111111"}}, ChatsSeen: inGroup},
		},
		"group created without parameters takes the chat name": {
			give: notification("GROUP_CREATE", `,"notificationParameters":[]`),
			want: fact.Facts{Groups: []fact.GroupChange{{Chat: group, Change: fact.GroupCreated, Subject: "Team"}},
				ChatsSeen: inGroup},
		},
		"participant added by lid (third-party capture)": {
			give: notification("GROUP_PARTICIPANT_ADD", `,"notificationParameters":["253438017437856@lid"],"participantPhone":null,"participantLid":"99999999999999@lid"`),
			want: fact.Facts{Groups: []fact.GroupChange{{Chat: group, Change: fact.GroupParticipantsAdded,
				Participants: []string{"253438017437856@lid"}, Actor: "99999999999999@lid"}}, ChatsSeen: inGroup},
		},
		"participants removed": {
			give: notification("GROUP_PARTICIPANT_REMOVE", `,"notificationParameters":["5544222222222","5544333333333"],"participantPhone":"5544111111111"`),
			want: fact.Facts{Groups: []fact.GroupChange{{Chat: group, Change: fact.GroupParticipantsRemoved,
				Participants: []string{"5544222222222", "5544333333333"}, Actor: "5544111111111"}}, ChatsSeen: inGroup},
		},
		"participant left": {
			give: notification("GROUP_PARTICIPANT_LEAVE", `,"notificationParameters":["5544222222222"]`),
			want: fact.Facts{Groups: []fact.GroupChange{{Chat: group, Change: fact.GroupParticipantsLeft,
				Participants: []string{"5544222222222"}}}, ChatsSeen: inGroup},
		},
		"participant promoted": {
			give: notification("GROUP_PARTICIPANT_PROMOTE", `,"notificationParameters":["5544222222222"],"participantPhone":"5544111111111"`),
			want: fact.Facts{Groups: []fact.GroupChange{{Chat: group, Change: fact.GroupParticipantsPromote,
				Participants: []string{"5544222222222"}, Actor: "5544111111111"}}, ChatsSeen: inGroup},
		},
		"participant demoted": {
			give: notification("GROUP_PARTICIPANT_DEMOTE", `,"notificationParameters":[5544222222222]`),
			want: fact.Facts{Groups: []fact.GroupChange{{Chat: group, Change: fact.GroupParticipantsDemote,
				Participants: []string{"5544222222222"}}}, ChatsSeen: inGroup},
		},
		"joined through the invite link": {
			give: notification("GROUP_PARTICIPANT_INVITE", `,"notificationParameters":["5544222222222"],"participantPhone":"5544222222222"`),
			want: fact.Facts{Groups: []fact.GroupChange{{Chat: group, Change: fact.GroupParticipantsAdded,
				Participants: []string{"5544222222222"}, Actor: "5544222222222", RequestMethod: "invite_link"}}, ChatsSeen: inGroup},
		},
		"subject changed": {
			give: notification("GROUP_CHANGE_SUBJECT", `,"notificationParameters":["New name"],"participantPhone":"5544111111111"`),
			want: fact.Facts{Groups: []fact.GroupChange{{Chat: group, Change: fact.GroupSubjectChanged, Subject: "New name",
				Actor: "5544111111111"}}, ChatsSeen: inGroup},
		},
		"description changed": {
			give: notification("GROUP_CHANGE_DESCRIPTION", `,"notificationParameters":["Rules: none"]`),
			want: fact.Facts{Groups: []fact.GroupChange{{Chat: group, Change: fact.GroupDescriptionChanged,
				Description: "Rules: none"}}, ChatsSeen: inGroup},
		},
		"icon changed": {
			give: notification("GROUP_CHANGE_ICON", `,"notificationParameters":["1699999999"],"participantPhone":"5544111111111"`),
			want: fact.Facts{Groups: []fact.GroupChange{{Chat: group, Change: fact.GroupIconChanged,
				Actor: "5544111111111"}}, ChatsSeen: inGroup},
		},
		"announcements only": {
			give: notification("GROUP_CHANGE_ANNOUNCE", `,"notificationParameters":["on"]`),
			want: fact.Facts{Groups: []fact.GroupChange{{Chat: group, Change: fact.GroupSettingsChanged,
				Setting: &fact.Setting{Name: "announcements", Value: "on"}}}, ChatsSeen: inGroup},
		},
		"other GROUP_CHANGE_ settings": {
			give: notification("GROUP_CHANGE_NO_FREQUENTLY_FORWARDED", `,"notificationParameters":["on"]`),
			want: fact.Facts{Groups: []fact.GroupChange{{Chat: group, Change: fact.GroupSettingsChanged,
				Setting: &fact.Setting{Name: "no_frequently_forwarded", Value: "on"}}}, ChatsSeen: inGroup},
		},
		"member link mode opened to all": {
			give: notification("GROUP_MEMBER_LINK_PROPERTY_UPDATE", `,"notificationParameters":[],"linkMode":"ALL_MEMBER_LINK"`),
			want: fact.Facts{Groups: []fact.GroupChange{{Chat: group, Change: fact.GroupSettingsChanged,
				Setting: &fact.Setting{Name: "member_link_mode", Value: "ALL_MEMBER_LINK"}}}, ChatsSeen: inGroup},
		},
		"join request from the old docs (isGroup false, no requestMethod)": {
			give: `{"isGroup":false,"instanceId":"i","messageId":"464201093","phone":"5544999999999-group","fromMe":false,` +
				`"chatName":"name","participantPhone":"5544999999999","type":"ReceivedCallback",` +
				`"notification":"MEMBERSHIP_APPROVAL_REQUEST","notificationParameters":["5544999999999"],"callId":null}`,
			want: fact.Facts{Groups: []fact.GroupChange{{Chat: "5544999999999-group", Change: fact.GroupJoinRequested,
				Participants: []string{"5544999999999"}, Actor: "5544999999999"}},
				ChatsSeen: seen("5544999999999-group", "name", fact.Incoming)},
		},
		"unknown group notice": {
			give: notification("GROUP_DELETE", `,"notificationParameters":[]`),
		},
		"group call": {
			give: notification("CALL_VOICE", `,"notificationParameters":[],"callId":"C1","participantPhone":"5544222222222"`),
			want: fact.Facts{Calls: []fact.Call{{CallID: "C1", Chat: group, From: "5544222222222", Group: true,
				State: fact.CallOffered, Status: "CALL_VOICE"}}, ChatsSeen: inGroup},
		},
		"missed group video call": {
			give: `{"type":"ReceivedCallback","instanceId":"i","messageId":"m","phone":"1","fromMe":false,"notification":"CALL_MISSED_GROUP_VIDEO","callId":"C2","participantLid":"5@lid"}`,
			want: fact.Facts{Calls: []fact.Call{{CallID: "C2", Chat: "1", From: "5@lid", Video: true, Group: true,
				State: fact.CallMissed, Status: "CALL_MISSED_GROUP_VIDEO"}}, ChatsSeen: seen("1", "", fact.Incoming)},
		},
		"outgoing call without a call id": {
			give: `{"type":"ReceivedCallback","instanceId":"i","messageId":"1679655074-84","phone":"5544999999999","connectedPhone":"554488888888","fromMe":true,"chatName":"name","notification":"CALL_VIDEO","callId":null}`,
			want: fact.Facts{Calls: []fact.Call{{CallID: "1679655074-84", Chat: "5544999999999", From: "554488888888", Video: true,
				State: fact.CallOffered, Status: "CALL_VIDEO"}}, ChatsSeen: seen("5544999999999", "name", fact.Outgoing)},
		},
		"other call notices": {
			give: `{"type":"ReceivedCallback","instanceId":"i","messageId":"m","phone":"1","notification":"CALL_LOG"}`,
		},
		"encryption notice": {
			give: `{"type":"ReceivedCallback","instanceId":"i","messageId":"m","phone":"1","fromMe":false,"notification":"E2E_ENCRYPTED","notificationParameters":[]}`,
		},
		"label association as the doc writes it, and tolerated variants": {
			give: `{"type":"ReceivedCallback","instanceId":"i","phone":"5544999999999","notification":"CHAT_LABEL_ASSOCIATION",` +
				`"notificationParameters":[{"phone":"5544977777777","label":12,"assigned":"true"},` +
				`{"phone":"120363019502650977-group","label":"3","assigned":false},` +
				`{"phone":"5544977777777","assigned":true},{"label":"4","assigned":true},{"phone":"1","label":"5"},"x",null]}`,
			want: fact.Facts{LabelAssocs: []fact.LabelAssoc{
				{Chat: "5544977777777", Label: fact.Label{ID: "12"}, Assigned: true},
				{Chat: "120363019502650977-group", Label: fact.Label{ID: "3"}},
			}},
		},
		"label association without parameters": {
			give: `{"type":"ReceivedCallback","instanceId":"i","phone":"1","notification":"CHAT_LABEL_ASSOCIATION","notificationParameters":null}`,
		},
		"story in status@broadcast": {
			kind: "received.image",
			give: `{"type":"ReceivedCallback","instanceId":"i","messageId":"m","phone":"status@broadcast","fromMe":false,"broadcast":true,"image":{}}`,
		},
		"newsletter post": {
			kind: "received.text",
			give: `{"type":"ReceivedCallback","instanceId":"i","messageId":"m","phone":"120363166555745933@newsletter","isNewsletter":true,"fromMe":false,"chatName":"Channel","text":{"message":"x"}}`,
			want: fact.Facts{ChatsSeen: seen("120363166555745933@newsletter", "Channel", fact.Incoming)},
		},
		"direction unknown without fromMe": {
			kind: "received.text",
			give: `{"type":"ReceivedCallback","instanceId":"i","messageId":"m","phone":"1","chatName":null,"text":{}}`,
			want: fact.Facts{ChatsSeen: seen("1", "", "")},
		},
		"message without a chat": {
			kind: "received.text",
			give: `{"type":"ReceivedCallback","instanceId":"i","messageId":"m","text":{}}`,
		},
		"failed delivery": {
			kind: KindDelivery,
			give: `{"type":"DeliveryCallback","instanceId":"i","phone":"1","zaapId":"z","messageId":"m","error":"not on WhatsApp"}`,
		},
		"unknown kind": {
			kind: provider.KindUnknown,
			give: `{"type":"ReceivedCallback","instanceId":"i","messageId":"m","phone":"1","somethingNew":{}}`,
		},
		"unknown callback type": {
			kind: provider.KindUnknown,
			give: `{"type":"ChatLabelCallback","phone":"1"}`,
		},
	} {
		t.Run(name, func(t *testing.T) {
			kind := tc.kind
			if kind == "" {
				kind = KindNotification
			}
			if diff := cmp.Diff(tc.want, interpret(t, kind, []byte(tc.give))); diff != "" {
				t.Errorf("Interpret(%s, %s) mismatch (-want +got):\n%s", kind, tc.give, diff)
			}
		})
	}
}

func TestInterpretInvalid(t *testing.T) {
	for name, tc := range map[string]struct{ kind, give string }{
		"not JSON":                           {KindNotification, `{"type":`},
		"array":                              {KindNotification, `[]`},
		"null":                               {"received.text", `null`},
		"string":                             {KindStatus, `"x"`},
		"other callback type":                {"received.text", `{"type":"DeliveryCallback","phone":"1"}`},
		"no type":                            {KindPresence, `{"phone":"1","status":"COMPOSING"}`},
		"notification kind, no notification": {KindNotification, `{"type":"ReceivedCallback","phone":"1","text":{}}`},
		"notification not a string":          {KindNotification, `{"type":"ReceivedCallback","phone":"1","notification":7}`},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := New().Interpret(tc.kind, []byte(tc.give))
			if !errors.Is(err, provider.ErrInvalid) {
				t.Errorf("Interpret(%s, %s) = %+v, %v; want an error wrapping ErrInvalid", tc.kind, tc.give, got, err)
			}
		})
	}
}

func BenchmarkInterpret(b *testing.B) {
	body := load(b, "ReceivedCallback_notification-MEMBERSHIP_APPROVAL_REQUEST-non_admin_add.json")
	p := New()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Interpret(KindNotification, body); err != nil {
			b.Fatal(err)
		}
	}
}
