package schemas_test

import (
	"bytes"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/kafkabroker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/schemas"
)

// asyncAPI is the part of the document the test reads.
type asyncAPI struct {
	AsyncAPI   string                               `yaml:"asyncapi"`
	Servers    map[string]struct{ Protocol string } `yaml:"servers"`
	Channels   map[string]channel                   `yaml:"channels"`
	Operations map[string]operation                 `yaml:"operations"`
	Components struct {
		Messages      map[string]message `yaml:"messages"`
		MessageTraits map[string]struct {
			Headers struct {
				Required   []string       `yaml:"required"`
				Properties map[string]any `yaml:"properties"`
			} `yaml:"headers"`
		} `yaml:"messageTraits"`
	} `yaml:"components"`
}

type ref struct {
	Ref string `yaml:"$ref"`
}

type channel struct {
	Address    string         `yaml:"address"`
	Stream     string         `yaml:"x-nats-stream"`
	Servers    []ref          `yaml:"servers"`
	Parameters map[string]ref `yaml:"parameters"`
	Messages   map[string]ref `yaml:"messages"`
}

type operation struct {
	Action   string `yaml:"action"`
	Channel  ref    `yaml:"channel"`
	Messages []ref  `yaml:"messages"`
}

type message struct {
	Traits  []ref `yaml:"traits"`
	Payload struct {
		Ref string `yaml:"$ref"`
	} `yaml:"payload"`
}

func loadAsyncAPI(t *testing.T) (asyncAPI, map[string]any) {
	t.Helper()
	b, err := schemas.FS.ReadFile(schemas.AsyncAPI)
	if err != nil {
		t.Fatal(err)
	}
	var doc asyncAPI
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("parse %s: %v", schemas.AsyncAPI, err)
	}
	var tree map[string]any
	if err := yaml.Unmarshal(b, &tree); err != nil {
		t.Fatal(err)
	}
	return doc, tree
}

// byServer returns the channels on server ("nats", "kafka") by address.
func (d asyncAPI) byServer(server string) map[string]channel {
	out := map[string]channel{}
	for _, c := range d.Channels {
		for _, s := range c.Servers {
			if s.Ref == "#/servers/"+server {
				out[c.Address] = c
			}
		}
	}
	return out
}

// TestAsyncAPIChannels: every stream, subject and topic the code declares
// is a channel, and every channel is one the code has.
func TestAsyncAPIChannels(t *testing.T) {
	doc, _ := loadAsyncAPI(t)
	if doc.AsyncAPI != "3.0.0" {
		t.Errorf("asyncapi %q, want 3.0.0", doc.AsyncAPI)
	}
	if doc.Servers["nats"].Protocol != "nats" || doc.Servers["kafka"].Protocol != "kafka" {
		t.Errorf("servers %+v, want nats and kafka", doc.Servers)
	}
	nats, kafka := doc.byServer("nats"), doc.byServer("kafka")
	if len(nats)+len(kafka) != len(doc.Channels) {
		t.Errorf("%d channels, %d on nats and %d on kafka: each must be on one", len(doc.Channels), len(nats), len(kafka))
	}

	// NATS: each stream's subjects have a channel in that stream, and
	// each channel's address lies in the stream it names.
	for _, sc := range (natsbroker.StreamsConfig{}).StreamConfigs() {
		for _, subj := range sc.Subjects {
			prefix := strings.TrimSuffix(subj, ">")
			found := false
			for addr, c := range nats {
				if strings.HasPrefix(addr, prefix) && c.Stream == sc.Name {
					found = true
				}
			}
			if !found {
				t.Errorf("no NATS channel for %s (stream %s)", subj, sc.Name)
			}
		}
	}
	for addr, c := range nats {
		if s, ok := natsbroker.StreamFor(addr); !ok || s != c.Stream {
			t.Errorf("NATS channel %s: x-nats-stream %q, the code stores it in %q", addr, c.Stream, s)
		}
		for _, p := range params(addr) {
			if _, ok := c.Parameters[p]; !ok {
				t.Errorf("NATS channel %s: parameter %s undeclared", addr, p)
			}
		}
	}
	// Kafka: exactly the topics the code creates.
	var topics []string
	for addr := range kafka {
		topics = append(topics, addr)
	}
	slices.Sort(topics)
	want := kafkabroker.Topics()
	slices.Sort(want)
	if !slices.Equal(topics, want) {
		t.Errorf("Kafka channels %v, want the topics %v", topics, want)
	}

	// Each derived stream, the raw stream and dead letters, by the
	// envelope's own names.
	addr := map[string][2]string{
		"raw":        {envelope.IngressTopic + ".{provider}.{channel}.{kind}", envelope.IngressTopic},
		"deadletter": {envelope.DeadLetterTopic + ".{provider}", envelope.DeadLetterTopic},
	}
	for _, s := range derive.Streams {
		addr[s] = [2]string{envelope.DerivedTopic(s) + ".{provider}.{channel}", envelope.DerivedTopic(s)}
	}
	for name, a := range addr {
		if _, ok := nats[a[0]]; !ok {
			t.Errorf("%s: no NATS channel %s", name, a[0])
		}
		if _, ok := kafka[a[1]]; !ok {
			t.Errorf("%s: no Kafka channel %s", name, a[1])
		}
	}
}

