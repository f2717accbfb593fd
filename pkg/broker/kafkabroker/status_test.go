package kafkabroker_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/kafkabroker"
)

// TestJoinFailuresReported: while the coordinator refuses the group, the
// status shows the subscription not joined, the failures counted and the
// last error, one warning is logged, and once this lasts StallTimeout
// GroupsErr reports it; once the coordinator answers again the
// subscription joins by itself and consumes, and Groups forgets it when
// Subscribe returns.
func TestJoinFailuresReported(t *testing.T) {
	c := startCluster(t)
	core, logs := observer.New(zap.InfoLevel)
	cfg := fastGroups
	cfg.RetryMax = 200 * time.Millisecond
	cfg.StallTimeout = time.Second
	b := connect(t, c, kafkabroker.Config{Subscribe: cfg, Logger: zap.New(core)})
	const group = "refused"
	keys := []string{"whapi/CH/a", "zapi/I1/b", "waha/S/c"}
	publishRounds(t, b, keys, 0, 2)
	fault := c.Fault(kfake.Fault{Group: group, Err: kerr.CoordinatorNotAvailable, Count: -1})
	log := newCallLog()
	run := subscribe(t, b, broker.Subscription{Topic: kafkabroker.IngressTopic, Group: group}, log.handler(0, nil))

	waitFor(t, 30*time.Second, "three failed joins", func() bool { return groupOf(b, group).JoinFailures >= 3 })
	st := groupOf(b, group)
	if st.Joined || !st.LastJoined.IsZero() || st.Topic != kafkabroker.IngressTopic {
		t.Errorf("status while refused = %+v, want never joined", st)
	}
	if !errors.Is(st.LastError, kafka.GroupCoordinatorNotAvailable) || st.LastErrorAt.IsZero() {
		t.Errorf("LastError = %v at %v, want GroupCoordinatorNotAvailable", st.LastError, st.LastErrorAt)
	}
	if n := logs.FilterMessage("joining the consumer group failed, retrying").Len(); n != 1 {
		t.Errorf("%d warnings for the first minute of failures, want 1", n)
	}
	if len(log.snapshot()) > 0 {
		t.Errorf("records handled without a generation: %v", log.snapshot())
	}
	waitFor(t, 30*time.Second, "GroupsErr reporting the group", func() bool { return b.GroupsErr() != nil })
	if err := b.GroupsErr(); !errors.Is(err, broker.ErrUnavailable) || !strings.Contains(err.Error(), group) {
		t.Errorf("GroupsErr() = %v, want ErrUnavailable naming %s", err, group)
	}

	fault.Remove()
	waitFor(t, 30*time.Second, "every record handled", func() bool { return log.seen(keys, 2) })
	st = groupOf(b, group)
	if !st.Joined || st.JoinFailures != 0 || st.LastJoined.IsZero() || st.MemberID == "" ||
		len(st.Partitions) != testPartitions || st.LastError == nil {
		t.Errorf("status once joined = %+v, want joined with every partition, the last error kept", st)
	}
	waitFor(t, 30*time.Second, "GroupsErr clear", func() bool { return b.GroupsErr() == nil })
	again := logs.FilterMessage("joined the consumer group again").All()
	if len(again) != 1 || again[0].ContextMap()["failures"].(int64) < 3 {
		t.Errorf("joined again logs = %v, want one with the failures", again)
	}

	if err := run.stop(t); !errors.Is(err, context.Canceled) {
		t.Errorf("Subscribe after cancel = %v", err)
	}
	if gs := b.Groups(); len(gs) != 0 {
		t.Errorf("Groups() after Subscribe returned = %+v, want none", gs)
	}
}

// TestStopLeavesGroup: Subscribe leaves the group before it returns, so
// the others get its partitions at once rather than after its session
// timeout.
func TestStopLeavesGroup(t *testing.T) {
	c := startCluster(t)
	cfg := fastGroups
	cfg.SessionTimeout = time.Minute
	b := connect(t, c, kafkabroker.Config{Subscribe: cfg})
	const group = "leaving"
	s := broker.Subscription{Topic: kafkabroker.IngressTopic, Group: group}
	first := subscribe(t, b, s, newCallLog().handler(0, nil))
	second := subscribe(t, b, s, newCallLog().handler(1, nil))
	waitGroup(t, c, group, 30*time.Second, "two members", func(g *kfake.GroupInfo) bool {
		return g.State == "Stable" && len(g.Members) == 2
	})
	waitFor(t, 10*time.Second, "both subscriptions joined", func() bool {
		gs := b.Groups()
		return len(gs) == 2 && gs[0].Joined && gs[1].Joined
	})
	if err := first.stop(t); !errors.Is(err, context.Canceled) {
		t.Errorf("Subscribe after cancel = %v", err)
	}
	if g := c.GroupInfo(group); len(g.Members) != 1 {
		t.Errorf("members once one subscription returned: %+v, want 1", g.Members)
	}
	if err := second.stop(t); !errors.Is(err, context.Canceled) {
		t.Errorf("Subscribe after cancel = %v", err)
	}
	if g := c.GroupInfo(group); len(g.Members) != 0 || g.State != "Empty" {
		t.Errorf("group once both returned: %+v, want empty", g)
	}
}
