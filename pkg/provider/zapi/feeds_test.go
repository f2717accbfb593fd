package zapi

import (
	"path/filepath"
	"testing"

	"github.com/wahook/wahook/pkg/derive/derivetest"
)

// TestFeedsCoverInterpret: every kind Split can name, tried with every
// documented example (the copies in testdata, and the shared originals
// beside the repository when present), gives facts only for the streams
// Feeds says read it. A kind added to Interpret without being declared
// fails here.
func TestFeedsCoverInterpret(t *testing.T) {
	p := New()
	items := derivetest.Fixtures(t, p, "testdata", filepath.Join("..", "..", "..", "..", "shared", "fixtures", "zapi"))
	derivetest.CheckFeeds(t, p, allKinds(), items)
}
