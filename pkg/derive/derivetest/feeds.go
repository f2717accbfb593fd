package derivetest

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/provider"
)

// CheckFacts fails t when f, what p.Interpret gave for an item of kind,
// feeds a stream that p's Feeds does not say reads kind: consumers of that
// stream would never receive such an item.
func CheckFacts(t testing.TB, p provider.Provider, kind string, f fact.Facts) {
	t.Helper()
	for _, s := range undeclared(p, kind, f) {
		t.Errorf("%s %s gives facts for the %s stream, whose Feeds do not read it: declare the kind there", p.Name(), kind, s)
	}
}

// undeclared returns the streams f feeds that p's Feeds do not say read
// kind; none when p declares no Feeds (it is read whole).
func undeclared(p provider.Provider, kind string, f fact.Facts) []string {
	feeds, ok := provider.FeedsOf(p)
	if !ok {
		return nil
	}
	var out []string
	for _, s := range derive.StreamsOf(f) {
		if !feeds.Reads(s, kind) {
			out = append(out, s)
		}
	}
	// Aliases feed no stream of their own: whichever reads the kind learns
	// them, so some stream must.
	if len(f.Aliases) > 0 && !slices.ContainsFunc(derive.Streams, func(s string) bool { return feeds.Reads(s, kind) }) {
		out = append(out, "any (for its aliases)")
	}
	return out
}

// CheckFeeds drives p.Interpret over every kind of kinds with every item of
// items, not only the items of that kind (what a kind gives may depend on
// content of another shape), and checks each result with CheckFacts. It
// also checks that p declares Feeds, valid ones. Interpret's errors are not
// its business.
func CheckFeeds(t testing.TB, p provider.Provider, kinds []string, items []provider.Item) {
	t.Helper()
	feeds, ok := provider.FeedsOf(p)
	if !ok {
		t.Fatalf("%s declares no Feeds", p.Name())
	}
	if err := feeds.Check(); err != nil {
		t.Fatal(err)
	}
	for s := range feeds {
		if !slices.Contains(derive.Streams, s) {
			t.Errorf("%s Feeds name %q, not a derived stream", p.Name(), s)
		}
	}
	for _, it := range items {
		kinds = append(kinds, it.Kind)
	}
	// One failure per kind and stream, with the first item that shows it.
	reported := map[string]bool{}
	for _, kind := range kinds {
		for _, it := range items {
			f, err := p.Interpret(kind, it.Data)
			if err != nil {
				continue
			}
			for _, s := range undeclared(p, kind, f) {
				if !reported[kind+" "+s] {
					reported[kind+" "+s] = true
					t.Errorf("%s %s gives facts for the %s stream, whose Feeds do not read it (from the data of a %s item: %.200s): declare the kind there",
						p.Name(), kind, s, it.Kind, it.Data)
				}
			}
		}
	}
}

// Fixtures splits the providers' documented examples in dirs (each
// *.json one delivery; a dir that does not exist is passed over) with p,
// and fails t when none is found or one does not split.
func Fixtures(t testing.TB, p provider.Provider, dirs ...string) []provider.Item {
	t.Helper()
	var items []provider.Item
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.json"))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			split, err := p.Split(body, provider.Delivery{Method: "POST"})
			if err != nil {
				t.Fatalf("%s: Split: %v", f, err)
			}
			items = append(items, split...)
		}
	}
	if len(items) == 0 {
		t.Fatalf("no %s examples in %v", p.Name(), dirs)
	}
	return items
}
