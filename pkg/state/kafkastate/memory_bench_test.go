package kafkastate

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap"
)

// BenchmarkMemoryPerID measures the heap the Kafka consumers' in-memory
// registries hold per raw event id (WAHOOK_BENCH_IDS, a million by
// default): the duplicate window (Dedup, one scope, as one derived
// stream's consumer keeps it) and the first receive times (Times), each
// filled as a restore fills it, from records within the window. Ids are
// wahook ids (32 hex digits); memory keeps a hash of each.
func BenchmarkMemoryPerID(b *testing.B) {
	ids := 1_000_000
	if n, err := strconv.Atoi(os.Getenv("WAHOOK_BENCH_IDS")); err == nil && n > 0 {
		ids = n
	}
	now := time.Now()
	s := &Store{cfg: Config{Now: func() time.Time { return now }}, log: zap.NewNop()}
	key := func(i int) string { return fmt.Sprintf("%032x", i) }
	b.Run("dedup", func(b *testing.B) {
		mark, err := json.Marshal(dedupRecord{At: now.Add(-time.Minute)})
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			perID(b, ids, func() any {
				d := &Dedup{s: s, window: time.Hour, maxIDs: ids, scopes: map[string]*dedupScope{}}
				for i := range ids {
					d.apply(0, []byte("label-changed."+key(i)), mark)
				}
				if n := d.size("label-changed"); n != ids {
					b.Fatalf("%d ids held, want %d", n, ids)
				}
				return d
			})
		}
	})
	b.Run("times", func(b *testing.B) {
		rec, err := json.Marshal(timesRecord{Time: now.Add(-time.Hour), At: now.Add(-time.Minute), Version: 1})
		if err != nil {
			b.Fatal(err)
		}
		for b.Loop() {
			perID(b, ids, func() any {
				r := &Times{s: s, ttl: time.Hour, maxIDs: ids, m: map[hashKey]timeEntry{}}
				for i := range ids {
					r.apply(0, []byte(key(i)), rec)
				}
				if len(r.m) != ids {
					b.Fatalf("%d ids held, want %d", len(r.m), ids)
				}
				return r
			})
		}
	})
}

// perID reports the live heap what fill returns holds, per id.
func perID(b *testing.B, ids int, fill func() any) {
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	held := fill()
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(held)
	b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/float64(ids), "B/id")
}
