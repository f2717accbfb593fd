package natsstate_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/state/natsstate"
)

// BenchmarkFirstSeen measures first sightings of new chats (a read that
// misses, then a Create) and repeat sightings (a read, or the cache), over
// an in-process connection to an embedded server with file storage.
func BenchmarkFirstSeen(b *testing.B) {
	e := startServer(b, b.TempDir())
	br := connect(b, natsbroker.Config{Embedded: e})
	cached := open(b, br.JetStream(), natsstate.Config{})
	uncached := open(b, br.JetStream(), natsstate.Config{ChatCacheSize: -1})
	ctx := context.Background()
	var seq atomic.Int64
	newChat := func() string { return strconv.FormatInt(seq.Add(1), 10) + "@s.whatsapp.net" }

	firstSeen := func(b *testing.B, s *natsstate.Store, chat, ev string, want bool) {
		if first, err := s.Chats().FirstSeen(ctx, prov, chan1, chat, ev); err != nil || first != want {
			b.Fatalf("FirstSeen(%s, %s) = %t, %v; want %t", chat, ev, first, err, want)
		}
	}

	b.Run("new", func(b *testing.B) {
		for b.Loop() {
			firstSeen(b, uncached, newChat(), "ev", true)
		}
	})
	b.Run("new/parallel", func(b *testing.B) {
		b.SetParallelism(8) // callers waiting on the server, not on CPU
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				firstSeen(b, uncached, newChat(), "ev", true)
			}
		})
	})
	for name, s := range map[string]*natsstate.Store{"repeat/cached": cached, "repeat/uncached": uncached} {
		b.Run(name, func(b *testing.B) {
			chat := newChat()
			firstSeen(b, s, chat, "first", true)
			for b.Loop() {
				firstSeen(b, s, chat, "later", false)
			}
		})
		b.Run(name+"/parallel", func(b *testing.B) {
			chat := newChat()
			firstSeen(b, s, chat, "first", true)
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					firstSeen(b, s, chat, "later", false)
				}
			})
		})
	}
}
