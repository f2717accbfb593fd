package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/kafkabroker"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/envelope"
)

// kafkaTopics are wahook's event topics (not its state topics).
func kafkaTopics() []string {
	t := []string{envelope.IngressTopic, envelope.DeadLetterTopic}
	for _, s := range derive.Streams {
		t = append(t, envelope.DerivedTopic(s))
	}
	return t
}

// kafkaSource reads every partition of the topics with a reader of its
// own, outside any consumer group: tail commits nothing and moves no
// group. It starts at the end, or at -offset, -since or the first record
// kept (-all); a history read stops at the end each partition had at
// start.
func (c config) kafkaSource(ctx context.Context) (source, func(), error) {
	tlsCfg, err := c.kafkaSecurity.TLSConfig()
	if err != nil {
		return nil, nil, err
	}
	mech, err := c.kafkaSecurity.SASLMechanism()
	if err != nil {
		return nil, nil, err
	}
	dialer := &kafka.Dialer{ClientID: "wahook-tail", Timeout: 10 * time.Second, DualStack: true, TLS: tlsCfg, SASLMechanism: mech}
	type span struct {
		topic      string
		partition  int
		start, end int64
	}
	var spans []span
	for _, topic := range strings.Split(c.topics, ",") {
		if topic = strings.TrimSpace(topic); topic == "" {
			continue
		}
		parts, err := dialer.LookupPartitions(ctx, "tcp", c.brokers()[0], topic)
		if err != nil {
			return nil, nil, fmt.Errorf("partitions of %s: %w", topic, err)
		}
		for _, p := range parts {
			s := span{topic: topic, partition: p.ID}
			if s.start, s.end, err = c.kafkaRange(ctx, dialer, topic, p.ID); err != nil {
				return nil, nil, err
			}
			spans = append(spans, s)
		}
	}
	if len(spans) == 0 {
		return nil, nil, errors.New("no topic to read")
	}
	return func(ctx context.Context, msgs chan<- item) error {
		var wg sync.WaitGroup
		errs := make(chan error, len(spans))
		for _, s := range spans {
			if c.history && s.start >= s.end {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := c.readPartition(ctx, dialer, s.topic, s.partition, s.start, s.end, msgs); err != nil {
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return err
		}
		close(msgs)
		return nil
	}, func() {}, nil
}

// kafkaRange is where reading a partition starts, and the offset after
// its last record now.
func (c config) kafkaRange(ctx context.Context, dialer *kafka.Dialer, topic string, partition int) (start, end int64, err error) {
	conn, err := dialer.DialLeader(ctx, "tcp", c.brokers()[0], topic, partition)
	if err != nil {
		return 0, 0, fmt.Errorf("leader of %s/%d: %w", topic, partition, err)
	}
	defer conn.Close()
	first, end, err := conn.ReadOffsets()
	if err != nil {
		return 0, 0, fmt.Errorf("offsets of %s/%d: %w", topic, partition, err)
	}
	switch {
	case c.offset >= 0:
		start = min(max(c.offset, first), end)
	case c.all:
		start = first
	case c.since > 0:
		if start, err = conn.ReadOffset(time.Now().Add(-c.since)); err != nil {
			return 0, 0, fmt.Errorf("offset of %s/%d at %s ago: %w", topic, partition, c.since, err)
		}
		start = min(max(start, first), end)
	default:
		start = end
	}
	return start, end, nil
}

// readPartition sends the records of one partition from start; with
// c.history it stops before end.
func (c config) readPartition(ctx context.Context, dialer *kafka.Dialer, topic string, partition int, start, end int64, msgs chan<- item) error {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: c.brokers(), Topic: topic, Partition: partition, Dialer: dialer,
		MaxBytes: 16 << 20, MaxWait: 500 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(start); err != nil {
		return fmt.Errorf("%s/%d at %d: %w", topic, partition, start, err)
	}
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read %s/%d: %w", topic, partition, err)
		}
		h := make(broker.Header, len(m.Headers))
		for _, kh := range m.Headers {
			h[kh.Key] = append(h[kh.Key], string(kh.Value))
		}
		it := item{subject: m.Topic, binding: envelope.Kafka, msg: broker.Message{Topic: m.Topic, Subject: m.Topic,
			Key: string(m.Key), ID: h.Get(kafkabroker.IDHeader), Header: h, Data: m.Value}}
		select {
		case msgs <- it:
		case <-ctx.Done():
			return ctx.Err()
		}
		if c.history && m.Offset >= end-1 {
			return nil
		}
	}
}
