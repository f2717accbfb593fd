package evolution

import (
	"testing"

	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/provider"
)

// TestFeedsCoverInterpret: every kind Split can name, tried with every
// fixture, gives facts only for the streams Feeds says read it.
func TestFeedsCoverInterpret(t *testing.T) {
	p := New()
	items := derivetest.Fixtures(t, p, "testdata")
	all := append([]string{provider.KindUnknown}, kindList...)
	derivetest.CheckFeeds(t, p, all, items)
}
