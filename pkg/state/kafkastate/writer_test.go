package kafkastate

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestWritesShareARequest: records written to a partition while a produce
// request is on its way go together in the next one, each with its own
// offset, and all reach the topic: a second store restores every mark.
func TestWritesShareARequest(t *testing.T) {
	ctx, c := onKfake(t)
	cfg := Config{Brokers: c.ListenAddrs(), Partitions: 1}
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close(ctx)

	// The first produce request is held until every other write waits in
	// the queue, so the writer must send them all in the second one.
	const writes = 200
	var produced atomic.Int32
	release := make(chan struct{})
	// Only the dedup topic's requests count: the store may write to its
	// other topics in the background once open.
	c.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		for _, tp := range req.(*kmsg.ProduceRequest).Topics {
			if tp.Topic == s.cfg.DedupTopic {
				if produced.Add(1) == 1 {
					<-release
				}
				break
			}
		}
		return nil, nil, false
	})
	p := s.dedup.t.parts[0]
	var wg sync.WaitGroup
	errs := make(chan error, writes)
	// The first write alone, until its request is held: writes started
	// with it could all be gathered into the first request.
	wg.Go(func() { errs <- s.Dedup().Mark(ctx, "s", "0") })
	for produced.Load() == 0 {
		if ctx.Err() != nil {
			t.Fatal("the first write's request never came")
		}
		time.Sleep(time.Millisecond)
	}
	for i := 1; i < writes; i++ {
		wg.Go(func() { errs <- s.Dedup().Mark(ctx, "s", fmt.Sprint(i)) })
	}
	for len(p.writes) < writes-1 {
		if ctx.Err() != nil {
			t.Fatalf("%d writes queued behind the first; want %d", len(p.writes), writes-1)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Mark: %v", err)
		}
	}
	if n := produced.Load(); n != 2 {
		t.Errorf("%d produce requests for %d records; want 2", n, writes)
	}

	again, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open again: %v", err)
	}
	defer again.Close(ctx)
	if n := again.dedup.size("s"); n != writes {
		t.Errorf("a second store restored %d marks; want %d", n, writes)
	}
}

// TestWriteGivesUpWithItsContext: a write whose caller gives up returns at
// once, and a closed store refuses writes.
func TestWriteGivesUpWithItsContext(t *testing.T) {
	ctx, c := onKfake(t)
	s, err := Open(ctx, Config{Brokers: c.ListenAddrs(), Partitions: 1})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	release := make(chan struct{})
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		<-release
		return nil, nil, false
	})
	defer close(release)
	short, cancelShort := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancelShort()
	if err := s.Dedup().Mark(short, "s", "held"); err == nil || short.Err() == nil {
		t.Errorf("Mark while the broker holds the request = %v; want the caller's deadline", err)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close(ctx) }()
	// Close cancels the request held by the broker; the store's
	// goroutines end.
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return")
	}
	if err := s.Dedup().Mark(ctx, "s", "late"); err == nil {
		t.Error("Mark after Close = nil error")
	}
}