func params(addr string) []string {
	var out []string
	for _, part := range strings.Split(addr, "{")[1:] {
		p, _, _ := strings.Cut(part, "}")
		out = append(out, p)
	}
	return out
}

// TestAsyncAPIMessages: each derived stream's and the dead letters'
// messages carry their schema file, which exists and whose $id is the
// dataschema the envelope writes; every channel has a receive operation;
// every local $ref resolves.
func TestAsyncAPIMessages(t *testing.T) {
	doc, tree := loadAsyncAPI(t)
	payloadOf := func(c channel) []string {
		var out []string
		for _, r := range c.Messages {
			m := doc.Components.Messages[strings.TrimPrefix(r.Ref, "#/components/messages/")]
			out = append(out, m.Payload.Ref)
		}
		return out
	}
	// The dead-letter channels carry the records and the redrive notes.
	wantSchema := map[string][]string{envelope.DeadLetterTopic: {envelope.DeadLetterSchema, envelope.DeadLetterRedrivenSchema}}
	for _, s := range derive.Streams {
		wantSchema[envelope.DerivedTopic(s)] = []string{envelope.SchemaURI(s)}
	}
	for _, server := range []string{"nats", "kafka"} {
		for addr, c := range doc.byServer(server) {
			for topic, uris := range wantSchema {
				if addr != topic && !strings.HasPrefix(addr, topic+".") {
					continue
				}
				for _, uri := range uris {
					file := "./" + strings.TrimPrefix(uri, schemas.Base)
					if !slices.Contains(payloadOf(c), file) {
						t.Errorf("%s channel %s: no message with payload %s (have %v)", server, addr, file, payloadOf(c))
					}
				}
			}
		}
	}
	all, err := schemas.Compile()
	if err != nil {
		t.Fatal(err)
	}
	for id, m := range doc.Components.Messages {
		if m.Payload.Ref == "" {
			continue
		}
		name := strings.TrimPrefix(m.Payload.Ref, "./")
		if _, err := fs.Stat(schemas.FS, name); err != nil || all[schemas.Base+name] == nil {
			t.Errorf("message %s: payload %s is no schema file here", id, m.Payload.Ref)
		}
	}

	received := map[string]bool{}
	for id, op := range doc.Operations {
		if op.Action != "receive" {
			t.Errorf("operation %s: action %q, subscribers only receive", id, op.Action)
		}
		received[op.Channel.Ref] = true
		for _, m := range op.Messages {
			if !strings.HasPrefix(m.Ref, op.Channel.Ref+"/messages/") {
				t.Errorf("operation %s: message %s is not its channel's", id, m.Ref)
			}
		}
	}
	for id := range doc.Channels {
		if !received["#/channels/"+id] {
			t.Errorf("channel %s has no receive operation", id)
		}
	}
	checkRefs(t, tree, tree)
}

