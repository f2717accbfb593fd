package kafkastate_test

import (
	"testing"
)

// TestAliasesRestored: a store opened later knows the aliases learnt
// before, from the chats topic, beside the chats there.
func TestAliasesRestored(t *testing.T) {
	c := newCluster(t)
	cfg := freshConfig(c)
	const lid, phone = "123456789012345@lid", "5544999999999@s.whatsapp.net"
	s1 := open(t, cfg)
	if err := s1.Aliases().Learn(t.Context(), "waha", "default", lid, phone, "ev1"); err != nil {
		t.Fatalf("Learn: %v", err)
	}
	if _, err := s1.Chats().FirstSeen(t.Context(), "waha", "default", lid, "ev1"); err != nil {
		t.Fatalf("FirstSeen: %v", err)
	}
	s2 := open(t, cfg)
	for id, want := range map[string]string{lid: phone, phone: lid} {
		got, ok, err := s2.Aliases().Lookup(t.Context(), "waha", "default", id)
		if err != nil || !ok || got != want {
			t.Errorf("restored Lookup(%s) = %q, %v, %v, want %q", id, got, ok, err, want)
		}
	}
	first, err := s2.Chats().FirstSeen(t.Context(), "waha", "default", lid, "ev2")
	if err != nil || first {
		t.Errorf("restored FirstSeen(%s, ev2) = %v, %v, want false: the chat beside its alias is kept", lid, first, err)
	}
	if n := s2.Chats().Held(); n != 1 {
		t.Errorf("restored store holds %d chats, want 1: aliases are not chats", n)
	}
}
