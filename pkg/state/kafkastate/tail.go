package kafkastate

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/broker/kafkabroker"
)

// Fetch settings of the tailers. A fetch waits at the broker until a record
// arrives, so fetchWait only sets how often an idle partition is asked.
const (
	fetchWait     = time.Second
	fetchMaxBytes = 4 << 20
)

// topic is one state topic: its partitions and the table its records go to.
type topic struct {
	name  string
	parts []*partition
	ids   []int // 0 to n-1, for partitionOf
	table table
	// kick wakes the topic's prober when a partition has a probe pending.
	kick chan struct{}
}

func newTopic(name string, n int) *topic {
	t := &topic{name: name, ids: make([]int, n), kick: make(chan struct{}, 1)}
	for i := range n {
		t.ids[i] = i
		t.parts = append(t.parts, &partition{t: t, id: i, writes: make(chan *pendingWrite, maxBatchRecords)})
	}
	return t
}

// partFor is the partition that holds records hashed by what.
func (t *topic) partFor(what string) *partition {
	return t.parts[partitionOf(what, t.ids)]
}

// partition is one partition of a state topic, as far as this Store has
// read it.
type partition struct {
	t  *topic
	id int
	// writes queues the records to append, for the partition's writer
	// (Store.writer), which sends those waiting together.
	writes chan *pendingWrite

	mu sync.Mutex
	// pos is the next offset to read: every record below it is applied.
	pos int64
	// moved is closed when pos moves; made only when someone waits, so
	// that restoring a million records does not make a million channels.
	moved chan struct{}
	// pending is the end offset request that has not been sent yet: a
	// caller joins it, as its answer is at least as late as the caller.
	pending *probe
	// probedAt and probedEnd are the last end offset learnt and when it was
	// asked for, for Config.CatchUpCache.
	probedAt  time.Time
	probedEnd int64
}

func (p *partition) String() string { return p.t.name + "/" + strconv.Itoa(p.id) }

// advance records that every record below next is applied.
func (p *partition) advance(next int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if next > p.pos {
		p.pos = next
		if p.moved != nil {
			close(p.moved)
			p.moved = nil
		}
	}
}

// rewind moves pos back to next, for a log that lost the records above it:
// the records written there from now on must be read before a writer
// waiting for them goes on.
func (p *partition) rewind(next int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pos = min(p.pos, next)
}

// probe is one request for a partition's end offset, shared by the callers
// that joined it before it was sent.
type probe struct {
	done chan struct{}
	end  int64
	err  error
}

// waitFor waits until the records of p below offset end are applied.
func (s *Store) waitFor(ctx context.Context, p *partition, end int64) error {
	for {
		p.mu.Lock()
		pos := p.pos
		if pos >= end {
			p.mu.Unlock()
			return nil
		}
		if p.moved == nil {
			p.moved = make(chan struct{})
		}
		moved := p.moved
		p.mu.Unlock()
		select {
		case <-moved:
		case <-ctx.Done():
			return fmt.Errorf("wait for %s to reach offset %d (at %d): %w", p, end, pos, kafkabroker.Classify(ctx.Err()))
		case <-s.ctx.Done():
			return ErrClosed
		}
	}
}

// catchUp makes the local view of p at least as recent as the call: it
// learns p's end offset with a request sent after the call began, then
// waits until the tailer has applied every record below it. Every write
// acknowledged before the call is then applied, whichever process made it.
func (s *Store) catchUp(ctx context.Context, p *partition) error {
	end, err := s.endOffset(ctx, p)
	if err != nil {
		return err
	}
	return s.waitFor(ctx, p, end)
}

func (s *Store) endOffset(ctx context.Context, p *partition) (int64, error) {
	p.mu.Lock()
	if s.cfg.CatchUpCache > 0 && !p.probedAt.IsZero() && time.Since(p.probedAt) < s.cfg.CatchUpCache {
		end := p.probedEnd
		p.mu.Unlock()
		return end, nil
	}
	pr := p.pending
	if pr == nil {
		pr = &probe{done: make(chan struct{})}
		p.pending = pr
	}
	p.mu.Unlock()
	select {
	case p.t.kick <- struct{}{}:
	default: // the prober is kicked already and will see this probe
	}
	select {
	case <-pr.done:
		if pr.err != nil {
			return 0, fmt.Errorf("end offset of %s: %w", p, kafkabroker.Classify(pr.err))
		}
		return pr.end, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("end offset of %s: %w", p, kafkabroker.Classify(ctx.Err()))
	case <-s.ctx.Done():
		return 0, ErrClosed
	}
}

// probe answers the pending end offset requests of t's partitions, all of
// them in one ListOffsets request per round, so that concurrent callers
// cost one round trip.
func (s *Store) probe(t *topic) {
	defer s.wg.Done()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.kick:
		}
		var parts []*partition
		var probes []*probe
		var ids []int
		for _, p := range t.parts {
			p.mu.Lock()
			if pr := p.pending; pr != nil {
				parts, probes, ids = append(parts, p), append(probes, pr), append(ids, p.id)
				p.pending = nil
			}
			p.mu.Unlock()
		}
		if len(parts) == 0 {
			continue
		}
		sent := time.Now()
		last, err := s.endOffsets(s.ctx, t, ids)
		for i, p := range parts {
			pr := probes[i]
			if err != nil {
				pr.err = err
			} else {
				pr.end = last[p.id]
				p.mu.Lock()
				if sent.After(p.probedAt) {
					p.probedAt, p.probedEnd = sent, pr.end
				}
				p.mu.Unlock()
			}
			close(pr.done)
		}
	}
}

