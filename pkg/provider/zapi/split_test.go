package zapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wahook/wahook/pkg/provider"
)

// docID is the placeholder id the Z-API docs use for instances and messages.
const docID = "A20DA9C0183A2D35A260F53F5D2B9244"

func ms(n int64) time.Time  { return time.UnixMilli(n).UTC() }
func sec(n int64) time.Time { return time.Unix(n, 0).UTC() }

func load(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fixtures(t testing.TB) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for i, n := range names {
		names[i] = filepath.Base(n)
	}
	return names
}

func split(t testing.TB, body []byte) provider.Item {
	t.Helper()
	items, err := New().Split(body, provider.Delivery{Method: "POST"})
	if err != nil {
		t.Fatalf("Split(%s) error: %v", body, err)
	}
	if len(items) != 1 {
		t.Fatalf("Split(%s) = %d items, want 1", body, len(items))
	}
	return items[0]
}

// identity is what Split says of an item besides its data.
type identity struct {
	kind, channel, key, chat string
	time                     time.Time
}

func identify(it provider.Item) identity {
	return identity{kind: it.Kind, channel: it.Channel, key: it.Key, chat: it.Chat, time: it.Time}
}

var cmpIdentity = cmp.AllowUnexported(identity{})

func TestSplitFixtures(t *testing.T) {
	want := map[string]identity{
		// momment 26151515154 is the docs' placeholder (the year 2798): no time.
		"ConnectedCallback.json":                                                       {kind: "connected", channel: "instance.id", key: "", chat: ""},
		"DeliveryCallback.json":                                                        {kind: "delivery", channel: "instance.id", key: docID + "|" + docID, chat: "554499999999", time: time.Time{}},
		"DisconnectedCallback.json":                                                    {kind: "disconnected", channel: "instance.id", key: "", chat: "", time: sec(1580163342)},
		"MessageStatusCallback_READ-SELF_older-docs.json":                              {kind: "message-status", channel: "instance.id", key: "READ-SELF|5544999999999|999999999999999999999", chat: "5544999999999", time: ms(1632234645000)},
		"MessageStatusCallback_READ.json":                                              {kind: "message-status", channel: "instance.id", key: "READ|5544999999999|999999999999999999999", chat: "5544999999999", time: ms(1632234645000)},
		"MessageStatusCallback_READ_BY_ME.json":                                        {kind: "message-status", channel: "instance.id", key: "READ_BY_ME|5544999999999|999999999999999999999", chat: "5544999999999", time: ms(1632234645000)},
		"MessageStatusCallback_RECEIVED.json":                                          {kind: "message-status", channel: "instance.id", key: "RECEIVED|5544999999999|999999999999999999999", chat: "5544999999999", time: ms(1632234645000)},
		"MessageStatusCallback_SENT.json":                                              {kind: "message-status", channel: "instance.id", key: "SENT|5544999999999|999999999999999999999", chat: "5544999999999", time: ms(1632234645000)},
		"PresenceChatCallback_AVAILABLE.json":                                          {kind: "presence-chat", channel: "instance.id", key: "", chat: "5544999999999", time: time.Time{}},
		"PresenceChatCallback_COMPOSING.json":                                          {kind: "presence-chat", channel: "instance.id", key: "", chat: "5544999999999", time: time.Time{}},
		"PresenceChatCallback_RECORDING.json":                                          {kind: "presence-chat", channel: "instance.id", key: "", chat: "5544999999999", time: time.Time{}},
		"PresenceChatCallback_UNAVAILABLE.json":                                        {kind: "presence-chat", channel: "instance.id", key: "", chat: "5544999999999", time: time.Time{}},
		"ReceivedCallback_audio.json":                                                  {kind: "received.audio", channel: docID, key: "5544999999999|" + docID, chat: "5544999999999", time: ms(1632228849000)},
		"ReceivedCallback_broadcast-list.json":                                         {kind: "received.text", channel: "3C67AB641C8AA0412F6A2242B4E23AC7", key: "1774895799-broadcast|702CC5F7E0A6BF4421", chat: "1774895799-broadcast", time: ms(1774895725000)},
		"ReceivedCallback_buttons-response.json":                                       {kind: "received.buttonsResponseMessage", channel: docID, key: "5544999999999|" + docID, chat: "5544999999999", time: ms(1634645380000)},
		"ReceivedCallback_buttons-with-image.json":                                     {kind: "received.buttonsMessage", channel: "3C67AB641C8AA0412F6A2242B4E23AC7", key: "554499999999|9D968A5FA2880508C4", chat: "554499999999", time: ms(1708455444850)},
		"ReceivedCallback_buttons-with-video.json":                                     {kind: "received.buttonsMessage", channel: "3C67AB641C8AA0412F6A2242B4E23AC7", key: "554499999999|9D968A5FA2880508C4", chat: "554499999999", time: ms(1708455444850)},
		"ReceivedCallback_cart-order.json":                                             {kind: "received.order", channel: docID, key: "5544999999999|" + docID, chat: "5544999999999", time: ms(1632233527000)},
		"ReceivedCallback_contact.json":                                                {kind: "received.contact", channel: docID, key: "5544999999999|" + docID, chat: "5544999999999", time: ms(1632228925000)},
		"ReceivedCallback_document.json":                                               {kind: "received.document", channel: docID, key: "5544999999999|" + docID, chat: "5544999999999", time: ms(1632228955000)},
		"ReceivedCallback_event.json":                                                  {kind: "received.event", channel: docID, key: "120363019502650977-group|" + docID, chat: "120363019502650977-group", time: ms(1632228638000)},
		"ReceivedCallback_gif.json":                                                    {kind: "received.video", channel: docID, key: "5544999999999|" + docID, chat: "5544999999999", time: ms(1632228889000)},
		"ReceivedCallback_image.json":                                                  {kind: "received.image", channel: docID, key: "5544999999999|" + docID, chat: "5544999999999", time: ms(1632228828000)},
		"ReceivedCallback_list-response.json":                                          {kind: "received.listResponseMessage", channel: docID, key: "5544999999999|" + docID, chat: "5544999999999", time: ms(1634645683000)},
		"ReceivedCallback_location.json":                                               {kind: "received.location", channel: docID, key: "5544999999999|" + docID, chat: "5544999999999", time: ms(1632228970000)},
		"ReceivedCallback_newsletter-admin-invite.json":                                {kind: "received.newsletterAdminInvite", channel: docID, key: "5544999999999|" + docID, chat: "5544999999999", time: ms(1632228925000)},
		"ReceivedCallback_notification-CALL_MISSED_VIDEO.json":                         {kind: "received.notification", channel: docID, key: "5544999999999|1679655074-103|CALL_MISSED_VIDEO", chat: "5544999999999", time: ms(1679661194000)},
		"ReceivedCallback_notification-CALL_MISSED_VOICE.json":                         {kind: "received.notification", channel: docID, key: "5544999999999|1679655074-103|CALL_MISSED_VOICE", chat: "5544999999999", time: ms(1679661194000)},
		"ReceivedCallback_notification-CALL_VOICE.json":                                {kind: "received.notification", channel: docID, key: "5544999999999|1679655074-84|CALL_VOICE", chat: "5544999999999", time: ms(1679661190000)},
		"ReceivedCallback_notification-CHAT_LABEL_ASSOCIATION.json":                    {kind: "received.notification", channel: docID, key: "", chat: "", time: ms(1736797729000)},
		"ReceivedCallback_notification-GROUP_MEMBER_LINK_PROPERTY_UPDATE-admin.json":   {kind: "received.notification", channel: "3E987B16F401B0FF1B8DA2BF932F5DDF", key: "120363423529374305-group|85932933|GROUP_MEMBER_LINK_PROPERTY_UPDATE", chat: "120363423529374305-group", time: ms(1773845888000)},
		"ReceivedCallback_notification-MEMBERSHIP_APPROVAL_REQUEST-invite_link.json":   {kind: "received.notification", channel: docID, key: "5544999999999-group|" + docID + "|MEMBERSHIP_APPROVAL_REQUEST", chat: "5544999999999-group", time: ms(1682017970000)},
		"ReceivedCallback_notification-MEMBERSHIP_APPROVAL_REQUEST-non_admin_add.json": {kind: "received.notification", channel: docID, key: "5544999999999-group|" + docID + "|MEMBERSHIP_APPROVAL_REQUEST", chat: "5544999999999-group", time: ms(1682017970000)},
		"ReceivedCallback_notification-NEWSLETTER_ADMIN_DEMOTE.json":                   {kind: "received.notification", channel: docID, key: "5544999999999@newsletter|464201093|NEWSLETTER_ADMIN_DEMOTE", chat: "5544999999999@newsletter", time: ms(1682017970000)},
		"ReceivedCallback_notification-NEWSLETTER_ADMIN_PROMOTE.json":                  {kind: "received.notification", channel: docID, key: "5544999999999@newsletter|464201093|NEWSLETTER_ADMIN_PROMOTE", chat: "5544999999999@newsletter", time: ms(1682017970000)},
		"ReceivedCallback_notification-PAYMENT_ACTION_REQUEST_DECLINED.json":           {kind: "received.notification", channel: docID, key: "5544999999999|" + docID + "|PAYMENT_ACTION_REQUEST_DECLINED", chat: "5544999999999", time: ms(1632230332000)},
		"ReceivedCallback_notification-PROFILE_NAME_UPDATED.json":                      {kind: "received.notification", channel: docID, key: "", chat: "", time: ms(1736797729000)},
		"ReceivedCallback_notification-PROFILE_PICTURE_UPDATED.json":                   {kind: "received.notification", channel: docID, key: "", chat: "", time: ms(1736797729000)},
		"ReceivedCallback_notification-REVOKED_MEMBERSHIP_REQUESTS.json":               {kind: "received.notification", channel: docID, key: "5544999999999-group|" + docID + "|REVOKED_MEMBERSHIP_REQUESTS", chat: "5544999999999-group", time: ms(1682017970000)},
		"ReceivedCallback_payment-request.json":                                        {kind: "received.requestPayment", channel: docID, key: "5544999999999|" + docID, chat: "5544999999999", time: ms(1632229683000)},
		"ReceivedCallback_payment-sent.json":                                           {kind: "received.sendPayment", channel: docID, key: "5544999999999|" + docID, chat: "5544999999999", time: ms(1632230512000)},
		"ReceivedCallback_pin-message.json":                                            {kind: "received.pinMessage", channel: docID, key: "5544999999999|" + docID, chat: "5544999999999", time: ms(1632228955000)},
		"ReceivedCallback_pix-key-button.json":                                         {kind: "received.pixKeyMessage", channel: "3C67AB641C8AA0412F6A2242B4E23AC7", key: "554499999999|9D968A5FA2880508C4", chat: "554499999999", time: ms(1708455444850)},
		"ReceivedCallback_poll-vote.json":                                              {kind: "received.pollVote", channel: docID, key: "5544999999999|" + docID, chat: "5544999999999", time: ms(1632228638000)},
		"ReceivedCallback_poll.json":                                                   {kind: "received.poll", channel: docID, key: "5544999999999|" + docID, chat: "5544999999999", time: ms(1632228638000)},
		"ReceivedCallback_product.json":                                                {kind: "received.product", channel: docID, key: "5544999999999|" + docID, chat: "5544999999999", time: ms(1632233527000)},
		"ReceivedCallback_ptv.json":                                                    {kind: "received.video", channel: docID, key: "5544999999999|" + docID, chat: "5544999999999", time: ms(1688496074000)},
		"ReceivedCallback_reaction.json":                                               {kind: "received.reaction", channel: docID, key: "5544999999999|" + docID, chat: "5544999999999", time: ms(1632228955000)},
		"ReceivedCallback_review-and-pay-order.json":                                   {kind: "received.reviewAndPay", channel: docID, key: "5544999999999|" + docID, chat: "5544999999999", time: ms(1632228925000)},
		"ReceivedCallback_status-reply.json":                                           {kind: "received.text", channel: docID, key: "5544999999999|" + docID, chat: "5544999999999", time: ms(1632228638000)},
		"ReceivedCallback_sticker.json":                                                {kind: "received.sticker", channel: docID, key: "5544999999999|" + docID, chat: "5544999999999", time: ms(1632228982000)},
		"ReceivedCallback_template-document.json":                                      {kind: "received.hydratedTemplate", channel: "3C67AB641C8AA0412F6A2242B4E23AC7", key: "554499999999|9D968A5FA2880508C4", chat: "554499999999", time: ms(1708455444850)},
		"ReceivedCallback_template-image.json":                                         {kind: "received.hydratedTemplate", channel: "3C67AB641C8AA0412F6A2242B4E23AC7", key: "554499999999|885FF934BF100D579E", chat: "554499999999", time: ms(1708454725028)},
		"ReceivedCallback_template-location.json":                                      {kind: "received.hydratedTemplate", channel: "3C67AB641C8AA0412F6A2242B4E23AC7", key: "554499999999|27BBF23E0185D363D9", chat: "554499999999", time: ms(1708456969808)},
		"ReceivedCallback_template-text.json":                                          {kind: "received.hydratedTemplate", channel: "3C67AB641C8AA0412F6A2242B4E23AC7", key: "5544999999999|702CC5F7E0A6BF4421", chat: "5544999999999", time: ms(1708457193876)},
		"ReceivedCallback_template-video.json":                                         {kind: "received.hydratedTemplate", channel: "3C67AB641C8AA0412F6A2242B4E23AC7", key: "5544999999999|0E4AD761B62E3D5EF9", chat: "5544999999999", time: ms(1708456287181)},
		"ReceivedCallback_text-from-ad.json":                                           {kind: "received.text", channel: docID, key: "5544999999999|" + docID, chat: "5544999999999", time: ms(1657209752000)},
		"ReceivedCallback_text.json":                                                   {kind: "received.text", channel: docID, key: "5544999999999|" + docID, chat: "5544999999999", time: ms(1632228638000)},
		"ReceivedCallback_text_notify-sent-by-me-doc.json":                             {kind: "received.text", channel: "instance.id", key: "5544999999999|" + docID, chat: "5544999999999", time: ms(1632228638000)},
		"ReceivedCallback_video.json":                                                  {kind: "received.video", channel: docID, key: "5544999999999|" + docID, chat: "5544999999999", time: ms(1632228889000)},
		"ReceivedCallback_waiting-message.json":                                        {kind: "received.waitingMessage", channel: docID, key: "5544999999999|" + docID + "|waiting", chat: "5544999999999", time: ms(1736797729000)},
	}
	names := fixtures(t)
	if len(names) != len(want) {
		t.Errorf("testdata has %d fixtures, table has %d", len(names), len(want))
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			w, ok := want[name]
			if !ok {
				t.Fatalf("no expectation for %s", name)
			}
			body := load(t, name)
			it := split(t, body)
			if diff := cmp.Diff(w, identify(it), cmpIdentity); diff != "" {
				t.Errorf("Split(%s) mismatch (-want +got):\n%s", name, diff)
			}
			if !bytes.Equal(it.Data, body) {
				t.Errorf("Split(%s).Data is not the body", name)
			}
		})
	}
}

