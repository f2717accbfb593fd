package envelope_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/label"
	"github.com/wahook/wahook/pkg/envelope"
)

// derivedSample is a label.added as the label-changed consumer derives it
// from a Whapi chats.patch; channel is the raw event's channel.
func derivedSample(channel string) (derive.Event, derive.Raw) {
	raw := derive.Raw{ID: "0f9a4c3e2b1d0a9f8e7d6c5b4a392817", Provider: "whapi", Channel: channel, Kind: "chats.patch",
		Source: envelope.Source("whapi", channel), Subject: "919984351847@s.whatsapp.net",
		Time: time.Date(2024, 4, 22, 13, 27, 33, 123000000, time.FixedZone("BRT", -3*3600))}
	d := label.Data{Common: derive.NewCommon(raw),
		ChatRef: derive.ChatRef{ChatID: raw.Subject, ChatIDRaw: "919984351847@s.whatsapp.net", ChatType: "contact"},
		Label:   label.Label{ID: "76", Name: "Nova ordem <pago> & \"urgente\"", Color: "gold", ColorHex: "#FFD700"}}
	return derive.Event{ID: "5d41402abc4b2a76b9719d911017c592", Stream: derive.LabelChanged, Type: "io.wahook.label.added",
		Subject: raw.Subject, Chat: raw.Subject, Data: d}, raw
}

// pinnedData is the data of derivedSample, its channel written CHANNEL.
const pinnedData = `{"provider":"whapi","channel":"CHANNEL","occurred_at":"2024-04-22T16:27:33.123Z","source_event_id":"0f9a4c3e2b1d0a9f8e7d6c5b4a392817","chat_id":"919984351847@s.whatsapp.net","chat_id_raw":"919984351847@s.whatsapp.net","chat_type":"contact","label":{"id":"76","name":"Nova ordem \u003cpago\u003e \u0026 \"urgente\"","color":"gold","color_hex":"#FFD700"}}`

