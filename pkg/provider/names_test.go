package provider

import (
	"strings"
	"testing"
)

func TestValidChannel(t *testing.T) {
	for _, s := range []string{
		"MANTIS-M72HC", "SUPERMAN-f75", "A20DA9C0183A2D35A260F53F5D2B9244", "instance.id", "default",
		"123456789", "tenant:main", "ops@example", "a+b=c", "x~y", "under_score", strings.Repeat("a", MaxChannelBytes),
	} {
		if !ValidChannel(s) {
			t.Errorf("ValidChannel(%q) = false; want true", s)
		}
	}
	for _, s := range []string{
		"", strings.Repeat("a", MaxChannelBytes+1), strings.Repeat("x", 4096),
		"a b", "a\tb", "a\nb", "a\rb", "a\x00b", "a\x7fb", "café", "\xff",
		"a/b", "a*b", "a>b", "*", ">", "a%20b", "a?b", "a#b", "a\"b", "a'b", "a\\b", "a,b", "a;b", "$SYS",
	} {
		if ValidChannel(s) {
			t.Errorf("ValidChannel(%q) = true; want false", s)
		}
	}
}

func TestValidKind(t *testing.T) {
	for _, s := range []string{
		"unknown", "chats.patch", "received.waitingMessage", "message-status", "group.v2.participants.join-request",
		"group_participants_update", strings.Repeat("k", MaxKindBytes),
	} {
		if !ValidKind(s) {
			t.Errorf("ValidKind(%q) = false; want true", s)
		}
	}
	for _, s := range []string{
		"", strings.Repeat("k", MaxKindBytes+1), ".", "a.", ".a", "a..b", "a*b", "a.>", "a b", "a/b", "a:b",
		"é", "a\x00", "a~b",
	} {
		if ValidKind(s) {
			t.Errorf("ValidKind(%q) = true; want false", s)
		}
	}
}

func BenchmarkValidChannel(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if !ValidChannel("A20DA9C0183A2D35A260F53F5D2B9244") {
			b.Fatal("refused")
		}
	}
}
