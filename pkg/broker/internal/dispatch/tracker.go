package dispatch

import (
	"container/list"
	"sync"
	"time"

	"github.com/wahook/wahook/pkg/broker"
)

// Tracker keeps a subscription's progress (broker.Stats) across the
// dispatchers of one Subscribe call.
type Tracker struct {
	mu sync.Mutex
	// pending holds a ticket per message pushed and not settled, in the
	// order pushed: the front is the oldest.
	pending  list.List
	retrying int
	last     time.Time
	handled  uint64
	termed   uint64
	poisons  uint64
}

// ticket is a pending message's place in its Tracker.
type ticket struct {
	t     *Tracker
	e     *list.Element
	since time.Time
	retry bool
}

// NewTracker returns a Tracker, reported through p when p is not nil.
func NewTracker(p *broker.Progress) *Tracker {
	t := &Tracker{last: time.Now()}
	if p != nil {
		p.Report(t.Stats)
	}
	return t
}

// Stats returns the progress now.
func (t *Tracker) Stats() broker.Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := broker.Stats{
		Pending:      t.pending.Len(),
		Retrying:     t.retrying,
		LastProgress: t.last,
		Handled:      t.handled,
		Terminated:   t.termed,
		Poisoned:     t.poisons,
	}
	if f := t.pending.Front(); f != nil {
		s.Oldest = f.Value.(*ticket).since
	}
	return s
}

func (t *Tracker) add(now time.Time) *ticket {
	tk := &ticket{t: t, since: now}
	t.mu.Lock()
	tk.e = t.pending.PushBack(tk)
	t.mu.Unlock()
	return tk
}

// retrying marks the message as waiting for another attempt, or not.
func (tk *ticket) retrying(on bool) {
	t := tk.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if tk.retry == on {
		return
	}
	tk.retry = on
	if on {
		t.retrying++
	} else {
		t.retrying--
	}
}

// done removes a settled message; poisoned tells a Terminated one given
// up on from one its handler terminated.
func (t *Tracker) done(tk *ticket, o Outcome, poisoned bool) {
	tk.retrying(false)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending.Remove(tk.e)
	switch o {
	case Acked:
		t.handled++
	case Terminated:
		if poisoned {
			t.poisons++
		} else {
			t.termed++
		}
	default:
		return
	}
	t.last = time.Now()
}
