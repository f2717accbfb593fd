package kafkastate

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
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

// TestChatShard sets, updates and removes chats at random, across many
// merges of the map into the sorted slice, against a plain map.
func TestChatShard(t *testing.T) {
	sh := chatShard{m: map[hashKey]chatEntry{}, other: map[hashKey]string{}}
	want := map[hashKey]chatEntry{}
	rng := rand.New(rand.NewPCG(1, 2))
	key := func() hashKey { return hashOf(strconv.Itoa(rng.IntN(30000))) }
	for i := range 200_000 {
		k := key()
		switch op := rng.IntN(10); {
		case op == 0:
			sh.remove(k)
			delete(want, k)
		default:
			e := chatEntry{seenAt: int64(i), version: uint32(op), stale: op%2 == 0}
			sh.set(k, e)
			want[k] = e
		}
	}
	if len(sh.cold) < minMerge {
		t.Fatalf("%d chats in the slice: no merge happened", len(sh.cold))
	}
	if !slices.IsSortedFunc(sh.cold, func(a, b coldChat) int { return bytes.Compare(a.key[:], b.key[:]) }) {
		t.Fatal("slice not sorted")
	}
	if n := len(sh.cold) + len(sh.m); n != len(want) {
		t.Errorf("%d chats held, want %d", n, len(want))
	}
	for k, w := range want {
		if got, ok := sh.entry(k); !ok || got != w {
			t.Fatalf("entry(%x) = %+v, %t; want %+v", k, got, ok, w)
		}
	}
	for range 1000 {
		if k := key(); want[k] == (chatEntry{}) {
			if _, ok := sh.entry(k); ok {
				t.Fatalf("entry(%x) found, want none", k)
			}
		}
	}
}
