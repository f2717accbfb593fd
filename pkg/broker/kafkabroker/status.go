package kafkabroker

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/broker"
)

// GroupStatus is what a running Subscribe reports of its consumer group:
// whether it is a member of the group's current generation, how joining
// fares, and whether the group as a whole makes progress. Groups returns
// one per running Subscribe.
type GroupStatus struct {
	// Group is the consumer group (GroupID), Topic the topic it consumes.
	Group, Topic string
	// Joined reports whether the subscription is a member of a generation
	// now. It is false while it joins: at start, during every rebalance,
	// and while the coordinator cannot be reached.
	Joined bool
	// Generation, MemberID and Partitions describe the current generation
	// while Joined, the last one otherwise: its id, this member's id, and
	// the partitions the group gave this member (possibly none).
	Generation int32
	MemberID   string
	Partitions []int
	// Since is when Joined last changed (when Subscribe started, at
	// first): how long the subscription has been a member, or has been
	// trying to become one.
	Since time.Time
	// LastJoined is when the current or last generation began; zero until
	// the first one.
	LastJoined time.Time
	// JoinFailures counts the attempts to join that failed in a row (a
	// rebalance beginning meanwhile is no failure); 0 once a generation
	// begins.
	JoinFailures int
	// LastError is the last attempt's error and LastErrorAt when it
	// failed; kept after the subscription joins again.
	LastError   error
	LastErrorAt time.Time
	// Stalled lists the topic's partitions on which records wait while the
	// group's commit has not moved for SubscribeConfig.StallTimeout, on
	// this member or another; StalledSince is when the oldest of them last
	// moved (as far as this member saw). Empty while the group makes
	// progress.
	Stalled      []int
	StalledSince time.Time
	// Rejoins counts the times the subscription left the group and joined
	// it again as a new member because partitions were stalled.
	Rejoins int
}

// Groups returns the status of every running Subscribe, ordered by group
// and topic. It is cheap: it reports what the subscriptions last saw and
// asks the cluster nothing.
func (b *Broker) Groups() []GroupStatus {
	b.groupsMu.Lock()
	subs := make([]*subscription, 0, len(b.groups))
	for sub := range b.groups {
		subs = append(subs, sub)
	}
	b.groupsMu.Unlock()
	out := make([]GroupStatus, 0, len(subs))
	for _, sub := range subs {
		out = append(out, sub.status.snapshot())
	}
	slices.SortFunc(out, func(a, b GroupStatus) int {
		return cmp.Or(cmp.Compare(a.Group, b.Group), cmp.Compare(a.Topic, b.Topic))
	})
	return out
}

// GroupsErr reports the running Subscribes that do not consume, for
// readiness: those with stalled partitions, and those that have not been a
// member of their group for SubscribeConfig.StallTimeout (at start, or
// since their last generation ended). The error wraps
// broker.ErrUnavailable; nil when every subscription consumes.
func (b *Broker) GroupsErr() error {
	limit := b.cfg.Subscribe.StallTimeout
	if limit < 0 {
		limit = b.cfg.Subscribe.SessionTimeout + b.cfg.Subscribe.RebalanceTimeout
	}
	now := time.Now()
	var errs []error
	for _, st := range b.Groups() {
		switch {
		case len(st.Stalled) > 0:
			errs = append(errs, fmt.Errorf("group %s: partitions %v of %s stalled since %s",
				st.Group, st.Stalled, st.Topic, st.StalledSince.Format(time.RFC3339)))
		case !st.Joined && now.Sub(st.Since) >= limit:
			errs = append(errs, fmt.Errorf("group %s: not a member for %s (%d failed joins, last: %v)",
				st.Group, now.Sub(st.Since).Round(time.Second), st.JoinFailures, st.LastError))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("kafkabroker: %w: %w", broker.ErrUnavailable, errors.Join(errs...))
}

// register makes sub's status part of Groups until the returned function
// is called.
func (b *Broker) register(sub *subscription) (unregister func()) {
	b.groupsMu.Lock()
	defer b.groupsMu.Unlock()
	if b.groups == nil {
		b.groups = map[*subscription]struct{}{}
	}
	b.groups[sub] = struct{}{}
	return func() {
		b.groupsMu.Lock()
		defer b.groupsMu.Unlock()
		delete(b.groups, sub)
	}
}

// joinWarnEvery spaces the warnings of a run of failed joins: the first
// failure warns, later ones only once this long after the previous
// warning, with the count and the last error.
const joinWarnEvery = time.Minute

// groupState keeps a subscription's GroupStatus and logs its changes.
type groupState struct {
	log *zap.Logger
	mu  sync.Mutex
	st  GroupStatus
	// failingSince is when the current run of failed joins began, warned
	// when it was last reported at warn level.
	failingSince, warned time.Time
}

func newGroupState(log *zap.Logger, group, topic string, now time.Time) *groupState {
	return &groupState{log: log, st: GroupStatus{Group: group, Topic: topic, Since: now}}
}

func (g *groupState) snapshot() GroupStatus {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.st
	st.Partitions = slices.Clone(st.Partitions)
	st.Stalled = slices.Clone(st.Stalled)
	return st
}

// joinFailed records a failed attempt to join and logs it: at warn level
// for the first failure of a run and then once per joinWarnEvery, at debug
// level otherwise. A rebalance that began while joining is no failure:
// kafka-go joins again at once.
func (g *groupState) joinFailed(err error, now time.Time) {
	if errors.Is(err, kafka.RebalanceInProgress) {
		g.log.Debug("the group began another rebalance while joining, joining again", zap.Error(err))
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.st.JoinFailures++
	g.st.LastError, g.st.LastErrorAt = err, now
	n := g.st.JoinFailures
	switch {
	case n == 1:
		g.failingSince, g.warned = now, now
		g.log.Warn("joining the consumer group failed, retrying", zap.Error(err))
	case now.Sub(g.warned) >= joinWarnEvery:
		g.warned = now
		g.log.Warn("joining the consumer group still fails, retrying", zap.Int("failures", n),
			zap.Duration("for", now.Sub(g.failingSince).Round(time.Second)), zap.Error(err))
	default:
		g.log.Debug("joining the consumer group failed again", zap.Int("failures", n), zap.Error(err))
	}
}

// joined records the start of a generation.
func (g *groupState) joined(id int32, member string, partitions []int, now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if n := g.st.JoinFailures; n > 0 {
		g.log.Info("joined the consumer group again", zap.Int("failures", n),
			zap.Duration("after", now.Sub(g.failingSince).Round(time.Millisecond)))
	}
	g.st.Joined, g.st.Since, g.st.LastJoined = true, now, now
	g.st.Generation, g.st.MemberID, g.st.Partitions = id, member, partitions
	g.st.JoinFailures = 0
}

// left records the end of a generation.
func (g *groupState) left(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.st.Joined {
		g.st.Joined, g.st.Since = false, now
	}
}

// setStalled records the stalled partitions and since when.
func (g *groupState) setStalled(partitions []int, since time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.st.Stalled, g.st.StalledSince = partitions, since
}

func (g *groupState) rejoined() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.st.Rejoins++
}
