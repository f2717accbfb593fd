package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wahook/wahook/pkg/broker"
)

// lostMarker marks the payload of the message a test has the proxy lose.
const lostMarker = "LOST-IN-TRANSIT"

// lossySetup is a server, a proxy to it, a broker subscribing through the
// proxy and one publishing (and inspecting) directly.
type lossySetup struct {
	e     *Embedded
	proxy *lossyProxy
	sub   *Broker
	pub   *Broker
	logs  *observer.ObservedLogs
}

func newLossySetup(t *testing.T, cfg SubscribeConfig) *lossySetup {
	t.Helper()
	e := startServer(t, t.TempDir())
	p := startLossyProxy(t, strings.TrimPrefix(e.ClientURL(), "nats://"))
	core, logs := observer.New(zap.DebugLevel)
	return &lossySetup{
		e:     e,
		proxy: p,
		sub: connect(t, Config{URL: p.URL(), Auth: e.ServiceAuth(), ReconnectWait: 50 * time.Millisecond,
			Subscribe: cfg, Logger: zap.New(core)}),
		pub:  connect(t, Config{Embedded: e}),
		logs: logs,
	}
}

// keyMsgs are n raw events of one key; those at the indexes in lost carry
// lostMarker.
func keyMsgs(channel string, n int, lost ...int) []broker.Message {
	var msgs []broker.Message
	for i := range n {
		data := jsonBody(i)
		for _, l := range lost {
			if l == i {
				data = fmt.Appendf(nil, `{"id":"m%d","note":%q}`, i, lostMarker)
			}
		}
		msgs = append(msgs, ingressMsg(channel, i, data))
	}
	return msgs
}

func (s *lossySetup) publish(t *testing.T, msgs ...broker.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.pub.Publish(ctx, msgs...); err != nil {
		t.Fatalf("Publish: %v", err)
	}
}

// lose publishes m, which carries lostMarker, and waits until the server
// sent it and the proxy lost it.
func (s *lossySetup) lose(t *testing.T, m broker.Message) {
	t.Helper()
	dropped := s.proxy.loseNext(lostMarker)
	s.publish(t, m)
	select {
	case <-dropped:
	case <-time.After(20 * time.Second):
		t.Fatalf("the server did not deliver %s", m.ID)
	}
}

// reconnected waits until the subscribing broker has reconnected n times.
func (s *lossySetup) reconnected(t *testing.T, n uint64) {
	t.Helper()
	poll(t, 20*time.Second, "the reconnect", func() bool {
		return s.sub.Conn().IsConnected() && s.sub.Conn().Stats().Reconnects >= n
	})
}

func ids(msgs ...broker.Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.ID)
	}
	return out
}

// A message the server delivered and the client never received (lost in
// transit) is handled before the later messages of its key: the next
// delivery's sequence shows the gap, and the consumer is reset to its ack
// floor instead of waiting for AckWait to bring the lost message back.
func TestSubscribeResyncsAfterLostDelivery(t *testing.T) {
	s := newLossySetup(t, SubscribeConfig{AckWait: 5 * time.Second})
	msgs := keyMsgs("GAP", 3, 1)
	s.publish(t, msgs[0])
	var c collector
	subscribed(t, s.sub, broker.Subscription{Topic: "wahook.ingress", Group: "gap", Concurrency: 4}, c.handle)
	c.waitIDs(t, 20*time.Second, msgs[0].ID)

	s.lose(t, msgs[1])
	s.publish(t, msgs[2])
	c.waitIDs(t, 30*time.Second, ids(msgs...)...)
	if diff := cmp.Diff(ids(msgs...), c.ids()); diff != "" {
		t.Errorf("messages handled mismatch (-want +got):\n%s", diff)
	}
	if n := s.logs.FilterMessage("deliveries lost: resetting the consumer to its ack floor").Len(); n != 1 {
		t.Errorf("%d resyncs logged, want 1", n)
	}
}

// The same when the message is lost as the connection breaks (the broker
// restarts, the network fails): the server recorded it as delivered, and
// the pull requests sent after the reconnect get the later messages at
// once.
func TestSubscribeResyncsAfterReconnect(t *testing.T) {
	s := newLossySetup(t, SubscribeConfig{AckWait: 5 * time.Second, LeaseTTL: time.Minute})
	msgs := keyMsgs("RECONNECT", 3)
	s.publish(t, msgs[0])
	var c collector
	subscribed(t, s.sub, broker.Subscription{Topic: "wahook.ingress", Group: "reconnect", Concurrency: 4}, c.handle)
	c.waitIDs(t, 20*time.Second, msgs[0].ID)

	s.proxy.loseAll()
	s.publish(t, msgs[1])
	poll(t, 20*time.Second, "the server delivering "+msgs[1].ID, func() bool {
		return consumerInfo(t, s.pub, IngressStream, "reconnect").Delivered.Stream == 2
	})
	s.proxy.cut()
	s.reconnected(t, 1)
	s.publish(t, msgs[2])
	c.waitIDs(t, 30*time.Second, ids(msgs...)...)
	if diff := cmp.Diff(ids(msgs...), c.ids()); diff != "" {
		t.Errorf("messages handled mismatch (-want +got):\n%s", diff)
	}
}

