package whapi

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/chatid"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/jsonscan"
)

// knownKinds are the kinds Split may return.
var knownKinds = func() map[string]bool {
	m := map[string]bool{provider.KindUnknown: true}
	for _, sp := range kinds {
		m[sp.kind] = true
	}
	return m
}()

// kindColl is the collection of each kind read from one collection.
var kindColl = func() map[string]coll {
	m := map[string]coll{}
	for _, sp := range kinds {
		if len(sp.colls) == 1 {
			m[sp.kind] = sp.colls[0]
		}
	}
	return m
}()

func FuzzSplit(f *testing.F) {
	for _, name := range fixtures(f) {
		body := load(f, name)
		f.Add(body, "POST", "")
		// The same bodies in path and method mode.
		kind, _, _ := strings.Cut(strings.TrimSuffix(name, ".json"), "_")
		typ, event, _ := strings.Cut(kind, ".")
		f.Add(body, "POST", typ+"/"+event)
		f.Add(body, strings.ToUpper(event), typ)
	}
	f.Add([]byte(`{"messages":[{"id":"A"},{"id":"B"}],"errors":[{}],"event":{"type":"status","method":"post"}}`), "PUT", "ack")
	f.Add([]byte(`{"m\u0065ssages":[{"\u0069d":"\ud83d\ude03"}],"channel_id":7}`), "POST", "message/post")
	// Batches past the chunk of keys and chats gathered on the stack.
	var msgs, sts []string
	for i := range 40 {
		id := strconv.Itoa(i) + strings.Repeat("x", i*i%300)
		msgs = append(msgs, `{"id":"`+id+`","chat_id":"`+strconv.Itoa(i)+`@s.whatsapp.net","timestamp":`+strconv.Itoa(1712995245+i)+`}`)
		sts = append(sts, `{"id":"`+id+`","status":"read","recipient_id":"stories","viewer_id":"`+strconv.Itoa(i)+`"}`)
	}
	f.Add([]byte(`{"messages":[`+strings.Join(msgs, ",")+`],"event":{"type":"messages","event":"post"}}`), "POST", "")
	f.Add([]byte(`{"statuses":[`+strings.Join(sts, ",")+`],"event":{"type":"statuses","event":"post"}}`), "POST", "")
	p := New()
	f.Fuzz(func(t *testing.T, body []byte, method, path string) {
		var segments []string
		if path != "" {
			segments = strings.Split(path, "/")
		}
		items, err := p.Split(body, provider.Delivery{Method: method, Segments: segments})
		if err != nil {
			if !errors.Is(err, provider.ErrInvalid) {
				t.Fatalf("Split error does not wrap ErrInvalid: %v", err)
			}
			return
		}
		for i, it := range items {
			if !provider.ValidKind(it.Kind) || !knownKinds[it.Kind] {
				t.Fatalf("item %d: kind %q", i, it.Kind)
			}
			if !json.Valid(it.Data) {
				t.Fatalf("item %d: Data is not valid JSON: %q", i, it.Data)
			}
			id, err := provider.EventID(Name, it)
			if err != nil {
				t.Fatalf("item %d: EventID: %v", i, err)
			}
			when := it.Time
			if when.IsZero() {
				when = time.Now()
			}
			msg := envelope.Ingress(envelope.Raw{
				ID: id, Provider: Name, Channel: it.Channel, Kind: it.Kind,
				Chat: chatid.ID(it.Chat), Time: when, Data: it.Data,
			}, envelope.NATS)
			ev, err := envelope.Decode(msg, envelope.NATS)
			if err != nil {
				t.Fatalf("item %d: %+v: decode: %v", i, it, err)
			}
			if ev.ID() != id || ev.Type() != envelope.IngressTypePrefix+Name+"."+it.Kind {
				t.Fatalf("item %d: decoded id %q type %q", i, ev.ID(), ev.Type())
			}
			if _, err := p.Interpret(it.Kind, it.Data); err != nil && !errors.Is(err, provider.ErrInvalid) {
				t.Fatalf("item %d: Interpret error does not wrap ErrInvalid: %v", i, err)
			}
			// Each item of a one-collection kind is described as its
			// element alone would be, however the batch's keys and chats
			// were gathered.
			if c, ok := kindColl[it.Kind]; ok {
				var want provider.Item
				describeItem(c, it.Data, &want)
				if it.Key != want.Key || it.Chat != want.Chat || !it.Time.Equal(want.Time) {
					t.Fatalf("item %d: key %q chat %q time %v; its element alone gives %q, %q, %v",
						i, it.Key, it.Chat, it.Time, want.Key, want.Chat, want.Time)
				}
			}
		}
	})
}

func FuzzInterpret(f *testing.F) {
	p := New()
	for _, name := range fixtures(f) {
		items, err := p.Split(load(f, name), provider.Delivery{})
		if err != nil {
			f.Fatal(err)
		}
		for _, it := range items {
			f.Add(it.Kind, it.Data)
		}
	}
	for k := range knownKinds {
		f.Add(k, []byte(`{"before_update":{"id":"1"},"after_update":{"labels":[1,"2",{"id":3}]},"changes":["labels","name","announcements"]}`))
	}
	f.Fuzz(func(t *testing.T, kind string, data []byte) {
		if _, err := p.Interpret(kind, data); err != nil && !errors.Is(err, provider.ErrInvalid) {
			t.Fatalf("Interpret error does not wrap ErrInvalid: %v", err)
		}
	})
}

