package kafkastate_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/state/kafkastate"
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

// TestAliasesExpire: with a chats TTL an alias is forgotten with the
// chats, in the process that learnt it and in one restored after, and a
// pair given again is learnt anew, another one included.
func TestAliasesExpire(t *testing.T) {
	cfg, clk, _ := ttlConfig(t, time.Hour)
	const lid, phone, phone2 = "123456789012345@lid", "5544999999999@s.whatsapp.net", "5511888888888@s.whatsapp.net"
	s := open(t, cfg)
	lookup := func(s *kafkastate.Store, id, want string) {
		t.Helper()
		got, ok, err := s.Aliases().Lookup(t.Context(), prov, chan1, id)
		if err != nil || ok != (want != "") || got != want {
			t.Errorf("Lookup(%s) = %q, %v, %v, want %q", id, got, ok, err, want)
		}
	}
	if err := s.Aliases().Learn(t.Context(), prov, chan1, lid, phone, "ev1"); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Hour - time.Nanosecond)
	lookup(s, lid, phone)
	clk.Add(time.Nanosecond)
	lookup(s, lid, "")
	lookup(open(t, cfg), phone, "")
	if err := s.Aliases().Learn(t.Context(), prov, chan1, lid, phone2, "ev2"); err != nil {
		t.Fatal(err)
	}
	lookup(s, lid, phone2)
	lookup(open(t, cfg), phone2, lid)
}

// TestAliasesRaceAcrossStores: two processes learn another phone for each
// of the same LIDs at once. Each LID keeps one phone in both processes,
// only that phone names the LID back, and every alias key's last record
// names its winner, so a store restored after compaction agrees.
func TestAliasesRaceAcrossStores(t *testing.T) {
	c := newCluster(t)
	cfg := freshConfig(c)
	s1, s2 := open(t, cfg), open(t, cfg)
	const n = 20
	lid := func(i int) string { return fmt.Sprintf("9000000000%02d@lid", i) }
	phone := func(s, i int) string { return fmt.Sprintf("55%d90000000%02d@s.whatsapp.net", s, i) }
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		start := make(chan struct{})
		for si, s := range []*kafkastate.Store{s1, s2} {
			wg.Go(func() {
				<-start
				errs <- s.Aliases().Learn(testCtx(t), "waha", "default", lid(i), phone(si, i), fmt.Sprintf("ev%d-%d", si, i))
			})
		}
		close(start)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Learn: %v", err)
		}
	}
	won := make([]string, n)
	agree := func(what string, s *kafkastate.Store) {
		t.Helper()
		for i := range n {
			got, ok, err := s.Aliases().Lookup(testCtx(t), "waha", "default", lid(i))
			if err != nil || !ok || (got != phone(0, i) && got != phone(1, i)) {
				t.Fatalf("%s: Lookup(%s) = %q, %v, %v", what, lid(i), got, ok, err)
			}
			if won[i] == "" {
				won[i] = got
			} else if got != won[i] {
				t.Errorf("%s: Lookup(%s) = %s, another store said %s", what, lid(i), got, won[i])
			}
			for si := range 2 {
				back, ok, err := s.Aliases().Lookup(testCtx(t), "waha", "default", phone(si, i))
				want := ""
				if phone(si, i) == won[i] {
					want = lid(i)
				}
				if err != nil || ok != (want != "") || back != want {
					t.Errorf("%s: Lookup(%s) = %q, %v, %v, want %q", what, phone(si, i), back, ok, err, want)
				}
			}
		}
	}
	agree("store 1", s1)
	agree("store 2", s2)
	c.Compact()
	agree("a store restored after compaction", open(t, cfg))
}
