package kafkabroker

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/segmentio/kafka-go"
)

func TestCommitPoint(t *testing.T) {
	// The group committed offset 10, whose record was delivered twice.
	p := newPartState(0, commitPoint{offset: 10, attempts: 2}, commitPoint{offset: 10, attempts: 2})
	rec := func(off int64) *record { return &record{msg: kafka.Message{Offset: off}, part: p} }
	var got []commitPoint
	look := func() { got = append(got, p.point()) }

	look() // nothing fetched: the committed point stands
	r10, r11, r13 := rec(10), rec(11), rec(13)
	r10.attempts = 2 // as fetch sets it from the metadata
	p.add(r10)
	p.add(r11)
	p.add(r13) // offsets may skip
	look()
	p.begin(r10)
	p.begin(r11)
	look()
	p.finish(r11) // out of order: the point stays on 10
	look()
	p.finish(r10)
	look() // 13, not yet delivered
	p.begin(r13)
	p.finish(r13)
	look() // everything done: after the last record fetched

	want := []commitPoint{{10, 2}, {10, 2}, {10, 3}, {10, 3}, {13, 0}, {14, 0}}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(commitPoint{})); diff != "" {
		t.Errorf("commit points mismatch (-want +got):\n%s", diff)
	}
	if n := p.size(); n != 0 {
		t.Errorf("size after finishing everything = %d, want 0", n)
	}
}

func TestWaitSpace(t *testing.T) {
	p := newPartState(0, commitPoint{}, commitPoint{})
	r0, r1 := &record{msg: kafka.Message{Offset: 0}, part: p}, &record{msg: kafka.Message{Offset: 1}, part: p}
	p.add(r0)
	p.add(r1)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if p.waitSpace(ctx, 2) {
		t.Fatalf("waitSpace(2) with 2 pending = true, want false once ctx ends")
	}
	done := make(chan bool)
	go func() { done <- p.waitSpace(context.Background(), 2) }()
	p.finish(r1) // not the front: no room yet
	select {
	case <-done:
		t.Fatalf("waitSpace returned while the front record was pending")
	case <-time.After(20 * time.Millisecond):
	}
	p.finish(r0)
	select {
	case ok := <-done:
		if !ok {
			t.Errorf("waitSpace = false, want true")
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("waitSpace did not return once the front moved")
	}
}

func TestAttemptsMetadata(t *testing.T) {
	for give, want := range map[string]int{
		"":                   0,
		"wahook:attempts=3":  3,
		"wahook:attempts=-1": 0,
		"wahook:attempts=x":  0,
		"something else":     0,
	} {
		if got := parseAttempts(give); got != want {
			t.Errorf("parseAttempts(%q) = %d, want %d", give, got, want)
		}
	}
	for _, n := range []int{1, 7} {
		if got := parseAttempts(commitPoint{offset: 5, attempts: n}.metadata()); got != n {
			t.Errorf("parseAttempts(metadata of %d attempts) = %d", n, got)
		}
	}
	if m := (commitPoint{offset: 5}).metadata(); m != "" {
		t.Errorf("metadata of an undelivered record = %q, want empty", m)
	}
}
