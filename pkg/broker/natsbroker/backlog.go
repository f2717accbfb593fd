package natsbroker

import (
	"context"
	"fmt"

	"github.com/wahook/wahook/pkg/broker"
)

var _ broker.BacklogReader = (*Broker)(nil)

// Backlog reads s's durable consumer's info: the messages of its filter not
// delivered yet (NumPending) and those delivered and not acknowledged
// (NumAckPending), as JetStream counts them for the whole consumer.
func (b *Broker) Backlog(ctx context.Context, s broker.Subscription) (broker.Backlog, error) {
	p, err := b.planFor(s)
	if err != nil {
		return broker.Backlog{}, err
	}
	cons, err := b.js.Consumer(ctx, p.stream, p.consumer)
	if err != nil {
		return broker.Backlog{}, fmt.Errorf("natsbroker: consumer %s on %s: %w", p.consumer, p.stream, classify(err))
	}
	info := cons.CachedInfo()
	return broker.Backlog{Group: p.consumer, Pending: int64(info.NumPending), Unacked: int64(info.NumAckPending)}, nil
}

// Reconnects counts the connection's reconnections since it was opened.
func (b *Broker) Reconnects() uint64 { return b.nc.Stats().Reconnects }
