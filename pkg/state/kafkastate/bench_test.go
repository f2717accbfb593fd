package kafkastate_test

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/fact"
)

// BenchmarkFirstSeen measures first sightings of new chats (a claim written
// with acks from all replicas, then read back through the tailer) and
// repeat sightings (memory), against kfake over loopback TCP.
func BenchmarkFirstSeen(b *testing.B) {
	s := open(b, freshConfig(newCluster(b)))
	ctx := context.Background()
	var seq atomic.Int64
	newChat := func() string { return strconv.FormatInt(seq.Add(1), 10) + "@s.whatsapp.net" }
	firstSeen := func(b *testing.B, chat, ev string, want bool) {
		if first, err := s.Chats().FirstSeen(ctx, prov, chan1, chat, ev); err != nil || first != want {
			b.Fatalf("FirstSeen(%s, %s) = %t, %v; want %t", chat, ev, first, err, want)
		}
	}
	b.Run("new", func(b *testing.B) {
		for b.Loop() {
			firstSeen(b, newChat(), "ev", true)
		}
	})
	b.Run("new/parallel", func(b *testing.B) {
		b.SetParallelism(8) // callers waiting on the broker, not on CPU
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				firstSeen(b, newChat(), "ev", true)
			}
		})
	})
	b.Run("repeat", func(b *testing.B) {
		chat := newChat()
		firstSeen(b, chat, "first", true)
		for b.Loop() {
			firstSeen(b, chat, "later", false)
		}
	})
	b.Run("repeat/parallel", func(b *testing.B) {
		chat := newChat()
		firstSeen(b, chat, "first", true)
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				firstSeen(b, chat, "later", false)
			}
		})
	})
}

// BenchmarkCatchUp measures what the catch-up rule costs a read: a
// partition's end offset asked of the broker (shared by the callers waiting
// at once), then the wait for the tailer, against answering within
// Config.CatchUpCache of the last catch-up.
func BenchmarkCatchUp(b *testing.B) {
	c := newCluster(b)
	for _, cache := range []time.Duration{0, 50 * time.Millisecond} {
		cfg := freshConfig(c)
		cfg.CatchUpCache = cache
		s := open(b, cfg)
		ctx := context.Background()
		if err := s.Dedup().Mark(ctx, "s", "x"); err != nil {
			b.Fatalf("Mark: %v", err)
		}
		if _, _, err := s.Labels().Upsert(ctx, prov, chan1, fact.Label{ID: "1", Name: "x"}, "ev"); err != nil {
			b.Fatalf("Upsert: %v", err)
		}
		name := "cache=" + cache.String()
		b.Run(name+"/seen", func(b *testing.B) {
			for b.Loop() {
				if ok, err := s.Dedup().Seen(ctx, "s", "x"); err != nil || !ok {
					b.Fatalf("Seen = %v, %v", ok, err)
				}
			}
		})
		b.Run(name+"/seen/parallel", func(b *testing.B) {
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if ok, err := s.Dedup().Seen(ctx, "s", "x"); err != nil || !ok {
						b.Fatalf("Seen = %v, %v", ok, err)
					}
				}
			})
		})
		b.Run(name+"/lookup", func(b *testing.B) {
			for b.Loop() {
				if _, ok, err := s.Labels().Lookup(ctx, prov, chan1, "1"); err != nil || !ok {
					b.Fatalf("Lookup = %v, %v", ok, err)
				}
			}
		})
	}
}

// BenchmarkWrite measures the writes that wait for acks: a label update
// (catch-up, write, read back) and a dedup mark (write only).
func BenchmarkWrite(b *testing.B) {
	s := open(b, freshConfig(newCluster(b)))
	ctx := context.Background()
	var seq atomic.Int64
	b.Run("upsert", func(b *testing.B) {
		for b.Loop() {
			n := strconv.FormatInt(seq.Add(1), 10)
			if _, _, err := s.Labels().Upsert(ctx, prov, chan1, fact.Label{ID: "1", Name: n}, n); err != nil {
				b.Fatalf("Upsert: %v", err)
			}
		}
	})
	b.Run("mark", func(b *testing.B) {
		for b.Loop() {
			if err := s.Dedup().Mark(ctx, "s", strconv.FormatInt(seq.Add(1), 10)); err != nil {
				b.Fatalf("Mark: %v", err)
			}
		}
	})
	b.Run("mark/parallel", func(b *testing.B) {
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := s.Dedup().Mark(ctx, "s", strconv.FormatInt(seq.Add(1), 10)); err != nil {
					b.Fatalf("Mark: %v", err)
				}
			}
		})
	})
}
