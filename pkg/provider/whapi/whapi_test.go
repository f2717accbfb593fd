package whapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/jsonscan"
)

// got is what the tests compare of an item; Data is checked on its own.
type got struct {
	Kind, Key, Chat, Channel string
	Time                     time.Time
}

func summarise(items []provider.Item) []got {
	out := make([]got, len(items))
	for i, it := range items {
		out[i] = got{Kind: it.Kind, Key: it.Key, Chat: it.Chat, Channel: it.Channel, Time: it.Time}
	}
	return out
}

func sec(n int64) time.Time { return time.Unix(n, 0).UTC() }
func ms(n int64) time.Time  { return time.UnixMilli(n).UTC() }

func key(parts ...string) string { return strings.Join(parts, "\x00") }

const channel = "MANTIS-M72HC"

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

func split(t *testing.T, body []byte, d provider.Delivery) []provider.Item {
	t.Helper()
	items, err := New().Split(body, d)
	if err != nil {
		t.Fatalf("Split(%.200s) error: %v", body, err)
	}
	checkData(t, body, items)
	return items
}

// checkData asserts each item's Data is valid JSON lying inside the body.
func checkData(t *testing.T, body []byte, items []provider.Item) {
	t.Helper()
	for i, it := range items {
		if !json.Valid(it.Data) {
			t.Errorf("item %d: Data is not valid JSON: %s", i, it.Data)
		}
		if !bytes.Contains(body, it.Data) {
			t.Errorf("item %d: Data is not the provider's bytes: %s", i, it.Data)
		}
	}
}

var fixtureItems = map[string][]got{
	"calls.post_initiated.json": {{Kind: "calls.post", Key: key("ED3D9B4864F90327F10D24BAEED6CFB9", "initiated"), Chat: "919984351847@s.whatsapp.net", Channel: channel, Time: ms(1713792453000)}},
	"calls.post_missed.json":    {{Kind: "calls.post", Key: key("ED3D9B4864F90327F10D24BAEED6CFB9", "missed"), Chat: "919984351847@s.whatsapp.net", Channel: channel, Time: ms(1713792461000)}},
	"calls.post_ringing.json":   {{Kind: "calls.post", Key: key("ED3D9B4864F90327F10D24BAEED6CFB9", "ringing"), Chat: "919984351847@s.whatsapp.net", Channel: channel, Time: ms(1713792454000)}},

	"channel.post_health-init.json":   {{Kind: "channel.post", Channel: channel, Time: sec(1713774883 + 1)}},
	"channel.post_health-launch.json": {{Kind: "channel.post", Channel: channel, Time: sec(1713774883 + 77)}},
	"channel.post_health-qr.json":     {{Kind: "channel.post", Channel: channel, Time: sec(1713774883 + 78)}},

	"chats.delete.json":                   {{Kind: "chats.delete", Chat: "919984351847@s.whatsapp.net", Channel: channel}},
	"chats.patch_label-assigned.json":     {{Kind: "chats.patch", Chat: "120363398750933550@g.us", Channel: channel}},
	"chats.patch_label-removed.json":      {{Kind: "chats.patch", Chat: "120363398750933550@g.us", Channel: channel}},
	"chats.patch_mute-and-labels.json":    {{Kind: "chats.patch", Chat: "919984351847@s.whatsapp.net", Channel: channel}},
	"chats.post_incoming-new-chat.json":   {{Kind: "chats.post", Chat: "919984351847@s.whatsapp.net", Channel: channel, Time: sec(1747660332)}},
	"chats.post_outgoing-new-chat.json":   {{Kind: "chats.post", Chat: "919984351847@s.whatsapp.net", Channel: channel, Time: sec(1712995377)}},
	"contacts.post.json":                  {{Kind: "contacts.post", Chat: "60123673737", Channel: "MANTIS-PF213"}},
	"groups.post_new-group.json":          {{Kind: "groups.post", Chat: "120363271212442249@g.us", Channel: channel, Time: sec(1713791253)}},
	"groups.put_participant-add.json":     {{Kind: "groups.put", Chat: "120363271212442249@g.us", Channel: channel}},
	"labels.delete.json":                  {{Kind: "labels.delete", Channel: channel}},
	"labels.post.json":                    {{Kind: "labels.post", Channel: channel}},
	"messages.post_action-ephemeral.json": {{Kind: "messages.post", Key: "PrBhEFkXhz2gFVU-gNASij1GoQ", Chat: "919984351847@s.whatsapp.net", Channel: channel, Time: sec(1747661045)}},
	"messages.post_group-text.json":       {{Kind: "messages.post", Key: ".juaBlBX6cgpT8UKLNnVEw-kh8Bq53B6TdEoQ-E8JdK1c", Chat: "120363271212442249@g.us", Channel: channel, Time: sec(1713791337)}},
	"messages.post_incoming-text.json":    {{Kind: "messages.post", Key: "p.w30M7fgwWD4XwHu.g4CA-gBgTwl0rVw", Chat: "919984351847@s.whatsapp.net", Channel: channel, Time: sec(1712995245)}},
	"messages.post_outgoing-api.json":     {{Kind: "messages.post", Key: "yqJRppZk7BI-wNoTwl0rVw", Chat: "919984351847@s.whatsapp.net", Channel: channel, Time: sec(1712995598)}},
	"messages.post_outgoing-mobile.json":  {{Kind: "messages.post", Key: "YhNqCveDWW90_t8lzrW25w-wO4Twl0rVw", Chat: "919984351847@s.whatsapp.net", Channel: channel, Time: sec(1712995377)}},
	"presences.post_online.json":          {{Kind: "presences.post", Chat: "919984351847", Channel: channel}},
	"presences.post_recording.json":       {{Kind: "presences.post", Chat: "919984351847", Channel: channel}},
	"presences.post_typing.json":          {{Kind: "presences.post", Chat: "919984351847", Channel: channel}},
	"statuses.post_delivered.json": {{Kind: "statuses.post", Key: key("YhNqCveDWW90_t8lzrW25w-wO4Twl0rVw", "delivered", "919984351847@s.whatsapp.net", ""),
		Chat: "919984351847@s.whatsapp.net", Channel: channel, Time: sec(1712995378)}},
	"statuses.post_read-incoming.json": {{Kind: "statuses.post", Key: key("p.w30M7fgwWD4XwHu.g4CA-gBgTwl0rVw", "read", "919984351847@s.whatsapp.net", ""),
		Chat: "919984351847@s.whatsapp.net", Channel: channel, Time: sec(1712995290)}},
	"statuses.post_read.json": {{Kind: "statuses.post", Key: key("YhNqCveDWW90_t8lzrW25w-wO4Twl0rVw", "read", "919984351847@s.whatsapp.net", ""),
		Chat: "919984351847@s.whatsapp.net", Channel: channel, Time: sec(1712995581)}},
	"users.post.json": {{Kind: "users.post", Channel: channel}},
}

