package envelope

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding/spec"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/derive"
)

func sampleRaw() Raw {
	return Raw{
		ID:       "0123456789abcdef0123456789abcdef",
		Provider: "zapi",
		Channel:  "instance.id",
		Kind:     "received.notification",
		Chat:     "120363019502650977@g.us",
		Time:     time.Date(2023, 3, 24, 12, 33, 14, 0, time.UTC),
		Data:     []byte(`{"type":"ReceivedCallback","chatName":"Café \"quoted\" 100%"}`),
	}
}

func TestIngressMessage(t *testing.T) {
	r := sampleRaw()
	r.RequestID = "req-1" // the ingress always has one
	m := Ingress(r, NATS)
	if want := "wahook.ingress.zapi.instance~2Eid.received.notification"; m.Subject != want {
		t.Errorf("Subject = %q; want %q", m.Subject, want)
	}
	if m.Topic != IngressTopic || m.ID != "0123456789abcdef0123456789abcdef" {
		t.Errorf("Topic, ID = %q, %q", m.Topic, m.ID)
	}
	if want := "zapi/instance.id/120363019502650977@g.us"; m.Key != want {
		t.Errorf("Key = %q; want %q", m.Key, want)
	}
	wantHeaders := map[string]string{
		"ce-specversion":  "1.0",
		"ce-id":           "0123456789abcdef0123456789abcdef",
		"ce-source":       "/zapi/instance.id",
		"ce-type":         "io.wahook.ingress.zapi.received.notification",
		"ce-subject":      "120363019502650977@g.us",
		"ce-time":         "2023-03-24T12:33:14Z",
		"ce-provider":     "zapi",
		"ce-channel":      "instance.id",
		"ce-partitionkey": "zapi/instance.id/120363019502650977@g.us",
		"ce-requestid":    "req-1",
		"content-type":    "application/json",
		"Nats-Msg-Id":     "0123456789abcdef0123456789abcdef",
	}
	got := map[string]string{}
	for k := range m.Header {
		got[k] = m.Header.Get(k)
	}
	if diff := cmp.Diff(wantHeaders, got); diff != "" {
		t.Errorf("Ingress headers mismatch (-want +got):\n%s", diff)
	}
}

