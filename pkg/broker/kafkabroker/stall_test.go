package kafkabroker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/kafkabroker"
)

// stallGroups notices a stalled partition within seconds. Sessions outlast
// the rebalances: kfake drops a member waiting in JoinGroup once its
// session times out, which real Kafka never does.
var stallGroups = kafkabroker.SubscribeConfig{
	SessionTimeout:    10 * time.Second,
	HeartbeatInterval: 300 * time.Millisecond,
	RebalanceTimeout:  4 * time.Second,
	JoinGroupBackoff:  300 * time.Millisecond,
	RetryMax:          500 * time.Millisecond,
	StallTimeout:      2 * time.Second,
}

// waitGroup waits up to d for kfake's view of group to satisfy cond.
func waitGroup(t *testing.T, c *kfake.Cluster, group string, d time.Duration, what string, cond func(*kfake.GroupInfo) bool) *kfake.GroupInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	g, err := c.WaitGroupInfo(ctx, group, func(g *kfake.GroupInfo) bool { return g != nil && cond(g) })
	if err != nil {
		t.Fatalf("group %s: timed out after %s waiting for %s; last seen %+v", group, d, what, g)
	}
	return g
}

// caughtUp reports whether group has committed every partition of the
// ingress topic up to its end.
func caughtUp(c *kfake.Cluster, group string) bool {
	g := c.GroupInfo(group)
	if g == nil {
		return false
	}
	for _, p := range c.PartitionInfos(kafkabroker.IngressTopic) {
		if p.HighWatermark > 0 && g.Commits[kafkabroker.IngressTopic][p.Partition].Offset != p.HighWatermark {
			return false
		}
	}
	return true
}

// groupOf returns the status Groups reports for group on b, the zero
// status while b runs no Subscribe for it.
func groupOf(b *kafkabroker.Broker, group string) kafkabroker.GroupStatus {
	for _, st := range b.Groups() {
		if st.Group == group {
			return st
		}
	}
	return kafkabroker.GroupStatus{}
}

