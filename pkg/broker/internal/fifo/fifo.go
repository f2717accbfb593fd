// Package fifo is the unbounded first-in first-out queue the brokers'
// consumers hand messages to their workers through. It is unbounded because
// the consumers bound what all queues hold together (their pending windows),
// so a fetcher never blocks on one busy key while other workers idle.
package fifo

import "sync"

// Queue is safe for one consumer (Pop) and any number of producers.
type Queue[T any] struct {
	mu     sync.Mutex
	items  []T
	head   int
	closed bool
	wake   chan struct{}
}

// New returns an empty queue.
func New[T any]() *Queue[T] { return &Queue[T]{wake: make(chan struct{}, 1)} }

// Push appends v.
func (q *Queue[T]) Push(v T) {
	q.mu.Lock()
	if q.head > 0 && len(q.items) == cap(q.items) {
		// Under a steady backlog the queue never empties: reclaim the
		// consumed front instead of growing the array.
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	q.items = append(q.items, v)
	q.mu.Unlock()
	q.signal()
}

// Close lets Pop report false once the queue is empty.
func (q *Queue[T]) Close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.signal()
}

func (q *Queue[T]) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Pop waits for the next item; false when the queue is closed and empty.
func (q *Queue[T]) Pop() (T, bool) {
	var zero T
	for {
		q.mu.Lock()
		if q.head < len(q.items) {
			v := q.items[q.head]
			q.items[q.head] = zero
			q.head++
			if q.head == len(q.items) {
				q.items, q.head = q.items[:0], 0
			}
			q.mu.Unlock()
			return v, true
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return zero, false
		}
		<-q.wake
	}
}
