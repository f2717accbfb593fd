package derivetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/derive"
)

// TimeRegistry is an in-memory derive.TimeRegistry, safe for concurrent use;
// the zero value is empty and ready. It never forgets.
type TimeRegistry struct {
	mu    sync.Mutex
	first map[string]time.Time
}

var _ derive.TimeRegistry = (*TimeRegistry)(nil)

// FirstTime implements derive.TimeRegistry.
func (r *TimeRegistry) FirstTime(ctx context.Context, id string, t time.Time) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if first, ok := r.first[id]; ok {
		return first, nil
	}
	if r.first == nil {
		r.first = map[string]time.Time{}
	}
	r.first[id] = t
	return t, nil
}

// TestTimeRegistry checks that registries made by newRegistry behave as
// derive.TimeRegistry documents: each subtest gets a new, empty registry.
func TestTimeRegistry(t *testing.T, newRegistry func(t *testing.T) derive.TimeRegistry) {
	t.Helper()
	t0 := time.Date(2026, 11, 2, 10, 0, 0, 123456789, time.UTC)
	check := func(t *testing.T, r derive.TimeRegistry, id string, at, want time.Time) {
		t.Helper()
		got, err := r.FirstTime(t.Context(), id, at)
		if err != nil {
			t.Fatalf("FirstTime(%s, %v) error: %v", id, at, err)
		}
		if !got.Equal(want) {
			t.Errorf("FirstTime(%s, %v) = %v, want %v", id, at, got, want)
		}
	}

	t.Run("the first time recorded stays", func(t *testing.T) {
		r := newRegistry(t)
		check(t, r, "raw1", t0, t0)
		check(t, r, "raw1", t0.Add(time.Hour), t0)
		check(t, r, "raw1", t0.Add(-time.Hour), t0) // the first, not the earliest
		check(t, r, "raw2", t0.Add(time.Minute), t0.Add(time.Minute))
	})

	t.Run("concurrent callers agree", func(t *testing.T) {
		r := newRegistry(t)
		const n = 8
		got := make([]time.Time, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { got[i], errs[i] = r.FirstTime(t.Context(), "raw1", t0.Add(time.Duration(i)*time.Second)) })
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("FirstTime %d error: %v", i, errs[i])
			}
			if !got[i].Equal(got[0]) {
				t.Errorf("callers got %v and %v", got[0], got[i])
			}
		}
		check(t, r, "raw1", t0.Add(time.Hour), got[0])
	})

	t.Run("cancelled context", func(t *testing.T) {
		r := newRegistry(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := r.FirstTime(ctx, "raw1", t0); err == nil {
			t.Errorf("FirstTime with a cancelled context: no error")
		}
	})
}
