package meta

import (
	"testing"

	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/provider"
)

// TestFeedsCoverInterpret: every kind Split can name, tried with every
// documented example in testdata, gives facts only for the streams Feeds
// says read it. A kind added to Interpret without being declared fails here.
func TestFeedsCoverInterpret(t *testing.T) {
	p := New()
	items := derivetest.Fixtures(t, p, "testdata")
	all := []string{provider.KindUnknown}
	for k := range kinds {
		all = append(all, k)
	}
	for k := range wholeFields {
		all = append(all, k)
	}
	derivetest.CheckFeeds(t, p, all, items)
}