func TestSplitFixtures(t *testing.T) {
	names := fixtures(t)
	if len(names) != len(fixtureItems) {
		t.Errorf("testdata has %d fixtures, the table %d: every fixture needs a row", len(names), len(fixtureItems))
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			want, ok := fixtureItems[name]
			if !ok {
				t.Fatalf("no expectation for %s", name)
			}
			items := split(t, load(t, name), provider.Delivery{Method: "POST"})
			if diff := cmp.Diff(want, summarise(items)); diff != "" {
				t.Errorf("Split(%s) mismatch (-want +got):\n%s", name, diff)
			}
		})
	}
}

func TestSplitCases(t *testing.T) {
	for name, tc := range map[string]struct {
		give string
		d    provider.Delivery
		want []got
	}{
		"three messages are three items": {
			give: `{"messages":[
				{"id":"A","chat_id":"1@s.whatsapp.net","timestamp":1712995245},
				{"id":"B","chat_id":"2@s.whatsapp.net","timestamp":"1712995246"},
				{"id":"C","chat_id":"120363271212442249@g.us","timestamp":1712995247000}],
				"event":{"type":"messages","event":"post"},"channel_id":"MANTIS-M72HC"}`,
			want: []got{
				{Kind: "messages.post", Key: "A", Chat: "1@s.whatsapp.net", Channel: channel, Time: sec(1712995245)},
				{Kind: "messages.post", Key: "B", Chat: "2@s.whatsapp.net", Channel: channel, Time: sec(1712995246)},
				{Kind: "messages.post", Key: "C", Chat: "120363271212442249@g.us", Channel: channel, Time: sec(1712995247)},
			},
		},
		"messages.put": {
			give: `{"messages":[{"id":"A","chat_id":"1@s.whatsapp.net","timestamp":1712995245}],"event":{"type":"messages","event":"put"},"channel_id":"MANTIS-M72HC"}`,
			want: []got{{Kind: "messages.put", Key: "A", Chat: "1@s.whatsapp.net", Channel: channel, Time: sec(1712995245)}},
		},
		"message without id is identified by content": {
			give: `{"messages":[{"chat_id":"1@s.whatsapp.net"}],"event":{"type":"messages","event":"post"}}`,
			want: []got{{Kind: "messages.post", Chat: "1@s.whatsapp.net"}},
		},
		"messages.patch": {
			give: `{"messages_updates":[{"id":"M1","trigger":{"id":"T1","chat_id":"1@s.whatsapp.net","timestamp":1712995300},
				"before_update":{"id":"M1","chat_id":"1@s.whatsapp.net","timestamp":1712995245},
				"after_update":{"id":"M1","chat_id":"1@s.whatsapp.net","timestamp":1712995245},"changes":["text"]}],
				"event":{"type":"messages","event":"patch"},"channel_id":"MANTIS-M72HC"}`,
			want: []got{{Kind: "messages.patch", Chat: "1@s.whatsapp.net", Channel: channel, Time: sec(1712995300)}},
		},
		"messages.delete by ids": {
			give: `{"messages_removed":["M1","M2"],"event":{"type":"messages","event":"delete"},"channel_id":"MANTIS-M72HC"}`,
			want: []got{{Kind: "messages.delete", Channel: channel}, {Kind: "messages.delete", Channel: channel}},
		},
		"messages.delete of a whole chat": {
			give: `{"messages_removed_all":"1234567890@s.whatsapp.net","event":{"type":"messages","event":"delete"},"channel_id":"MANTIS-M72HC"}`,
			want: []got{{Kind: "messages.delete", Chat: "1234567890@s.whatsapp.net", Channel: channel}},
		},
		"story view (statuses.put with viewer_id)": {
			give: `{"statuses":[{"id":"yqJ_muc_kO8-1CcA-E8JdK1c","code":4,"status":"read","recipient_id":"stories","timestamp":"1710423471","viewer_id":"61371989950"}],
				"event":{"type":"statuses","event":"put"},"channel_id":"MANTIS-M72HC"}`,
			// "stories" is the status broadcast (providers.md §6).
			want: []got{{Kind: "statuses.put", Key: key("yqJ_muc_kO8-1CcA-E8JdK1c", "read", "stories", "61371989950"), Chat: "status@broadcast", Channel: channel, Time: sec(1710423471)}},
		},
		"story status by chat_id": {
			give: `{"statuses":[{"id":"S2","status":"read","chat_id":"stories","recipient_id":"61371989950","timestamp":"1710423471"}],"event":{"type":"statuses","event":"post"}}`,
			want: []got{{Kind: "statuses.post", Key: key("S2", "read", "61371989950", ""), Chat: "status@broadcast", Time: sec(1710423471)}},
		},
		"status with chat_id": {
			give: `{"statuses":[{"id":"S","status":"read","chat_id":"120363271212442249@g.us","recipient_id":"61371989950","timestamp":"1710423471"}],"event":{"type":"statuses","event":"post"}}`,
			want: []got{{Kind: "statuses.post", Key: key("S", "read", "61371989950", ""), Chat: "120363271212442249@g.us", Time: sec(1710423471)}},
		},
		"groups.patch": {
			give: `{"groups_updates":[{"before_update":{"id":"120363271212442249@g.us","name":"Old","timestamp":1713791253},
				"after_update":{"id":"120363271212442249@g.us","name":"New","timestamp":1713791999},"changes":["name"]}],
				"event":{"type":"groups","event":"patch"},"channel_id":"MANTIS-M72HC"}`,
			want: []got{{Kind: "groups.patch", Chat: "120363271212442249@g.us", Channel: channel}},
		},
		"chats.patch without after_update id": {
			give: `{"chats_updates":[{"before_update":{"id":"1@s.whatsapp.net"},"after_update":{},"changes":["pin"]}],"event":{"type":"chats","event":"patch"}}`,
			want: []got{{Kind: "chats.patch", Chat: "1@s.whatsapp.net"}},
		},
		"contacts.patch": {
			give: `{"contacts_updates":[{"before_update":{"id":"60123673737","name":"A"},"after_update":{"id":"60123673737","name":"B"},"changes":["name"]}],"event":{"type":"contacts","event":"patch"},"channel_id":"MANTIS-M72HC"}`,
			want: []got{{Kind: "contacts.patch", Chat: "60123673737", Channel: channel}},
		},
		"presence in a group": {
			give: `{"presences":[{"contact_id":"919984351847","chat_id":"120363271212442249@g.us","status":"typing"}],"event":{"type":"presences","event":"post"}}`,
			want: []got{{Kind: "presences.post", Chat: "120363271212442249@g.us"}},
		},
		"channel.patch (qr)": {
			give: `{"qr":{"status":"WAITING","base64":"x","expire":20},"event":{"type":"channel","event":"patch"},"channel_id":"MANTIS-M72HC"}`,
			want: []got{{Kind: "channel.patch", Channel: channel}},
		},
		"users.delete": {
			give: `{"user":{"id":"61371989950","name":"Jonathan"},"event":{"type":"users","event":"delete"},"channel_id":"MANTIS-M72HC"}`,
			want: []got{{Kind: "users.delete", Channel: channel}},
		},
		"calls in milliseconds, chat from from": {
			give: `{"calls":[{"id":"X","from":"919984351847@s.whatsapp.net","status":"answered","timestamp":1713792568000}],"event":{"type":"calls","event":"post"}}`,
			want: []got{{Kind: "calls.post", Key: key("X", "answered"), Chat: "919984351847@s.whatsapp.net", Time: ms(1713792568000)}},
		},
		"method instead of event": {
			give: `{"chats_removed":["1@s.whatsapp.net"],"event":{"type":"chats","method":"delete"},"channel_id":"MANTIS-M72HC"}`,
			want: []got{{Kind: "chats.delete", Chat: "1@s.whatsapp.net", Channel: channel}},
		},
		"deprecated type message": {
			give: `{"messages":[{"id":"A","chat_id":"1@s.whatsapp.net"}],"event":{"type":"message","event":"post"}}`,
			want: []got{{Kind: "messages.post", Key: "A", Chat: "1@s.whatsapp.net"}},
		},
		"deprecated type ack": {
			give: `{"statuses":[{"id":"A","status":"sent","recipient_id":"1@s.whatsapp.net"}],"event":{"type":"ack","event":"post"}}`,
			want: []got{{Kind: "statuses.post", Key: key("A", "sent", "1@s.whatsapp.net", ""), Chat: "1@s.whatsapp.net"}},
		},
		"deprecated type chat": {
			give: `{"chats":[{"id":"1@s.whatsapp.net","timestamp":1712995377}],"event":{"type":"chat","event":"post"}}`,
			want: []got{{Kind: "chats.post", Chat: "1@s.whatsapp.net", Time: sec(1712995377)}},
		},
		"deprecated type status with health": {
			give: `{"health":{"start_at":1713774883,"uptime":5,"status":{"code":4,"text":"AUTH"}},"event":{"type":"status","event":"post"}}`,
			want: []got{{Kind: "channel.post", Time: sec(1713774888)}},
		},
		"deprecated type status with statuses": {
			give: `{"statuses":[{"id":"A","status":"read","recipient_id":"1@s.whatsapp.net"}],"event":{"type":"status","event":"post"}}`,
			want: []got{{Kind: "statuses.post", Key: key("A", "read", "1@s.whatsapp.net", ""), Chat: "1@s.whatsapp.net"}},
		},
		"upper-case tokens": {
			give: `{"calls":[{"id":"X","status":"missed"}],"event":{"type":"Calls","event":"POST"}}`,
			want: []got{{Kind: "calls.post", Key: key("X", "missed")}},
		},
		"path mode": {
			give: `{"labels_removed":["New order"],"channel_id":"MANTIS-M72HC"}`,
			d:    provider.Delivery{Method: "POST", Segments: []string{"labels", "delete"}},
			want: []got{{Kind: "labels.delete", Channel: channel}},
		},
		"path mode with the deprecated type in the URL": {
			give: `{"messages":[{"id":"A"}],"channel_id":"MANTIS-M72HC"}`,
			d:    provider.Delivery{Method: "POST", Segments: []string{"message", "post"}},
			want: []got{{Kind: "messages.post", Key: "A", Channel: channel}},
		},
		"method mode": {
			give: `{"chats_updates":[{"before_update":{"id":"1@s.whatsapp.net"},"after_update":{"id":"1@s.whatsapp.net"},"changes":["archive"]}],"channel_id":"MANTIS-M72HC"}`,
			d:    provider.Delivery{Method: "PATCH", Segments: []string{"chats"}},
			want: []got{{Kind: "chats.patch", Chat: "1@s.whatsapp.net", Channel: channel}},
		},
		"method mode with DELETE": {
			give: `{"user":{"id":"61371989950"},"channel_id":"MANTIS-M72HC"}`,
			d:    provider.Delivery{Method: "DELETE", Segments: []string{"users"}},
			want: []got{{Kind: "users.delete", Channel: channel}},
		},
		"body event wins over the URL": {
			give: `{"messages":[{"id":"A"}],"event":{"type":"messages","event":"put"}}`,
			d:    provider.Delivery{Method: "POST", Segments: []string{"messages", "post"}},
			want: []got{{Kind: "messages.put", Key: "A"}},
		},
		"URL fills what the body leaves out": {
			give: `{"messages":[{"id":"A"}],"event":{"type":"messages"}}`,
			d:    provider.Delivery{Method: "PUT", Segments: []string{"messages"}},
			want: []got{{Kind: "messages.put", Key: "A"}},
		},
		"huge mute_until and extra fields": {
			give: `{"chats_updates":[{"before_update":{"id":"1@s.whatsapp.net","mute_until":18446744073709552000},
				"after_update":{"id":"1@s.whatsapp.net","mute":true,"mute_until":18446744073709552000,"x":[{"y":null}]},"changes":["mute"]}],
				"event":{"type":"chats","event":"patch","extra":1},"channel_id":"MANTIS-M72HC","extra":{"a":[1,2]}}`,
			want: []got{{Kind: "chats.patch", Chat: "1@s.whatsapp.net", Channel: channel},
				{Kind: provider.KindUnknown, Key: key("chats.patch", "extra", contentKey(`{"a":[1,2]}`)), Channel: channel}},
		},
		"escaped keys and values": {
			give: `{"m\u0065ssages":[{"\u0069d":"A\u00e9","chat_id":"1@s.whatsapp.net"}],"event":{"type":"messages","event":"post"},"channel_id":"MANTIS-M72HC"}`,
			want: []got{{Kind: "messages.post", Key: "Aé", Chat: "1@s.whatsapp.net", Channel: channel}},
		},
		"duplicate keys: the last wins": {
			give: `{"messages":[{"id":"A","id":"B"}],"event":{"type":"messages","event":"post"}}`,
			want: []got{{Kind: "messages.post", Key: "B"}},
		},
		"numeric ids and channel": {
			give: `{"messages":[{"id":12345,"chat_id":"1@s.whatsapp.net"}],"event":{"type":"messages","event":"post"},"channel_id":42}`,
			want: []got{{Kind: "messages.post", Key: "12345", Chat: "1@s.whatsapp.net", Channel: "42"}},
		},
		"a single object where an array is documented": {
			give: `{"messages":{"id":"A","chat_id":"1@s.whatsapp.net"},"event":{"type":"messages","event":"post"}}`,
			want: []got{{Kind: "messages.post", Key: "A", Chat: "1@s.whatsapp.net"}},
		},
		"empty collection: nothing to publish": {
			give: `{"messages":[],"event":{"type":"messages","event":"post"},"channel_id":"MANTIS-M72HC"}`,
			want: []got{},
		},
		"empty channel_id is no channel": {
			give: `{"messages":[{"id":"A"}],"event":{"type":"messages","event":"post"},"channel_id":""}`,
			want: []got{{Kind: "messages.post", Key: "A"}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			items := split(t, []byte(tc.give), tc.d)
			if diff := cmp.Diff(tc.want, summarise(items)); diff != "" {
				t.Errorf("Split(%s) mismatch (-want +got):\n%s", tc.give, diff)
			}
		})
	}
}

