package natsbroker

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

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wahook/wahook/pkg/broker"
)

// cacheSettle is how long the benchmark leaves the server idle before it
// measures: the file store drops a message block's cache (the block's
// messages and their index) 10s after the block was last read or written
// (nats-server's defaultCacheBufferExpiration), which would otherwise be
// counted per message.
const cacheSettle = 13 * time.Second

// BenchmarkServerMemoryPerID measures the heap nats-server holds for the
// raw stream's duplicate window, per id (WAHOOK_BENCH_IDS, a million by
// default). The server is embedded, so its heap is this process's: the
// stream is created as Connect creates it (StreamsConfig defaults: file
// storage, a 10-minute duplicates window), then N raw events are
// published through Publish, once without ids and once, on a fresh server,
// each with a distinct wahook-like id (32 hex digits) as Nats-Msg-Id; the live
// heap is read after the block caches expired (cacheSettle) and a GC.
// B/msg is what the stream holds per message without ids, B/id what the
// ids add: the duplicate window's cost. Each half takes some 15s to
// publish a million events, plus cacheSettle.
//
// What the server keeps per id (stream.go): a *ddentry {id string, seq,
// ts} (32 bytes) and its id string copied out of the headers (32 bytes),
// in the map ddmap[id] (a string key and a pointer per slot, plus the map's
// spare capacity) and appended to the slice ddarr (a pointer) that the
// purge timer walks to forget ids older than the window. Without ids a
// message leaves nothing in memory once its block's cache expired: the file
// store's per-subject index (psim) has one entry per subject, and raw
// events use a few subjects per channel.
func BenchmarkServerMemoryPerID(b *testing.B) {
	ids := 1_000_000
	if n, err := strconv.Atoi(os.Getenv("WAHOOK_BENCH_IDS")); err == nil && n > 0 {
		ids = n
	}
	for b.Loop() {
		plain := rawStreamHeap(b, ids, false)
		withIDs := rawStreamHeap(b, ids, true)
		b.ReportMetric(float64(plain)/float64(ids), "B/msg")
		b.ReportMetric(float64(withIDs-plain)/float64(ids), "B/id")
	}
}

// rawStreamHeap publishes n raw events to a fresh embedded server and
// returns how much the live heap grew, measured cacheSettle after the last
// acknowledgement.
func rawStreamHeap(b *testing.B, n int, withIDs bool) int64 {
	ctx := context.Background()
	dir, err := os.MkdirTemp(b.TempDir(), "store")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	e, err := StartEmbedded(ctx, EmbeddedConfig{Addr: "127.0.0.1:-1", StoreDir: dir})
	if err != nil {
		b.Fatalf("StartEmbedded: %v", err)
	}
	defer e.Shutdown(ctx)
	br, err := Connect(ctx, Config{Embedded: e})
	if err != nil {
		b.Fatalf("Connect: %v", err)
	}
	defer br.Close(ctx)

	before := liveHeap()
	const workers, batch = 8, 256
	data := []byte(`{"id":"m","from_me":false,"type":"text","text":{"body":"hello"}}`)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			msgs := make([]broker.Message, 0, batch)
			for i := w; i < n; i += workers {
				m := ingressMsg(fmt.Sprintf("CH%02d", i%16), i, data)
				id := benchID(i)
				m.ID = ""
				m.Header["ce-id"] = []string{id}
				if withIDs {
					m.ID = id
				}
				msgs = append(msgs, m)
				if len(msgs) == batch || i+workers >= n {
					if err := br.Publish(ctx, msgs...); err != nil {
						b.Errorf("Publish: %v", err)
						return
					}
					msgs = msgs[:0]
				}
			}
		})
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	time.Sleep(cacheSettle)
	grown := liveHeap() - before

	if got := streamCount(b, br.JetStream(), IngressStream); got != uint64(n) {
		b.Fatalf("%d messages stored, want %d", got, n)
	}
	if withIDs {
		// The window holds the ids: the first one again is a duplicate.
		msg := ingressMsg("CH00", 0, data)
		ack, err := br.JetStream().PublishMsg(ctx, &nats.Msg{Subject: msg.Subject, Data: data},
			jetstream.WithMsgID(benchID(0)))
		if err != nil || !ack.Duplicate {
			b.Fatalf("first id published again: %+v, %v; want a duplicate", ack, err)
		}
	}
	return grown
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
