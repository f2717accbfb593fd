package waha_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/waha"
)

func load(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("read fixture: %v", err)
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

// item is an Item without its Data, for comparisons.
type item struct {
	Kind, Channel, Key, Chat string
	Time                     time.Time
}

func strip(items []provider.Item) []item {
	out := make([]item, len(items))
	for i, it := range items {
		out[i] = item{it.Kind, it.Channel, it.Key, it.Chat, it.Time}
	}
	return out
}

var envTime = time.UnixMilli(1634567890123).UTC()

func TestSplitFixtures(t *testing.T) {
	want := map[string]item{
		"call.accepted.json":         {"call.accepted", "default", "evt_01...", "", envTime},
		"call.received.json":         {"call.received", "default", "evt_01...", "11111111111@c.us", envTime},
		"chat.archive.json":          {"chat.archive", "default", "evt_01...", "11111111111@c.us", envTime},
		"group.v2.participants.json": {"group.v2.participants", "default", "evt_01...", "1234567890@g.us", envTime},
		"group.v2.update.json":       {"group.v2.update", "default", "evt_01...", "1234567890@g.us", envTime},
		"label.chat.added.json":      {"label.chat.added", "default", "evt_01...", "11111111111@c.us", envTime},
		"label.upsert.json":          {"label.upsert", "default", "evt_01...", "", envTime},
		"message.ack.json":           {"message.ack", "default", "evt_01...", "11111111111@c.us", envTime},
		// No chat field: the chat part of the serialized message id.
		"message.edited.json": {"message.edited", "default", "evt_01...", "11111111111@c.us", envTime},
		// fromMe: the chat is "to".
		"message.json":          {"message", "default", "evt_01aaaaaaaaaaaaaaaaaaaaaaaa", "11111111111@c.us", envTime},
		"message.reaction.json": {"message.reaction", "default", "evt_01...", "11111111111@c.us", envTime},
		"presence.update.json":  {"presence.update", "default", "evt_01...", "11111111111@c.us", envTime},
		"session.status.json":   {"session.status", "default", "evt_01aaaaaaaaaaaaaaaaaaaaaaaa", "", envTime},
		"session.status_lifecycle-guide-variant.json": {
			"session.status", "123456789", "", "", time.Unix(1722170400, 0).UTC(),
		},
	}
	names := fixtures(t)
	if len(names) != len(want) {
		t.Errorf("testdata has %d fixtures, the table %d", len(names), len(want))
	}
	p := waha.New()
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			w, ok := want[name]
			if !ok {
				t.Fatalf("no expectation for %s", name)
			}
			body := load(t, name)
			items, err := p.Split(body, provider.Delivery{Method: "POST"})
			if err != nil {
				t.Fatalf("Split(%s): %v", name, err)
			}
			if diff := cmp.Diff([]item{w}, strip(items)); diff != "" {
				t.Errorf("Split(%s) mismatch (-want +got):\n%s", name, diff)
			}
			if !bytes.Equal(items[0].Data, body) {
				t.Errorf("Split(%s): Data is not the body unchanged", name)
			}
		})
	}
}