func TestSplitUnknown(t *testing.T) {
	for name, tc := range map[string]struct {
		give      string
		d         provider.Delivery
		wantData  []string
		wantKinds []string // default: all unknown
	}{
		"unknown pair with an array": {
			give:     `{"labels":[{"id":"1"},{"id":"2"}],"event":{"type":"labels","event":"put"},"channel_id":"MANTIS-M72HC"}`,
			wantData: []string{`{"id":"1"}`, `{"id":"2"}`},
		},
		"unknown type": {
			give:     `{"event":{"type":"service","event":"post"},"channel_id":"MANTIS-M72HC","notice":{"a":1}}`,
			wantData: []string{`{"event":{"type":"service","event":"post"},"channel_id":"MANTIS-M72HC","notice":{"a":1}}`},
		},
		"unknown collection beside a known one keeps the whole body": {
			give:     `{"newsletters":[{"id":"1"}],"messages":[{"id":"A"}],"event":{"type":"newsletters","event":"post"}}`,
			wantData: []string{`{"newsletters":[{"id":"1"}],"messages":[{"id":"A"}],"event":{"type":"newsletters","event":"post"}}`},
		},
		"known pair without its collection": {
			give:     `{"chats":[{"id":"1@s.whatsapp.net"}],"event":{"type":"messages","event":"post"}}`,
			wantData: []string{`{"id":"1@s.whatsapp.net"}`},
		},
		"no event in body mode": {
			give:     `{"messages":[{"id":"A"}],"channel_id":"MANTIS-M72HC"}`,
			wantData: []string{`{"id":"A"}`},
		},
		"only an event": {
			give:     `{"event":{"type":"messages","event":"post"}}`,
			wantData: []string{`{"event":{"type":"messages","event":"post"}}`},
		},
		"only a channel": {
			give:     `{"channel_id":"MANTIS-M72HC"}`,
			wantData: []string{`{"channel_id":"MANTIS-M72HC"}`},
		},
		"a null collection": {
			give:     `{"messages":null,"event":{"type":"messages","event":"post"}}`,
			wantData: []string{`{"messages":null,"event":{"type":"messages","event":"post"}}`},
		},
		"unknown method in method mode": {
			give:     `{"messages":[{"id":"A"}]}`,
			d:        provider.Delivery{Method: "OPTIONS", Segments: []string{"messages"}},
			wantData: []string{`{"id":"A"}`},
		},
		"unknown event token in path mode": {
			give:     `{"user":{"id":"1"}}`,
			d:        provider.Delivery{Method: "POST", Segments: []string{"users", "patch"}},
			wantData: []string{`{"id":"1"}`},
		},
		"extra collection beside the kind's own": {
			give:      `{"messages":[{"id":"A"}],"errors":[{"code":1}],"event":{"type":"messages","event":"post"}}`,
			wantData:  []string{`{"id":"A"}`, `{"code":1}`},
			wantKinds: []string{"messages.post", provider.KindUnknown},
		},
		"unknown members beside a known kind are kept, each element one item": {
			give: `{"messages":[{"id":"A"}],"newsletters":[{"id":"n1"},{"id":"n2"}],"event":{"type":"messages","event":"post"},` +
				`"channel_id":"MANTIS-M72HC","notice":{"a":1},"gone":null}`,
			wantData:  []string{`{"id":"A"}`, `{"id":"n1"}`, `{"id":"n2"}`, `{"a":1}`},
			wantKinds: []string{"messages.post", provider.KindUnknown, provider.KindUnknown, provider.KindUnknown},
		},
	} {
		t.Run(name, func(t *testing.T) {
			items := split(t, []byte(tc.give), tc.d)
			var data, kinds []string
			for _, it := range items {
				data = append(data, string(it.Data))
				kinds = append(kinds, it.Kind)
			}
			if diff := cmp.Diff(tc.wantData, data); diff != "" {
				t.Errorf("Split(%s) data mismatch (-want +got):\n%s", tc.give, diff)
			}
			want := tc.wantKinds
			if want == nil {
				for range tc.wantData {
					want = append(want, provider.KindUnknown)
				}
			}
			if diff := cmp.Diff(want, kinds); diff != "" {
				t.Errorf("Split(%s) kinds mismatch (-want +got):\n%s", tc.give, diff)
			}
		})
	}
}

