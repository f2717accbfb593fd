package natsstate_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/state/natsstate"
)

// Idle times before the benchmark reads the heap. The file store drops a
// message block's cache (its messages and their index) 10s after the
// block was last used, and its per-subject index (fss, a subject tree with
// every key of the block) 2 minutes after (nats-server's
// defaultCacheBufferExpiration and defaultFssExpiration).
const (
	cacheSettle = 13 * time.Second
	fssSettle   = 2*time.Minute + 10*time.Second
)

// BenchmarkServerMemoryPerChat measures the heap a chat registry on
// JetStream costs per chat: WAHOOK_BENCH_IDS chats (a million by default)
// are claimed through Chats.FirstSeen, as the chat-created consumer claims
// them (a read that misses, then a Create), each with its first event, on
// the store Open makes with the defaults (bucket WAHOOK_CHATS, file
// storage, a chat cache of DefaultChatCacheSize). The server is embedded,
// so its heap is this process's. Sub-benchmark "times" does the same for
// the first receive times (Times.FirstTime, one Create per raw event id,
// bucket WAHOOK_TIMES).
//
// Reported, per chat or id, as live heap growth after a GC:
//   - B/chat, B/id: server and store once the bucket was idle for
//     fssSettle, what the server keeps for good;
//   - active-B/chat, active-B/id: cacheSettle after the last write, with
//     the blocks' per-subject indexes still loaded, as they are while keys
//     are read (a Get loads the index of its key's block for 2 minutes)
//     and for 2 minutes after a restart (recovery loads them all);
//   - cache-B/chat: the store's share of B/chat, its chat cache, which
//     holds at most DefaultChatCacheSize chats whatever their number.
//
// What the server keeps per key (filestore.go): an entry in the stream's
// per-subject index psim, a subject tree (stree, a radix tree) of every key
// with its count and first and last block ({total, fblk, lblk}, 16 bytes)
// in a leaf with the rest of the subject after its branching point, under
// inner nodes of up to 4 to 256 children; the messages themselves stay on
// disk. Each block's fss is the same kind of tree of its own keys with
// their first and last sequences, while loaded.
//
// Each sub-benchmark takes fssSettle plus the claims (some 30 to 90s per
// million on 2 cores); waiting is idle.
func BenchmarkServerMemoryPerChat(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("WAHOOK_BENCH_IDS")); err == nil && v > 0 {
		n = v
	}
	b.Run("chats", func(b *testing.B) {
		for b.Loop() {
			m := registryHeap(b, n, func(ctx context.Context, s *natsstate.Store, i int) error {
				first, err := s.Chats().FirstSeen(ctx, prov, chan1, benchChat(i), benchID(i))
				if err == nil && !first {
					err = fmt.Errorf("chat %d: not its first event", i)
				}
				return err
			})
			b.ReportMetric(m.idle/float64(n), "B/chat")
			b.ReportMetric(m.active/float64(n), "active-B/chat")
			b.ReportMetric((m.idle-m.server)/float64(n), "cache-B/chat")
		}
	})
	b.Run("times", func(b *testing.B) {
		now := time.Now()
		for b.Loop() {
			m := registryHeap(b, n, func(ctx context.Context, s *natsstate.Store, i int) error {
				t, err := s.Times().FirstTime(ctx, benchID(i), now)
				if err == nil && !t.Equal(now) {
					err = fmt.Errorf("id %d: first time %s, want %s", i, t, now)
				}
				return err
			})
			b.ReportMetric(m.idle/float64(n), "B/id")
			b.ReportMetric(m.active/float64(n), "active-B/id")
		}
	})
}

// registryMemory is the live heap growth of a filled registry: cacheSettle
// after the last write, fssSettle after it, and then without the store.
type registryMemory struct{ active, idle, server float64 }

// registryHeap starts a server, opens a store and calls claim for 0 to n-1
// from 32 goroutines, and measures the live heap grown from just before.
func registryHeap(b *testing.B, n int, claim func(context.Context, *natsstate.Store, int) error) registryMemory {
	ctx := context.Background()
	dir, err := os.MkdirTemp(b.TempDir(), "store")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	e, err := natsbroker.StartEmbedded(ctx, natsbroker.EmbeddedConfig{Addr: "127.0.0.1:-1", StoreDir: dir})
	if err != nil {
		b.Fatalf("StartEmbedded: %v", err)
	}
	defer e.Shutdown(ctx)
	br, err := natsbroker.Connect(ctx, natsbroker.Config{Embedded: e})
	if err != nil {
		b.Fatalf("Connect: %v", err)
	}
	defer br.Close(ctx)
	s, err := natsstate.Open(ctx, br.JetStream(), natsstate.Config{})
	if err != nil {
		b.Fatalf("Open: %v", err)
	}

	before := liveHeap()
	const workers = 32
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < n; i += workers {
				if err := claim(ctx, s, i); err != nil {
					b.Errorf("claim %d: %v", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	end := time.Now()
	var m registryMemory
	time.Sleep(time.Until(end.Add(cacheSettle)))
	m.active = float64(liveHeap() - before)
	time.Sleep(time.Until(end.Add(fssSettle)))
	m.idle = float64(liveHeap() - before)
	runtime.KeepAlive(s)
	s = nil // the store, its chat cache with it, may go
	m.server = float64(liveHeap() - before)
	return m
}

// benchChat is the i-th of distinct WhatsApp chat ids: a German mobile
// number, spread over the number range.
func benchChat(i int) string {
	return fmt.Sprintf("49%011d@s.whatsapp.net", uint64(i)*2654435761%100_000_000_000)
}

// benchID is the i-th of distinct ids shaped like wahook's: 32 hex digits
// of a hash (provider.EventID).
func benchID(i int) string {
	sum := sha256.Sum256(strconv.AppendInt(nil, int64(i), 10))
	return hex.EncodeToString(sum[:16])
}

// liveHeap is the heap in use after a full collection. The second GC
// empties the sync.Pools' victim caches, where the file store returns its
// block buffers.
func liveHeap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
