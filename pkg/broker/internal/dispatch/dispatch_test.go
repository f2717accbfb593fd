package dispatch

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	lo, hi := 100*time.Millisecond, 30*time.Second
	for n, want := range map[int]time.Duration{0: lo, 1: 2 * lo, 3: 8 * lo, 20: hi, 1000: hi} {
		for range 50 {
			if got := Backoff(n, lo, hi); got > want || got < want/2 {
				t.Fatalf("Backoff(%d) = %s, want in [%s, %s]", n, got, want/2, want)
			}
		}
	}
}
