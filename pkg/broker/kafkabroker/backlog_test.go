package kafkabroker_test

import (
	"context"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/kafkabroker"
)

// TestBacklog: a group that has consumed nothing is behind by every record
// of the topic; once it has handled and committed them all, by none. The
// same answer comes from another broker that is not consuming.
func TestBacklog(t *testing.T) {
	c := startCluster(t)
	b := connect(t, c, kafkabroker.Config{Subscribe: fastGroups})
	other := connect(t, c, kafkabroker.Config{})
	keys := []string{"whapi/CH/a", "zapi/I1/b", "waha/S/c"}
	publishRounds(t, b, keys, 0, 2)
	s := broker.Subscription{Topic: kafkabroker.IngressTopic, Group: "lagging"}
	backlog := func(b *kafkabroker.Broker) broker.Backlog {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		got, err := b.Backlog(ctx, s)
		if err != nil {
			t.Fatalf("Backlog: %v", err)
		}
		return got
	}
	if got := backlog(other); got != (broker.Backlog{Group: "lagging", Pending: 6, Unacked: -1}) {
		t.Errorf("Backlog before consuming = %+v, want the 6 records pending", got)
	}
	log := newCallLog()
	subscribe(t, b, s, log.handler(0, nil))
	waitFor(t, 30*time.Second, "every record handled", func() bool { return log.seen(keys, 2) })
	waitFor(t, 30*time.Second, "no backlog", func() bool { return backlog(other).Pending == 0 })
	if b.DialErrors() != 0 {
		t.Errorf("DialErrors() = %d, want 0", b.DialErrors())
	}
}
