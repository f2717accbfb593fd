package kafkabroker

import "sync"

// queue is a worker's FIFO. It is unbounded: SubscribeConfig.MaxPending
// bounds what a partition has in all the queues together, so the fetcher
// never blocks on one busy key while other workers idle.
type queue struct {
	mu     sync.Mutex
	items  []*record
	head   int
	closed bool
	wake   chan struct{}
}

func newQueue() *queue { return &queue{wake: make(chan struct{}, 1)} }

func (q *queue) push(r *record) {
	q.mu.Lock()
	if q.head > 0 && len(q.items) == cap(q.items) {
		// Under a steady backlog the queue never empties: reclaim the
		// consumed front instead of growing the array.
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, r)
	q.mu.Unlock()
	q.signal()
}

// close lets pop return false once the queue is empty.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pop waits for the next record; false when the queue is closed and empty.
func (q *queue) pop() (*record, bool) {
	for {
		q.mu.Lock()
		if q.head < len(q.items) {
			r := q.items[q.head]
			q.items[q.head] = nil
			q.head++
			if q.head == len(q.items) {
				q.items, q.head = q.items[:0], 0
			}
			q.mu.Unlock()
			return r, true
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return nil, false
		}
		<-q.wake
	}
}