// The same element under two different unknown events keeps two identities.
func TestSplitUnknownIDs(t *testing.T) {
	ids := map[string]string{}
	for _, body := range []string{
		`{"labels":[{"id":"1"}],"event":{"type":"labels","event":"put"}}`,
		`{"labels":[{"id":"1"}],"event":{"type":"labels","event":"patch"}}`,
		`{"labels":[{"id":"1"}],"event":{"type":"other","event":"put"}}`,
		`{"messages":[{"id":"1"}],"event":{"type":"labels","event":"put"}}`,
	} {
		items := split(t, []byte(body), provider.Delivery{})
		id, err := provider.EventID(Name, items[0])
		if err != nil {
			t.Fatal(err)
		}
		if prev, dup := ids[id]; dup {
			t.Errorf("%s and %s share event id %s", prev, body, id)
		}
		ids[id] = body
	}
}

func contentKey(data string) string {
	k, err := provider.ContentKey([]byte(data))
	if err != nil {
		panic(err)
	}
	return k
}

// Unknown members beside a known kind are identified by their member name
// and canonical content: the same delivery re-serialised keeps its ids, the
// same element under two members gets two.
func TestSplitUnknownMemberIDs(t *testing.T) {
	ids := func(body string) []string {
		t.Helper()
		var out []string
		for _, it := range split(t, []byte(body), provider.Delivery{}) {
			id, err := provider.EventID(Name, it)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, id)
		}
		return out
	}
	a := ids(`{"messages":[{"id":"A"}],"notes":[{"x":1,"y":2}],"event":{"type":"messages","event":"post"}}`)
	b := ids(`{ "event" : {"type":"messages","event":"post"}, "notes" : [ {"y":2, "x":1} ], "messages":[{"id":"A"}] }`)
	c := ids(`{"messages":[{"id":"A"}],"remarks":[{"x":1,"y":2}],"event":{"type":"messages","event":"post"}}`)
	if len(a) != 2 || fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("re-serialised delivery: ids %v then %v", a, b)
	}
	if len(c) != 2 || c[1] == a[1] {
		t.Errorf("one element under two member names shares id %s", a[1])
	}
}

