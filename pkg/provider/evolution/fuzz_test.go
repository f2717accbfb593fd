package evolution_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/wahook/wahook/pkg/chatid"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/evolution"
)

func bodies(f *testing.F) [][]byte {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	var out [][]byte
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// FuzzSplit: whatever the body, Split and Redact never panic, Redact keeps
// valid JSON valid and leaves no top-level apikey, and every item makes a
// valid raw event.
func FuzzSplit(f *testing.F) {
	for _, b := range bodies(f) {
		f.Add(b, "")
	}
	f.Add([]byte(`{"instance":"i","data":[{"id":"1@g.us"}],"apikey":"k"}`), "groups-upsert")
	f.Add([]byte(`{"apikey":"k", "event":"call"`), "call")
	p := evolution.New()
	f.Fuzz(func(t *testing.T, body []byte, segment string) {
		valid := json.Valid(body)
		body = p.Redact(bytes.Clone(body))
		if valid {
			if !json.Valid(body) {
				t.Fatalf("Redact made invalid JSON: %q", body)
			}
			var m map[string]json.RawMessage
			if json.Unmarshal(body, &m) == nil {
				if _, ok := m["apikey"]; ok {
					t.Fatalf("Redact left apikey in %q", body)
				}
			}
		}
		var segs []string
		if segment != "" {
			segs = []string{segment}
		}
		items, err := p.Split(body, provider.Delivery{Method: "POST", Segments: segs})
		if err != nil {
			return
		}
		for _, it := range items {
			if !provider.ValidKind(it.Kind) {
				t.Fatalf("Split(%q): kind %.80q is not a bounded kind", body, it.Kind)
			}
			id, err := provider.EventID(evolution.Name, it)
			if err != nil {
				if json.Valid(it.Data) {
					t.Fatalf("Split(%q): EventID: %v", body, err)
				}
				return
			}
			msg := envelope.Ingress(envelope.Raw{
				ID: id, Provider: evolution.Name, Channel: it.Channel, Kind: it.Kind,
				Chat: chatid.ID(it.Chat), Time: it.Time, Data: it.Data,
			}, envelope.NATS)
			if json.Valid(it.Data) {
				if _, err := envelope.Decode(msg, envelope.NATS); err != nil {
					t.Fatalf("Split(%q): item %+v does not make a valid event: %v", body, it, err)
				}
			}
			_, _ = p.Interpret(it.Kind, it.Data)
		}
	})
}

func FuzzInterpret(f *testing.F) {
	for _, b := range bodies(f) {
		var env struct{ Event string }
		_ = json.Unmarshal(b, &env)
		f.Add(env.Event, b)
	}
	p := evolution.New()
	f.Fuzz(func(t *testing.T, kind string, data []byte) {
		_, _ = p.Interpret(kind, data)
	})
}