func TestSplitCases(t *testing.T) {
	for name, tc := range map[string]struct {
		give string
		want identity
	}{
		"status reply: text wins over the statusImage it answers": {
			give: `{"type":"ReceivedCallback","instanceId":"i","messageId":"m","phone":"1","isStatusReply":true,"text":{"message":"hi"},"statusImage":{"imageUrl":"https://"}}`,
			want: identity{kind: "received.text", channel: "i", key: "1|m", chat: "1"},
		},
		"statusImage alone": {
			give: `{"type":"ReceivedCallback","instanceId":"i","messageId":"m","phone":"1","statusImage":{"imageUrl":"https://"}}`,
			want: identity{kind: "received.statusImage", channel: "i", key: "1|m", chat: "1"},
		},
		"image with a text member": {
			give: `{"type":"ReceivedCallback","instanceId":"i","messageId":"m","phone":"1","text":{"message":"x"},"image":{}}`,
			want: identity{kind: "received.image", channel: "i", key: "1|m", chat: "1"},
		},
		"reaction before text": {
			give: `{"type":"ReceivedCallback","instanceId":"i","messageId":"m","phone":"1","text":{},"reaction":{"value":"x"}}`,
			want: identity{kind: "received.reaction", channel: "i", key: "1|m", chat: "1"},
		},
		"carousel": {
			give: `{"type":"ReceivedCallback","instanceId":"i","messageId":"m","phone":"554499999999","fromMe":true,"momment":1739368022130,"carouselMessage":{"text":"t","cards":[{"header":{"image":{}}}]}}`,
			want: identity{kind: "received.carouselMessage", channel: "i", key: "554499999999|m", chat: "554499999999", time: ms(1739368022130)},
		},
		"review order": {
			give: `{"type":"ReceivedCallback","instanceId":"i","messageId":"m","phone":"1","reviewOrder":{"orderStatus":"processing"}}`,
			want: identity{kind: "received.reviewOrder", channel: "i", key: "1|m", chat: "1"},
		},
		"event response in a group": {
			give: `{"type":"ReceivedCallback","instanceId":"i","messageId":"m","phone":"120363019502650977-group","eventResponse":{"response":"GOING","time":1714423417000}}`,
			want: identity{kind: "received.eventResponse", channel: "i", key: "120363019502650977-group|m", chat: "120363019502650977-group"},
		},
		"nested type does not override the callback type": {
			give: `{"type":"ReceivedCallback","instanceId":"i","messageId":"m","phone":"1","reviewAndPay":{"type":"physical-goods"}}`,
			want: identity{kind: "received.reviewAndPay", channel: "i", key: "1|m", chat: "1"},
		},
		"null and scalar content members are no content": {
			give: `{"type":"ReceivedCallback","instanceId":"i","messageId":"m","phone":"1","text":null,"event":"x","image":false}`,
			want: identity{kind: provider.KindUnknown, channel: "i", key: "1|m", chat: "1"},
		},
		"notification null is a message": {
			give: `{"type":"ReceivedCallback","instanceId":"i","messageId":"m","phone":"1","notification":null,"notificationParameters":null,"text":{}}`,
			want: identity{kind: "received.text", channel: "i", key: "1|m", chat: "1"},
		},
		"empty notification is a message": {
			give: `{"type":"ReceivedCallback","instanceId":"i","messageId":"m","phone":"1","notification":"","text":{}}`,
			want: identity{kind: "received.text", channel: "i", key: "1|m", chat: "1"},
		},
		"notification wins over content": {
			give: `{"type":"ReceivedCallback","instanceId":"i","messageId":"m","phone":"1-group","notification":"GROUP_PARTICIPANT_ADD","notificationParameters":["253438017437856@lid"],"text":{}}`,
			want: identity{kind: KindNotification, channel: "i", key: "1-group|m|GROUP_PARTICIPANT_ADD", chat: "1-group"},
		},
		"waiting placeholder with content keeps its waiting mark": {
			give: `{"type":"ReceivedCallback","instanceId":"i","messageId":"m","phone":"1","waitingMessage":true,"image":{}}`,
			want: identity{kind: "received.image", channel: "i", key: "1|m|waiting", chat: "1"},
		},
		"no content": {
			give: `{"type":"ReceivedCallback","instanceId":"i","messageId":"m","phone":"1","waitingMessage":false}`,
			want: identity{kind: provider.KindUnknown, channel: "i", key: "1|m", chat: "1"},
		},
		"no message id": {
			give: `{"type":"ReceivedCallback","instanceId":"i","phone":"1","text":{}}`,
			want: identity{kind: "received.text", channel: "i", chat: "1"},
		},
		"type spelled ReceivedCallBack as in the attribute table": {
			give: `{"type":"ReceivedCallBack","instanceId":"i","messageId":"m","phone":"1","text":{}}`,
			want: identity{kind: "received.text", channel: "i", key: "1|m", chat: "1"},
		},
		"unknown callback type": {
			give: `{"type":"ChatLabelCallback","instanceId":"i","messageId":"m","phone":"1","momment":1632228638000}`,
			want: identity{kind: provider.KindUnknown, channel: "i", time: ms(1632228638000)},
		},
		"numbers as strings and strings as numbers": {
			give: `{"type":"ReceivedCallback","instanceId":123,"messageId":456,"phone":5544999999999,"momment":"1632228638000","text":{}}`,
			want: identity{kind: "received.text", channel: "123", key: "5544999999999|456", chat: "5544999999999", time: ms(1632228638000)},
		},
		"momment in seconds": {
			give: `{"type":"DisconnectedCallback","instanceId":"i","momment":1580163342,"disconnected":true}`,
			want: identity{kind: KindDisconnected, channel: "i", time: sec(1580163342)},
		},
		"big numbers do not break decoding": {
			give: `{"type":"MessageStatusCallback","instanceId":"i","status":"READ","ids":["x"],"phone":"1","phoneDevice":18446744073709552000,"momment":18446744073709552000}`,
			want: identity{kind: KindStatus, channel: "i", key: "READ|1|x", chat: "1"},
		},
		"duplicate members keep the last value": {
			give: `{"instanceId":"first","type":"ReceivedCallback","messageId":"m","phone":"1","image":{},"image":null,"text":{},"instanceId":"last"}`,
			want: identity{kind: "received.text", channel: "last", key: "1|m", chat: "1"},
		},
		"escaped member names": {
			give: `{"\u0074ype":"Received\u0043allback","instance\u0049d":"i\u00e9","messageId":"m","phone":"1","te\u0078t":{}}`,
			want: identity{kind: "received.text", channel: "ié", key: "1|m", chat: "1"},
		},
		"white space everywhere": {
			give: " \n{ \"type\" : \"PresenceChatCallback\" ,\t\"phone\" : \"5544999999999\" , \"status\" : \"PAUSED\" , \"lastSeen\" : null }\n",
			want: identity{kind: KindPresence, chat: "5544999999999"},
		},
		"status with a single id": {
			give: `{"type":"MessageStatusCallback","instanceId":"i","status":"PLAYED","id":"abc","phone":"1"}`,
			want: identity{kind: KindStatus, channel: "i", key: "PLAYED|1|abc", chat: "1"},
		},
		"status ids sorted and deduplicated": {
			give: `{"type":"MessageStatusCallback","instanceId":"i","status":"READ","ids":["b","a","b",7],"phone":"1-group"}`,
			want: identity{kind: KindStatus, channel: "i", key: "READ|1-group|7,a,b", chat: "1-group"},
		},
		"group status names its participant": {
			give: `{"type":"MessageStatusCallback","instanceId":"i","status":"READ","ids":["a"],"phone":"1-group","participantPhone":"5544"}`,
			want: identity{kind: KindStatus, channel: "i", key: "READ|1-group|5544|a", chat: "1-group"},
		},
		"status without ids": {
			give: `{"type":"MessageStatusCallback","instanceId":"i","status":"READ","ids":[],"phone":"1"}`,
			want: identity{kind: KindStatus, channel: "i", chat: "1"},
		},
		"failed delivery": {
			give: `{"type":"DeliveryCallback","instanceId":"i","phone":"1","zaapId":"z","messageId":"m","momment":1777494009341,"error":"Number not on WhatsApp"}`,
			want: identity{kind: KindDelivery, channel: "i", key: "z|m|error", chat: "1", time: ms(1777494009341)},
		},
		"delivery with a null error": {
			give: `{"type":"DeliveryCallback","instanceId":"i","phone":"1","zaapId":"z","messageId":"m","error":null}`,
			want: identity{kind: KindDelivery, channel: "i", key: "z|m", chat: "1"},
		},
		"delivery without ids": {
			give: `{"type":"DeliveryCallback","instanceId":"i","phone":"1"}`,
			want: identity{kind: KindDelivery, channel: "i", chat: "1"},
		},
		"connected names no chat": {
			give: `{"type":"ConnectedCallback","connected":true,"momment":1632228638000,"instanceId":"i","phone":"5544999999999"}`,
			want: identity{kind: KindConnected, channel: "i", time: ms(1632228638000)},
		},
		"no instanceId": {
			give: `{"type":"ReceivedCallback","messageId":"m","phone":"1","text":{}}`,
			want: identity{kind: "received.text", key: "1|m", chat: "1"},
		},
	} {
		t.Run(name, func(t *testing.T) {
			it := split(t, []byte(tc.give))
			if diff := cmp.Diff(tc.want, identify(it), cmpIdentity); diff != "" {
				t.Errorf("Split(%s) mismatch (-want +got):\n%s", tc.give, diff)
			}
		})
	}
}

