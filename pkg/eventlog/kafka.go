package eventlog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/kafkabroker"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/envelope"
)

const (
	// maxFetchBytes bounds one fetch from a partition.
	maxFetchBytes = 16 << 20
	// readTimeout bounds one fetch when ctx has no earlier deadline.
	readTimeout = 10 * time.Second
)

// NewKafka reads wahook's topics on the brokers, with readers of their own
// outside any consumer group: nothing is committed, no group moves.
func NewKafka(brokers []string, sec kafkabroker.Security, opts ...Option) (*Log, error) {
	if len(brokers) == 0 {
		return nil, errors.New("eventlog: no Kafka brokers")
	}
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	d, err := sec.Dialer(o.clientID)
	if err != nil {
		return nil, fmt.Errorf("eventlog: %w", err)
	}
	return &Log{b: &kafkaLog{brokers: brokers, dialer: d, opts: o}, opts: o}, nil
}

type kafkaLog struct {
	brokers []string
	dialer  *kafka.Dialer
	opts    options
}

func (k *kafkaLog) close() error { return nil }

// kafkaTopic is a topic a query reads.
type kafkaTopic struct {
	stream Stream
	topic  string
}

func kafkaTopics(q Query) []kafkaTopic {
	var out []kafkaTopic
	for _, s := range q.Streams {
		switch s {
		case Raw:
			out = append(out, kafkaTopic{Raw, envelope.IngressTopic})
		case Derived:
			for _, d := range derive.Streams {
				out = append(out, kafkaTopic{Derived, envelope.DerivedTopic(d)})
			}
		case DeadLetter:
			out = append(out, kafkaTopic{DeadLetter, envelope.DeadLetterTopic})
		}
	}
	return out
}

