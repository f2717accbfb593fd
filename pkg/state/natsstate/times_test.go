package natsstate_test

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/state/natsstate"
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
	_, s := newStore(t)
	r := s.Times()
	local := t0.Add(time.Hour).In(time.FixedZone("X", 3600))
	firstTime(t, r, "raw1", t0, t0)
	firstTime(t, r, "raw1", t0.Add(time.Hour), t0)
	firstTime(t, r, "raw1", t0.Add(-time.Hour), t0) // first, not earliest
	firstTime(t, r, "raw2", local, local)
	firstTime(t, r, "raw2", t0, local)
	firstTime(t, r, "raw.with*odd>bytes", t0, t0)
	if _, err := r.FirstTime(testCtx(t), "", t0); err == nil {
		t.Error("FirstTime of an empty id: no error")
	}
}

// TestTimesRace records different times for the same ids from two
// processes at once: every caller of an id gets the same time, one of
// those offered.
func TestTimesRace(t *testing.T) {
	s1, s2, _ := twoStores(t)
	stores := []derive.TimeRegistry{s1.Times(), s2.Times()}
	const ids, perStore = 10, 8
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
					got[id][first.UTC()] = true
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	for id, times := range got {
		if len(times) != 1 {
			t.Errorf("%s: callers got %d different times: %v", id, len(times), times)
		}
	}
}

func TestTimesBucket(t *testing.T) {
	b, _ := newStore(t)
	cfg := freshConfig()
	cfg.TimesTTL = 36 * time.Hour
	open(t, b.JetStream(), cfg)
	kv, err := b.JetStream().KeyValue(testCtx(t), cfg.TimesBucket)
	if err != nil {
		t.Fatalf("KeyValue: %v", err)
	}
	st, err := kv.Status(testCtx(t))
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if st.TTL() != 36*time.Hour || st.History() != 1 {
		t.Errorf("times bucket: TTL %v, history %d; want 36h, 1", st.TTL(), st.History())
	}
	def, err := b.JetStream().KeyValue(testCtx(t), natsstate.DefaultTimesBucket)
	if err != nil {
		t.Fatalf("KeyValue(%s): %v", natsstate.DefaultTimesBucket, err)
	}
	if st, err := def.Status(testCtx(t)); err != nil || st.TTL() != natsstate.DefaultTimesTTL {
		t.Errorf("default times bucket: %v, %v; want TTL %v", st, err, natsstate.DefaultTimesTTL)
	}
}

// TestTimesEntry reads what FirstTime wrote with the bucket's own client: the
// first time as text, as a KV create writes it.
func TestTimesEntry(t *testing.T) {
	b, s := newStore(t)
	firstTime(t, s.Times(), "raw1", t0, t0)
	kv, err := b.JetStream().KeyValue(testCtx(t), natsstate.DefaultTimesBucket)
	if err != nil {
		t.Fatalf("KeyValue: %v", err)
	}
	e, err := kv.Get(testCtx(t), "raw1")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if want, _ := t0.MarshalText(); !bytes.Equal(e.Value(), want) || e.Revision() != 1 {
		t.Errorf("entry %q at revision %d, want %q at 1", e.Value(), e.Revision(), want)
	}
}

// TestTimesAfterDelete records a time anew for an id whose entry an
// operator deleted: the create over a delete marker.
func TestTimesAfterDelete(t *testing.T) {
	b, s := newStore(t)
	r := s.Times()
	firstTime(t, r, "raw1", t0, t0)
	kv, err := b.JetStream().KeyValue(testCtx(t), natsstate.DefaultTimesBucket)
	if err != nil {
		t.Fatalf("KeyValue: %v", err)
	}
	if err := kv.Delete(testCtx(t), "raw1"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	later := t0.Add(time.Hour)
	firstTime(t, r, "raw1", later, later)
	firstTime(t, r, "raw1", t0, later)
}

// TestTimesBucketGone: without the bucket's stream nothing answers the
// create, which is worth retrying (the stream may be restarting).
func TestTimesBucketGone(t *testing.T) {
	b, s := newStore(t)
	if err := b.JetStream().DeleteStream(testCtx(t), "KV_"+natsstate.DefaultTimesBucket); err != nil {
		t.Fatalf("DeleteStream: %v", err)
	}
	_, err := s.Times().FirstTime(testCtx(t), "raw1", t0)
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("FirstTime without the bucket: %v, want broker.ErrUnavailable", err)
	}
}
