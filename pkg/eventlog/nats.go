package eventlog

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/envelope"
)

const (
	// maxBatchBytes is the most message bytes one cursor holds by default,
	// and stops a direct get's batch early (one message always
	// comes).
	maxBatchBytes = 16 << 20
	// maxWindow bounds the sequences one backward read spans: a filter
	// that matches little widens the window up to it.
	maxWindow = 4096
	// pollEvery is how often Follow looks for new messages when no live
	// one told it to; recheck is how soon it looks again after one did
	// and the stream had not stored it yet.
	pollEvery = time.Second
	recheck   = 25 * time.Millisecond
)

// errEnd stops a direct get at the end of the range.
var errEnd = errors.New("end of range")

// NewNATS reads wahook's streams through nc, which stays the caller's: a
// read-only subscriber's connection is enough (direct gets, plain
// subscriptions; no consumer is created).
func NewNATS(nc *nats.Conn, opts ...Option) (*Log, error) {
	if nc == nil {
		return nil, errors.New("eventlog: no NATS connection")
	}
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("eventlog: %w", err)
	}
	return &Log{b: &natsLog{nc: nc, js: js, opts: o}, opts: o}, nil
}

type natsLog struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	opts options
}

func (n *natsLog) close() error { return nil }

func (n *natsLog) binding() envelope.Binding { return envelope.NATS }

// natsSource is the part of a JetStream stream a query reads.
type natsSource struct {
	stream  Stream
	name    string
	subject string
}

