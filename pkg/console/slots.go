package console

import (
	"sync"
	"time"
)

// liveSlots bounds the live views open at once and knows when each ends,
// so that a refused one can be told when to try again.
type liveSlots struct {
	mu   sync.Mutex
	max  int
	next uint64
	ends map[uint64]time.Time // of the open views, by slot
}

func newLiveSlots(n int) *liveSlots {
	return &liveSlots{max: n, ends: make(map[uint64]time.Time, n)}
}

// take takes a slot for a view ending at end. When none is free it returns
// how long until the soonest open view ends, at least a second.
func (s *liveSlots) take(end time.Time) (release func(), wait time.Duration, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ends) >= s.max {
		var soonest time.Time
		for _, e := range s.ends {
			if soonest.IsZero() || e.Before(soonest) {
				soonest = e
			}
		}
		return nil, max(time.Until(soonest), time.Second), false
	}
	id := s.next
	s.next++
	s.ends[id] = end
	return func() {
		s.mu.Lock()
		delete(s.ends, id)
		s.mu.Unlock()
	}, 0, true
}
