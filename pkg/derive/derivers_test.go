package derive_test

import (
	"path/filepath"
	"slices"
	"testing"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/call"
	"github.com/wahook/wahook/pkg/derive/chat"
	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/derive/group"
	"github.com/wahook/wahook/pkg/derive/label"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/provider"
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
	for _, p := range []provider.Provider{whapi.New(), zapi.New(), waha.New()} {
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
