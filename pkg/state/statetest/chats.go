package statetest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/state"
)

// ChatLookup is a chat registry that tells what it knows of a chat.
type ChatLookup interface {
	derive.ChatRegistry
	Lookup(ctx context.Context, provider, channel, chat string) (c state.Chat, known bool, err error)
}

// TestChatLookup checks Lookup of registries made by newRegistry, each
// subtest on a new, empty one.
func TestChatLookup(t *testing.T, newRegistry func(t *testing.T) ChatLookup) {
	t.Helper()
	const chat = "5544999999999@s.whatsapp.net"
	ctx := func(t *testing.T) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	see := func(t *testing.T, r ChatLookup, prov, ch, chat, ev string) {
		t.Helper()
		if _, err := r.FirstSeen(ctx(t), prov, ch, chat, ev); err != nil {
			t.Fatalf("FirstSeen(%s, %s, %.20s, %s): %v", prov, ch, chat, ev, err)
		}
	}
	lookup := func(t *testing.T, r ChatLookup, prov, ch, chat string) (state.Chat, bool) {
		t.Helper()
		c, known, err := r.Lookup(ctx(t), prov, ch, chat)
		if err != nil {
			t.Fatalf("Lookup(%s, %s, %.20s): %v", prov, ch, chat, err)
		}
		return c, known
	}

	t.Run("unknown chat", func(t *testing.T) {
		r := newRegistry(t)
		if c, known := lookup(t, r, "whapi", "CH-1", chat); known || c != (state.Chat{}) {
			t.Errorf("Lookup of an unknown chat = %+v, %t; want nothing", c, known)
		}
		// A lookup writes nothing: the first sighting after it is first.
		if first, err := r.FirstSeen(ctx(t), "whapi", "CH-1", chat, "ev1"); err != nil || !first {
			t.Errorf("FirstSeen after a Lookup = %t, %v; want first", first, err)
		}
	})

	t.Run("first event and time kept", func(t *testing.T) {
		r := newRegistry(t)
		before := time.Now()
		see(t, r, "whapi", "CH-1", chat, "ev1")
		after := time.Now()
		see(t, r, "whapi", "CH-1", chat, "ev2")
		c, known := lookup(t, r, "whapi", "CH-1", chat)
		if !known || c.FirstEvent != "ev1" {
			t.Fatalf("Lookup = %+v, %t; want first event ev1", c, known)
		}
		// Stored times may lose the monotonic reading, never precision
		// beyond a microsecond.
		if c.FirstSeenAt.Before(before.Truncate(time.Microsecond)) || c.FirstSeenAt.After(after) {
			t.Errorf("Lookup first seen at %s; want between %s and %s", c.FirstSeenAt, before, after)
		}
		if again, _ := lookup(t, r, "whapi", "CH-1", chat); !again.FirstSeenAt.Equal(c.FirstSeenAt) {
			t.Errorf("Lookup again first seen at %s; want %s", again.FirstSeenAt, c.FirstSeenAt)
		}
	})

	t.Run("channels and providers apart", func(t *testing.T) {
		r := newRegistry(t)
		see(t, r, "whapi", "CH-1", chat, "ev1")
		for _, pc := range []state.ProviderChannel{{Provider: "whapi", Channel: "CH-2"}, {Provider: "zapi", Channel: "CH-1"}} {
			if c, known := lookup(t, r, pc.Provider, pc.Channel, chat); known {
				t.Errorf("Lookup(%s, %s) = %+v; want unknown: only whapi/CH-1 saw it", pc.Provider, pc.Channel, c)
			}
		}
		see(t, r, "zapi", "CH-1", chat, "ev2")
		if c, _ := lookup(t, r, "zapi", "CH-1", chat); c.FirstEvent != "ev2" {
			t.Errorf("Lookup(zapi, CH-1) first event %q; want ev2", c.FirstEvent)
		}
		if c, _ := lookup(t, r, "whapi", "CH-1", chat); c.FirstEvent != "ev1" {
			t.Errorf("Lookup(whapi, CH-1) first event %q; want ev1", c.FirstEvent)
		}
		if c, known := lookup(t, r, "whapi", "CH-1", "120363019502650977@g.us"); known {
			t.Errorf("Lookup of another chat = %+v; want unknown", c)
		}
	})

	t.Run("long and odd ids, kept under bounded keys", func(t *testing.T) {
		r := newRegistry(t)
		long := strings.Repeat("9", 4096) + "@s.whatsapp.net"
		longer := strings.Repeat("9", 4096) + "@lid"
		odd := "a.b_c@d:1 *>"
		see(t, r, "whapi", odd, long, "ev1")
		if c, known := lookup(t, r, "whapi", odd, long); !known || c.FirstEvent != "ev1" {
			t.Errorf("Lookup of a long chat id = %+v, %t; want ev1", c, known)
		}
		if c, known := lookup(t, r, "whapi", odd, longer); known {
			t.Errorf("Lookup of another long chat id sharing its start = %+v; want unknown", c)
		}
	})

	t.Run("cancelled context", func(t *testing.T) {
		r := newRegistry(t)
		see(t, r, "whapi", "CH-1", chat, "ev1")
		cctx, cancel := context.WithCancel(ctx(t))
		cancel()
		if c, known, err := r.Lookup(cctx, "whapi", "CH-1", chat); err == nil {
			t.Errorf("Lookup with a cancelled context = %+v, %t, nil; want an error, as FirstSeen gives", c, known)
		}
	})
}
