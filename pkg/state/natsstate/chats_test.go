package natsstate_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/state"
)

func TestChatsFirstSeen(t *testing.T) {
	_, s := newStore(t)
	r := s.Chats()
	const chat = "4915112345678@s.whatsapp.net"
	for i, tc := range []struct {
		desc, provider, channel, chat, event string
		want                                 bool
	}{
		{"first sighting", prov, chan1, chat, "e1", true},
		{"same event reprocessed", prov, chan1, chat, "e1", true},
		{"another event", prov, chan1, chat, "e2", false},
		{"first event again after another", prov, chan1, chat, "e1", true},
		{"another chat", prov, chan1, "123@g.us", "e2", true},
		{"same chat on another channel", prov, "OTHER", chat, "e3", true},
		{"same channel name of another provider", "zapi", chan1, chat, "e4", true},
		{"reprocessed on the other channel", prov, "OTHER", chat, "e3", true},
		{"earlier event on the other channel", prov, "OTHER", chat, "e1", false},
	} {
		got, err := r.FirstSeen(testCtx(t), tc.provider, tc.channel, tc.chat, tc.event)
		if err != nil {
			t.Fatalf("%d %s: FirstSeen: %v", i, tc.desc, err)
		}
		if got != tc.want {
			t.Errorf("%d %s: FirstSeen(%s, %s, %s, %s) = %t, want %t", i, tc.desc, tc.provider, tc.channel, tc.chat, tc.event, got, tc.want)
		}
	}
}

// TestChatsFirstSeenRace races sightings of the same chats by distinct
// events from two processes (the second without cache): exactly one event
// per chat is told it saw the chat first, and it alone, also when every
// event is reprocessed on the other process.
func TestChatsFirstSeenRace(t *testing.T) {
	s1, s2, _ := twoStores(t)
	stores := []derive.ChatRegistry{s1.Chats(), s2.Chats()}
	const chats, perStore = 10, 8
	var (
		mu      sync.Mutex
		winners = map[string][]string{} // chat -> events told true
		wg      sync.WaitGroup
	)
	for si, r := range stores {
		for g := range perStore {
			ev := fmt.Sprintf("ev-%d-%d", si, g)
			wg.Go(func() {
				for c := range chats {
					// Start at different chats so that not every goroutine
					// races the same one at the same moment.
					chat := fmt.Sprintf("%d@s.whatsapp.net", (c+g)%chats)
					first, err := r.FirstSeen(testCtx(t), prov, chan1, chat, ev)
					if err != nil {
						t.Errorf("FirstSeen(%s, %s): %v", chat, ev, err)
						return
					}
					if first {
						mu.Lock()
						winners[chat] = append(winners[chat], ev)
						mu.Unlock()
					}
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for c := range chats {
		chat := fmt.Sprintf("%d@s.whatsapp.net", c)
		if len(winners[chat]) != 1 {
			t.Fatalf("chat %s: events told first = %v, want exactly one", chat, winners[chat])
		}
		for si := range stores {
			for g := range perStore {
				ev := fmt.Sprintf("ev-%d-%d", si, g)
				// Reprocess on the other store.
				first, err := stores[1-si].FirstSeen(testCtx(t), prov, chan1, chat, ev)
				if err != nil {
					t.Fatalf("reprocess FirstSeen(%s, %s): %v", chat, ev, err)
				}
				if want := ev == winners[chat][0]; first != want {
					t.Errorf("reprocess FirstSeen(%s, %s) = %t, want %t", chat, ev, first, want)
				}
			}
		}
	}
}

// TestChatsCacheExpiresWithBucket: once the bucket forgot a chat (its TTL
// passed) and another process announced it again, a process that had it
// cached answers as the bucket does, and so do its cached aliases.
func TestChatsCacheExpiresWithBucket(t *testing.T) {
	e := startServer(t, t.TempDir())
	b1 := connect(t, natsbroker.Config{Embedded: e})
	b2 := connect(t, natsbroker.Config{URL: e.ClientURL(), Auth: e.ServiceAuth()})
	cfg := freshConfig()
	cfg.ChatsTTL = time.Second
	s1 := open(t, b1.JetStream(), cfg)
	cfg.ChatCacheSize = -1
	s2 := open(t, b2.JetStream(), cfg)
	const (
		chat   = "4915112345678@s.whatsapp.net"
		lid    = "123456789012345@lid"
		phone2 = "4915199999999@s.whatsapp.net"
	)
	if first, err := s1.Chats().FirstSeen(testCtx(t), prov, chan1, chat, "e1"); err != nil || !first {
		t.Fatalf("FirstSeen(e1) = %t, %v; want first", first, err)
	}
	if err := s1.Aliases().Learn(testCtx(t), prov, chan1, lid, chat, "e1"); err != nil {
		t.Fatalf("Learn: %v", err)
	}
	if c, known, err := s1.Chats().Lookup(testCtx(t), prov, chan1, chat); err != nil || !known || c.FirstEvent != "e1" {
		t.Fatalf("Lookup before expiry = %+v, %t, %v; want e1", c, known, err)
	}

	kv, err := b1.JetStream().KeyValue(testCtx(t), cfg.ChatsBucket)
	if err != nil {
		t.Fatalf("KeyValue: %v", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, key := range []string{state.EntryKey(prov, chan1, chat), state.AliasKey(prov, chan1, lid)} {
		for {
			_, err := kv.Get(testCtx(t), key)
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				break
			}
			if err != nil {
				t.Fatalf("Get(%s): %v", key, err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still in the bucket 15s after its 1s TTL", key)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if c, known, err := s1.Chats().Lookup(testCtx(t), prov, chan1, chat); err != nil || known {
		t.Errorf("Lookup after expiry = %+v, %t, %v; want unknown", c, known, err)
	}

	// Another process sees the chat again, first, and learns another pair.
	if first, err := s2.Chats().FirstSeen(testCtx(t), prov, chan1, chat, "e2"); err != nil || !first {
		t.Fatalf("other process FirstSeen(e2) = %t, %v; want first: the bucket forgot e1", first, err)
	}
	if err := s2.Aliases().Learn(testCtx(t), prov, chan1, lid, phone2, "e2"); err != nil {
		t.Fatalf("other process Learn: %v", err)
	}
	for ev, want := range map[string]bool{"e2": true, "e1": false} {
		if first, err := s1.Chats().FirstSeen(testCtx(t), prov, chan1, chat, ev); err != nil || first != want {
			t.Errorf("FirstSeen(%s) on the process that cached e1 = %t, %v; want %t, as the bucket says", ev, first, err, want)
		}
	}
	if other, ok, err := s1.Aliases().Lookup(testCtx(t), prov, chan1, lid); err != nil || !ok || other != phone2 {
		t.Errorf("alias Lookup on the process that cached the first pair = %q, %t, %v; want %s", other, ok, err, phone2)
	}
}