func TestSplitMaxItems(t *testing.T) {
	many := func(n int, extra string) []byte {
		return []byte(`{"messages":[` + strings.TrimSuffix(strings.Repeat(`{},`, n), ",") + `]` + extra + `,"event":{"type":"messages","event":"post"}}`)
	}
	// Messages with ids and chats: their keys and chats are gathered in
	// chunks, the last of which the bound cuts short.
	keyed := func(n int) []byte {
		var els []string
		for i := range n {
			els = append(els, `{"id":"M`+strconv.Itoa(i)+`","chat_id":"`+strconv.Itoa(i)+`@s.whatsapp.net"}`)
		}
		return []byte(`{"messages":[` + strings.Join(els, ",") + `],"event":{"type":"messages","event":"post"}}`)
	}
	for name, tc := range map[string]struct {
		body []byte
		max  int
		want int // items; -1: ErrTooManyItems
	}{
		"at the bound":             {many(5, ""), 5, 5},
		"over the bound":           {many(6, ""), 5, -1},
		"unbounded":                {many(2000, ""), 0, 2000},
		"a million empty items":    {many(1_000_000, ""), 1000, -1},
		"identified, at the bound": {keyed(40), 40, 40},
		"identified, over":         {keyed(40), 39, -1},
		"unknown members count":    {many(4, `,"notes":[1,2]`), 5, -1},
		"other collections count":  {many(4, `,"errors":[{},{}]`), 5, -1},
		"unknown kind counts too":  {[]byte(`{"labels":[` + strings.TrimSuffix(strings.Repeat(`{},`, 6), ",") + `],"event":{"type":"labels","event":"put"}}`), 5, -1},
	} {
		t.Run(name, func(t *testing.T) {
			items, err := New().Split(tc.body, provider.Delivery{Method: "POST", MaxItems: tc.max})
			switch {
			case tc.want < 0 && !errors.Is(err, provider.ErrTooManyItems):
				t.Errorf("Split = %d items, %v; want ErrTooManyItems", len(items), err)
			case tc.want >= 0 && (err != nil || len(items) != tc.want):
				t.Errorf("Split = %d items, %v; want %d", len(items), err, tc.want)
			}
			for i, it := range items {
				if it.Key != "" && (it.Key != "M"+strconv.Itoa(i) || it.Chat != strconv.Itoa(i)+"@s.whatsapp.net") {
					t.Errorf("item %d: key %q chat %q", i, it.Key, it.Chat)
				}
			}
		})
	}
}

