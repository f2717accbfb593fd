package kafkabroker

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/broker/internal/dispatch"
)

// stallPollMax caps the pause between two looks at the group's progress.
const stallPollMax = 30 * time.Second

// commitSeen is a partition's group commit as the watchdog last saw it, and
// since when it has not changed.
type commitSeen struct {
	offset   int64
	metadata string
	since    time.Time
}

// watchStalls looks at the group's progress on every partition of the
// topic until ctx ends. A partition stalls when records wait after the
// group's commit and neither the commit's offset nor its metadata (the
// delivery count a retried record bumps) has moved for StallTimeout:
// whoever owns it is not consuming it. The subscription then leaves the
// group and joins it again as a new member, so that the coordinator runs
// a rebalance in which a member that does not rejoin is dropped and its
// partitions go to live ones. It does so again only after StallTimeout plus
// the longest a rebalance may take (a crashed member's session timeout and
// the rebalance timeout), so that a rebalance in progress is not restarted.
//
// A coordinator should never need it: it drops a member that stopped
// heartbeating after the session timeout. But one that keeps a dead member
// (kfake keeps a member whose connection died while its JoinGroup was
// parked, forever once the group is stable), or a member that heartbeats
// while its fetching is wedged, would otherwise stall those partitions for
// good while every member looks healthy.
func (sub *subscription) watchStalls(ctx context.Context) {
	limit := sub.cfg.StallTimeout
	rejoinEvery := limit + sub.cfg.SessionTimeout + sub.cfg.RebalanceTimeout
	poll := min(max(limit/4, time.Millisecond), stallPollMax)
	seen := map[int]commitSeen{}
	var lastRejoin time.Time
	for dispatch.Sleep(ctx, poll) {
		cctx, cancel := context.WithTimeout(ctx, groupTimeout)
		progress, err := sub.groupProgress(cctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				sub.log.Debug("looking at the group's progress failed", zap.Error(err))
			}
			continue
		}
		now := time.Now()
		var stalled []int
		var since time.Time
		waiting := map[int]bool{}
		for _, p := range progress {
			if !p.waiting {
				continue
			}
			waiting[p.id] = true
			s, ok := seen[p.id]
			if !ok || s.offset != p.offset || s.metadata != p.metadata {
				seen[p.id] = commitSeen{offset: p.offset, metadata: p.metadata, since: now}
				continue
			}
			if now.Sub(s.since) >= limit {
				stalled = append(stalled, p.id)
				if since.IsZero() || s.since.Before(since) {
					since = s.since
				}
			}
		}
		for id := range seen {
			if !waiting[id] {
				delete(seen, id)
			}
		}
		slices.Sort(stalled)
		sub.status.setStalled(stalled, since)
		if len(stalled) == 0 || (!lastRejoin.IsZero() && now.Sub(lastRejoin) < rejoinEvery) {
			continue
		}
		if sub.rejoin() {
			lastRejoin = now
			sub.status.rejoined()
			sub.log.Warn("records wait on partitions whose group commit has not moved; rejoining the group as a new member to make the coordinator reassign them",
				zap.Ints("partitions", stalled), zap.Duration("stalled_for", now.Sub(since).Round(time.Second)))
		}
	}
}

// partProgress is where the group stands on one partition.
type partProgress struct {
	id       int
	offset   int64 // the group's commit, -1 when none
	metadata string
	// waiting: records are stored after the commit (after the start of
	// the partition when the group has no commit).
	waiting bool
}

// groupProgress asks the cluster for the group's commit and the first and
// next offsets of every partition of the topic.
func (sub *subscription) groupProgress(ctx context.Context) ([]partProgress, error) {
	b, topic := sub.b, sub.s.Topic
	ids, err := b.partitionsOf(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	of, err := b.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: sub.group, Topics: map[string][]int{topic: ids}})
	if err != nil {
		return nil, fmt.Errorf("offset fetch: %w", err)
	}
	if of.Error != nil {
		return nil, fmt.Errorf("offset fetch: %w", of.Error)
	}
	reqs := make([]kafka.OffsetRequest, 0, 2*len(ids))
	for _, id := range ids {
		reqs = append(reqs, kafka.FirstOffsetOf(id), kafka.LastOffsetOf(id))
	}
	lo, err := b.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, fmt.Errorf("list offsets: %w", err)
	}
	ends := map[int]kafka.PartitionOffsets{}
	for _, p := range lo.Topics[topic] {
		if p.Error == nil {
			ends[p.Partition] = p
		}
	}
	out := make([]partProgress, 0, len(ids))
	for _, p := range of.Topics[topic] {
		end, ok := ends[p.Partition]
		if p.Error != nil || !ok || end.LastOffset < 0 {
			continue
		}
		pp := partProgress{id: p.Partition, offset: p.CommittedOffset, metadata: p.Metadata}
		if pp.offset >= 0 {
			pp.waiting = end.LastOffset > pp.offset
		} else {
			pp.waiting = end.LastOffset > max(end.FirstOffset, 0)
		}
		out = append(out, pp)
	}
	return out, nil
}
