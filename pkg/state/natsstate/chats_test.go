package natsstate_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/wahook/wahook/pkg/derive"
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
