package kafkabroker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/internal/dispatch"
)

const (
	// leaveTimeout bounds leaving the group when Subscribe returns.
	leaveTimeout = 10 * time.Second
	// setupRetryMax caps the pause between attempts to look the topic up
	// while no broker answers.
	setupRetryMax = 5 * time.Second
)

// Subscribe consumes s.Topic in the consumer group s.Group (with
// "-p{i}of{n}" appended when s.Partitions > 1) until ctx is done or the
// Broker is closed, then finishes the handlers in flight, commits, leaves
// the group and returns ctx's error (broker.ErrClosed after Close). See the
// package documentation for what is delivered, in which order, and when.
//
// It fails at once for a subscription it cannot serve: empty group,
// negative concurrency, partition out of range, or a topic the cluster
// does not have (ErrUnknownTopic). While no broker answers it keeps trying.
func (b *Broker) Subscribe(ctx context.Context, s broker.Subscription, h broker.Handler) error {
	sub, err := b.newSubscription(s, h)
	if err != nil {
		return err
	}
	if !b.enterSubscribe() {
		return fmt.Errorf("kafkabroker: subscribe %s: %w", sub.group, broker.ErrClosed)
	}
	defer b.subs.Done()
	defer b.register(sub)()

	// rctx also ends when Close ends the subscriptions.
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-b.closed:
			cancel()
		case <-rctx.Done():
		}
	}()

	err = sub.run(rctx, ctx)
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case rctx.Err() != nil:
		return fmt.Errorf("kafkabroker: subscribe %s: %w", sub.group, broker.ErrClosed)
	}
	return err
}

// subscription is one Subscribe call.
type subscription struct {
	b      *Broker
	s      broker.Subscription
	group  string
	cfg    SubscribeConfig
	h      broker.Handler
	log    *zap.Logger
	status *groupState
	// tracker keeps the progress across the group's generations.
	tracker *dispatch.Tracker

	// mu guards rejoinFn, which ends the current member (see rejoin).
	mu       sync.Mutex
	rejoinFn context.CancelFunc
}

// newSubscription checks s; its errors are the caller's mistakes.
func (b *Broker) newSubscription(s broker.Subscription, h broker.Handler) (*subscription, error) {
	if s.Concurrency == 0 {
		s.Concurrency = 1
	}
	switch {
	case s.Topic == "":
		return nil, errors.New("kafkabroker: subscribe: empty topic")
	case s.Group == "":
		return nil, errors.New("kafkabroker: subscribe: empty group")
	case h == nil:
		return nil, errors.New("kafkabroker: subscribe: nil handler")
	case s.Concurrency < 0:
		return nil, fmt.Errorf("kafkabroker: subscribe: concurrency %d, want 1 or more", s.Concurrency)
	case s.Partitions < 0 || s.Partition < 0 || s.Partition >= max(s.Partitions, 1):
		return nil, fmt.Errorf("kafkabroker: subscribe: partition %d of %d", s.Partition, s.Partitions)
	}
	group := GroupID(s.Group, s.Partition, s.Partitions)
	log := b.log.With(zap.String("topic", s.Topic), zap.String("group", group))
	return &subscription{
		b:       b,
		s:       s,
		group:   group,
		cfg:     b.cfg.Subscribe,
		h:       h,
		tracker: dispatch.NewTracker(s.Progress),
		log:     log,
		status:  newGroupState(log, group, s.Topic, time.Now()),
	}, nil
}

// GroupID is the Kafka consumer group of a subscription: group itself, with
// "-p{partition}of{partitions}" appended when partitions > 1 so that each
// partition keeps its own offsets (as natsbroker's consumer names do).
func GroupID(group string, partition, partitions int) string {
	if partitions > 1 {
		return fmt.Sprintf("%s-p%dof%d", group, partition, partitions)
	}
	return group
}

// mine reports whether this instance handles key's records.
func (sub *subscription) mine(key string) bool {
	return sub.s.Partitions <= 1 || broker.PartitionOf(key, sub.s.Partitions) == sub.s.Partition
}

// run joins the group and consumes each generation it is given until ctx
// is done; parent is Subscribe's own ctx, whose values the handlers get.
func (sub *subscription) run(ctx, parent context.Context) error {
	if err := sub.checkTopic(ctx); err != nil || ctx.Err() != nil {
		return err
	}
	if len(sub.s.Filter) > 0 {
		sub.log.Info("subscription filter ignored: Kafka records carry no subject", zap.Strings("filter", sub.s.Filter))
	}
	sub.log.Info("subscription started", zap.Int("concurrency", sub.s.Concurrency),
		zap.Int("partition", sub.s.Partition), zap.Int("partitions", sub.s.Partitions))
	defer sub.log.Info("subscription stopped")
	if sub.cfg.StallTimeout > 0 {
		watching := make(chan struct{})
		wctx, stopWatching := context.WithCancel(ctx)
		go func() {
			defer close(watching)
			sub.watchStalls(wctx)
		}()
		defer func() {
			stopWatching()
			<-watching
		}()
	}
	for {
		cg, err := sub.newGroup()
		if err != nil {
			return fmt.Errorf("kafkabroker: subscribe %s: %w", sub.group, err)
		}
		if !sub.member(ctx, parent, cg) {
			return nil
		}
	}
}