// A message lost as the connection broke is sent again as soon as the
// connection is back, even when no later message comes to show the gap:
// with an AckWait of an hour it would otherwise wait that long.
func TestSubscribeRedeliversLostTailAfterReconnect(t *testing.T) {
	s := newLossySetup(t, SubscribeConfig{AckWait: time.Hour, LeaseTTL: time.Minute})
	msgs := keyMsgs("TAIL", 2)
	s.publish(t, msgs[0])
	var c collector
	subscribed(t, s.sub, broker.Subscription{Topic: "wahook.ingress", Group: "tail"}, c.handle)
	c.waitIDs(t, 20*time.Second, msgs[0].ID)

	s.proxy.loseAll()
	s.publish(t, msgs[1])
	poll(t, 20*time.Second, "the server delivering "+msgs[1].ID, func() bool {
		return consumerInfo(t, s.pub, IngressStream, "tail").Delivered.Stream == 2
	})
	s.proxy.cut()
	c.waitIDs(t, 30*time.Second, msgs[1].ID)
	if diff := cmp.Diff(ids(msgs...), c.ids()); diff != "" {
		t.Errorf("messages handled mismatch (-want +got):\n%s", diff)
	}
}

// A reconnect after which the server reports no delivery that did not
// arrive leaves the consumer alone: no reset, no message handled twice.
func TestSubscribeReconnectWithNothingLostKeepsTheConsumer(t *testing.T) {
	s := newLossySetup(t, SubscribeConfig{LeaseTTL: time.Minute})
	msgs := keyMsgs("INTACT", 3)
	s.publish(t, msgs[:2]...)
	var c collector
	subscribed(t, s.sub, broker.Subscription{Topic: "wahook.ingress", Group: "intact"}, c.handle)
	c.waitIDs(t, 20*time.Second, msgs[0].ID, msgs[1].ID)

	s.proxy.cut()
	s.reconnected(t, 1)
	poll(t, 20*time.Second, "the check after the reconnect", func() bool {
		return s.logs.FilterMessage("every delivery arrived before the reconnect").Len() == 1
	})
	s.publish(t, msgs[2])
	c.waitIDs(t, 20*time.Second, msgs[2].ID)
	if diff := cmp.Diff(ids(msgs...), c.ids()); diff != "" {
		t.Errorf("messages handled mismatch (-want +got):\n%s", diff)
	}
	// A reset would have numbered the deliveries from 1 again.
	if got := consumerInfo(t, s.pub, IngressStream, "intact").Delivered.Consumer; got != 3 {
		t.Errorf("consumer's last delivery sequence %d, want 3 (never reset)", got)
	}
	if n := s.logs.FilterMessage("deliveries lost: resetting the consumer to its ack floor").Len(); n != 0 {
		t.Errorf("%d resyncs logged, want none", n)
	}
}

// A message a worker holds while the consumer is reset is redelivered by
// the reset: that copy is not handled a second time, and the hold's
// settlement reaches the new delivery. A Nak of the first delivery alone
// would be ignored (its delivery sequence is past the reset's), leaving
// the message to AckWait, an hour here.
func TestSubscribeHeldMessageAcrossAReset(t *testing.T) {
	s := newLossySetup(t, SubscribeConfig{AckWait: time.Hour, LeaseTTL: time.Minute})
	// Earlier deliveries push the held message's delivery sequence above
	// those the reset hands out.
	warm := keyMsgs("WARM", 30)
	msgs := keyMsgs("HELD", 3, 1)
	s.publish(t, warm...)
	s.publish(t, msgs[0])
	started, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var first []string
	run := subscribed(t, s.sub, broker.Subscription{Topic: "wahook.ingress", Group: "held"},
		func(ctx context.Context, m broker.Received) error {
			mu.Lock()
			first = append(first, m.ID)
			mu.Unlock()
			if m.ID != msgs[0].ID {
				return nil
			}
			close(started)
			<-release
			return errors.New("handed back")
		})
	<-started
	// Acknowledgements are not waited for: the warm-up's must have reached
	// the server before the reset, or it redelivers them too, rightly.
	poll(t, 20*time.Second, "the warm-up's acks", func() bool {
		return consumerInfo(t, s.pub, IngressStream, "held").AckFloor.Stream == uint64(len(warm))
	})
	s.lose(t, msgs[1])
	s.publish(t, msgs[2])
	poll(t, 20*time.Second, "the reset", func() bool {
		return s.logs.FilterMessage("consumer reset to its ack floor").Len() == 1
	})
	// The reset redelivers msgs[0..2]; msgs[1] and [2] wait behind the
	// held one.
	poll(t, 20*time.Second, "the redeliveries", func() bool {
		return consumerInfo(t, s.pub, IngressStream, "held").Delivered.Stream == uint64(len(warm)+len(msgs))
	})
	run.cancel()
	close(release)
	if err := run.wait(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe = %v, want context.Canceled", err)
	}
	mu.Lock()
	if diff := cmp.Diff(append(ids(warm...), msgs[0].ID), first); diff != "" {
		t.Errorf("first subscription's handler calls mismatch (-want +got):\n%s", diff)
	}
	mu.Unlock()

	var c collector
	subscribed(t, s.pub, broker.Subscription{Topic: "wahook.ingress", Group: "held"}, c.handle)
	c.waitIDs(t, 30*time.Second, ids(msgs...)...)
	if diff := cmp.Diff(ids(msgs...), c.ids()); diff != "" {
		t.Errorf("next subscription's messages mismatch (-want +got):\n%s", diff)
	}
}