func TestSplitInvalid(t *testing.T) {
	for name, give := range map[string]string{
		"empty":                ``,
		"not JSON":             `hello`,
		"truncated":            `{"messages":[{"id":"A"}]`,
		"array":                `[{"messages":[]}]`,
		"string":               `"messages"`,
		"number":               `42`,
		"null":                 `null`,
		"empty object":         `{}`,
		"WAHA envelope":        `{"id":"evt_01","event":"message","session":"default","payload":{"id":"x"}}`,
		"Z-API callback":       `{"type":"ReceivedCallback","instanceId":"A20DA9C0183A2D35A260F53F5D2B9244","phone":"5544999999999","text":{"message":"hi"}}`,
		"channel_id an object": `{"messages":[{"id":"A"}],"channel_id":{"id":"x"}}`,
		"nested too deep":      `{"chats_updates":[` + strings.Repeat("[", jsonscan.MaxDepth) + strings.Repeat("]", jsonscan.MaxDepth) + `],"event":{"type":"chats","event":"patch"}}`,
		// One level past TestSplitDeepButFine's whole body.
		"one level too deep": `{"event":{"type":"x"},"x":` + strings.Repeat("[", jsonscan.MaxDepth) + strings.Repeat("]", jsonscan.MaxDepth) + `}`,
	} {
		t.Run(name, func(t *testing.T) {
			items, err := New().Split([]byte(give), provider.Delivery{Method: "POST"})
			if !errors.Is(err, provider.ErrInvalid) {
				t.Errorf("Split(%s) = %d items, %v; want an error wrapping ErrInvalid", give, len(items), err)
			}
		})
	}
}

