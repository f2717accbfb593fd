package kafkabroker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync/atomic"

	"github.com/segmentio/kafka-go"

	"github.com/wahook/wahook/pkg/broker"
)

var _ broker.BacklogReader = (*Broker)(nil)

// Backlog is s's consumer group's lag: on every partition of the topic, the
// records between the group's commit (the start of the partition when it
// has none) and the high watermark, summed. It is the group's, whichever
// member asks.
func (b *Broker) Backlog(ctx context.Context, s broker.Subscription) (broker.Backlog, error) {
	group := GroupID(s.Group, s.Partition, s.Partitions)
	ids, err := b.partitionsOf(ctx, s.Topic)
	if err != nil {
		return broker.Backlog{}, fmt.Errorf("kafkabroker: partitions of %s: %w", s.Topic, err)
	}
	of, err := b.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{s.Topic: ids}})
	if err == nil {
		err = of.Error
	}
	// A group that never committed has no commits: Kafka answers -1 for
	// each partition, some brokers (kfake) that the group is unknown.
	if errors.Is(err, kafka.GroupIdNotFound) {
		of, err = &kafka.OffsetFetchResponse{}, nil
	}
	if err != nil {
		return broker.Backlog{}, fmt.Errorf("kafkabroker: offset fetch %s: %w", group, err)
	}
	reqs := make([]kafka.OffsetRequest, 0, 2*len(ids))
	for _, id := range ids {
		reqs = append(reqs, kafka.FirstOffsetOf(id), kafka.LastOffsetOf(id))
	}
	lo, err := b.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{s.Topic: reqs}})
	if err != nil {
		return broker.Backlog{}, fmt.Errorf("kafkabroker: list offsets of %s: %w", s.Topic, err)
	}
	committed := map[int]int64{}
	for _, p := range of.Topics[s.Topic] {
		if p.Error == nil {
			committed[p.Partition] = p.CommittedOffset
		}
	}
	out := broker.Backlog{Group: group, Unacked: -1}
	for _, p := range lo.Topics[s.Topic] {
		if p.Error != nil {
			return broker.Backlog{}, fmt.Errorf("kafkabroker: offsets of %s/%d: %w", s.Topic, p.Partition, p.Error)
		}
		from, ok := committed[p.Partition]
		if !ok || from < 0 {
			from = max(p.FirstOffset, 0)
		}
		out.Pending += max(p.LastOffset-from, 0)
	}
	return out, nil
}

// DialErrors counts the connections to the brokers that could not be
// opened since the broker was created.
func (b *Broker) DialErrors() uint64 { return b.dialErrors.Load() }

// countingDial wraps dial (a net.Dialer when nil) to count its failures.
func countingDial(dial func(ctx context.Context, network, address string) (net.Conn, error), failed *atomic.Uint64) func(ctx context.Context, network, address string) (net.Conn, error) {
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		c, err := dial(ctx, network, address)
		// A dial given up by its caller is no broker failure; a timeout is.
		if err != nil && !errors.Is(err, context.Canceled) {
			failed.Add(1)
		}
		return c, err
	}
}