// tail applies p's records to its table, in offset order, until Close.
func (s *Store) tail(p *partition) {
	defer s.wg.Done()
	p.mu.Lock()
	next := p.pos
	p.mu.Unlock()
	log := s.log.With(zap.String("topic", p.t.name), zap.Int("partition", p.id))
	empty := 0 // fetches in a row that returned nothing below the high watermark
	for attempt := 0; s.ctx.Err() == nil; {
		n, read, hwm, err := s.fetch(p, next)
		next = n
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			lvl := zap.DebugLevel
			if attempt >= 3 {
				lvl = zap.WarnLevel
			}
			log.Check(lvl, "state tailer fetch failed; retrying").Write(zap.Int64("offset", next), zap.Int("attempt", attempt), zap.Error(err))
			_ = sleep(s.ctx, backoff(attempt))
			attempt++
			continue
		}
		attempt = 0
		// The broker answers at once when a record at or after next exists;
		// twice nothing with the high watermark further means that the
		// range holds nothing a reader gets (transaction markers), which
		// must not hold back the callers waiting for the watermark.
		if read || hwm <= next {
			empty = 0
		} else if empty++; empty >= 2 {
			next, empty = hwm, 0
		}
		p.advance(next)
	}
}

// fetch reads p's records from offset next on, applies them and returns the
// offset after the last one, whether any was read, and the high watermark.
func (s *Store) fetch(p *partition, next int64) (int64, bool, int64, error) {
	ctx, cancel := context.WithTimeout(s.ctx, fetchWait+requestTimeout)
	defer cancel()
	resp, err := s.client.Fetch(ctx, &kafka.FetchRequest{
		Topic: p.t.name, Partition: p.id, Offset: next,
		MinBytes: 1, MaxBytes: fetchMaxBytes, MaxWait: fetchWait,
	})
	if err != nil {
		return next, false, 0, fmt.Errorf("fetch %s at %d: %w", p, next, err)
	}
	if c, ok := resp.Records.(io.Closer); ok {
		defer c.Close()
	}
	switch {
	case errors.Is(resp.Error, kafka.OffsetOutOfRange):
		// Retention dropped records before we read them (only the dedup
		// topic deletes): they were older than the window, skip them.
		first, last, err := s.offsets(ctx, p.t, []int{p.id})
		if err != nil {
			return next, false, 0, err
		}
		if f := first[p.id]; f > next {
			s.log.Info("state records removed by retention before they were read", zap.String("topic", p.t.name),
				zap.Int("partition", p.id), zap.Int64("from", next), zap.Int64("to", f))
			return f, true, resp.HighWatermark, nil
		}
		if end := last[p.id]; end < next {
			// The log lost records this process had read (an unclean
			// leader election, or the topic deleted and made again):
			// read on from its end, and let writers wait for the
			// tailer again, as the offsets they get are below what was
			// read.
			s.log.Error("state topic is shorter than what was read from it: records are lost; reading on from its end",
				zap.String("topic", p.t.name), zap.Int("partition", p.id), zap.Int64("read", next), zap.Int64("end", end))
			p.rewind(end)
			return end, false, end, nil
		}
		return next, false, 0, fmt.Errorf("fetch %s at %d: %w", p, next, resp.Error)
	case resp.Error != nil:
		return next, false, 0, fmt.Errorf("fetch %s at %d: %w", p, next, resp.Error)
	}
	read := false
	for {
		rec, err := resp.Records.ReadRecord()
		if errors.Is(err, io.EOF) {
			return next, read, resp.HighWatermark, nil
		}
		if err != nil {
			return next, read, 0, fmt.Errorf("read %s at %d: %w", p, next, err)
		}
		if rec.Offset < next { // a batch may start before the offset asked for
			continue
		}
		key, value, err := recordBytes(rec)
		if err != nil {
			return next, read, 0, fmt.Errorf("read %s at %d: %w", p, rec.Offset, err)
		}
		p.t.table.apply(p.id, key, value)
		next, read = rec.Offset+1, true
		p.advance(next) // a writer waiting for this record need not wait for the batch
	}
}

// recordBytes copies a record's key and value (nil for a tombstone) out of
// the fetch buffers.
func recordBytes(rec *kafka.Record) (key, value []byte, err error) {
	if rec.Key != nil {
		defer rec.Key.Close()
	}
	if rec.Value != nil {
		defer rec.Value.Close()
	}
	if key, err = kafka.ReadAll(rec.Key); err != nil {
		return nil, nil, err
	}
	if value, err = kafka.ReadAll(rec.Value); err != nil {
		return nil, nil, err
	}
	return key, value, nil
}