// Items nested as deep as ContentKey reads are still accepted and identified.
func TestSplitDeepButFine(t *testing.T) {
	const depth = jsonscan.MaxDepth - 3 // chats_updates array, element, body
	body := `{"chats_updates":[{"x":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}],"event":{"type":"chats","event":"patch"}}`
	// The whole body as one unknown item, at the limit.
	whole := `{"event":{"type":"x"},"x":` + strings.Repeat("[", jsonscan.MaxDepth-1) + strings.Repeat("]", jsonscan.MaxDepth-1) + `}`
	for _, b := range []string{body, whole} {
		items := split(t, []byte(b), provider.Delivery{})
		if _, err := provider.EventID(Name, items[0]); err != nil {
			t.Errorf("EventID: %v", err)
		}
	}
}

func TestCheckRoute(t *testing.T) {
	for _, tc := range []struct {
		method   string
		segments []string
		want     error
	}{
		{"POST", nil, nil},
		{"PUT", nil, provider.ErrMethod},
		{"GET", nil, provider.ErrMethod},
		{"POST", []string{"messages"}, nil},
		{"PUT", []string{"messages"}, nil},
		{"PATCH", []string{"chats"}, nil},
		{"DELETE", []string{"labels"}, nil},
		{"GET", []string{"labels"}, provider.ErrMethod},
		{"PATCH", []string{"newtype"}, nil},
		{"POST", []string{"messages", "post"}, nil},
		{"POST", []string{"message", "post"}, nil},
		{"POST", []string{"newtype", "newevent"}, nil},
		{"PATCH", []string{"messages", "patch"}, provider.ErrMethod},
		{"POST", []string{"messages", "post", "x"}, provider.ErrNoRoute},
		{"POST", []string{""}, provider.ErrNoRoute},
		{"POST", []string{"a/b"}, provider.ErrNoRoute},
		{"POST", []string{"messages", "a.b"}, provider.ErrNoRoute},
		{"PUT", []string{"a b"}, provider.ErrNoRoute},
	} {
		err := New().CheckRoute(tc.method, tc.segments)
		if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
			t.Errorf("CheckRoute(%s, %q) = %v, want %v", tc.method, tc.segments, err, tc.want)
		}
	}
	if err := provider.CheckRoute(New(), "PUT", []string{"messages"}); err != nil {
		t.Errorf("provider.CheckRoute does not use the RouteChecker: %v", err)
	}
}