func BenchmarkSplit(b *testing.B) {
	// A batch of twenty messages, as Whapi sends them when it queued some.
	msg := `{"id":"MSGID","from_me":false,"type":"text","chat_id":"919984351847@s.whatsapp.net","timestamp":1712995245,"source":"mobile","text":{"body":"Hello"},"from":"919984351847","from_name":"Jonathan"}`
	var batch []string
	for i := range 20 {
		batch = append(batch, strings.Replace(msg, "MSGID", "PsqXn5SAD5v7HRA-wkaLvA-"+strconv.Itoa(i), 1))
	}
	for _, bc := range []struct {
		name string
		body []byte
	}{
		{"message", load(b, "messages.post_incoming-text.json")},
		{"chats-patch", load(b, "chats.patch_label-assigned.json")},
		{"batch-20", []byte(`{"messages":[` + strings.Join(batch, ",") + `],"event":{"type":"messages","event":"post"},"channel_id":"MANTIS-M72HC"}`)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			p := New()
			d := provider.Delivery{Method: "POST"}
			b.SetBytes(int64(len(bc.body)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := p.Split(bc.body, d); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkInterpret(b *testing.B) {
	p := New()
	items, err := p.Split(load(b, "chats.patch_mute-and-labels.json"), provider.Delivery{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.Interpret(items[0].Kind, items[0].Data); err != nil {
			b.Fatal(err)
		}
	}
}

// describeReference is describe as it was before the keys and chats of
// the messages, statuses and calls shared one string and a message
// update's trigger was read once: the oracle FuzzDescribe holds it to.
func describeReference(c coll, v []byte, it *provider.Item) {
	switch c {
	case cMessages:
		it.Key = jsonscan.Text(jsonscan.Lookup(v, "id"))
		it.Chat = jsonscan.String(jsonscan.Lookup(v, "chat_id"))
		it.Time = unix(jsonscan.Lookup(v, "timestamp"))
	case cStatuses:
		recipient := jsonscan.Lookup(v, "recipient_id")
		if s := jsonscan.Text(jsonscan.Lookup(v, "id")); s != "" {
			it.Key = s + "\x00" + jsonscan.Text(jsonscan.Lookup(v, "status")) + "\x00" + jsonscan.Text(recipient) +
				"\x00" + jsonscan.Text(jsonscan.Lookup(v, "viewer_id"))
		}
		it.Chat = jsonscan.String(jsonscan.Lookup(v, "chat_id"))
		if it.Chat == "" {
			it.Chat = jsonscan.String(recipient)
		}
		if it.Chat == storiesPseudoID {
			it.Chat = statusBroadcast
		}
		it.Time = unix(jsonscan.Lookup(v, "timestamp"))
	case cCalls:
		if s := jsonscan.Text(jsonscan.Lookup(v, "id")); s != "" {
			it.Key = s + "\x00" + jsonscan.Text(jsonscan.Lookup(v, "status"))
		}
		it.Chat = jsonscan.String(jsonscan.Lookup(v, "chat_id"))
		if it.Chat == "" {
			it.Chat = jsonscan.String(jsonscan.Lookup(v, "from"))
		}
		it.Time = unix(jsonscan.Lookup(v, "timestamp"))
	case cMessagesUpdates:
		it.Chat = updatedID(v, "chat_id")
		if it.Chat == "" {
			it.Chat = jsonscan.String(jsonscan.Lookup(jsonscan.Lookup(v, "trigger"), "chat_id"))
		}
		it.Time = unix(jsonscan.Lookup(jsonscan.Lookup(v, "trigger"), "timestamp"))
	default:
		describeItem(c, v, it) // unchanged
	}
}

// FuzzDescribe: describe reads every collection's element as it did
// before, key, chat and time, escapes, numbers and fallbacks included.
func FuzzDescribe(f *testing.F) {
	for _, name := range fixtures(f) {
		for k, fl := range jsonscanFields(load(f, name)) {
			if c := collOf([]byte(k)); c != cNone {
				for el := range jsonscan.Elements(fl) {
					f.Add(uint8(c), el)
				}
			}
		}
	}
	f.Add(uint8(cStatuses), []byte(`{"id":"A\u0042","status":"read","recipient_id":"stories","viewer_id":12}`))
	f.Add(uint8(cStatuses), []byte(`{"id":"","chat_id":"","recipient_id":"1@s.whatsapp.net"}`))
	f.Add(uint8(cCalls), []byte(`{"id":7,"status":"ringing","from":"1@s.whatsapp.net","timestamp":"1713792454000"}`))
	f.Add(uint8(cMessagesUpdates), []byte(`{"trigger":{"chat_id":"1@s.whatsapp.net","timestamp":1},"trigger":{"chat_id":"2@s.whatsapp.net"}}`))
	f.Add(uint8(cMessages), []byte(`{"id":"\xff\xfe","chat_id":"caf\u00e9"}`))
	f.Fuzz(func(t *testing.T, c uint8, v []byte) {
		if !provider.ValidJSON(v) {
			return
		}
		v = jsonscan.Trim(v)
		cl := coll(c % uint8(nColls))
		var got, want provider.Item
		describeItem(cl, v, &got)
		describeReference(cl, v, &want)
		if got.Key != want.Key || got.Chat != want.Chat || !got.Time.Equal(want.Time) {
			t.Fatalf("describe(%s, %s) = %q, %q, %v; want %q, %q, %v", collNames[cl], v, got.Key, got.Chat, got.Time,
				want.Key, want.Chat, want.Time)
		}
	})
}

// describeItem is describe with the key and chat set as the collector
// sets them.
func describeItem(c coll, v []byte, it *provider.Item) {
	text, key := describe(c, v, it, nil)
	if len(text) > 0 {
		setText(it, string(text), textSpan{start: 0, key: key, end: len(text)})
	}
}

// jsonscanFields are a body's top-level members by name.
func jsonscanFields(body []byte) map[string][]byte {
	out := map[string][]byte{}
	for k, v := range jsonscan.Members(body) {
		out[string(k)] = v
	}
	return out
}