// An instance that stops while a message delivered to it never arrived
// does not release its lease, although it handed back everything it held:
// the next instance takes over when the lease expires and resets the
// consumer, so the lost message comes first, not after AckWait behind a
// later one of its key.
func TestSubscribeStopAfterLostDeliveryKeepsTheLease(t *testing.T) {
	s := newLossySetup(t, SubscribeConfig{AckWait: time.Hour, LeaseTTL: 2 * time.Second})
	msgs := keyMsgs("STOPLOST", 3, 1)
	s.publish(t, msgs[0])
	var c1 collector
	run := subscribed(t, s.sub, broker.Subscription{Topic: "wahook.ingress", Group: "stoplost"}, c1.handle)
	c1.waitIDs(t, 20*time.Second, msgs[0].ID)
	s.lose(t, msgs[1])
	if err := run.stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe = %v, want context.Canceled", err)
	}
	s.publish(t, msgs[2])
	var c2 collector
	subscribed(t, s.pub, broker.Subscription{Topic: "wahook.ingress", Group: "stoplost"}, c2.handle)
	c2.waitIDs(t, 30*time.Second, msgs[1].ID, msgs[2].ID)
	if diff := cmp.Diff(ids(msgs[1:]...), c2.ids()); diff != "" {
		t.Errorf("next instance's messages mismatch (-want +got):\n%s", diff)
	}
}

// Through repeated losses and reconnects under load (a message of every
// batch lost in transit, every other batch followed at once by a cut
// connection, wherever the subscription is then: pulling, resyncing,
// draining), every key's messages are first handled in stream order
// (messages after the ack floor may be handled again after a reset), and
// none is missing.
func TestSubscribeKeepsOrderThroughReconnectStorm(t *testing.T) {
	s := newLossySetup(t, SubscribeConfig{AckWait: 5 * time.Second, LeaseTTL: time.Minute})
	const keys, batches, perBatch = 4, 12, 8
	var c collector
	subscribed(t, s.sub, broker.Subscription{Topic: "wahook.ingress", Group: "storm", Concurrency: 8}, c.handle)
	warm := ingressMsg("STORM-WARM", 0, jsonBody(0))
	s.publish(t, warm)
	c.waitIDs(t, 20*time.Second, warm.ID)

	want := map[string][]string{}
	all := []string{warm.ID}
	for n := range batches {
		marker := fmt.Sprintf("%s-%d", lostMarker, n)
		var batch []broker.Message
		for i := range perBatch {
			data := jsonBody(i)
			if i == n%perBatch {
				data = fmt.Appendf(nil, `{"note":%q}`, marker)
			}
			m := ingressMsg(fmt.Sprintf("STORM%d", i%keys), n*perBatch+i, data)
			batch = append(batch, m)
			key := m.Header[KeyHeader][0]
			want[key] = append(want[key], m.ID)
			all = append(all, m.ID)
		}
		dropped := s.proxy.loseNext(marker)
		s.publish(t, batch...)
		if n%2 == 1 {
			s.proxy.cut()
		}
		select {
		case <-dropped:
		case <-time.After(20 * time.Second):
			t.Fatalf("batch %d: the marked message was never delivered", n)
		}
	}
	c.waitIDs(t, 60*time.Second, all...)
	firsts := map[string][]string{}
	seen := map[string]bool{}
	for _, m := range c.all() {
		if !seen[m.ID] {
			seen[m.ID] = true
			firsts[m.Key] = append(firsts[m.Key], m.ID)
		}
	}
	for key, ids := range want {
		if diff := cmp.Diff(ids, firsts[key]); diff != "" {
			t.Errorf("key %s: first handlings mismatch (-want +got):\n%s", key, diff)
		}
	}
	t.Logf("%d reconnects, %d resyncs, %d handlings of %d messages", s.sub.Conn().Stats().Reconnects,
		s.logs.FilterMessage("deliveries lost: resetting the consumer to its ack floor").Len(), len(c.all()), len(all))
}
