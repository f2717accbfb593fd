package kafkastate

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/wahook/wahook/pkg/state"
)

// onKfake starts a one-broker kfake cluster for the test, and gives a
// context that bounds it.
func onKfake(t *testing.T) (context.Context, *kfake.Cluster) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("kfake.NewCluster: %v", err)
	}
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx, c
}

// markN marks ids 0 to n-1 in scope "s".
func markN(t *testing.T, ctx context.Context, s *Store, n int) {
	t.Helper()
	for i := range n {
		if err := s.Dedup().Mark(ctx, "s", fmt.Sprint(i)); err != nil {
			t.Fatalf("Mark: %v", err)
		}
	}
}

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
	ctx, c := onKfake(t)
	var offset atomic.Int64 // the clock runs 3h late for the first marks
	offset.Store(int64(-3 * time.Hour))
	now := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	s, err := Open(ctx, Config{Brokers: c.ListenAddrs(), Partitions: 1, DedupWindow: time.Hour, Now: now})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close(ctx)
	markN(t, ctx, s, 3)
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

// A tailer ahead of a log that lost records (an unclean leader election, a
// topic made again) reads on from the log's end, and writers wait for it
// again, instead of failing forever.
func TestFetchPastTruncatedLog(t *testing.T) {
	ctx, c := onKfake(t)
	s, err := Open(ctx, Config{Brokers: c.ListenAddrs(), Partitions: 1, DedupWindow: time.Hour})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close(ctx)
	markN(t, ctx, s, 3)
	p := s.dedup.t.parts[0]
	if err := s.catchUp(ctx, p); err != nil {
		t.Fatalf("catchUp: %v", err)
	}
	// What the tailer would hold had it read records the log no longer has.
	p.advance(10)
	next, read, hwm, err := s.fetch(p, 10)
	if err != nil || read || next != 3 || hwm != 3 {
		t.Errorf("fetch at 10 of a log ending at 3 = next %d, read %v, watermark %d, %v; want 3, false, 3, nil", next, read, hwm, err)
	}
	p.mu.Lock()
	pos := p.pos
	p.mu.Unlock()
	if pos != 3 {
		t.Errorf("position after the fetch = %d, want 3", pos)
	}
}

// TestChatShard sets, updates and removes chats at random, across many
// merges of the map into the sorted slice, against a plain map.
func TestChatShard(t *testing.T) {
	if n := unsafe.Sizeof(coldChat{}); n != 48 {
		t.Errorf("a chat in the slice takes %d bytes, want 48", n)
	}
	sh := newShard()
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
			e := chatEntry{seenAt: int64(i), version: uint16(op), stale: op%2 == 0}
			sh.set(k, e, 0)
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

// TestChatShardDropsGone sets chats of which some expire, and checks that
// merges and sweeps drop those gone (chatsKept after their expiry) and
// only those, the map's and the slice's alike.
func TestChatShardDropsGone(t *testing.T) {
	sh := newShard()
	const n = 3 * minMerge
	expiring := func(i int) bool { return i%3 != 0 }
	for i := range n {
		e := chatEntry{seenAt: int64(i) * int64(time.Second), version: 1}
		if expiring(i) {
			e.life = 10
		}
		sh.set(hashOf(strconv.Itoa(i)), e, 0)
	}
	if got := len(sh.cold) + len(sh.m); got != n {
		t.Fatalf("%d chats held before any expiry, want %d", got, n)
	}
	// At now, chats 0 to half-1 are gone (expired at i+10s, gone an hour later).
	half := n / 2
	now := int64(half-1+10)*int64(time.Second) + int64(chatsKept)
	sh.merge(now)
	wantHeld := func(upTo int) int {
		held := 0
		for i := range n {
			if !expiring(i) || i >= upTo {
				held++
			}
		}
		return held
	}
	if got, want := len(sh.cold)+len(sh.m), wantHeld(half); got != want {
		t.Errorf("after a merge %d chats held, want %d", got, want)
	}
	if got := sh.sweep(now); got != 0 {
		t.Errorf("a sweep at the same time dropped %d chats, want 0", got)
	}
	// Some new chats in the map, and later all expiring ones gone.
	for i := n; i < n+100; i++ {
		sh.set(hashOf(strconv.Itoa(i)), chatEntry{seenAt: int64(i) * int64(time.Second), life: 10}, now)
	}
	later := int64(n+200)*int64(time.Second) + int64(chatsKept)
	if got, want := sh.sweep(later), wantHeld(half)-wantHeld(n)+100; got != want {
		t.Errorf("sweep dropped %d chats, want %d", got, want)
	}
	if got, want := len(sh.cold)+len(sh.m), wantHeld(n); got != want {
		t.Errorf("after the sweep %d chats held, want %d", got, want)
	}
	if sh.nextGone != math.MaxInt64 {
		t.Errorf("nextGone = %d with no expiring chat held, want none", sh.nextGone)
	}
	for i := range n {
		if _, ok := sh.entry(hashOf(strconv.Itoa(i))); ok == expiring(i) {
			t.Fatalf("chat %d held = %v, want %v", i, ok, !expiring(i))
		}
	}
}

// TestChatRule walks the apply rule through its cases on hand-made
// entries.
func TestChatRule(t *testing.T) {
	const s = int64(time.Second)
	cur := chatEntry{seenAt: 100 * s, life: 50, version: 3} // expires at 150s
	for name, tt := range map[string]struct {
		give chatEntry
		v    int64
		want bool
	}{
		"claimed at the expiry":        {chatEntry{seenAt: 150 * s, life: 50}, 1, true},
		"claimed before the expiry":    {chatEntry{seenAt: 149 * s, life: 50}, 1, false},
		"older epoch, higher version":  {chatEntry{seenAt: 50 * s, life: 50}, 9, false},
		"repair of the same epoch":     {chatEntry{seenAt: 100 * s, life: 50}, 4, true},
		"stale record of the epoch":    {chatEntry{seenAt: 100 * s, life: 50}, 3, false},
		"never expiring, lower":        {chatEntry{seenAt: 120 * s}, 2, false},
		"never expiring, after expiry": {chatEntry{seenAt: 160 * s}, 1, true},
	} {
		if got := wins(cur, tt.give, tt.v); got != tt.want {
			t.Errorf("%s: wins = %v, want %v", name, got, tt.want)
		}
	}
	never := chatEntry{seenAt: 100 * s, version: 1}
	if wins(never, chatEntry{seenAt: 1000 * s, life: 1}, 1) {
		t.Error("a claim won over a chat that never expires")
	}
	if !wins(never, chatEntry{seenAt: 100 * s}, 2) {
		t.Error("a repair lost to a chat that never expires")
	}
}

func TestLifeOf(t *testing.T) {
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for give, want := range map[time.Duration]uint32{
		time.Hour:                  3600,
		time.Hour + 1:              3601,
		0:                          1,
		-time.Hour:                 1,
		137 * 365 * 24 * time.Hour: 0,
	} {
		exp := at.Add(give)
		if got := lifeOf(chatRecord{Chat: state.Chat{FirstSeenAt: at}, ExpiresAt: &exp}); got != want {
			t.Errorf("lifeOf(expiry %v after first seen) = %d, want %d", give, got, want)
		}
	}
	if got := lifeOf(chatRecord{Chat: state.Chat{FirstSeenAt: at}}); got != 0 {
		t.Errorf("lifeOf(no expiry) = %d, want 0", got)
	}
}
