package kafkastate

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/wahook/wahook/pkg/state"
)

func TestLabelPrefix(t *testing.T) {
	for give, want := range map[string]string{
		state.EntryKey("whapi", "C.1", "7"): "whapi.C_2E1",
		"a.b":                               "",
		"a.b.c.d":                           "",
		".b.c":                              ".b",
	} {
		got, ok := labelPrefix(give)
		if ok != (want != "") || got != want {
			t.Errorf("labelPrefix(%q) = %q, %v; want %q", give, got, ok, want)
		}
	}
}

// The bound keeps the newest marks whatever order they arrive in, as when
// a restore interleaves partitions, and refuses a mark older than one it
// forgot.
func TestDedupKeepsNewest(t *testing.T) {
	now := time.Now()
	d := &Dedup{s: &Store{cfg: Config{Now: func() time.Time { return now }}}, window: time.Hour, maxIDs: 3, scopes: map[string]*dedupScope{}}
	at := func(i int) int64 { return now.Add(time.Duration(i-10) * time.Second).UnixNano() }
	for _, i := range rand.Perm(10) {
		d.record("s", hashOf(fmt.Sprint(i)), at(i))
	}
	d.record("s", hashOf("late"), at(5))
	sc := d.scopes["s"]
	got := map[hashKey]bool{}
	for id := range sc.at {
		got[id] = true
	}
	if len(got) != 3 || !got[hashOf("7")] || !got[hashOf("8")] || !got[hashOf("9")] {
		t.Errorf("kept %d ids, want 7, 8 and 9 only", len(got))
	}
	if len(sc.marks) > 3 {
		t.Errorf("heap holds %d marks, want at most 3", len(sc.marks))
	}
}

// A tailer behind records that retention deleted goes on from the log
// start instead of failing forever.
func TestFetchSkipsDeletedRecords(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("kfake.NewCluster: %v", err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var offset atomic.Int64 // the clock runs 3h late for the first marks
	offset.Store(int64(-3 * time.Hour))
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	s, err := Open(ctx, Config{Brokers: c.ListenAddrs(), Partitions: 1, DedupWindow: time.Hour, Now: now})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close(ctx)
	for i := range 3 {
		if err := s.Dedup().Mark(ctx, "s", fmt.Sprint(i)); err != nil {
			t.Fatalf("Mark: %v", err)
		}
	}
	offset.Store(0) // the next mark is recent, so retention keeps it
	if err := s.Dedup().Mark(ctx, "s", "new"); err != nil {
		t.Fatalf("Mark: %v", err)
	}
	c.ApplyRetention()
	next, read, _, err := s.fetch(s.dedup.t.parts[0], 0)
	if err != nil || !read || next != 3 {
		t.Errorf("fetch at 0 after retention = next %d, read %v, %v; want 3, true, nil", next, read, err)
	}
}