// checkRefs fails for a local $ref that names nothing in the document.
func checkRefs(t *testing.T, root map[string]any, v any) {
	t.Helper()
	switch x := v.(type) {
	case map[string]any:
		if r, ok := x["$ref"].(string); ok && strings.HasPrefix(r, "#/") {
			var cur any = root
			for _, part := range strings.Split(r[2:], "/") {
				m, _ := cur.(map[string]any)
				cur = m[part]
			}
			if cur == nil {
				t.Errorf("$ref %s names nothing", r)
			}
		}
		for _, y := range x {
			checkRefs(t, root, y)
		}
	case []any:
		for _, y := range x {
			checkRefs(t, root, y)
		}
	}
}

// TestAsyncAPIHeaders: the headers the envelope writes on raw, derived and
// dead-letter events, on each binding, are the ones the document's traits
// declare, the required ones among them.
func TestAsyncAPIHeaders(t *testing.T) {
	doc, _ := loadAsyncAPI(t)
	at := time.Date(2024, 4, 22, 13, 27, 33, 0, time.UTC)
	for _, b := range []envelope.Binding{envelope.NATS, envelope.Kafka} {
		suffix := map[string]string{"nats": "Nats", "kafka": "Kafka"}[b.Name]
		raw := envelope.Ingress(envelope.Raw{ID: "r1", Provider: "whapi", Channel: "CH", Kind: "chats.patch", Chat: "1@s.whatsapp.net",
			Time: at, TimeReceived: true, TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", RequestID: "req-1", Data: []byte(`{}`)}, b)
		derived, err := envelope.Derived(derive.Event{ID: "d1", Stream: derive.Call, Type: "io.wahook.call.missed", Subject: "1@s.whatsapp.net", Data: struct{}{}},
			derive.Raw{ID: "r1", Provider: "whapi", Channel: "CH", Source: "/whapi/CH", Subject: "1@s.whatsapp.net", Time: at}, b)
		if err != nil {
			t.Fatal(err)
		}
		body := strings.Repeat("x", 4000)
		dead, err := envelope.DeadLetterMessages(envelope.DeadLetter{Reason: "not JSON", Provider: "whapi", ReceivedAt: at, Body: &body}, b, 1500)
		if err != nil {
			t.Fatal(err)
		}
		note, err := envelope.RedrivenMessage(envelope.DeadLetter{Reason: "not JSON", Provider: "whapi", Channel: "CH", ReceivedAt: at, Body: &body},
			envelope.Redriven{DeadLetterID: dead[len(dead)-1].ID, IDs: []string{"r1"}, RedrivenAt: at}, b)
		if err != nil {
			t.Fatal(err)
		}
		dead = append(dead, note)
		for trait, msgs := range map[string][]broker.Message{"raw" + suffix: {raw}, "derived" + suffix: {derived}, "deadLetter" + suffix: dead} {
			tr, ok := doc.Components.MessageTraits[trait]
			if !ok {
				t.Errorf("no message trait %s", trait)
				continue
			}
			for _, m := range msgs {
				for h := range m.Header {
					if _, ok := tr.Headers.Properties[h]; !ok {
						t.Errorf("%s: header %s the envelope writes is not declared", trait, h)
					}
				}
			}
			for _, m := range msgs {
				for _, h := range tr.Headers.Required {
					if _, ok := m.Header[h]; !ok {
						t.Errorf("%s: required header %s is not written on %s", trait, h, m.ID)
					}
				}
			}
		}
	}
}
