package derive_test

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/call"
	"github.com/wahook/wahook/pkg/derive/chat"
	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/derive/group"
	"github.com/wahook/wahook/pkg/derive/label"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/evolution"
	"github.com/wahook/wahook/pkg/provider/waha"
	"github.com/wahook/wahook/pkg/provider/whapi"
	"github.com/wahook/wahook/pkg/provider/zapi"
	"github.com/wahook/wahook/schemas"
)

func derivers() []derive.Deriver {
	return []derive.Deriver{
		label.Deriver{Registry: derivetest.NewLabelRegistry()},
		chat.Deriver{Registry: derivetest.NewChatRegistry()},
		call.Deriver{},
		group.Deriver{},
	}
}

// TestStreams: one deriver per stream, each with its schema.
func TestStreams(t *testing.T) {
	all, err := schemas.Compile()
	if err != nil {
		t.Fatalf("schemas.Compile: %v", err)
	}
	var streams []string
	for _, d := range derivers() {
		streams = append(streams, d.Stream())
		if all[envelope.SchemaURI(d.Stream())] == nil {
			t.Errorf("stream %s has no schema %s", d.Stream(), envelope.SchemaURI(d.Stream()))
		}
	}
	slices.Sort(streams)
	want := slices.Sorted(slices.Values(derive.Streams))
	if !slices.Equal(streams, want) {
		t.Errorf("derivers' streams = %v, want %v", streams, want)
	}
}

// TestAllFixtures derives every provider fixture through every stream, in
// order on shared registries as one consumer per stream would, and checks
// each event against its schema.
func TestAllFixtures(t *testing.T) {
	for _, p := range []provider.Provider{whapi.New(), zapi.New(), waha.New(), evolution.New()} {
		t.Run(p.Name(), func(t *testing.T) {
			files, err := filepath.Glob(filepath.Join("..", "provider", p.Name(), "testdata", "*.json"))
			if err != nil || len(files) == 0 {
				t.Fatalf("no fixtures for %s: %v", p.Name(), err)
			}
			ds := derivers()
			counts := map[string]int{}
			for _, file := range files {
				for _, in := range derivetest.Fixture(t, p, file) {
					for _, d := range ds {
						counts[d.Stream()] += len(derivetest.Derive(t, d, in))
					}
				}
			}
			t.Logf("%s fixtures: derived events per stream %v", p.Name(), counts)
			for _, s := range derive.Streams {
				if counts[s] == 0 {
					t.Errorf("%s fixtures gave no %s events", p.Name(), s)
				}
			}
		})
	}
}

// TestStreamsOf: StreamsOf names exactly the streams whose deriver derives
// events from facts of each kind, so that a provider's Feeds, checked
// against it, say what each consumer needs.
func TestStreamsOf(t *testing.T) {
	const chat = "5511999999999@s.whatsapp.net"
	for name, f := range map[string]fact.Facts{
		"label set":    {LabelSets: []fact.LabelSet{{Chat: chat, After: []fact.Label{{ID: "1"}}}}},
		"label assoc":  {LabelAssocs: []fact.LabelAssoc{{Chat: chat, Label: fact.Label{ID: "1"}, Assigned: true}}},
		"label upsert": {LabelUpserts: []fact.Label{{ID: "1", Name: "New"}}},
		"label delete": {LabelDeletes: []fact.LabelRef{{ID: "1"}}},
		"chat created": {ChatsCreated: []fact.ChatCreated{{Chat: chat}}},
		"chat seen":    {ChatsSeen: []fact.ChatSeen{{Chat: chat}}},
		"call":         {Calls: []fact.Call{{CallID: "c1", Chat: chat, State: fact.CallOffered, Status: "ringing"}}},
		"group":        {Groups: []fact.GroupChange{{Chat: "1203@g.us", Change: fact.GroupCreated}}},
		"nothing":      {},
	} {
		t.Run(name, func(t *testing.T) {
			raw := derive.Raw{ID: "raw-1", Provider: "zapi", Channel: "C", Kind: "k", Time: time.Unix(1747391325, 0)}
			var got []string
			for _, d := range derivers() {
				evs, err := d.Derive(context.Background(), raw, f)
				if err != nil {
					t.Fatalf("%s: Derive: %v", d.Stream(), err)
				}
				if len(evs) > 0 {
					got = append(got, d.Stream())
				}
			}
			slices.Sort(got)
			want := slices.Sorted(slices.Values(derive.StreamsOf(f)))
			if !slices.Equal(got, want) {
				t.Errorf("streams deriving events = %v, StreamsOf = %v", got, want)
			}
		})
	}
}
