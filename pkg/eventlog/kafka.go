package eventlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
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
	tr, err := sec.Transport(o.clientID)
	if err != nil {
		return nil, fmt.Errorf("eventlog: %w", err)
	}
	k := &kafkaLog{brokers: brokers, dialer: d, transport: tr, opts: o}
	k.client = &kafka.Client{Addr: kafka.TCP(brokers...), Transport: tr}
	return &Log{b: k, opts: o}, nil
}

// kafkaLog reads history with a client, whose connections are pooled, and
// follows with a reader a partition.
type kafkaLog struct {
	brokers   []string
	dialer    *kafka.Dialer
	transport *kafka.Transport
	client    *kafka.Client
	opts      options
}

func (k *kafkaLog) binding() envelope.Binding { return envelope.Kafka }

func (k *kafkaLog) close() error {
	k.transport.CloseIdleConnections()
	return nil
}

// kafkaTopic is a topic a query reads.
type kafkaTopic struct {
	stream Stream
	topic  string
}

func (k *kafkaLog) topics(q Query) []kafkaTopic {
	var out []kafkaTopic
	if len(k.opts.kafkaTopics) > 0 {
		for _, t := range k.opts.kafkaTopics {
			s := Derived
			switch t {
			case envelope.IngressTopic:
				s = Raw
			case envelope.DeadLetterTopic:
				s = DeadLetter
			}
			out = append(out, kafkaTopic{s, t})
		}
		return out
	}
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

// kafkaPart is a partition a query reads, and the offsets [lo, hi) its
// times select.
type kafkaPart struct {
	t      kafkaTopic
	id     int
	lo, hi int64
}

// parts lists the partitions of q's topics (none of a topic that does not
// exist) with the range of offsets q's times select now.
func (k *kafkaLog) parts(ctx context.Context, q Query) ([]kafkaPart, error) {
	var names []string
	byName := map[string]kafkaTopic{}
	for _, t := range k.topics(q) {
		names = append(names, t.topic)
		byName[t.topic] = t
	}
	if len(names) == 0 {
		return nil, nil // no topic asks for every topic's metadata
	}
	md, err := k.client.Metadata(ctx, &kafka.MetadataRequest{Topics: names})
	if err != nil {
		return nil, fmt.Errorf("metadata of %v: %w", names, err)
	}
	var out []kafkaPart
	for _, mt := range md.Topics {
		if errors.Is(mt.Error, kafka.UnknownTopicOrPartition) {
			continue
		}
		if mt.Error != nil {
			return nil, fmt.Errorf("metadata of %s: %w", mt.Name, mt.Error)
		}
		for _, p := range mt.Partitions {
			out = append(out, kafkaPart{t: byName[mt.Name], id: p.ID})
		}
	}
	if len(out) == 0 {
		return nil, nil
	}
	if len(out) > k.opts.maxPartitions {
		return nil, fmt.Errorf("%w: %d partitions of %v, at most %d: read fewer streams", ErrQuery, len(out), names, k.opts.maxPartitions)
	}
	first, last, err := k.offsets(ctx, out, nil)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].lo, out[i].hi = first[i], last[i]
	}
	switch {
	case k.opts.kafkaOffset >= 0:
		for i := range out {
			out[i].lo = min(max(k.opts.kafkaOffset, first[i]), last[i])
		}
	case !q.Since.IsZero():
		at, _, err := k.offsets(ctx, out, &q.Since)
		if err != nil {
			return nil, err
		}
		for i := range out {
			if at[i] >= 0 {
				out[i].lo = min(max(at[i], first[i]), last[i])
			} else {
				out[i].lo = last[i]
			}
		}
	}
	if !q.Until.IsZero() {
		// Kafka's times are in milliseconds: the first record after
		// Until is at its next millisecond or later.
		after := q.Until.Truncate(time.Millisecond).Add(time.Millisecond)
		at, _, err := k.offsets(ctx, out, &after)
		if err != nil {
			return nil, err
		}
		for i := range out {
			if at[i] >= 0 {
				out[i].hi = min(max(at[i], first[i]), last[i])
			}
		}
	}
	return out, nil
}

