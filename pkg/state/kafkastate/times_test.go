package kafkastate_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/derive"
)

var t0 = time.Date(2026, 11, 2, 10, 0, 0, 123456789, time.UTC)

func firstTime(t *testing.T, r derive.TimeRegistry, id string, at, want time.Time) {
	t.Helper()
	got, err := r.FirstTime(testCtx(t), id, at)
	if err != nil {
		t.Fatalf("FirstTime(%s, %v): %v", id, at, err)
	}
	if !got.Equal(want) {
		t.Errorf("FirstTime(%s, %v) = %v, want %v", id, at, got, want)
	}
}

func TestTimesFirstTime(t *testing.T) {
	c := newCluster(t)
	cfg := freshConfig(c)
	r := open(t, cfg).Times()
	firstTime(t, r, "raw1", t0, t0)
	firstTime(t, r, "raw1", t0.Add(time.Hour), t0)
	firstTime(t, r, "raw1", t0.Add(-time.Hour), t0) // first, not earliest
	firstTime(t, r, "raw.with*odd>bytes", t0.Add(time.Minute), t0.Add(time.Minute))
	if _, err := r.FirstTime(testCtx(t), "", t0); err == nil {
		t.Error("FirstTime of an empty id: no error")
	}
	// Another process, and one restored after compaction, agree.
	firstTime(t, open(t, cfg).Times(), "raw1", t0.Add(2*time.Hour), t0)
	c.Compact()
	firstTime(t, open(t, cfg).Times(), "raw1", t0.Add(3*time.Hour), t0)
}

// TestTimesRaceAcrossStores records different times for the same ids from
// two stores at once: every caller of an id gets the same time, so does a
// store restored after compaction.
func TestTimesRaceAcrossStores(t *testing.T) {
	c := newCluster(t)
	cfg := freshConfig(c)
	stores := []derive.TimeRegistry{open(t, cfg).Times(), open(t, cfg).Times()}
	const ids, perStore = 10, 4
	var (
		mu  sync.Mutex
		got = map[string]map[time.Time]bool{}
		wg  sync.WaitGroup
	)
	for si, r := range stores {
		for g := range perStore {
			at := t0.Add(time.Duration(si*perStore+g) * time.Second)
			wg.Go(func() {
				for i := range ids {
					id := fmt.Sprintf("raw%d", (i+g)%ids)
					first, err := r.FirstTime(testCtx(t), id, at)
					if err != nil {
						t.Errorf("FirstTime(%s): %v", id, err)
						return
					}
					mu.Lock()
					if got[id] == nil {
						got[id] = map[time.Time]bool{}
					}
					got[id][first] = true
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	c.Compact()
	restored := open(t, cfg).Times()
	for id, times := range got {
		if len(times) != 1 {
			t.Fatalf("%s: callers got %d different times: %v", id, len(times), times)
		}
		for first := range times {
			firstTime(t, restored, id, t0.Add(time.Hour), first)
		}
	}
}

// TestTimesBounded forgets the oldest times beyond the bound, and those
// older than the TTL.
func TestTimesBounded(t *testing.T) {
	clk := newClock(time.Now())
	cfg := freshConfig(newCluster(t))
	cfg.Now = clk.Now
	cfg.TimesTTL = time.Hour
	cfg.TimesMaxIDs = 3
	r := open(t, cfg).Times()
	for i := range 4 {
		firstTime(t, r, fmt.Sprint("raw", i), t0, t0)
		clk.Add(time.Second)
	}
	// raw0 was forgotten for the bound: a later copy keeps its own time.
	firstTime(t, r, "raw0", t0.Add(time.Minute), t0.Add(time.Minute))
	firstTime(t, r, "raw3", t0.Add(time.Minute), t0)
	clk.Add(time.Hour)
	firstTime(t, r, "raw3", t0.Add(2*time.Minute), t0.Add(2*time.Minute))
	// A store restored now ignores what is older than the TTL.
	firstTime(t, open(t, cfg).Times(), "raw1", t0.Add(3*time.Minute), t0.Add(3*time.Minute))
}