func TestSplitContentKeys(t *testing.T) {
	for i, k := range contentKeys {
		if got := contentIndex([]byte(k)); got != i {
			t.Errorf("contentIndex(%q) = %d, want %d", k, got, i)
		}
		body := `{"type":"ReceivedCallback","instanceId":"i","messageId":"m","phone":"1","` + k + `":{}}`
		if got := split(t, []byte(body)).Kind; got != ReceivedPrefix+k {
			t.Errorf("Split(%s).Kind = %q, want %q", body, got, ReceivedPrefix+k)
		}
	}
}

func TestSplitEdits(t *testing.T) {
	const edit = `{"type":"ReceivedCallback","instanceId":"i","messageId":"m","phone":"1","isEdit":true,"momment":%d,"text":{"message":%q}}`
	first := split(t, fmt.Appendf(nil, edit, 1, "a"))
	second := split(t, fmt.Appendf(nil, edit, 2, "b"))
	original := split(t, []byte(`{"type":"ReceivedCallback","instanceId":"i","messageId":"m","phone":"1","isEdit":false,"text":{"message":"x"}}`))
	if !strings.HasPrefix(first.Key, "1|m|edit|sha256:") {
		t.Errorf("edit key = %q, want 1|m|edit|sha256:...", first.Key)
	}
	if first.Key == second.Key || first.Key == original.Key {
		t.Errorf("edits and original share a key: %q %q %q", original.Key, first.Key, second.Key)
	}
	var indented bytes.Buffer
	if err := json.Indent(&indented, first.Data, "", "  "); err != nil {
		t.Fatal(err)
	}
	if again := split(t, indented.Bytes()); again.Key != first.Key {
		t.Errorf("re-indented edit key = %q, want %q", again.Key, first.Key)
	}
}

