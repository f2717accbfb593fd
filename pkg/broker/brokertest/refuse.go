package brokertest

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/wahook/wahook/pkg/broker"
)

// testRefused: a message with a header name some broker refuses is refused
// with ErrRejected, not ErrUnavailable, before anything of its Publish call
// is stored, and the broker goes on publishing and delivering.
func testRefused(t *testing.T, e *env) {
	keys := e.keys(1)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	var refused []string
	for i, name := range []string{"", "a:b", "a b", "a\r\nb", "café", "a/b"} {
		ok, bad := e.msg(keys[0], 2*i), e.msg(keys[0], 2*i+1)
		bad.Header[name] = []string{"v"}
		err := e.Publisher.Publish(ctx, ok, bad)
		if !errors.Is(err, broker.ErrRejected) || errors.Is(err, broker.ErrUnavailable) {
			t.Errorf("Publish(header name %q) = %v, want ErrRejected and not ErrUnavailable", name, err)
		}
		refused = append(refused, ok.ID, bad.ID)
	}
	after := e.msg(keys[0], 100)
	e.publish(t, after)

	rec := newRecorder(e)
	run := e.subscribe(t, e.Subscriber, broker.Subscription{Topic: e.Topic, Group: e.group("refused")}, rec.handler(nil))
	rec.waitHandled(t, waitTimeout, after.ID)
	run.stopCancelled(t)
	checkOnce(t, rec.handled(), []string{after.ID})
	if t.Failed() {
		t.Logf("messages of refused calls: %v", refused)
	}
}

// testMessageLimit: the publisher implements broker.Limits; a message
// whose broker.Size is MaxMessageBytes is stored and delivered intact, one
// with more data than MaxMessageBytes is refused with ErrTooLarge (and
// ErrRejected) before it is sent, and the broker goes on.
func testMessageLimit(t *testing.T, e *env) {
	lim, ok := e.Publisher.(broker.Limits)
	if !ok {
		t.Fatalf("publisher %T does not implement broker.Limits", e.Publisher)
	}
	max := lim.MaxMessageBytes()
	if max < 1024 {
		t.Fatalf("MaxMessageBytes() = %d, want 1024 or more", max)
	}
	keys := e.keys(1)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()

	over := e.msg(keys[0], 0)
	over.Data = bytes.Repeat([]byte("o"), max+1)
	err := e.Publisher.Publish(ctx, over)
	if !errors.Is(err, broker.ErrTooLarge) || !errors.Is(err, broker.ErrRejected) || errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Publish(data of MaxMessageBytes+1) = %v, want ErrTooLarge and ErrRejected, not ErrUnavailable", err)
	}

	at := e.msg(keys[0], 1)
	at.Data = nil
	at.Data = bytes.Repeat([]byte("a"), max-broker.Size(at))
	if got := broker.Size(at); got != max {
		t.Fatalf("test setup: Size %d, want %d", got, max)
	}
	e.publish(t, at)

	rec := newRecorder(e)
	run := e.subscribe(t, e.Subscriber, broker.Subscription{Topic: e.Topic, Group: e.group("limit")}, rec.handler(nil))
	rec.waitHandled(t, waitTimeout, at.ID)
	run.stopCancelled(t)
	checkOnce(t, rec.handled(), []string{at.ID})
	for _, m := range rec.received() {
		if m.ID == at.ID && !bytes.Equal(m.Data, at.Data) {
			t.Errorf("message of Size MaxMessageBytes received with %d bytes of data, want %d", len(m.Data), len(at.Data))
		}
	}
}
