package kafkabroker

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/segmentio/kafka-go"

	"github.com/wahook/wahook/pkg/broker"
)

// IDHeader carries a message's de-duplication id: the CloudEvents Kafka
// binding's id attribute, which package envelope always writes.
const IDHeader = "ce_id"

// Publish writes every message to the partition its key hashes to
// (murmur2, as the Java client's default partitioner does) and returns nil
// once all in-sync replicas of each partition have it (acks=all).
// Messages of one call and of concurrent calls share batches.
//
// m.Topic is the Kafka topic, m.Key the record key, each value of m.Header a
// record header, m.Data the value; m.Subject is not sent (Kafka routes by
// topic alone). m.ID travels as IDHeader when m.Header has none. Kafka keeps
// no de-duplication window: a message published twice (a retried webhook, a
// retry after an error) is stored twice, and consumers drop repeats by
// CloudEvent id. Publish reads m.Header and m.Data until it returns and, on
// error, until the writer gives the batch up; it never modifies them.
func (b *Broker) Publish(ctx context.Context, msgs ...broker.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if !b.enter() {
		return fmt.Errorf("kafkabroker: publish: %w", broker.ErrClosed)
	}
	defer b.inflight.Done()
	// A caller that already gave up gets nothing stored behind its back.
	if err := ctx.Err(); err != nil {
		return publishErr(&msgs[0], classify(err))
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.cfg.PublishTimeout)
		defer cancel()
	}
	records := make([]kafka.Message, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		if m.Topic == "" {
			return publishErr(m, errors.New("message has no topic"))
		}
		records[i] = kafka.Message{Topic: m.Topic, Key: keyBytes(m.Key), Value: m.Data, Headers: recordHeaders(m)}
	}
	err := b.w.WriteMessages(ctx, records...)
	if err == nil {
		return nil
	}
	i, err := firstWriteError(err)
	if errors.Is(err, kafka.UnknownTopicOrPartition) {
		err = fmt.Errorf("%w %q: %w", ErrUnknownTopic, msgs[i].Topic, err)
	}
	return publishErr(&msgs[i], classify(err))
}

// keyBytes maps an empty key to none: the balancer then spreads such
// records instead of hashing them all to one partition.
func keyBytes(key string) []byte {
	if key == "" {
		return nil
	}
	return []byte(key)
}

// recordHeaders turns m.Header into record headers, one per value, in a
// stable order so that identical messages are identical records.
func recordHeaders(m *broker.Message) []kafka.Header {
	keys := make([]string, 0, len(m.Header))
	n := 0
	for k, vs := range m.Header {
		keys = append(keys, k)
		n += len(vs)
	}
	slices.Sort(keys)
	addID := m.ID != "" && len(m.Header[IDHeader]) == 0
	if addID {
		n++
	}
	hs := make([]kafka.Header, 0, n)
	if addID {
		hs = append(hs, kafka.Header{Key: IDHeader, Value: []byte(m.ID)})
	}
	for _, k := range keys {
		for _, v := range m.Header[k] {
			hs = append(hs, kafka.Header{Key: k, Value: []byte(v)})
		}
	}
	return hs
}

// firstWriteError picks the error of the first failed message out of
// kafka-go's per-message WriteErrors, which errors.Is cannot look into.
func firstWriteError(err error) (int, error) {
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) {
		for i, e := range werrs {
			if e != nil {
				return i, e
			}
		}
	}
	return 0, err
}

func publishErr(m *broker.Message, err error) error {
	if m.ID == "" {
		return fmt.Errorf("kafkabroker: publish to %s: %w", m.Topic, err)
	}
	return fmt.Errorf("kafkabroker: publish %s to %s: %w", m.ID, m.Topic, err)
}

// classify wraps err with broker.ErrUnavailable when retrying later can
// succeed, keeping the cause wrapped for errors.Is.
func classify(err error) error {
	if err == nil || !transient(err) {
		return err
	}
	return fmt.Errorf("%w: %w", broker.ErrUnavailable, err)
}

// Classify wraps err with broker.ErrUnavailable when retrying later can
// succeed, as Publish does: for the other packages that talk to Kafka
// (the state stores), so a store that is down is told from a bad input.
func Classify(err error) error { return classify(err) }

// transient tells errors that time or an operator fix (no broker reachable,
// no answer in time, no leader, too few in-sync replicas) from those a retry
// never fixes (message too large, unknown topic, a request the cluster
// refuses) and from a caller that gave up (context.Canceled).
func transient(err error) bool {
	switch {
	case errors.Is(err, context.Canceled),
		errors.Is(err, broker.ErrUnavailable), // already wrapped
		errors.Is(err, broker.ErrClosed),
		errors.Is(err, ErrUnknownTopic):
		return false
	case errors.Is(err, context.DeadlineExceeded):
		return true
	}
	var kerr kafka.Error
	if errors.As(err, &kerr) {
		// kafka-go counts an unknown topic as temporary, as it may be
		// being created; EnsureTopics waits for wahook's topics, so here
		// it means a topic nobody created.
		return kerr != kafka.UnknownTopicOrPartition && kerr.Temporary()
	}
	// What is left comes from the network and the client's plumbing:
	// refused or reset connections, EOF, timeouts, no metadata yet.
	return true
}