func TestSplitInvalid(t *testing.T) {
	for name, give := range map[string]string{
		"empty":             ``,
		"not JSON":          `hello`,
		"truncated":         `{"type":"ReceivedCallback"`,
		"trailing garbage":  `{"type":"ReceivedCallback"} x`,
		"array":             `[{"type":"ReceivedCallback"}]`,
		"string":            `"ReceivedCallback"`,
		"number":            `42`,
		"null":              `null`,
		"empty object":      `{}`,
		"type not a string": `{"type":5,"instanceId":"i"}`,
		"type null":         `{"type":null,"instanceId":"i"}`,
		"type empty":        `{"type":"","instanceId":"i"}`,
		"type in an object": `{"data":{"type":"ReceivedCallback"}}`,
		"whapi payload":     `{"messages":[{"id":"x","type":"text","chat_id":"1@s.whatsapp.net"}],"event":{"type":"messages","event":"post"},"channel_id":"MANTIS-M72HC"}`,
		"waha payload":      `{"event":"message","session":"default","payload":{"id":"x"}}`,
	} {
		t.Run(name, func(t *testing.T) {
			items, err := New().Split([]byte(give), provider.Delivery{})
			if !errors.Is(err, provider.ErrInvalid) {
				t.Errorf("Split(%q) = %v, %v; want an error wrapping ErrInvalid", give, items, err)
			}
		})
	}
}