// sources are the streams and subject filters of q, or those of the
// Log's subject.
func (n *natsLog) sources(ctx context.Context, q Query) ([]natsSource, error) {
	if n.opts.natsSubject == "" {
		return natsSources(q), nil
	}
	subj := n.opts.natsSubject
	names := n.js.StreamNames(ctx, jetstream.WithStreamListSubject(subj))
	var out []natsSource
	for name := range names.Name() {
		s := Stream(name)
		switch name {
		case natsbroker.IngressStream:
			s = Raw
		case natsbroker.DerivedStream:
			s = Derived
		case natsbroker.DeadLetterStream:
			s = DeadLetter
		}
		out = append(out, natsSource{s, name, subj})
	}
	if err := names.Err(); err != nil {
		return nil, fmt.Errorf("streams holding %s: %w", subj, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no stream holds %s", subj)
	}
	// Query's order, whatever the server's.
	slices.SortFunc(out, func(a, b natsSource) int { return slices.Index(Streams, a.stream) - slices.Index(Streams, b.stream) })
	return out, nil
}

// natsSources are the streams and subject filters of q.
func natsSources(q Query) []natsSource {
	tok := func(s string) string {
		if s == "" {
			return "*"
		}
		return envelope.Token(s)
	}
	var out []natsSource
	for _, s := range q.Streams {
		switch s {
		case Raw:
			subj := natsbroker.IngressSubjects
			if q.Provider != "" || q.Channel != "" {
				subj = envelope.IngressTopic + "." + tok(q.Provider) + "." + tok(q.Channel) + ".>"
			}
			out = append(out, natsSource{Raw, natsbroker.IngressStream, subj})
		case Derived:
			// wahook.{stream}.{provider}.{channel}
			out = append(out, natsSource{Derived, natsbroker.DerivedStream, envelope.DerivedTopic("*") + "." + tok(q.Provider) + "." + tok(q.Channel)})
		case DeadLetter:
			subj := natsbroker.DeadLetterSubjects
			if q.Provider != "" {
				subj = envelope.DeadLetterSubject(q.Provider)
			}
			out = append(out, natsSource{DeadLetter, natsbroker.DeadLetterStream, subj})
		}
	}
	return out
}

// lastSeq is the last sequence src's stream holds, and false when there
// is no such stream.
func (n *natsLog) lastSeq(ctx context.Context, src natsSource) (uint64, bool, error) {
	s, err := n.js.Stream(ctx, src.name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("stream %s: %w", src.name, err)
	}
	return s.CachedInfo().State.LastSeq, true, nil
}

// seqAt is the sequence of src's first message stored at t or later (the
// first one kept when t is zero), 0 when there is none.
func (n *natsLog) seqAt(ctx context.Context, src natsSource, t time.Time) (uint64, error) {
	req := natsbroker.DirectRequest{Seq: 1, NextBySubject: src.subject, Batch: 1}
	if !t.IsZero() {
		req.Seq, req.StartTime = 0, &t
	}
	seq, err := n.first(ctx, src, req)
	if err != nil {
		return 0, fmt.Errorf("%s at %s: %w", src.name, t.Format(time.RFC3339Nano), err)
	}
	return seq, nil
}

// seqFrom is the sequence of src's first message at seq or after, 0 when
// there is none.
func (n *natsLog) seqFrom(ctx context.Context, src natsSource, seq uint64) (uint64, error) {
	got, err := n.first(ctx, src, natsbroker.DirectRequest{Seq: seq, NextBySubject: src.subject, Batch: 1})
	if err != nil {
		return 0, fmt.Errorf("%s from %d: %w", src.name, seq, err)
	}
	return got, nil
}

// first is the sequence of the message a one-message request gets, 0 when
// none.
func (n *natsLog) first(ctx context.Context, src natsSource, req natsbroker.DirectRequest) (uint64, error) {
	var seq uint64
	ctx, cancel := context.WithTimeout(ctx, n.opts.readTimeout)
	defer cancel()
	_, _, err := natsbroker.DirectBatch(ctx, n.nc, src.name, req, func(sm natsbroker.StoredMsg) error {
		seq = sm.Sequence
		return nil
	})
	return seq, err
}

func (n *natsLog) cursors(ctx context.Context, q Query, newest bool) ([]cursor, error) {
	srcs, err := n.sources(ctx, q)
	if err != nil {
		return nil, err
	}
	var out []cursor
	for _, src := range srcs {
		last, ok, err := n.lastSeq(ctx, src)
		if err != nil {
			return nil, err
		}
		_, paged := q.After[src.name]
		if !ok || last == 0 {
			if newest && !paged {
				out = append(out, endCursor(src.name, int64(last)+1))
			}
			continue
		}
		// From the first message that matches: a backward read stops
		// there instead of looking further back window by window.
		lo, err := n.seqAt(ctx, src, q.Since)
		if err != nil {
			return nil, err
		}
		hi := last
		if lo == 0 || lo > hi {
			if newest && !paged {
				out = append(out, endCursor(src.name, int64(hi)+1))
			}
			continue
		}
		if !q.Until.IsZero() {
			after, err := n.seqAt(ctx, src, q.Until.Add(time.Nanosecond))
			if err != nil {
				return nil, err
			}
			if after != 0 && after-1 < hi {
				hi = after - 1
			}
		}
		if after, ok := q.After[src.name]; ok {
			// Past what the page before passed.
			if newest {
				hi = min(hi, uint64(max(after-1, 0)))
			} else {
				lo = max(lo, uint64(after+1))
			}
		}
		if hi < lo {
			if newest && !paged {
				out = append(out, endCursor(src.name, int64(hi)+1))
			}
			continue
		}
		if newest {
			c := n.backward(src, lo, hi)
			c.source, c.passed = src.name, int64(hi)+1
			out = append(out, c)
		} else {
			r := &natsRead{n: n, src: src, seq: lo, end: hi}
			out = append(out, &bufCursor{fill: r.fill, source: src.name, passed: int64(lo) - 1})
		}
	}
	return out, nil
}

// natsRead reads a stream forward from seq (or from start, a time, first),
// up to end (no end when 0).
type natsRead struct {
	n   *natsLog
	src natsSource
	seq uint64
	// start, when set, is where the first read starts instead of seq;
	// when nothing is stored from then, reading goes on from fallback.
	start    *time.Time
	fallback uint64
	end      uint64
	// limit, when above 0, is the batch of the next read instead of the
	// Log's; replayEnd is the last sequence of a follow's replay.
	limit     int
	replayEnd uint64
}

// replaying tells whether a follow's read has replay left to read.
func (r *natsRead) replaying() bool { return r.start != nil || r.seq <= r.replayEnd }

// skip moves a follow's read past its replay, to the live end, and
// returns how many sequences it passed over from the first one its
// subject holds.
func (n *natsLog) skip(ctx context.Context, r *natsRead) (int64, error) {
	var first uint64
	var err error
	if r.start != nil {
		first, err = n.seqAt(ctx, r.src, *r.start)
	} else {
		first, err = n.seqFrom(ctx, r.src, r.seq)
	}
	if err != nil {
		return 0, err
	}
	r.seq, r.start = r.replayEnd+1, nil
	if first == 0 || first > r.replayEnd {
		return 0, nil
	}
	return int64(r.replayEnd - first + 1), nil
}

// fill reads the next batch and tells whether it reached the end, or,
// without one, what is stored now.
func (r *natsRead) fill(ctx context.Context) ([]entry, bool, error) {
	batch := r.n.opts.batch
	if r.limit > 0 {
		batch = r.limit
	}
	req := natsbroker.DirectRequest{Seq: r.seq, NextBySubject: r.src.subject, Batch: batch, MaxBytes: r.n.opts.maxBytes}
	if r.start != nil {
		req.Seq, req.StartTime = 0, r.start
	}
	ctx, cancel := context.WithTimeout(ctx, r.n.opts.readTimeout)
	defer cancel()
	var out []entry
	last, pending, err := natsbroker.DirectBatch(ctx, r.n.nc, r.src.name, req, func(sm natsbroker.StoredMsg) error {
		if r.end > 0 && sm.Sequence > r.end {
			return errEnd
		}
		out = append(out, natsEntry(r.src, sm))
		return nil
	})
	if errors.Is(err, errEnd) {
		return out, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %s: %w", r.src.name, err)
	}
	switch {
	case last > 0:
		r.seq, r.start = last+1, nil
	case r.start != nil:
		r.seq, r.start = r.fallback, nil
	}
	return out, pending == 0 || last == 0 || r.end > 0 && last >= r.end, nil
}

// backward reads src from hi down to lo, a window of sequences at a time.
func (n *natsLog) backward(src natsSource, lo, hi uint64) *bufCursor {
	w := uint64(n.opts.batch)
	return &bufCursor{fill: func(ctx context.Context) ([]entry, bool, error) {
		from := lo
		if hi-lo+1 > w {
			from = hi - w + 1
		}
		r := &natsRead{n: n, src: src, seq: from, end: hi}
		var out []entry
		dropped := int64(-1)
		for {
			es, done, err := r.fill(ctx)
			if err != nil {
				return nil, false, err
			}
			out, dropped = keepNewest(out, es, n.opts.maxBytes, dropped)
			if done {
				break
			}
		}
		slices.Reverse(out)
		if dropped >= 0 {
			// Too many bytes in the window: its older part next time.
			hi = uint64(dropped)
			return out, false, nil
		}
		if len(out) == 0 {
			w = min(w*4, max(maxWindow, uint64(n.opts.batch)))
		} else {
			w = uint64(n.opts.batch)
		}
		done := from <= lo
		hi = from - 1
		return out, done, nil
	}}
}

func natsEntry(src natsSource, sm natsbroker.StoredMsg) entry {
	return entry{stream: src.stream, subject: sm.Subject, position: src.name + "/" + strconv.FormatUint(sm.Sequence, 10), seq: int64(sm.Sequence), stored: sm.Time,
		msg:     broker.Message{Subject: sm.Subject, ID: sm.Header.Get(jetstream.MsgIDHeader), Header: broker.Header(sm.Header), Data: sm.Data},
		binding: envelope.NATS}
}

// follow subscribes to q's subjects only to learn that something was
// stored, and reads what was with direct gets: every record has its
// position and stored time, and none is read twice.
//
// So a live message comes twice over the wire, rung then read, and this
// is on purpose. The message of a plain subscription is the one
// published: it carries no stream sequence and no stored time, so it
// could give no Position, not be put in order with what the replay
// reads, nor tell a message stored from one the stream refused. An
// ordered consumer would deliver each once with both, but creating one
// is a JetStream request ($JS.API.CONSUMER.CREATE) that a read-only
// subscriber may not make (natsbroker.SubscriberReads), and a consumer
// is state on the server that a reader should not leave behind.
//
// A replay budget is taken a batch at a time before each read of the
// replay, so that no read goes past it; once it is spent, a source with
// replay left skips to its live end.
func (n *natsLog) follow(ctx context.Context, q Query, replay *budget, fn func(entry) error, skipped func(int64)) error {
	bell := make(chan struct{}, 1)
	ring := func(*nats.Msg) {
		select {
		case bell <- struct{}{}:
		default:
		}
	}
	srcs, err := n.sources(ctx, q)
	if err != nil {
		return err
	}
	var reads []*natsRead
	for _, src := range srcs {
		sub, err := n.nc.Subscribe(src.subject, ring)
		if err != nil {
			return fmt.Errorf("subscribe %s: %w", src.subject, err)
		}
		defer func() { _ = sub.Unsubscribe() }()
	}
	if err := n.nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	for _, src := range srcs {
		// What the stream holds now came before the subscription or
		// rang already: from now is from the next sequence.
		last, ok, err := n.lastSeq(ctx, src)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		r := &natsRead{n: n, src: src, seq: last + 1}
		if !q.Since.IsZero() {
			since := q.Since
			r.start, r.fallback, r.replayEnd = &since, last+1, last
		}
		reads = append(reads, r)
	}
	poll := time.NewTicker(pollEvery)
	defer poll.Stop()
	again := time.NewTimer(recheck)
	defer again.Stop()
	rung := false
	for {
		found := false
		for _, r := range reads {
			for {
				if replay != nil && r.replaying() {
					if r.limit = replay.take(n.opts.batch); r.limit == 0 {
						passed, err := n.skip(ctx, r)
						if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
							break
						}
						if err != nil {
							return err
						}
						if passed > 0 {
							skipped(passed)
						}
					}
				}
				es, done, err := r.fill(ctx)
				if r.limit > 0 {
					read := 0
					for _, e := range es {
						if uint64(e.seq) <= r.replayEnd {
							read++
						}
					}
					replay.give(r.limit - read)
					r.limit = 0
				}
				if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
					// No answer in time: reading by sequence, the
					// next look reads the same from the same place.
					break
				}
				if err != nil {
					return err
				}
				for _, e := range es {
					if err := fn(e); err != nil {
						return err
					}
				}
				found = found || len(es) > 0
				if n.opts.afterBatch != nil {
					n.opts.afterBatch()
				}
				if done {
					break
				}
			}
		}
		if rung && !found {
			// A live message can come before its stream stored it:
			// look once more shortly.
			again.Reset(recheck)
		}
		rung = false
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-bell:
			rung = true
		case <-poll.C:
		case <-again.C:
		}
	}
}
