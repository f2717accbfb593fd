package subscribe

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestMemoryDedup(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	d := NewMemoryDedup(3, time.Hour)
	d.now = func() time.Time { return now }
	seen := func(id string) bool {
		t.Helper()
		ok, err := d.Seen(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	for i := range 3 {
		_ = d.Mark(ctx, fmt.Sprint(i))
		now = now.Add(time.Minute)
	}
	if !seen("0") || !seen("2") || seen("3") {
		t.Errorf("after 0, 1, 2: seen 0 %v, 2 %v, 3 %v", seen("0"), seen("2"), seen("3"))
	}
	// The size bound forgets the oldest mark first.
	_ = d.Mark(ctx, "3")
	if seen("0") || !seen("1") || !seen("3") || d.Len() != 3 {
		t.Errorf("after 3: seen 0 %v, 1 %v, 3 %v, len %d", seen("0"), seen("1"), seen("3"), d.Len())
	}
	// Marking again refreshes an id: 1 is now the newest.
	_ = d.Mark(ctx, "1")
	_ = d.Mark(ctx, "4")
	if seen("2") || !seen("1") {
		t.Errorf("after remarking 1 and 4: seen 2 %v, 1 %v", seen("2"), seen("1"))
	}
	// The window forgets what was marked more than an hour ago.
	now = now.Add(time.Hour - time.Second)
	if !seen("4") {
		t.Error("4 forgotten inside the window")
	}
	now = now.Add(time.Minute)
	if seen("3") || seen("4") || d.Len() != 0 {
		t.Errorf("after the window: seen 3 %v, 4 %v, len %d", seen("3"), seen("4"), d.Len())
	}
}
