package subscribe

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/envelope"
)

// DerivedStream is the JetStream stream holding every derived stream's
// subjects (wahook.{stream}.{provider}.{channel}).
const DerivedStream = "WAHOOK_DERIVED"

// ackTimeout bounds an acknowledgement, which is sent even after Run's ctx
// ended so that a handled event is not delivered again.
const ackTimeout = 5 * time.Second

// NATS reads a JetStream durable pull consumer.
type NATS struct {
	// JS is a JetStream context on a connection that may use the consumer.
	JS jetstream.JetStream
	// Stream is DerivedStream when empty.
	Stream string
	// Consumer is the durable consumer's name. A subscriber of wahook's
	// embedded server binds to the one wahook keeps for it
	// (WAHOOK_NATS_SUBSCRIBER_CONSUMERS: sub-{user}-{name}); it may not
	// create consumers.
	Consumer string
	// Create, when set, creates the consumer or updates it to this
	// configuration (Durable is set to Consumer, AckPolicy to explicit):
	// for a user allowed to, e.g. on an external server.
	Create *jetstream.ConsumerConfig
	// OnError, when set, is told of events that fail: a handler's error
	// (the event is delivered again) or an event that cannot be decoded
	// (it is terminated: no delivery can fix it).
	OnError func(subject string, err error)
	Options
}

// Run hands the consumer's events to h, one at a time, until ctx ends; it
// then returns ctx's error, leaving the event in hand unacknowledged if its
// handler did not finish.
func (n NATS) Run(ctx context.Context, h Handler) error {
	n.setDefaults()
	if n.JS == nil || n.Consumer == "" {
		return errors.New("subscribe: NATS needs JS and Consumer")
	}
	if n.Stream == "" {
		n.Stream = DerivedStream
	}
	var (
		cons jetstream.Consumer
		err  error
	)
	if n.Create != nil {
		cfg := *n.Create
		cfg.Durable, cfg.AckPolicy = n.Consumer, jetstream.AckExplicitPolicy
		cons, err = n.JS.CreateOrUpdateConsumer(ctx, n.Stream, cfg)
	} else {
		cons, err = n.JS.Consumer(ctx, n.Stream, n.Consumer)
	}
	if err != nil {
		return fmt.Errorf("subscribe: consumer %s on %s: %w", n.Consumer, n.Stream, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("subscribe: consume %s: %w", n.Consumer, err)
	}
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
			it.Stop()
		case <-stopped:
			it.Stop()
		}
	}()
	for {
		m, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("subscribe: next from %s: %w", n.Consumer, err)
		}
		n.one(ctx, m, h)
	}
}

// one handles one message and settles it.
func (n NATS) one(ctx context.Context, m jetstream.Msg, h Handler) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
	defer cancel()
	ev, err := envelope.Decode(broker.Message{Subject: m.Subject(), Header: broker.Header(m.Headers()), Data: m.Data()}, envelope.NATS)
	if err != nil {
		n.report(m.Subject(), err)
		_ = m.TermWithReason("not a CloudEvent")
		return
	}
	if _, err := n.handle(ctx, ev, h); err != nil {
		n.report(m.Subject(), fmt.Errorf("event %s: %w", ev.ID(), err))
		_ = m.NakWithDelay(n.RetryDelay)
		return
	}
	// A double ack waits for the server's confirmation: an ack lost on
	// the way would have the event handled twice without anyone knowing.
	if err := m.DoubleAck(actx); err != nil {
		n.report(m.Subject(), fmt.Errorf("ack event %s: %w", ev.ID(), err))
	}
}

func (n NATS) report(subject string, err error) {
	if n.OnError != nil {
		n.OnError(subject, err)
	}
}
