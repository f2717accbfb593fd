package provider_test

import (
	"slices"
	"testing"

	"github.com/wahook/wahook/pkg/provider"
)

func TestFeeds(t *testing.T) {
	f := provider.Feeds{
		"a": {"chats.patch", "received.>", "received.notification", "chats.patch", "message"},
		"b": {provider.AnyKind, "labels.post"},
		"c": {"x.y.>", "x.>", "x"},
	}
	for _, tc := range []struct {
		stream, kind string
		want         bool
	}{
		{"a", "chats.patch", true},
		{"a", "chats.post", false},
		{"a", "received.text", true},
		{"a", "received.notification", true},
		{"a", "received", false},
		{"a", "message", true},
		{"a", "message.any", false},
		{"b", "anything.at.all", true},
		{"c", "x", true},
		{"c", "x.z", true},
		{"none", "chats.patch", false},
	} {
		if got := f.Reads(tc.stream, tc.kind); got != tc.want {
			t.Errorf("Reads(%s, %s) = %v, want %v", tc.stream, tc.kind, got, tc.want)
		}
	}
	// Entries another covers are left out: JetStream refuses overlapping
	// filters. An exact kind and its ".>" do not overlap.
	for stream, want := range map[string][]string{
		"a": {"chats.patch", "message", "received.>"},
		"b": {">"},
		"c": {"x", "x.>"},
	} {
		if got := f.Kinds(stream); !slices.Equal(got, want) {
			t.Errorf("Kinds(%s) = %q, want %q", stream, got, want)
		}
	}
	if err := f.Check(); err != nil {
		t.Errorf("Check: %v", err)
	}
	for _, bad := range []string{"chats patch", "chats.>.x", "chats.", "*", "a.*", ".>", ""} {
		if err := (provider.Feeds{"a": {bad}}).Check(); err == nil {
			t.Errorf("Check accepts entry %q", bad)
		}
	}
}