// TestEventIDs checks that ids are deterministic, survive re-serialisation,
// and differ between fixtures except where the docs reuse one placeholder
// message id for different example messages of one kind in one chat (a real
// WhatsApp message id names one message, so these collisions cannot happen).
func TestEventIDs(t *testing.T) {
	byID := map[string][]string{}
	for _, name := range fixtures(t) {
		body := load(t, name)
		id := eventID(t, split(t, body))
		if again := eventID(t, split(t, body)); again != id {
			t.Errorf("%s: id %s then %s", name, id, again)
		}
		var indented, compact bytes.Buffer
		if err := json.Indent(&indented, body, "", "\t"); err != nil {
			t.Fatal(err)
		}
		if err := json.Compact(&compact, body); err != nil {
			t.Fatal(err)
		}
		for _, b := range [][]byte{indented.Bytes(), compact.Bytes()} {
			if got := eventID(t, split(t, b)); got != id {
				t.Errorf("%s re-serialised: id %s, want %s", name, got, id)
			}
		}
		byID[id] = append(byID[id], name)
	}
	var collisions [][]string
	for _, names := range byID {
		if len(names) > 1 {
			slices.Sort(names)
			collisions = append(collisions, names)
		}
	}
	slices.SortFunc(collisions, func(a, b []string) int { return strings.Compare(a[0], b[0]) })
	want := [][]string{
		{"ReceivedCallback_buttons-with-image.json", "ReceivedCallback_buttons-with-video.json"},
		{"ReceivedCallback_gif.json", "ReceivedCallback_ptv.json", "ReceivedCallback_video.json"},
		{"ReceivedCallback_notification-MEMBERSHIP_APPROVAL_REQUEST-invite_link.json", "ReceivedCallback_notification-MEMBERSHIP_APPROVAL_REQUEST-non_admin_add.json"},
		{"ReceivedCallback_status-reply.json", "ReceivedCallback_text-from-ad.json", "ReceivedCallback_text.json"},
	}
	if diff := cmp.Diff(want, collisions); diff != "" {
		t.Errorf("fixtures sharing an id (-want +got):\n%s", diff)
	}
}