// partitions lists t's partitions, none when the topic does not exist.
func (k *kafkaLog) partitions(ctx context.Context, t kafkaTopic) ([]kafka.Partition, error) {
	var err error
	for _, b := range k.brokers {
		var ps []kafka.Partition
		if ps, err = k.dialer.LookupPartitions(ctx, "tcp", b, t.topic); err == nil {
			return ps, nil
		}
		if errors.Is(err, kafka.UnknownTopicOrPartition) {
			return nil, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("partitions of %s: %w", t.topic, err)
}

// kafkaPart is one partition read with a connection to its leader.
type kafkaPart struct {
	k      *kafkaLog
	t      kafkaTopic
	id     int
	conn   *kafka.Conn
	stopFn func() bool
}

func (k *kafkaLog) dialPart(ctx context.Context, t kafkaTopic, id int) (*kafkaPart, error) {
	var err error
	for _, b := range k.brokers {
		var c *kafka.Conn
		if c, err = k.dialer.DialLeader(ctx, "tcp", b, t.topic, id); err == nil {
			// A read blocked on the connection ends with ctx.
			return &kafkaPart{k: k, t: t, id: id, conn: c, stopFn: context.AfterFunc(ctx, func() { _ = c.Close() })}, nil
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("leader of %s/%d: %w", t.topic, id, err)
}

func (p *kafkaPart) close() {
	p.stopFn()
	_ = p.conn.Close()
}

// offsetAt is the offset of the first record stored at t or later, end
// when there is none.
func (p *kafkaPart) offsetAt(t time.Time, first, end int64) (int64, error) {
	o, err := p.conn.ReadOffset(t)
	if err != nil {
		return 0, fmt.Errorf("offset of %s/%d at %s: %w", p.t.topic, p.id, t.Format(time.RFC3339Nano), err)
	}
	if o < 0 {
		return end, nil
	}
	return min(max(o, first), end), nil
}

// bounds is the range of offsets [start, end) that q's times select now.
func (p *kafkaPart) bounds(q Query) (start, end int64, err error) {
	first, end, err := p.conn.ReadOffsets()
	if err != nil {
		return 0, 0, fmt.Errorf("offsets of %s/%d: %w", p.t.topic, p.id, err)
	}
	start = first
	if !q.Since.IsZero() {
		if start, err = p.offsetAt(q.Since, first, end); err != nil {
			return 0, 0, err
		}
	}
	if !q.Until.IsZero() {
		// Kafka's times are in milliseconds: the first record after
		// Until is at its next millisecond or later.
		if end, err = p.offsetAt(q.Until.Truncate(time.Millisecond).Add(time.Millisecond), first, end); err != nil {
			return 0, 0, err
		}
	}
	return start, end, nil
}

// read reads the records [from, to) forward; fewer when the partition has
// gaps (compacted, transaction markers).
func (p *kafkaPart) read(ctx context.Context, from, to int64) ([]entry, error) {
	var out []entry
	for from < to {
		if _, err := p.conn.Seek(from, kafka.SeekAbsolute|kafka.SeekDontCheck); err != nil {
			return nil, fmt.Errorf("seek %s/%d to %d: %w", p.t.topic, p.id, from, err)
		}
		deadline := time.Now().Add(readTimeout)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		_ = p.conn.SetReadDeadline(deadline)
		b := p.conn.ReadBatchWith(kafka.ReadBatchConfig{MinBytes: 1, MaxBytes: maxFetchBytes, MaxWait: 100 * time.Millisecond})
		next := from
		for {
			m, err := b.ReadMessage()
			if err != nil {
				break
			}
			next = m.Offset + 1
			if m.Offset >= to {
				break
			}
			if m.Offset >= from {
				out = append(out, kafkaEntry(p.t, m))
			}
		}
		err := b.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if next == from {
			if err != nil && !errors.Is(err, kafka.OffsetOutOfRange) {
				return nil, fmt.Errorf("read %s/%d at %d: %w", p.t.topic, p.id, from, err)
			}
			// No record left before to: a gap at the end.
			break
		}
		from = next
	}
	return out, nil
}

func (k *kafkaLog) cursors(ctx context.Context, q Query, newest bool) (_ []cursor, err error) {
	var out []cursor
	defer func() {
		if err != nil {
			for _, c := range out {
				c.close()
			}
		}
	}()
	w := int64(k.opts.batch)
	for _, t := range kafkaTopics(q) {
		ps, err := k.partitions(ctx, t)
		if err != nil {
			return nil, err
		}
		for _, kp := range ps {
			p, err := k.dialPart(ctx, t, kp.ID)
			if err != nil {
				return nil, err
			}
			lo, hi, err := p.bounds(q)
			if err != nil || lo >= hi {
				p.close()
				if err != nil {
					return nil, err
				}
				continue
			}
			c := &bufCursor{closeFn: p.close}
			if newest {
				c.fill = func(ctx context.Context) ([]entry, bool, error) {
					from := max(lo, hi-w)
					es, err := p.read(ctx, from, hi)
					slices.Reverse(es)
					hi = from
					return es, hi <= lo, err
				}
			} else {
				c.fill = func(ctx context.Context) ([]entry, bool, error) {
					to := min(hi, lo+w)
					es, err := p.read(ctx, lo, to)
					lo = to
					return es, lo >= hi, err
				}
			}
			out = append(out, c)
		}
	}
	return out, nil
}

func kafkaEntry(t kafkaTopic, m kafka.Message) entry {
	h := make(broker.Header, len(m.Headers))
	for _, kh := range m.Headers {
		h[kh.Key] = append(h[kh.Key], string(kh.Value))
	}
	return entry{stream: t.stream, subject: m.Topic, position: m.Topic + "/" + strconv.Itoa(m.Partition) + "/" + strconv.FormatInt(m.Offset, 10),
		stored: m.Time, binding: envelope.Kafka,
		msg: broker.Message{Topic: m.Topic, Subject: m.Topic, Key: string(m.Key), ID: h.Get(kafkabroker.IDHeader), Header: h, Data: m.Value}}
}

// follow reads every partition of q's topics with a reader of its own
// from q.Since (from its end when zero), and passes the records to fn on
// the caller's goroutine.
func (k *kafkaLog) follow(ctx context.Context, q Query, fn func(entry) error) error {
	type start struct {
		t      kafkaTopic
		id     int
		offset int64
	}
	var starts []start
	for _, t := range kafkaTopics(q) {
		ps, err := k.partitions(ctx, t)
		if err != nil {
			return err
		}
		for _, kp := range ps {
			p, err := k.dialPart(ctx, t, kp.ID)
			if err != nil {
				return err
			}
			lo, hi, err := p.bounds(q)
			p.close()
			if err != nil {
				return err
			}
			if q.Since.IsZero() {
				lo = hi
			}
			starts = append(starts, start{t, kp.ID, lo})
		}
	}
	if len(starts) == 0 {
		return errors.New("no topic to read")
	}
	rctx, stop := context.WithCancel(ctx)
	entries := make(chan entry, 256)
	errs := make(chan error, len(starts))
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	for _, s := range starts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := k.readLive(rctx, s.t, s.id, s.offset, entries); err != nil && rctx.Err() == nil {
				errs <- err
			}
		}()
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-errs:
			return err
		case e := <-entries:
			if err := fn(e); err != nil {
				return err
			}
		}
	}
}

// readLive sends the records of a partition from offset on until ctx
// ends.
func (k *kafkaLog) readLive(ctx context.Context, t kafkaTopic, partition int, offset int64, out chan<- entry) error {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: k.brokers, Topic: t.topic, Partition: partition, Dialer: k.dialer,
		MaxBytes: maxFetchBytes, MaxWait: 500 * time.Millisecond})
	defer r.Close()
	if err := r.SetOffset(offset); err != nil {
		return fmt.Errorf("%s/%d at %d: %w", t.topic, partition, offset, err)
	}
	for {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("read %s/%d: %w", t.topic, partition, err)
		}
		select {
		case out <- kafkaEntry(t, m):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
