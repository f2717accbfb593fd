package subscribe

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/envelope"
)

// Topic is a derived stream's Kafka topic: "wahook.label-changed".
func Topic(stream string) string { return envelope.DerivedTopic(stream) }

// Kafka reads a topic as a member of a consumer group, with kafka-go.
type Kafka struct {
	// Reader configures the group's reader: Brokers, GroupID and Topic
	// are required; Dialer carries TLS and SASL. CommitInterval is set to
	// 0 (commits are synchronous: an event is committed once handled).
	Reader kafka.ReaderConfig
	// OnError is as NATS's; a record that cannot be decoded is committed.
	OnError func(topic string, err error)
	Options
}

// Run hands the group's records to h, one at a time, until ctx ends; it
// then returns ctx's error. A record whose handler fails is tried again
// in place after RetryDelay, holding its partition, so that a chat's
// events (one partition key) are handled in order.
func (k Kafka) Run(ctx context.Context, h Handler) error {
	k.setDefaults()
	cfg := k.Reader
	if len(cfg.Brokers) == 0 || cfg.GroupID == "" || cfg.Topic == "" {
		return errors.New("subscribe: Kafka needs Reader.Brokers, GroupID and Topic")
	}
	cfg.CommitInterval = 0
	r := kafka.NewReader(cfg)
	defer r.Close()
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("subscribe: fetch from %s: %w", cfg.Topic, err)
		}
		if err := k.one(ctx, m, h); err != nil {
			return err
		}
		// A handled record is committed even when ctx has just ended, so
		// that the next owner does not handle it again.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
		err = r.CommitMessages(cctx, m)
		cancel()
		if err != nil {
			return fmt.Errorf("subscribe: commit %s/%d@%d: %w", m.Topic, m.Partition, m.Offset, err)
		}
	}
}

// one handles a record until its handler returns nil; it returns only
// ctx's error, when ctx ends first.
func (k Kafka) one(ctx context.Context, m kafka.Message, h Handler) error {
	hdr := make(broker.Header, len(m.Headers))
	for _, x := range m.Headers {
		hdr[x.Key] = append(hdr[x.Key], string(x.Value))
	}
	ev, err := envelope.Decode(broker.Message{Topic: m.Topic, Key: string(m.Key), Header: hdr, Data: m.Value}, envelope.Kafka)
	if err != nil {
		k.report(m.Topic, fmt.Errorf("record %d/%d: %w", m.Partition, m.Offset, err))
		return nil
	}
	for {
		_, err := k.handle(ctx, ev, h)
		if err == nil {
			return nil
		}
		k.report(m.Topic, fmt.Errorf("event %s: %w", ev.ID(), err))
		t := time.NewTimer(k.RetryDelay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (k Kafka) report(topic string, err error) {
	if k.OnError != nil {
		k.OnError(topic, err)
	}
}