// offsets asks for the first and last offsets of ps, or, given a time, for
// the offset of each one's first record stored then or later (-1: none).
func (k *kafkaLog) offsets(ctx context.Context, ps []kafkaPart, at *time.Time) (first, last []int64, err error) {
	reqs := map[string][]kafka.OffsetRequest{}
	for _, p := range ps {
		if at != nil {
			reqs[p.t.topic] = append(reqs[p.t.topic], kafka.TimeOffsetOf(p.id, *at))
		} else {
			reqs[p.t.topic] = append(reqs[p.t.topic], kafka.FirstOffsetOf(p.id), kafka.LastOffsetOf(p.id))
		}
	}
	res, err := k.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: reqs})
	if err != nil {
		return nil, nil, fmt.Errorf("list offsets: %w", err)
	}
	type key struct {
		topic string
		id    int
	}
	found := map[key]kafka.PartitionOffsets{}
	for topic, pos := range res.Topics {
		for _, po := range pos {
			if po.Error != nil {
				return nil, nil, fmt.Errorf("list offsets of %s/%d: %w", topic, po.Partition, po.Error)
			}
			found[key{topic, po.Partition}] = po
		}
	}
	first, last = make([]int64, len(ps)), make([]int64, len(ps))
	for i, p := range ps {
		po, ok := found[key{p.t.topic, p.id}]
		if !ok {
			return nil, nil, fmt.Errorf("list offsets of %s/%d: no answer", p.t.topic, p.id)
		}
		if at == nil {
			if po.FirstOffset < 0 || po.LastOffset < 0 {
				return nil, nil, fmt.Errorf("list offsets of %s/%d: no answer", p.t.topic, p.id)
			}
			first[i], last[i] = po.FirstOffset, po.LastOffset
			continue
		}
		first[i] = -1
		for off := range po.Offsets {
			if off >= 0 {
				first[i] = off
			}
		}
	}
	return first, last, nil
}

// read reads p's records [from, to) forward, fewer when the partition has
// gaps (compacted, transaction markers), and stops after the fetch that
// passes maxBytes (0: no bound). It returns the offset it got to.
func (k *kafkaLog) read(ctx context.Context, p kafkaPart, from, to int64, maxBytes int) ([]entry, int64, error) {
	var out []entry
	size := 0
	for from < to && (maxBytes == 0 || size < maxBytes) {
		n := len(out)
		next, err := k.fetch(ctx, p, from, to, &out)
		if err != nil {
			return nil, from, err
		}
		if next == from {
			return out, to, nil // no record left before to: a gap at the end
		}
		for _, e := range out[n:] {
			size += len(e.msg.Data)
		}
		from = next
	}
	return out, from, nil
}

// fetch reads one fetch of p's records from offset from, those before to,
// and returns the offset after the last one.
func (k *kafkaLog) fetch(ctx context.Context, p kafkaPart, from, to int64, out *[]entry) (int64, error) {
	fctx, cancel := context.WithTimeout(ctx, k.opts.readTimeout)
	defer cancel()
	res, err := k.client.Fetch(fctx, &kafka.FetchRequest{Topic: p.t.topic, Partition: p.id, Offset: from,
		MinBytes: 1, MaxBytes: maxFetchBytes, MaxWait: 100 * time.Millisecond})
	if err != nil {
		return from, fmt.Errorf("fetch %s/%d at %d: %w", p.t.topic, p.id, from, err)
	}
	if c, ok := res.Records.(io.Closer); ok {
		defer c.Close()
	}
	if errors.Is(res.Error, kafka.OffsetOutOfRange) {
		// Retention removed records since the range was taken: none to
		// read here.
		return from, nil
	}
	if res.Error != nil {
		return from, fmt.Errorf("fetch %s/%d at %d: %w", p.t.topic, p.id, from, res.Error)
	}
	next := from
	for {
		rec, err := res.Records.ReadRecord()
		if errors.Is(err, io.EOF) {
			return next, nil
		}
		if err != nil {
			return from, fmt.Errorf("read %s/%d at %d: %w", p.t.topic, p.id, next, err)
		}
		if rec.Offset < from { // a batch may start before the offset asked for
			continue
		}
		if rec.Offset >= to {
			return next, nil
		}
		e, err := recordEntry(p, rec)
		if err != nil {
			return from, err
		}
		*out = append(*out, e)
		next = rec.Offset + 1
	}
}

func recordEntry(p kafkaPart, rec *kafka.Record) (entry, error) {
	read := func(b kafka.Bytes) ([]byte, error) {
		if b == nil {
			return nil, nil
		}
		defer b.Close()
		return kafka.ReadAll(b)
	}
	key, err := read(rec.Key)
	if err != nil {
		return entry{}, fmt.Errorf("read %s/%d at %d: %w", p.t.topic, p.id, rec.Offset, err)
	}
	value, err := read(rec.Value)
	if err != nil {
		return entry{}, fmt.Errorf("read %s/%d at %d: %w", p.t.topic, p.id, rec.Offset, err)
	}
	m := kafka.Message{Topic: p.t.topic, Partition: p.id, Offset: rec.Offset, Time: rec.Time, Key: key, Value: value}
	for _, h := range rec.Headers {
		m.Headers = append(m.Headers, kafka.Header{Key: h.Key, Value: h.Value})
	}
	return kafkaEntry(p.t, m), nil
}