// TestSplitEngineShapes covers WAHA engine bodies, which may carry no
// envelope id and timestamp (the 2024 core) and name chats differently.
func TestSplitEngineShapes(t *testing.T) {
	sec := time.Unix(1666943582, 0).UTC()
	for name, tc := range map[string]struct {
		give string
		want item
	}{
		"message without envelope id": {
			`{"event":"message","session":"s1","engine":"NOWEB","payload":{"id":"false_5511@c.us_AAA","timestamp":1666943582,"from":"5511@c.us","fromMe":false,"to":"me@c.us","body":"hi"}}`,
			item{"message", "s1", "false_5511@c.us_AAA", "5511@c.us", sec},
		},
		"group message": {
			`{"event":"message.any","session":"s1","payload":{"id":"false_123@g.us_AAA_5511@c.us","timestamp":"1666943582","from":"123@g.us","participant":"5511@c.us","fromMe":false}}`,
			item{"message.any", "s1", "false_123@g.us_AAA_5511@c.us", "123@g.us", sec},
		},
		"envelope id and ms timestamp win": {
			`{"id":"evt_01JZ","timestamp":1634567890123,"event":"message","session":"s1","payload":{"id":"true_5511@c.us_AAA","timestamp":1666943582,"from":"me@c.us","fromMe":true,"to":"5511@c.us"}}`,
			item{"message", "s1", "evt_01JZ", "5511@c.us", envTime},
		},
		"ack": {
			`{"event":"message.ack","session":"s1","payload":{"id":"true_5511@c.us_AAA","from":"me@c.us","to":"5511@c.us","participant":null,"fromMe":true,"ack":3,"ackName":"READ"}}`,
			item{"message.ack", "s1", "true_5511@c.us_AAA/3", "5511@c.us", time.Time{}},
		},
		"group ack": {
			`{"event":"message.ack.group","session":"s1","payload":{"id":"true_123@g.us_AAA","from":"me@c.us","to":"123@g.us","participant":"5511@c.us","fromMe":true,"ack":"3"}}`,
			item{"message.ack.group", "s1", "true_123@g.us_AAA/5511@c.us/3", "123@g.us", time.Time{}},
		},
		"reaction": {
			`{"event":"message.reaction","session":"s1","payload":{"id":"false_5511@c.us_RRR","timestamp":1666943582,"from":"5511@c.us","fromMe":false,"to":"me@c.us","reaction":{"text":"👍","messageId":"true_5511@c.us_AAA"}}}`,
			item{"message.reaction", "s1", "false_5511@c.us_RRR/👍", "5511@c.us", sec},
		},
		"revoked": {
			`{"event":"message.revoked","session":"s1","payload":{"after":{"id":"false_5511@c.us_REV","timestamp":1666943582,"from":"5511@c.us","fromMe":false},"before":{"id":"false_5511@c.us_AAA"},"revokedMessageId":"AAA"}}`,
			item{"message.revoked", "s1", "false_5511@c.us_REV", "5511@c.us", time.Time{}},
		},
		"edited has no own identity": {
			`{"event":"message.edited","session":"s1","payload":{"id":"false_5511@c.us_AAA","timestamp":1666943582,"from":"5511@c.us","fromMe":false,"body":"new","editedMessageId":"AAA"}}`,
			item{"message.edited", "s1", "", "5511@c.us", sec},
		},
		"call": {
			`{"event":"call.received","session":"s1","payload":{"id":"ABCDEF","from":"5511@c.us","timestamp":1666943582,"isVideo":true,"isGroup":false}}`,
			item{"call.received", "s1", "ABCDEF", "5511@c.us", sec},
		},
		"chat archive names the chat id": {
			`{"event":"chat.archive","session":"s1","payload":{"id":"5511@c.us","archived":true,"timestamp":1666943582}}`,
			item{"chat.archive", "s1", "", "5511@c.us", sec},
		},
		"presence": {
			`{"event":"presence.update","session":"s1","payload":{"id":"5511@c.us","presences":[{"participant":"5511@c.us","lastKnownPresence":"typing"}]}}`,
			item{"presence.update", "s1", "", "5511@c.us", time.Time{}},
		},
		"label upsert is the label": {
			`{"event":"label.upsert","session":"s1","payload":{"id":"1","name":"Lead","color":0,"colorHex":"#ff9485"}}`,
			item{"label.upsert", "s1", "", "", time.Time{}},
		},
		"label association": {
			`{"event":"label.chat.deleted","session":"s1","payload":{"labelId":"1","label":null,"chatId":"5511@c.us"}}`,
			item{"label.chat.deleted", "s1", "", "5511@c.us", time.Time{}},
		},
		"group participants (ms timestamp)": {
			`{"event":"group.v2.participants","session":"s1","payload":{"group":{"id":"123@g.us"},"type":"join","timestamp":1666943582000,"participants":[{"id":"9@lid","pn":"5511@c.us","role":"participant"}],"_data":{}}}`,
			item{"group.v2.participants", "s1", "", "123@g.us", sec},
		},
		"group v1 notification": {
			`{"event":"group.join","session":"s1","payload":{"id":{"fromMe":false,"remote":"123@g.us","id":"N1","_serialized":"false_123@g.us_N1"},"chatId":"123@g.us","author":"5511@c.us","recipientIds":["5522@c.us"],"type":"add","timestamp":1666943582}}`,
			item{"group.join", "s1", "false_123@g.us_N1", "123@g.us", sec},
		},
		"poll vote": {
			`{"event":"poll.vote","session":"s1","payload":{"vote":{"id":"false_5511@c.us_V1","from":"5511@c.us","fromMe":false,"to":"me@c.us","selectedOptions":["Yes"],"timestamp":1692861369},"poll":{"id":"true_5511@c.us_P1","from":"me@c.us","fromMe":true,"to":"5511@c.us"}}}`,
			item{"poll.vote", "s1", "false_5511@c.us_V1", "5511@c.us", time.Time{}},
		},
		"session status without id": {
			`{"event":"session.status","session":"s1","engine":"WEBJS","payload":{"name":"s1","status":"WORKING","statuses":[{"status":"STARTING","timestamp":1700000000000}]}}`,
			item{"session.status", "s1", "", "", time.Time{}},
		},
		"unknown event name": {
			`{"id":"evt_X","event":"group.v2.participants.future","session":"s1","payload":{"chatId":"123@g.us"}}`,
			item{provider.KindUnknown, "s1", "evt_X", "123@g.us", time.Time{}},
		},
		// GroupV2ParticipantsJoinRequestEvent (devlikeapro/waha
		// src/structures/groups.events.dto.ts): the group is group.id.
		"group join request": {
			`{"id":"evt_J","event":"group.v2.participants.join-request","session":"s1","payload":{"group":{"id":"123@g.us"},"action":"created","requesterId":"9@lid"}}`,
			item{"group.v2.participants.join-request", "s1", "evt_J", "123@g.us", time.Time{}},
		},
		// GOWS call: the chat is WAHA's from, whatsmeow's From without its
		// device (devlikeapro/waha src/core/engines/gows/session.gows.core.ts
		// toCallData), not the creator's alt.
		"gows call chat is from": {
			`{"id":"evt_C","event":"call.received","session":"s1","payload":{"id":"C1","from":"9@lid","_data":{"CallCreator":"9@lid","CallCreatorAlt":"5511@s.whatsapp.net"}}}`,
			item{"call.received", "s1", "evt_C", "9@lid", time.Time{}},
		},
		"payload of an unexpected type is kept": {
			`{"event":"message","session":"s1","payload":["odd"]}`,
			item{"message", "s1", "", "", time.Time{}},
		},
		"numbers as strings, number session": {
			`{"id":"evt_Y","timestamp":"1634567890123","event":"message.ack","session":42,"payload":{"id":"true_5511@c.us_AAA","ack":"2","chatId":"5511@c.us"}}`,
			item{"message.ack", "42", "evt_Y", "5511@c.us", envTime},
		},
	} {
		t.Run(name, func(t *testing.T) {
			items, err := waha.New().Split([]byte(tc.give), provider.Delivery{Method: "POST"})
			if err != nil {
				t.Fatalf("Split: %v", err)
			}
			if diff := cmp.Diff([]item{tc.want}, strip(items)); diff != "" {
				t.Errorf("Split mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSplitInvalid(t *testing.T) {
	for name, give := range map[string]string{
		"empty":            ``,
		"not json":         `event=message`,
		"truncated":        `{"event":"message","payload":{`,
		"array":            `[{"event":"message"}]`,
		"string":           `"message"`,
		"null":             `null`,
		"empty object":     `{}`,
		"no event":         `{"session":"default","payload":{"id":"x"}}`,
		"event not string": `{"event":5,"session":"default","payload":{}}`,
		"empty event":      `{"event":"","session":"default","payload":{}}`,
		"flat without id":  `{"status":"WORKING","ts":1722170400}`,
		"zapi body":        `{"type":"ReceivedCallback","instanceId":"A1","status":"RECEIVED","momment":1632228638000}`,
		"whapi body":       `{"messages":[],"event":{"type":"messages","event":"post"},"channel_id":"C"}`,
		"trailing garbage": `{"event":"message","session":"s"} x`,
	} {
		t.Run(name, func(t *testing.T) {
			items, err := waha.New().Split([]byte(give), provider.Delivery{Method: "POST"})
			if !errors.Is(err, provider.ErrInvalid) {
				t.Fatalf("Split(%q) = %v, %v; want an error wrapping ErrInvalid", give, items, err)
			}
			if strings.TrimSpace(strings.TrimPrefix(err.Error(), provider.ErrInvalid.Error()+":")) == "" {
				t.Errorf("Split(%q): error %q gives no reason", give, err)
			}
		})
	}
}

func eventIDs(t *testing.T, body []byte) []string {
	t.Helper()
	items, err := waha.New().Split(body, provider.Delivery{Method: "POST"})
	if err != nil {
		t.Fatalf("Split: %v", err)
	}
	ids := make([]string, len(items))
	for i, it := range items {
		if ids[i], err = provider.EventID(waha.Name, it); err != nil {
			t.Fatalf("EventID: %v", err)
		}
	}
	return ids
}

func TestEventIDs(t *testing.T) {
	seen := map[string]string{}
	for _, name := range fixtures(t) {
		body := load(t, name)
		first := eventIDs(t, body)
		if diff := cmp.Diff(first, eventIDs(t, body)); diff != "" {
			t.Errorf("%s: ids differ between two Splits (-first +second):\n%s", name, diff)
		}
		var compact, indented bytes.Buffer
		if err := json.Compact(&compact, body); err != nil {
			t.Fatal(err)
		}
		if err := json.Indent(&indented, body, "", "\t"); err != nil {
			t.Fatal(err)
		}
		for form, b := range map[string][]byte{"compact": compact.Bytes(), "indented": indented.Bytes()} {
			if diff := cmp.Diff(first, eventIDs(t, b)); diff != "" {
				t.Errorf("%s: %s body gives other ids (-original +%s):\n%s", name, form, form, diff)
			}
		}
		// Every fixture is a different event. The docs reuse the placeholder
		// envelope id "evt_01..." across kinds, which the kind keeps apart.
		for _, id := range first {
			if other, dup := seen[id]; dup {
				t.Errorf("%s and %s share event id %s", name, other, id)
			}
			seen[id] = name
		}
	}
}

func TestEventIDsWithoutEnvelopeID(t *testing.T) {
	ack := func(level int) string {
		return `{"event":"message.ack","session":"s1","payload":{"id":"true_5511@c.us_AAA","fromMe":true,"to":"5511@c.us","ack":` +
			string(rune('0'+level)) + `}}`
	}
	read, delivered := eventIDs(t, []byte(ack(3))), eventIDs(t, []byte(ack(2)))
	if read[0] == delivered[0] {
		t.Errorf("acks 2 and 3 of one message share id %s", read[0])
	}
	archive := func(archived string) []byte {
		return []byte(`{"event":"chat.archive","session":"s1","payload":{"id":"5511@c.us","archived":` + archived + `,"timestamp":1666943582}}`)
	}
	if a, u := eventIDs(t, archive("true")), eventIDs(t, archive("false")); a[0] == u[0] {
		t.Errorf("archive and unarchive of one chat share id %s", a[0])
	}
	msg := []byte(`{"event":"message","session":"s1","payload":{"id":"false_5511@c.us_AAA","from":"5511@c.us"}}`)
	any := bytes.Replace(msg, []byte(`"message"`), []byte(`"message.any"`), 1)
	if m, a := eventIDs(t, msg), eventIDs(t, any); m[0] == a[0] {
		t.Errorf("message and message.any of one message share id %s", m[0])
	}
	other := bytes.Replace(msg, []byte(`"s1"`), []byte(`"s2"`), 1)
	if m, o := eventIDs(t, msg), eventIDs(t, other); m[0] == o[0] {
		t.Errorf("one message id in two sessions shares event id %s", m[0])
	}
}

func BenchmarkSplit(b *testing.B) {
	body := load(b, "message.json")
	p := waha.New()
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := p.Split(body, provider.Delivery{Method: "POST"}); err != nil {
			b.Fatal(err)
		}
	}
}