// TestStalledGroupRecovers: a member killed while its JoinGroup waits in a
// rebalance stays in kfake's group for good, with the partitions the
// leader gave it, while every live member looks healthy. The live member
// reports those partitions stalled, leaves and rejoins as a new member,
// and the rebalance that follows drops the dead member: every record is
// handled.
func TestStalledGroupRecovers(t *testing.T) {
	c := startCluster(t)
	b := connect(t, c, kafkabroker.Config{Subscribe: stallGroups})
	const group = "stall"
	keys := make([]string, 24)
	for i := range keys {
		keys[i] = fmt.Sprintf("whapi/CH/stall%02d", i)
	}
	s := broker.Subscription{Topic: kafkabroker.IngressTopic, Group: group, Concurrency: 4}
	log := newCallLog()

	// The live member leads the group from its first generation on.
	publishRounds(t, b, keys, 0, 1)
	for _, p := range c.PartitionInfos(kafkabroker.IngressTopic) {
		if p.HighWatermark == 0 {
			t.Fatalf("partition %d got no record: the keys do not cover every partition", p.Partition)
		}
	}
	subscribe(t, b, s, log.handler(0, nil))
	waitFor(t, 30*time.Second, "round 0 handled and committed", func() bool { return log.seen(keys, 1) && caughtUp(c, group) })

	// A second member joins, then dies without leaving. Its session
	// outlasts the rebalances below: the coordinator waits for it to
	// rejoin until the rebalance timeout.
	deadCut := &cutter{}
	deadCfg := stallGroups
	deadCfg.SessionTimeout = time.Minute
	subscribe(t, connect(t, c, kafkabroker.Config{Subscribe: deadCfg, Dial: deadCut.dial}), s, log.handler(1, nil))
	waitGroup(t, c, group, 30*time.Second, "two members sharing the partitions", func(g *kfake.GroupInfo) bool {
		return g.State == "Stable" && len(g.Members) == 2 && g.Members[0].NumAssigned() > 0 && g.Members[1].NumAssigned() > 0
	})
	deadCut.kill()

	// A third member joins and dies while its JoinGroup waits for the dead
	// one: kfake keeps it in the group.
	before := c.GroupInfo(group)
	ghostCut := &cutter{}
	subscribe(t, connect(t, c, kafkabroker.Config{Subscribe: stallGroups, Dial: ghostCut.dial}), s, log.handler(2, nil))
	joining := waitGroup(t, c, group, 30*time.Second, "a third member joining", func(g *kfake.GroupInfo) bool {
		return g.State == "PreparingRebalance" && len(g.Members) == 3
	})
	ghostCut.kill()
	var ghost string
	for _, m := range joining.Members {
		if !slices.ContainsFunc(before.Members, func(o kfake.GroupMember) bool { return o.MemberID == m.MemberID }) {
			ghost = m.MemberID
		}
	}
	stable := waitGroup(t, c, group, 30*time.Second, "the group stable with the killed joiner", func(g *kfake.GroupInfo) bool {
		return g.State == "Stable" && len(g.Members) == 2 &&
			slices.ContainsFunc(g.Members, func(m kfake.GroupMember) bool { return m.MemberID == ghost })
	})
	var stalled []int
	for _, m := range stable.Members {
		if m.MemberID == ghost {
			for _, p := range m.Assignment[kafkabroker.IngressTopic] {
				stalled = append(stalled, int(p))
			}
		}
	}
	slices.Sort(stalled)
	if len(stalled) == 0 {
		t.Fatalf("the killed joiner holds no partition: %+v", stable)
	}
	t.Logf("kfake keeps killed member %s in the stable group with partitions %v", ghost, stalled)

	// Records now wait on the dead member's partitions.
	publishRounds(t, b, keys, 1, 3)
	var sawStall bool
	waitFor(t, 60*time.Second, "every record handled", func() bool {
		if st := groupOf(b, group); slices.Equal(st.Stalled, stalled) && !st.StalledSince.IsZero() {
			if err := b.GroupsErr(); !errors.Is(err, broker.ErrUnavailable) {
				t.Errorf("GroupsErr() = %v while partitions %v stall, want ErrUnavailable", err, stalled)
			}
			sawStall = true
		}
		return log.seen(keys, 3)
	})
	if !sawStall {
		t.Errorf("the status never reported partitions %v stalled", stalled)
	}
	waitFor(t, 30*time.Second, "the stall cleared", func() bool { return len(groupOf(b, group).Stalled) == 0 })
	if err := b.GroupsErr(); err != nil {
		t.Errorf("GroupsErr() after recovery = %v", err)
	}
	st := groupOf(b, group)
	if st.Rejoins < 1 || !st.Joined || len(st.Partitions) != testPartitions {
		t.Errorf("status after recovery = %+v, want joined with every partition after a rejoin", st)
	}
	if g := c.GroupInfo(group); slices.ContainsFunc(g.Members, func(m kfake.GroupMember) bool { return m.MemberID == ghost }) {
		t.Errorf("killed member %s still in the group: %+v", ghost, g)
	}
}

// TestStalledHandlerRedelivered: a handler that hangs holds its
// partition's commit; the member reports the partition stalled, rejoins,
// and the hanging handler's ctx is cancelled as at a rebalance, so the
// record is delivered again and the partition moves on.
func TestStalledHandlerRedelivered(t *testing.T) {
	c := startCluster(t)
	b := connect(t, c, kafkabroker.Config{Subscribe: stallGroups})
	const group, key = "hang", "whapi/CH/hang"
	publishRounds(t, b, []string{key}, 0, 3)
	log := newCallLog()
	hung := make(chan struct{})
	subscribe(t, b, broker.Subscription{Topic: kafkabroker.IngressTopic, Group: group},
		log.handler(0, func(ctx context.Context, m broker.Received) error {
			if m.Header.Get("seq") == "1" && m.Attempt == 1 {
				close(hung)
				<-ctx.Done()
				return ctx.Err()
			}
			return nil
		}))
	<-hung
	var sawStall bool
	waitFor(t, 60*time.Second, "every record handled", func() bool {
		if st := groupOf(b, group); len(st.Stalled) == 1 {
			sawStall = true
		}
		return log.seen([]string{key}, 3)
	})
	if !sawStall {
		t.Errorf("the status never reported the partition stalled")
	}
	want := []call{{0, key, 0, 1}, {0, key, 1, 1}, {0, key, 1, 2}, {0, key, 2, 1}}
	if got := log.snapshot(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
	if st := groupOf(b, group); st.Rejoins != 1 {
		t.Errorf("status = %+v, want one rejoin", st)
	}
}
