package fifo

import (
	"sync"
	"testing"
)

func TestQueueKeepsOrderAndDrainsBeforeClosing(t *testing.T) {
	q := New[int]()
	const n = 10000
	var got []int
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			v, ok := q.Pop()
			if !ok {
				return
			}
			got = append(got, v)
		}
	}()
	for i := 0; i < n; i++ {
		q.Push(i)
	}
	q.Close()
	<-done
	if len(got) != n {
		t.Fatalf("popped %d items; want %d", len(got), n)
	}
	for i, v := range got {
		if v != i {
			t.Fatalf("item %d = %d; want FIFO order", i, v)
		}
	}
}

func TestQueueManyProducers(t *testing.T) {
	q := New[int]()
	var wg sync.WaitGroup
	for p := 0; p < 8; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				q.Push(i)
			}
		}()
	}
	go func() { wg.Wait(); q.Close() }()
	count := 0
	for {
		if _, ok := q.Pop(); !ok {
			break
		}
		count++
	}
	if count != 8000 {
		t.Errorf("popped %d; want 8000", count)
	}
}

func TestQueueCompacts(t *testing.T) {
	q := New[int]()
	// A steady backlog: one push per pop, never empty.
	q.Push(1)
	for i := 2; i < 10000; i++ {
		q.Push(i)
		v, ok := q.Pop()
		if !ok || v != i-1 {
			t.Fatalf("pop #%d = %v, %v; want %d", i-1, v, ok, i-1)
		}
	}
	if c := cap(q.items); c > 64 {
		t.Errorf("queue array holds %d slots for a backlog of 1, want it reused", c)
	}
	q.Close()
	if v, ok := q.Pop(); !ok || v != 9999 {
		t.Errorf("pop after close = %v, %v; want the last item", v, ok)
	}
	if _, ok := q.Pop(); ok {
		t.Errorf("pop on a closed empty queue = true, want false")
	}
}