// newGroup starts a member of the group: a kafka-go ConsumerGroup, which
// joins with a new member id on new connections.
func (sub *subscription) newGroup() (*kafka.ConsumerGroup, error) {
	kafkaLog := kafka.LoggerFunc(func(msg string, args ...any) {
		if ce := sub.log.Check(zap.DebugLevel, "kafka-go"); ce != nil {
			ce.Write(zap.String("msg", fmt.Sprintf(msg, args...)))
		}
	})
	return kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                    sub.group,
		Brokers:               sub.b.cfg.Brokers,
		Dialer:                sub.b.dialer,
		Topics:                []string{sub.s.Topic},
		HeartbeatInterval:     sub.cfg.HeartbeatInterval,
		SessionTimeout:        sub.cfg.SessionTimeout,
		RebalanceTimeout:      sub.cfg.RebalanceTimeout,
		JoinGroupBackoff:      sub.cfg.JoinGroupBackoff,
		WatchPartitionChanges: true,
		StartOffset:           kafka.FirstOffset,
		Timeout:               groupTimeout,
		Logger:                kafkaLog,
		ErrorLogger:           kafkaLog,
	})
}

// member consumes the generations cg joins until ctx is done, then leaves
// the group and reports false; or until the stall watchdog asks for a new
// member (rejoin), then leaves and reports true.
func (sub *subscription) member(ctx, parent context.Context, cg *kafka.ConsumerGroup) (again bool) {
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sub.setRejoin(cancel)
	defer sub.setRejoin(nil)
	for {
		gen, err := cg.Next(mctx)
		if err != nil {
			if mctx.Err() != nil {
				sub.leave(cg)
				return ctx.Err() == nil
			}
			// kafka-go pauses (JoinGroupBackoff) before it tries again.
			sub.status.joinFailed(err, time.Now())
			continue
		}
		var ids []int
		for _, a := range gen.Assignments[sub.s.Topic] {
			ids = append(ids, a.ID)
		}
		slices.Sort(ids)
		sub.status.joined(gen.ID, gen.MemberID, ids, time.Now())
		finished, release := make(chan struct{}), make(chan struct{})
		gen.Start(func(gctx context.Context) {
			newSession(sub, gen).run(ctx, gctx, parent)
			close(finished)
			<-release
		})
		select {
		case <-finished:
		case <-mctx.Done():
			if ctx.Err() != nil {
				<-finished
				break
			}
			// Leaving ends the generation: the session hands its
			// partitions back as at a rebalance.
			left := make(chan struct{})
			go func() {
				defer close(left)
				_ = cg.Close()
			}()
			<-finished
			sub.status.left(time.Now())
			close(release)
			sub.waitLeft(left)
			return true
		}
		sub.status.left(time.Now())
		if ctx.Err() != nil {
			// Leave while the generation still runs: once it ends,
			// kafka-go would join the group again before noticing Close.
			// Next returns ErrGroupClosed once Close has begun.
			left := make(chan struct{})
			go func() {
				defer close(left)
				_ = cg.Close()
			}()
			_, _ = cg.Next(context.Background())
			close(release)
			sub.waitLeft(left)
			return false
		}
		close(release)
	}
}

// setRejoin sets what rejoin calls: the current member's cancel, or nil
// between members.
func (sub *subscription) setRejoin(f context.CancelFunc) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	sub.rejoinFn = f
}

// rejoin makes the current member leave the group for a new one to join,
// reporting false when there is no current member.
func (sub *subscription) rejoin() bool {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	if sub.rejoinFn == nil {
		return false
	}
	sub.rejoinFn()
	sub.rejoinFn = nil
	return true
}

// leave closes the consumer group (leaving it), bounded by leaveTimeout.
func (sub *subscription) leave(cg *kafka.ConsumerGroup) {
	left := make(chan struct{})
	go func() {
		defer close(left)
		_ = cg.Close()
	}()
	sub.waitLeft(left)
}

func (sub *subscription) waitLeft(left <-chan struct{}) {
	t := time.NewTimer(leaveTimeout)
	defer t.Stop()
	select {
	case <-left:
	case <-t.C:
		sub.log.Warn("leaving the consumer group takes long; the coordinator drops this member after the session timeout",
			zap.Duration("waited", leaveTimeout))
	}
}

// checkTopic fails for a topic the cluster does not have, and waits while
// no broker answers.
func (sub *subscription) checkTopic(ctx context.Context) error {
	wait := sub.cfg.RetryMin
	for {
		_, err := sub.b.partitionsOf(ctx, sub.s.Topic)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ErrUnknownTopic):
			return fmt.Errorf("kafkabroker: subscribe %s: %w", sub.group, err)
		case ctx.Err() != nil:
			return nil
		}
		sub.log.Warn("looking the topic up failed, retrying", zap.Error(err))
		if !dispatch.Sleep(ctx, dispatch.Jitter(wait)) {
			return nil
		}
		wait = min(max(2*wait, time.Millisecond), setupRetryMax)
	}
}