func TestEventIDsDistinguish(t *testing.T) {
	const base = `{"type":"ReceivedCallback","instanceId":"i","messageId":"1679655074-103","phone":"1",%s}`
	bodies := []string{
		`"notification":"CALL_MISSED_VOICE","callId":"c"`,
		`"notification":"CALL_MISSED_VIDEO","callId":"c"`,
		`"waitingMessage":true`,
		`"text":{"message":"a"}`,
		`"isEdit":true,"text":{"message":"b"}`,
		`"isEdit":true,"text":{"message":"c"}`,
	}
	seen := map[string]string{}
	for _, b := range bodies {
		id := eventID(t, split(t, fmt.Appendf(nil, base, b)))
		if prev, ok := seen[id]; ok {
			t.Errorf("%s and %s share id %s", prev, b, id)
		}
		seen[id] = b
	}
}

func eventID(t testing.TB, it provider.Item) string {
	t.Helper()
	id, err := provider.EventID(Name, it)
	if err != nil {
		t.Fatalf("EventID: %v", err)
	}
	return id
}

func BenchmarkSplit(b *testing.B) {
	body := load(b, "ReceivedCallback_text.json")
	p := New()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := p.Split(body, provider.Delivery{}); err != nil {
			b.Fatal(err)
		}
	}
}