func (k *kafkaLog) cursors(ctx context.Context, q Query, newest bool) ([]cursor, error) {
	ps, err := k.parts(ctx, q)
	if err != nil {
		return nil, err
	}
	w := int64(k.opts.batch)
	var out []cursor
	for _, p := range ps {
		lo, hi := p.lo, p.hi
		source := p.t.topic + "/" + strconv.Itoa(p.id)
		after, paged := q.After[source]
		if paged {
			// Past what the page before passed.
			switch {
			case newest:
				hi = min(hi, after)
			case after == math.MaxInt64:
				// after+1 would wrap to the range's start.
				lo = hi
			default:
				lo = max(lo, after+1)
			}
		}
		if lo >= hi {
			if newest && !paged {
				out = append(out, endCursor(source, hi))
			}
			continue
		}
		c := &bufCursor{source: source, passed: lo - 1}
		if newest {
			c.passed = hi
			c.fill = func(ctx context.Context) ([]entry, bool, error) {
				from := max(lo, hi-w)
				es, _, err := k.read(ctx, p, from, hi, 0)
				if err != nil {
					return nil, false, err
				}
				es, dropped := keepNewest(nil, es, k.opts.maxBytes, -1)
				slices.Reverse(es)
				if dropped >= 0 {
					// Too many bytes in the window: its older part
					// next time.
					hi = dropped + 1
					return es, false, nil
				}
				hi = from
				return es, hi <= lo, nil
			}
		} else {
			c.fill = func(ctx context.Context) ([]entry, bool, error) {
				es, next, err := k.read(ctx, p, lo, min(hi, lo+w), k.opts.maxBytes)
				if err != nil {
					return nil, false, err
				}
				lo = next
				return es, lo >= hi, nil
			}
		}
		out = append(out, c)
	}
	return out, nil
}

func kafkaEntry(t kafkaTopic, m kafka.Message) entry {
	h := make(broker.Header, len(m.Headers))
	for _, kh := range m.Headers {
		h[kh.Key] = append(h[kh.Key], string(kh.Value))
	}
	return entry{stream: t.stream, subject: m.Topic, position: m.Topic + "/" + strconv.Itoa(m.Partition) + "/" + strconv.FormatInt(m.Offset, 10), seq: m.Offset,
		stored: m.Time, binding: envelope.Kafka,
		msg: broker.Message{Topic: m.Topic, Subject: m.Topic, Key: string(m.Key), ID: h.Get(kafkabroker.IDHeader), Header: h, Data: m.Value}}
}

// follow reads every partition of q's topics with a reader of its own
// from q.Since (from its end when zero), and passes the records to fn on
// the caller's goroutine. With a replay budget, a partition reads its
// replay (up to the end it had at the call) by fetches, each within what
// it could take of the budget, and its reader starts after it: at the
// end when the budget ran out first.
func (k *kafkaLog) follow(ctx context.Context, q Query, replay *budget, fn func(entry) error, skipped func(int64)) error {
	ps, err := k.parts(ctx, q)
	if err != nil {
		return err
	}
	if len(ps) == 0 {
		return errors.New("no topic to read")
	}
	rctx, stop := context.WithCancel(ctx)
	entries := make(chan entry, 256)
	errs := make(chan error, len(ps))
	skips := make(chan int64, len(ps))
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	for _, p := range ps {
		start := p.lo
		if q.Since.IsZero() && k.opts.kafkaOffset < 0 {
			start = p.hi
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if replay != nil && start < p.hi {
				var passed int64
				if start, passed, err = k.replay(rctx, p, start, replay, entries); err == nil && passed > 0 {
					skips <- passed
				}
			}
			if err == nil {
				err = k.readLive(rctx, p.t, p.id, start, entries)
			}
			if err != nil && rctx.Err() == nil {
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
		case n := <-skips:
			skipped(n)
		case e := <-entries:
			if err := fn(e); err != nil {
				return err
			}
		}
	}
}

// replay sends p's records from offset from up to p.hi, the end it had
// when the follow started, as long as the budget lasts. It returns where
// the live read starts and how many offsets it passed over.
func (k *kafkaLog) replay(ctx context.Context, p kafkaPart, from int64, b *budget, out chan<- entry) (int64, int64, error) {
	for from < p.hi {
		n := b.take(int(min(int64(k.opts.batch), p.hi-from)))
		if n == 0 {
			return p.hi, p.hi - from, nil
		}
		es, next, err := k.read(ctx, p, from, from+int64(n), k.opts.maxBytes)
		b.give(n - len(es))
		if err != nil {
			return from, 0, err
		}
		for _, e := range es {
			select {
			case out <- e:
			case <-ctx.Done():
				return from, 0, ctx.Err()
			}
		}
		from = next
	}
	return from, 0, nil
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