func TestRoundTrip(t *testing.T) {
	for _, b := range []Binding{NATS, Kafka} {
		t.Run(b.Name, func(t *testing.T) {
			r := sampleRaw()
			r.Channel = "canal com espaço é %"
			r.TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
			m := Ingress(r, b)
			for k, v := range m.Header {
				for _, c := range []byte(v[0]) {
					if b.PercentEncode && (c <= ' ' || c >= 0x7f || c == '"') {
						t.Errorf("header %s = %q carries an unescaped byte %q", k, v[0], c)
					}
				}
			}
			ev, err := Decode(m, b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if err := ev.Validate(); err != nil {
				t.Fatalf("decoded event invalid: %v", err)
			}
			if ev.Source() != "/zapi/canal%20com%20espa%C3%A7o%20%C3%A9%20%25" {
				t.Errorf("Source = %q", ev.Source())
			}
			if ev.Extensions()[ExtChannel] != r.Channel {
				t.Errorf("channel = %v; want %q", ev.Extensions()[ExtChannel], r.Channel)
			}
			if ev.Extensions()[ExtTraceParent] != r.TraceParent {
				t.Errorf("traceparent = %v", ev.Extensions()[ExtTraceParent])
			}
			if !ev.Time().Equal(r.Time) || ev.Type() != "io.wahook.ingress.zapi.received.notification" || ev.Subject() != r.Chat {
				t.Errorf("attributes changed: %v", ev)
			}
			if ev.DataContentType() != JSON || string(ev.Data()) != string(r.Data) {
				t.Errorf("data changed: %q %q", ev.DataContentType(), ev.Data())
			}
			again, err := Encode(ev, IngressTopic, m.Subject, b)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if diff := cmp.Diff(m.Header, again.Header); diff != "" {
				t.Errorf("re-encoded headers differ (-first +second):\n%s", diff)
			}
			if again.Key != m.Key {
				t.Errorf("re-encoded key = %q; want %q", again.Key, m.Key)
			}
		})
	}
}

// TestTimeSource marks a raw event stamped at receipt with the timesource
// extension, which the CloudEvents SDK reads back; a provider's time has none.
func TestTimeSource(t *testing.T) {
	r := sampleRaw()
	if h := Ingress(r, NATS).Header.Get("ce-timesource"); h != "" {
		t.Errorf("provider time: ce-timesource = %q, want none", h)
	}
	r.TimeReceived = true
	for _, b := range []Binding{NATS, Kafka} {
		ev, err := Decode(Ingress(r, b), b)
		if err != nil {
			t.Fatalf("%s: Decode: %v", b.Name, err)
		}
		if got := ev.Extensions()[ExtTimeSource]; got != TimeReceived {
			t.Errorf("%s: timesource = %v, want %q", b.Name, got, TimeReceived)
		}
	}
}

// TestRequestID carries the delivery's request id as the requestid
// extension, percent-encoded on NATS (a request id may hold '%' and '"'),
// as written on Kafka, and read back alike; none when there is none.
func TestRequestID(t *testing.T) {
	r := sampleRaw()
	if h := Ingress(r, NATS).Header.Get("ce-requestid"); h != "" {
		t.Errorf("no request id: ce-requestid = %q, want none", h)
	}
	r.RequestID = `req-"1"%~`
	for _, tc := range []struct {
		b      Binding
		header string
		want   string
	}{{NATS, "ce-requestid", "req-%221%22%25~"}, {Kafka, "ce_requestid", r.RequestID}} {
		m := Ingress(r, tc.b)
		if got := m.Header.Get(tc.header); got != tc.want {
			t.Errorf("%s: %s = %q, want %q", tc.b.Name, tc.header, got, tc.want)
		}
		ev, err := Decode(m, tc.b)
		if err != nil {
			t.Fatalf("%s: Decode: %v", tc.b.Name, err)
		}
		if got := ev.Extensions()[ExtRequestID]; got != r.RequestID {
			t.Errorf("%s: requestid = %v, want %q", tc.b.Name, got, r.RequestID)
		}
	}
}

// TestSDKReadsHeaders reads the headers the way the CloudEvents SDK's NATS
// JetStream binding does: each ce- header must name a known attribute or a
// valid extension.
func TestSDKReadsHeaders(t *testing.T) {
	m := Ingress(sampleRaw(), NATS)
	specs := spec.WithPrefix(NATS.Prefix)
	version := specs.Version(m.Header.Get("ce-specversion"))
	if version == nil {
		t.Fatal("SDK does not know the specversion header")
	}
	ev := event.New()
	for k, v := range m.Header {
		if !strings.HasPrefix(k, NATS.Prefix) {
			continue
		}
		if attr := version.Attribute(k); attr != nil {
			if err := attr.Set(ev.Context, v[0]); err != nil {
				t.Errorf("SDK rejects %s=%q: %v", k, v[0], err)
			}
			continue
		}
		if err := ev.Context.SetExtension(strings.TrimPrefix(k, NATS.Prefix), v[0]); err != nil {
			t.Errorf("SDK rejects extension %s: %v", k, err)
		}
	}
	if err := ev.Validate(); err != nil {
		t.Errorf("SDK-read event invalid: %v", err)
	}
}

func TestDecodeRejects(t *testing.T) {
	m := Ingress(sampleRaw(), NATS)
	delete(m.Header, "ce-specversion")
	if _, err := Decode(m, NATS); err == nil {
		t.Error("Decode without specversion = nil error")
	}
	m = Ingress(sampleRaw(), NATS)
	m.Header.Set("ce-time", "yesterday")
	if _, err := Decode(m, NATS); err == nil {
		t.Error("Decode with bad time = nil error")
	}
}

func TestToken(t *testing.T) {
	for give, want := range map[string]string{
		"MANTIS-M72HC": "MANTIS-M72HC", "A20DA9C0183A2D35A260F53F5D2B9244": "A20DA9C0183A2D35A260F53F5D2B9244",
		"under_score": "under_score", "instance.id": "instance~2Eid", "a b*c>d": "a~20b~2Ac~3Ed", "": "~",
		"tab\there": "tab~09here", "a~b": "a~7Eb", "é": "~C3~A9",
	} {
		if got := Token(give); got != want {
			t.Errorf("Token(%q) = %q; want %q", give, got, want)
		}
	}
	if got := IngressSubject("whapi", "CH", "chats.patch"); got != "wahook.ingress.whapi.CH.chats.patch" {
		t.Errorf("IngressSubject = %q", got)
	}
	if got := IngressSubject("whapi", "CH", "a..b"); got != "wahook.ingress.whapi.CH.a.~.b" {
		t.Errorf("IngressSubject with empty kind token = %q", got)
	}
	// Names Token used to fold together now keep subjects of their own,
	// raw and derived alike.
	for _, pair := range [][2]string{{"a.b", "a_b"}, {"a b", "a_b"}, {"a.b", "a~2Eb"}, {"a*", "a>"}, {"", "~"}} {
		if Token(pair[0]) == Token(pair[1]) {
			t.Errorf("Token(%q) = Token(%q) = %q", pair[0], pair[1], Token(pair[0]))
		}
		if IngressSubject("zapi", pair[0], "delivery") == IngressSubject("zapi", pair[1], "delivery") {
			t.Errorf("channels %q and %q share a raw subject", pair[0], pair[1])
		}
		if DerivedSubject(derive.Call, "zapi", pair[0]) == DerivedSubject(derive.Call, "zapi", pair[1]) {
			t.Errorf("channels %q and %q share a derived subject", pair[0], pair[1])
		}
	}
}

// FuzzToken checks that Token is injective (it can be undone) and always
// one valid subject token.
func FuzzToken(f *testing.F) {
	for _, s := range []string{"MANTIS-M72HC", "instance.id", "a~2Eb", "", "~", "a b*c>d", "\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok := Token(s)
		if tok == "" || strings.ContainsAny(tok, ".*> \t\r\n") {
			t.Fatalf("Token(%q) = %q is not one subject token", s, tok)
		}
		for i := 0; i < len(tok); i++ {
			if tok[i] <= ' ' || tok[i] >= 0x7f {
				t.Fatalf("Token(%q) = %q holds byte %#x", s, tok, tok[i])
			}
		}
		if back := untoken(t, tok); back != s {
			t.Fatalf("Token(%q) = %q reads back as %q", s, tok, back)
		}
	})
}

