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
// Messages of one call and of concurrent calls share batches; one call
// writes at most 256 messages at a time, the next ones once those are
// acknowledged, so that a call with many messages does not queue all of
// them ahead of its concurrent callers' in the partitions they share.
//
// m.Topic is the Kafka topic, m.Key the record key, each value of m.Header a
// record header, m.Data the value; m.Subject is not sent (Kafka routes by
// topic alone). m.ID travels as IDHeader when m.Header has none. Kafka keeps
// no de-duplication window: a message published twice (a retried webhook, a
// retry after an error) is stored twice, and consumers drop repeats by
// CloudEvent id.
//
// Messages the broker would refuse are refused before anything of the call
// is written, with an error wrapping broker.ErrRejected: no topic, a header
// name broker.ValidHeaderKey refuses, a record over the topics'
// max.message.bytes (also broker.ErrTooLarge). Publish reads m.Header and
// m.Data until it returns and, on error, until the writer gives the batch
// up; it never modifies them.
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
	for i := range msgs {
		if err := b.check(&msgs[i]); err != nil {
			return publishErr(&msgs[i], err)
		}
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, b.cfg.PublishTimeout)
		defer cancel()
	}
	records := make([]kafka.Message, min(len(msgs), perCall))
	for from := 0; from < len(msgs); from += perCall {
		chunk := msgs[from:min(from+perCall, len(msgs))]
		for i := range chunk {
			m := &chunk[i]
			records[i] = kafka.Message{Topic: m.Topic, Key: keyBytes(m.Key), Value: m.Data, Headers: recordHeaders(m)}
		}
		err := b.w.WriteMessages(ctx, records[:len(chunk)]...)
		if err == nil {
			continue
		}
		i, err := firstWriteError(err)
		if errors.Is(err, kafka.UnknownTopicOrPartition) {
			err = fmt.Errorf("%w %q: %w", ErrUnknownTopic, chunk[i].Topic, err)
		}
		return publishErr(&chunk[i], classify(err))
	}
	return nil
}

// perCall is how many messages one Publish call writes at a time: enough
// to fill the batches of several partitions, few enough that a concurrent
// caller's message waits behind at most that many of the call's.
const perCall = 256

// MaxMessageBytes is the topics' max.message.bytes less the record batch
// header: a message whose broker.Size is at most that fits.
func (b *Broker) MaxMessageBytes() int { return b.cfg.Topics.MaxMessageBytes - recordBatchOverhead }

var _ broker.Limits = (*Broker)(nil)

// recordBatchOverhead is the header of a record batch (v2), which the
// broker counts against max.message.bytes and kafka-go's BatchBytes does
// not.
const recordBatchOverhead = 61

// check refuses m, with an error wrapping broker.ErrRejected, when the
// broker would refuse it: no topic, a header name other brokers refuse, a
// record over max.message.bytes. The size is kafka-go's own estimate of the
// record, which bounds what it sends and is what it batches by. It does not
// allocate unless m is refused.
func (b *Broker) check(m *broker.Message) error {
	if m.Topic == "" {
		return broker.Rejected(errors.New("message has no topic"))
	}
	n := 0
	hdr := 0
	for k, vs := range m.Header {
		if !broker.ValidHeaderKey(k) {
			return broker.Rejected(fmt.Errorf("header name %q: want printable ASCII without separators", clip(k)))
		}
		for _, v := range vs {
			n++
			hdr += varLen(len(k)) + len(k) + varLen(len(v)) + len(v)
		}
	}
	if m.ID != "" && len(m.Header[IDHeader]) == 0 {
		n++
		hdr += varLen(len(IDHeader)) + len(IDHeader) + varLen(len(m.ID)) + len(m.ID)
	}
	// kafka-go: 4+1+1 (legacy framing), 4+key, 4+value, 8 (timestamp),
	// then the headers as a varint-counted array.
	size := 22 + len(m.Key) + len(m.Data) + varLen(n) + hdr
	if limit := b.batchBytes(); size > limit {
		return broker.TooLarge(size+recordBatchOverhead, limit+recordBatchOverhead)
	}
	return nil
}

// batchBytes is the writer's BatchBytes: what kafka-go puts in one record
// batch at most, so that no batch, of one record or many, exceeds the
// topics' max.message.bytes.
func (b *Broker) batchBytes() int { return b.cfg.Topics.MaxMessageBytes - recordBatchOverhead }

// varLen is the length of n as a zig-zag varint.
func varLen(n int) int {
	u := uint64(n) << 1
	l := 1
	for u >= 0x80 {
		u >>= 7
		l++
	}
	return l
}

// clip shortens what an error message quotes.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
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
// succeed, and with broker.ErrRejected when retrying can never store the
// message (broker.ErrTooLarge too when it is over a size limit), keeping
// the cause wrapped for errors.Is.
func classify(err error) error {
	switch {
	case err == nil, errors.Is(err, broker.ErrRejected):
		return err
	case transient(err):
		return fmt.Errorf("%w: %w", broker.ErrUnavailable, err)
	case errors.Is(err, kafka.MessageSizeTooLarge), errors.Is(err, kafka.RecordListTooLarge):
		return fmt.Errorf("%w: %w: %w", broker.ErrRejected, broker.ErrTooLarge, err)
	case errors.Is(err, ErrUnknownTopic),
		errors.Is(err, kafka.InvalidTopic),
		errors.Is(err, kafka.InvalidRecord),
		errors.Is(err, kafka.InvalidTimestamp):
		return broker.Rejected(err)
	}
	return err
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