// TestDerivedPinned pins Derived's output byte for byte, headers and
// data, on both bindings, with a channel that needs percent-encoding and
// data that json.Marshal escapes: consumers' derived ids and subscribers'
// decoding rely on it not changing. The rows hold what differs between
// the cases; the rest of the message is the same in all four.
func TestDerivedPinned(t *testing.T) {
	for _, tc := range []struct {
		channel string
		binding envelope.Binding
		subject string // the NATS subject
		key     string // the Kafka key, before any encoding
		// The headers that vary: channel, partitionkey and source, as
		// the binding writes them.
		hChannel, hKey, hSource string
	}{
		{channel: "MANTIS-M72HC", binding: envelope.NATS, subject: "wahook.label-changed.whapi.MANTIS-M72HC",
			key:      "whapi/MANTIS-M72HC/919984351847@s.whatsapp.net",
			hChannel: "MANTIS-M72HC", hKey: "whapi/MANTIS-M72HC/919984351847@s.whatsapp.net", hSource: "/whapi/MANTIS-M72HC"},
		{channel: "MANTIS-M72HC", binding: envelope.Kafka, subject: "wahook.label-changed.whapi.MANTIS-M72HC",
			key:      "whapi/MANTIS-M72HC/919984351847@s.whatsapp.net",
			hChannel: "MANTIS-M72HC", hKey: "whapi/MANTIS-M72HC/919984351847@s.whatsapp.net", hSource: "/whapi/MANTIS-M72HC"},
		{channel: "Loja São Paulo", binding: envelope.NATS, subject: "wahook.label-changed.whapi.Loja~20S~C3~A3o~20Paulo",
			key:      "whapi/Loja São Paulo/919984351847@s.whatsapp.net",
			hChannel: "Loja%20S%C3%A3o%20Paulo", hKey: "whapi/Loja%20S%C3%A3o%20Paulo/919984351847@s.whatsapp.net", hSource: "/whapi/Loja%2520S%25C3%25A3o%2520Paulo"},
		{channel: "Loja São Paulo", binding: envelope.Kafka, subject: "wahook.label-changed.whapi.Loja~20S~C3~A3o~20Paulo",
			key:      "whapi/Loja São Paulo/919984351847@s.whatsapp.net",
			hChannel: "Loja São Paulo", hKey: "whapi/Loja São Paulo/919984351847@s.whatsapp.net", hSource: "/whapi/Loja%20S%C3%A3o%20Paulo"},
	} {
		t.Run(tc.binding.Name+" "+tc.channel, func(t *testing.T) {
			ce := "ce-"
			if tc.binding == envelope.Kafka {
				ce = "ce_"
			}
			want := broker.Message{Topic: "wahook.label-changed", Subject: tc.subject, Key: tc.key, ID: "5d41402abc4b2a76b9719d911017c592",
				Header: broker.Header{
					ce + "causationid":  {"0f9a4c3e2b1d0a9f8e7d6c5b4a392817"},
					ce + "channel":      {tc.hChannel},
					ce + "dataschema":   {"https://wahook.dev/schemas/label-changed.v1.json"},
					ce + "id":           {"5d41402abc4b2a76b9719d911017c592"},
					ce + "partitionkey": {tc.hKey},
					ce + "provider":     {"whapi"},
					ce + "source":       {tc.hSource},
					ce + "specversion":  {"1.0"},
					ce + "subject":      {"919984351847@s.whatsapp.net"},
					ce + "time":         {"2024-04-22T16:27:33.123Z"},
					ce + "type":         {"io.wahook.label.added"},
					"content-type":      {"application/json"},
				},
				Data: []byte(strings.Replace(pinnedData, "CHANNEL", tc.channel, 1)),
			}
			if tc.binding == envelope.NATS {
				want.Header["Nats-Msg-Id"] = []string{"5d41402abc4b2a76b9719d911017c592"}
			}
			d, raw := derivedSample(tc.channel)
			got, err := envelope.Derived(d, raw, tc.binding)
			if err != nil {
				t.Fatalf("Derived: %v", err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Derived mismatch (-want +got):\n%s", diff)
			}
			// Twice in a row: nothing carried over from the first call.
			again, _ := envelope.Derived(d, raw, tc.binding)
			if diff := cmp.Diff(want, again); diff != "" {
				t.Errorf("second Derived mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func BenchmarkDerived(b *testing.B) {
	d, raw := derivedSample("MANTIS-M72HC")
	for _, bd := range []envelope.Binding{envelope.NATS, envelope.Kafka} {
		b.Run(bd.Name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := envelope.Derived(d, raw, bd); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestDerivedNames: the key, time and subject Derived builds together are
// PartitionKey, RFC 3339 UTC and DerivedSubject, with or without a chat and
// past the stack buffer's size.
func TestDerivedNames(t *testing.T) {
	long := strings.Repeat("canal.", 60)
	for name, tc := range map[string]struct{ channel, chat, rawSubject, stream string }{
		"event's chat":      {channel: "MANTIS-M72HC", chat: "1@s.whatsapp.net", rawSubject: "2@s.whatsapp.net"},
		"raw event's chat":  {channel: "MANTIS-M72HC", rawSubject: "2@s.whatsapp.net"},
		"no chat":           {channel: "MANTIS-M72HC"},
		"escaped, no chat":  {channel: "instance.id"},
		"over 256 bytes":    {channel: long, chat: long + "@g.us"},
		"unknown stream ok": {channel: "C", stream: "future-stream"},
	} {
		t.Run(name, func(t *testing.T) {
			d, raw := derivedSample(tc.channel)
			d.Chat, raw.Subject = tc.chat, tc.rawSubject
			if tc.stream != "" {
				d.Stream = tc.stream
			}
			m, err := envelope.Derived(d, raw, envelope.NATS)
			if err != nil {
				t.Fatalf("Derived: %v", err)
			}
			chat := tc.chat
			if chat == "" {
				chat = tc.rawSubject
			}
			wantKey := envelope.PartitionKey(raw.Provider, raw.Channel, chat)
			wantTime := raw.Time.UTC().Format(time.RFC3339Nano)
			if m.Key != wantKey || m.Header.Get("ce-time") != wantTime || m.Topic != envelope.DerivedTopic(d.Stream) ||
				m.Subject != envelope.DerivedSubject(d.Stream, raw.Provider, raw.Channel) ||
				m.Header.Get("ce-dataschema") != envelope.SchemaBase+d.Stream+".v1.json" {
				t.Errorf("Derived = key %q time %q topic %q subject %q schema %q", m.Key, m.Header.Get("ce-time"), m.Topic, m.Subject,
					m.Header.Get("ce-dataschema"))
			}
		})
	}
}