// untoken undoes Token.
func untoken(t *testing.T, tok string) string {
	if tok == "~" {
		return ""
	}
	var b []byte
	for i := 0; i < len(tok); i++ {
		if tok[i] != '~' {
			b = append(b, tok[i])
			continue
		}
		if i+2 >= len(tok) {
			t.Fatalf("token %q: '~' without two hex digits", tok)
		}
		v, err := strconv.ParseUint(tok[i+1:i+3], 16, 8)
		if err != nil || strings.ToUpper(tok[i+1:i+3]) != tok[i+1:i+3] {
			t.Fatalf("token %q: bad escape %q", tok, tok[i:i+3])
		}
		b = append(b, byte(v))
		i += 2
	}
	return string(b)
}

func TestDeadLetterMessage(t *testing.T) {
	dl := DeadLetter{Reason: "invalid payload: not JSON", Provider: "whapi", ReceivedAt: time.Unix(1700000000, 0).UTC(),
		Method: "POST", Path: "/v1/webhooks/whapi", Headers: map[string]string{"Content-Type": "application/json"}}
	dl.SetBody([]byte("not json"))
	m, err := DeadLetterMessage(dl, NATS)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "wahook.deadletter.whapi" || m.Topic != DeadLetterTopic {
		t.Errorf("subject, topic = %q, %q", m.Subject, m.Topic)
	}
	ev, err := Decode(m, NATS)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type() != DeadLetterType || ev.DataSchema() != DeadLetterSchema || ev.ID() != m.ID {
		t.Errorf("event = %v", ev)
	}
	var got DeadLetter
	if err := json.Unmarshal(ev.Data(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Body == nil || *got.Body != "not json" || got.BodyBase64 != "" {
		t.Errorf("body not kept as text: %+v", got)
	}
	dl.ReceivedAt = dl.ReceivedAt.Add(time.Hour)
	again, _ := DeadLetterMessage(dl, NATS)
	if again.ID != m.ID {
		t.Errorf("a retried delivery got another dead-letter id")
	}
	dl.SetBody([]byte{0xff, 0xfe})
	bin, _ := DeadLetterMessage(dl, NATS)
	ev, _ = Decode(bin, NATS)
	got = DeadLetter{}
	_ = json.Unmarshal(ev.Data(), &got)
	if got.Body != nil || got.BodyBase64 != "//4=" {
		t.Errorf("binary body = %+v; want base64", got)
	}
	if bin.ID == m.ID {
		t.Errorf("different bodies share a dead-letter id")
	}
}

func TestDecodeRaw(t *testing.T) {
	r := sampleRaw()
	for _, b := range []Binding{NATS, Kafka} {
		for _, received := range []bool{false, true} {
			r.TimeReceived = received
			got, err := DecodeRaw(Ingress(r, b), b)
			if err != nil {
				t.Fatalf("%s: %v", b.Name, err)
			}
			want := derive.Raw{ID: r.ID, Provider: r.Provider, Channel: r.Channel, Kind: r.Kind, Source: Source(r.Provider, r.Channel),
				Subject: r.Chat, Time: r.Time, TimeReceived: received, Data: r.Data}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s, time received %t: DecodeRaw mismatch (-want +got):\n%s", b.Name, received, diff)
			}
		}
	}
	r.TimeReceived = false
	for name, mutate := range map[string]func(broker.Header){
		"no specversion": func(h broker.Header) { delete(h, "ce-specversion") },
		"no id":          func(h broker.Header) { delete(h, "ce-id") },
		"derived type":   func(h broker.Header) { h.Set("ce-type", "io.wahook.label.added") },
		"other provider": func(h broker.Header) { h.Set("ce-provider", "whapi") },
		"bad time":       func(h broker.Header) { h.Set("ce-time", "now") },
		"no channel":     func(h broker.Header) { delete(h, "ce-channel") },
	} {
		m := Ingress(r, NATS)
		mutate(m.Header)
		if _, err := DecodeRaw(m, NATS); err == nil {
			t.Errorf("DecodeRaw with %s = nil error", name)
		}
	}
}

func TestDerivedIsAValidCloudEvent(t *testing.T) {
	raw := derive.Raw{ID: "raw-1", Provider: "zapi", Channel: "instance.id", Kind: "received.notification",
		Source: "/zapi/instance.id", Subject: "5544999999999@s.whatsapp.net", Time: time.Unix(1736797729, 0)}
	d := derive.Event{ID: "d-1", Stream: derive.LabelChanged, Type: "io.wahook.label.added",
		Subject: "5544977777777@s.whatsapp.net", Chat: "5544977777777@s.whatsapp.net", Data: map[string]string{"x": "é"}}
	for _, b := range []Binding{NATS, Kafka} {
		m, err := Derived(d, raw, b)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := Decode(m, b)
		if err != nil {
			t.Fatalf("%s: %v", b.Name, err)
		}
		if m.Subject != "wahook.label-changed.zapi.instance~2Eid" || m.Topic != "wahook.label-changed" ||
			m.Key != "zapi/instance.id/5544977777777@s.whatsapp.net" || ev.Extensions()[ExtPartitionKey] != m.Key {
			t.Errorf("%s: subject %q topic %q key %q", b.Name, m.Subject, m.Topic, m.Key)
		}
		if ev.DataSchema() != "https://wahook.dev/schemas/label-changed.v1.json" || ev.Extensions()[ExtCausationID] != "raw-1" ||
			ev.Subject() != d.Subject || !ev.Time().Equal(raw.Time) || string(ev.Data()) != `{"x":"é"}` {
			t.Errorf("%s: event %v", b.Name, ev)
		}
	}
	if _, err := Derived(derive.Event{Stream: derive.Call}, raw, NATS); err == nil {
		t.Error("Derived without id and type = nil error")
	}
}

// TestRawKind reads a raw event's provider and kind from its headers as
// DecodeRaw does, on both bindings, and refuses what is not a raw event.
func TestRawKind(t *testing.T) {
	for _, b := range []Binding{NATS, Kafka} {
		t.Run(b.Name, func(t *testing.T) {
			m := Ingress(sampleRaw(), b)
			p, k, ok := RawKind(m.Header, b)
			raw, err := DecodeRaw(m, b)
			if err != nil {
				t.Fatal(err)
			}
			if !ok || p != raw.Provider || k != raw.Kind || k != "received.notification" {
				t.Errorf("RawKind = %q, %q, %v; DecodeRaw says %q, %q", p, k, ok, raw.Provider, raw.Kind)
			}
			for name, edit := range map[string]func(broker.Header){
				"no type":          func(h broker.Header) { delete(h, b.Prefix+AttrType) },
				"no provider":      func(h broker.Header) { delete(h, b.Prefix+ExtProvider) },
				"derived type":     func(h broker.Header) { h.Set(b.Prefix+AttrType, "io.wahook.label.added") },
				"other provider":   func(h broker.Header) { h.Set(b.Prefix+ExtProvider, "whapi") },
				"no kind":          func(h broker.Header) { h.Set(b.Prefix+AttrType, IngressTypePrefix+"zapi.") },
				"provider as kind": func(h broker.Header) { h.Set(b.Prefix+AttrType, IngressTypePrefix+"zapi") },
			} {
				h := broker.Header{}
				for k, v := range m.Header {
					h[k] = v
				}
				edit(h)
				if p, k, ok := RawKind(h, b); ok {
					t.Errorf("%s: RawKind = %q, %q, true; want false", name, p, k)
				}
			}
		})
	}
}