func eventIDs(t *testing.T, body []byte) []string {
	t.Helper()
	items, err := New().Split(body, provider.Delivery{Method: "POST"})
	if err != nil {
		t.Fatalf("Split: %v", err)
	}
	ids := make([]string, len(items))
	for i, it := range items {
		if ids[i], err = provider.EventID(Name, it); err != nil {
			t.Fatalf("EventID: %v", err)
		}
	}
	return ids
}

func TestEventIDs(t *testing.T) {
	owner := map[string]string{}
	for _, name := range fixtures(t) {
		body := load(t, name)
		ids := eventIDs(t, body)
		if diff := cmp.Diff(ids, eventIDs(t, body)); diff != "" {
			t.Errorf("%s: ids differ between two Splits:\n%s", name, diff)
		}
		var indented, compact bytes.Buffer
		if err := json.Indent(&indented, body, "", "\t\t"); err != nil {
			t.Fatal(err)
		}
		if err := json.Compact(&compact, body); err != nil {
			t.Fatal(err)
		}
		for _, re := range [][]byte{indented.Bytes(), compact.Bytes(), reorder(t, body)} {
			if diff := cmp.Diff(ids, eventIDs(t, re)); diff != "" {
				t.Errorf("%s: re-serialised body gives other ids:\n%s", name, diff)
			}
		}
		// Every fixture is a different event, placeholder ids included: the
		// statuses share a message id but not a status, the calls a call id
		// but not a state, and the rest differ in content.
		for _, id := range ids {
			if prev, dup := owner[id]; dup {
				t.Errorf("%s and %s share event id %s", prev, name, id)
			}
			owner[id] = name
		}
	}
}

// Items with an event id keep it when a redelivery's content differs (a
// message's status moved on); items without one are their content.
func TestEventIDsByKey(t *testing.T) {
	base := eventIDs(t, []byte(`{"messages":[{"id":"A","status":"pending"}],"event":{"type":"messages","event":"post"},"channel_id":"MANTIS-M72HC"}`))
	again := eventIDs(t, []byte(`{"messages":[{"id":"A","status":"sent"}],"event":{"type":"messages","event":"post"},"channel_id":"MANTIS-M72HC"}`))
	if base[0] != again[0] {
		t.Errorf("one message id, two event ids: %s, %s", base[0], again[0])
	}
	other := eventIDs(t, []byte(`{"messages":[{"id":"A"}],"event":{"type":"messages","event":"post"},"channel_id":"MANTIS-OTHER"}`))
	if base[0] == other[0] {
		t.Errorf("one message id in two channels, one event id %s", base[0])
	}
	put := eventIDs(t, []byte(`{"messages":[{"id":"A"}],"event":{"type":"messages","event":"put"},"channel_id":"MANTIS-M72HC"}`))
	if base[0] == put[0] {
		t.Errorf("messages.post and messages.put share event id %s", base[0])
	}
}

// reorder re-serialises body with object keys sorted, as a provider that
// rebuilds its JSON might.
func reorder(t *testing.T, body []byte) []byte {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A collection of one element is read without scanning the element for its
// end: its item's data must still be the element exactly, white space
// around it dropped, as for a collection of several.
func TestSplitOneElement(t *testing.T) {
	const el = `{"after_update":{"id":"1@g.us","labels":[{"id":"1"},{"id":"2"}]},"changes":["labels","name"]}`
	for _, arr := range []string{
		`[` + el + `]`,
		"[ \n\t" + el + " \r\n]",
		`[` + el + `,` + el + `]`,
		"[\n" + el + " ,\n" + el + "\n]",
	} {
		body := `{"chats_updates":` + arr + `,"event":{"type":"chats","event":"patch"},"channel_id":"C1"}`
		items := split(t, []byte(body), provider.Delivery{})
		var want [][]byte
		for v := range jsonscan.Elements([]byte(arr)) {
			want = append(want, v)
		}
		if len(items) != len(want) {
			t.Fatalf("%q: %d items, want %d", arr, len(items), len(want))
		}
		for i, it := range items {
			if string(it.Data) != string(want[i]) || it.Chat != "1@g.us" {
				t.Errorf("%q: item %d: data %q chat %q, want %q", arr, i, it.Data, it.Chat, want[i])
			}
		}
	}
}
