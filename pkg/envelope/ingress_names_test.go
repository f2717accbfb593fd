package envelope

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

// The raw event's texts as they were first written, one string each: the
// single-buffer writing in Ingress must give the same bytes.
func sourceReference(provider, channel string) string {
	return "/" + url.PathEscape(provider) + "/" + url.PathEscape(channel)
}

func subjectReference(provider, channel, kind string) string {
	k := "_"
	if kind != "" {
		parts := strings.Split(kind, ".")
		for i, p := range parts {
			parts[i] = Token(p)
		}
		k = strings.Join(parts, ".")
	}
	return IngressTopic + "." + Token(provider) + "." + Token(channel) + "." + k
}

func keyReference(provider, channel, chat string) string {
	if chat == "" {
		return provider + "/" + channel
	}
	return provider + "/" + channel + "/" + chat
}

func checkIngressNames(t *testing.T, provider, channel, kind, chat string, when time.Time) {
	t.Helper()
	if got, want := Source(provider, channel), sourceReference(provider, channel); got != want {
		t.Fatalf("Source(%q, %q) = %q, want %q", provider, channel, got, want)
	}
	if got, want := IngressSubject(provider, channel, kind), subjectReference(provider, channel, kind); got != want {
		t.Fatalf("IngressSubject(%q, %q, %q) = %q, want %q", provider, channel, kind, got, want)
	}
	for _, b := range []Binding{NATS, Kafka} {
		m := Ingress(Raw{ID: "x", Provider: provider, Channel: channel, Kind: kind, Chat: chat, Time: when}, b)
		want := map[string]string{
			AttrSource: sourceReference(provider, channel),
			AttrType:   IngressTypePrefix + provider + "." + kind,
			AttrTime:   when.UTC().Format(time.RFC3339Nano),
		}
		for a, v := range want {
			if got := m.Header.Get(b.attr(a)); got != b.encode(v) {
				t.Fatalf("%s: Ingress(%q, %q, %q) %s = %q, want %q", b.Name, provider, channel, kind, a, got, b.encode(v))
			}
		}
		if m.Subject != subjectReference(provider, channel, kind) || m.Key != keyReference(provider, channel, chat) {
			t.Fatalf("%s: Ingress(%q, %q, %q, %q) subject %q key %q", b.Name, provider, channel, kind, chat, m.Subject, m.Key)
		}
	}
}

func TestIngressNames(t *testing.T) {
	when := time.Date(2023, 3, 24, 12, 33, 14, 120000000, time.FixedZone("x", 3600))
	for _, tc := range [][4]string{
		{"whapi", "MANTIS-M72HC", "chats.patch", "120363398750912@g.us"},
		{"zapi", "instance.id", "received.notification", ""},
		{"", "", "", ""},
		{"a/b", "c;d,e?f", "x..y.", "chat"},
		{"$&+:=@~", "sp ace%", ".a.", "é"},
		{"p", strings.Repeat("long-channel-", 60), strings.Repeat("k.", 40), strings.Repeat("c", 300)},
	} {
		checkIngressNames(t, tc[0], tc[1], tc[2], tc[3], when)
	}
}

func FuzzIngressNames(f *testing.F) {
	f.Add("whapi", "MANTIS-M72HC", "chats.patch", "1@g.us", int64(1712995245))
	f.Add("a/b", "c;d", "x..y.", "", int64(0))
	f.Fuzz(func(t *testing.T, provider, channel, kind, chat string, sec int64) {
		checkIngressNames(t, provider, channel, kind, chat, time.Unix(sec%(1<<35), 0))
	})
}

func BenchmarkIngress(b *testing.B) {
	r := Raw{ID: "0123456789abcdef0123456789abcdef", Provider: "whapi", Channel: "MANTIS-M72HC", Kind: "chats.patch",
		Chat: "120363398750912@g.us", Time: time.Unix(1747391325, 0), TimeReceived: true, RequestID: "req-1"}
	for _, bd := range []Binding{NATS, Kafka} {
		b.Run(bd.Name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Ingress(r, bd)
			}
		})
	}
}
