package whapi

import (
	"path/filepath"
	"testing"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/provider"
)

// TestFeedsCoverInterpret: every kind Split can name, tried with every
// documented example's items (the copies in testdata, and the shared
// originals beside the repository when present), gives facts only for the
// streams Feeds says read it. A kind added to Interpret without being
// declared fails here.
func TestFeedsCoverInterpret(t *testing.T) {
	p := New()
	items := derivetest.Fixtures(t, p, "testdata", filepath.Join("..", "..", "..", "..", "shared", "fixtures", "whapi"))
	all := []string{provider.KindUnknown}
	for _, s := range kinds {
		all = append(all, s.kind)
	}
	derivetest.CheckFeeds(t, p, all, items)
}

// TestFeedsChatsPatch: a chats.patch feeds label-changed and nothing else.
func TestFeedsChatsPatch(t *testing.T) {
	f := New().Feeds()
	for _, s := range derive.Streams {
		if got, want := f.Reads(s, KindChatsPatch), s == derive.LabelChanged; got != want {
			t.Errorf("Reads(%s, chats.patch) = %v, want %v", s, got, want)
		}
	}
}

// TestAnnouncesChats: Whapi says when a chat is created (chats.post,
// groups.post), so no example gives a chat seen, from which chat-created
// would infer one a second time.
func TestAnnouncesChats(t *testing.T) {
	p := New()
	items := derivetest.Fixtures(t, p, "testdata", filepath.Join("..", "..", "..", "..", "shared", "fixtures", "whapi"))
	if len(items) == 0 {
		t.Fatal("no examples")
	}
	for _, it := range items {
		f, err := p.Interpret(it.Kind, it.Data)
		if err != nil {
			continue // refused examples are checked elsewhere
		}
		if len(f.ChatsSeen) > 0 {
			t.Errorf("%s: chats seen %+v; Whapi announces its chats", it.Kind, f.ChatsSeen)
		}
	}
}
