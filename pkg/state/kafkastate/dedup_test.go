package kafkastate_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/state/kafkastate"
)

func mark(t *testing.T, d *kafkastate.Dedup, scope, id string) {
	t.Helper()
	if err := d.Mark(testCtx(t), scope, id); err != nil {
		t.Fatalf("Mark(%s, %s): %v", scope, id, err)
	}
}

func seen(t *testing.T, d *kafkastate.Dedup, scope, id string, want bool) {
	t.Helper()
	got, err := d.Seen(testCtx(t), scope, id)
	if err != nil {
		t.Fatalf("Seen(%s, %s): %v", scope, id, err)
	}
	if got != want {
		t.Errorf("Seen(%s, %s) = %v, want %v", scope, id, got, want)
	}
}

// dedupStore opens a store on cfg's topics with clk as its clock.
func dedupStore(t *testing.T, cfg kafkastate.Config, clk *clock, maxIDs int) *kafkastate.Dedup {
	t.Helper()
	cfg.Now = clk.Now
	cfg.DedupMaxIDs = maxIDs
	return open(t, cfg).Dedup()
}

func TestDedupScopes(t *testing.T) {
	d := open(t, freshConfig(newCluster(t))).Dedup()
	seen(t, d, "chat-created", "ce1", false)
	mark(t, d, "chat-created", "ce1")
	seen(t, d, "chat-created", "ce1", true)
	seen(t, d, "call", "ce1", false)
	seen(t, d, "chat-created", "ce2", false)
	mark(t, d, "chat-created", "ce1") // marking again is harmless
	seen(t, d, "chat-created", "ce1", true)
	// Scopes and ids are any strings.
	mark(t, d, "a.b", "c")
	seen(t, d, "a", "b.c", false)
	seen(t, d, "a.b", "c", true)
}

func TestDedupWindow(t *testing.T) {
	clk := newClock(time.Now())
	cfg := freshConfig(newCluster(t))
	cfg.DedupWindow = time.Hour
	d := dedupStore(t, cfg, clk, 0)
	mark(t, d, "s", "old")
	clk.Add(30 * time.Minute)
	mark(t, d, "s", "new")
	seen(t, d, "s", "old", true)
	clk.Add(31 * time.Minute) // old is 61 minutes old, new 31
	seen(t, d, "s", "old", false)
	seen(t, d, "s", "new", true)
	mark(t, d, "s", "old") // marked again: a new hour
	clk.Add(59 * time.Minute)
	seen(t, d, "s", "old", true)
	seen(t, d, "s", "new", false)
}

func TestDedupBounded(t *testing.T) {
	clk := newClock(time.Now())
	cfg := freshConfig(newCluster(t))
	d := dedupStore(t, cfg, clk, 3)
	for i := range 5 {
		mark(t, d, "s", fmt.Sprint(i))
		clk.Add(time.Second)
	}
	mark(t, d, "other", "0") // bounds are per scope
	for i := range 5 {
		seen(t, d, "s", fmt.Sprint(i), i >= 2) // the oldest two are forgotten
	}
	seen(t, d, "other", "0", true)
}

func TestDedupRestart(t *testing.T) {
	c := newCluster(t)
	cfg := freshConfig(c)
	cfg.DedupWindow = time.Hour
	start := time.Now()
	clk := newClock(start)
	s1 := open(t, withClock(cfg, clk))
	for i := range 4 {
		mark(t, s1.Dedup(), "s", fmt.Sprint(i))
		clk.Add(10 * time.Minute)
	}
	closeStore(t, s1)

	// Restored: every id, then only the last two (the bound), then only
	// those still in the window.
	d := open(t, withClock(cfg, newClock(start.Add(35*time.Minute)))).Dedup()
	for i := range 4 {
		seen(t, d, "s", fmt.Sprint(i), true)
	}
	d = dedupStore(t, cfg, newClock(start.Add(35*time.Minute)), 2)
	for i := range 4 {
		seen(t, d, "s", fmt.Sprint(i), i >= 2)
	}
	d = open(t, withClock(cfg, newClock(start.Add(85*time.Minute)))).Dedup() // ids 0 to 2 are over an hour old
	for i := range 4 {
		seen(t, d, "s", fmt.Sprint(i), i == 3)
	}
}

func withClock(cfg kafkastate.Config, clk *clock) kafkastate.Config {
	cfg.Now = clk.Now
	return cfg
}

// Retention drops old marks from the dedup topic (the window is its
// retention.ms); stores restore from what is left, and a running store
// goes on.
func TestDedupAfterRetention(t *testing.T) {
	c := newCluster(t)
	cfg := freshConfig(c)
	cfg.Partitions = 1 // the old and new marks share the partition whose start moves
	cfg.DedupWindow = time.Hour
	old := newClock(time.Now().Add(-3 * time.Hour))
	running := open(t, cfg).Dedup()
	dOld := dedupStore(t, cfg, old, 0)
	for i := range 3 {
		mark(t, dOld, "s", fmt.Sprintf("old%d", i))
	}
	mark(t, running, "s", "new")
	c.ApplyRetention()
	if recs := topicRecords(t, c, cfg.DedupTopic); len(recs) != 1 {
		t.Fatalf("after retention the dedup topic holds %d keys, want the new one only: %v", len(recs), recs)
	}
	d := open(t, cfg).Dedup()
	seen(t, d, "s", "new", true)
	seen(t, d, "s", "old0", false)
	mark(t, d, "s", "newer")
	seen(t, running, "s", "newer", true)
}

func TestDedupCatchUpCache(t *testing.T) {
	c := newCluster(t)
	cfg := freshConfig(c)
	cfg.CatchUpCache = time.Hour // far too long for production; shows what it trades
	d1, d2 := open(t, cfg).Dedup(), open(t, cfg).Dedup()
	seen(t, d2, "s", "x", false) // d2 caught up with the partition now
	mark(t, d1, "s", "x")
	// Within the cache interval d2 may answer from its tailer's view
	// without asking; it sees x once the tailer has read it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := d2.Seen(testCtx(t), "s", "x")
		if err != nil {
			t.Fatalf("Seen: %v", err)
		}
		if got {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Seen(s, x) still false after 10s: the tailer did not apply the mark")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
