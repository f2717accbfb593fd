package main

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/envelope"
)

// errHistoryEnd stops a history-only read at the end it had at start.
var errHistoryEnd = errors.New("end of history")

func natsItem(m *nats.Msg) item {
	return item{subject: m.Subject, binding: envelope.NATS,
		msg: broker.Message{Subject: m.Subject, ID: m.Header.Get(jetstream.MsgIDHeader), Header: broker.Header(m.Header), Data: m.Data}}
}

const (
	// defaultHistoryBatch is how many stored events one direct get asks
	// for; historyMaxBytes stops a batch early (one event always comes).
	defaultHistoryBatch = 256
	historyMaxBytes     = 16 << 20
	// maxSeamBytes bounds the live events held while the history is read.
	maxSeamBytes = 64 << 20
)

// replayer prints the stored events matching a subject, stream by stream,
// then the live ones. Subscribers may not create consumers
// (docs/security.md), so it reads the history with direct gets and follows with a
// plain subscription, made before the history is read: what is published
// meanwhile arrives live and is held (seam) until the history is read to
// its end. An event both read in the history and received live is printed
// once, from the history, whichever copy comes first (seam.printed). An
// event published just before the subscription is in the history unless
// the stream has not stored it yet when the history ends.
type replayer struct {
	nc      *nats.Conn
	c       config
	streams []string
	// base is each stream's last sequence before the subscription: what
	// it stored up to there cannot arrive live.
	base map[string]uint64
	seam *seam
	sub  *nats.Subscription
}

// startReplay finds the streams holding c.subject and subscribes to the
// live events.
func startReplay(ctx context.Context, nc *nats.Conn, c config) (*replayer, error) {
	limit := c.seamBytes
	if limit == 0 {
		limit = maxSeamBytes
	}
	r := &replayer{nc: nc, c: c, base: map[string]uint64{}, seam: newSeam(limit)}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	lister := js.StreamNames(ctx, jetstream.WithStreamListSubject(c.subject))
	for name := range lister.Name() {
		r.streams = append(r.streams, name)
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("streams holding %s: %w", c.subject, err)
	}
	if len(r.streams) == 0 {
		return nil, fmt.Errorf("no stream holds %s", c.subject)
	}
	for _, name := range r.streams {
		s, err := js.Stream(ctx, name)
		if err != nil {
			return nil, fmt.Errorf("replay %s: %w", name, err)
		}
		r.base[name] = s.CachedInfo().State.LastSeq
	}
	if c.history {
		return r, nil
	}
	if r.sub, err = nc.Subscribe(c.subject, r.seam.add); err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", c.subject, err)
	}
	// The seam bounds what is held, not nats.go's pending limits.
	if err := r.sub.SetPendingLimits(-1, -1); err != nil {
		_ = r.sub.Unsubscribe()
		return nil, fmt.Errorf("subscribe %s: %w", c.subject, err)
	}
	if err := nc.FlushWithContext(ctx); err != nil {
		_ = r.sub.Unsubscribe()
		return nil, fmt.Errorf("subscribe %s: %w", c.subject, err)
	}
	return r, nil
}

// run sends msgs the history, then the live events, until ctx ends; with
// c.history, the history up to the end it had at start only.
func (r *replayer) run(ctx context.Context, msgs chan<- item) error {
	if r.sub != nil {
		defer func() { _ = r.sub.Unsubscribe() }()
	}
	send := func(m *nats.Msg) error {
		select {
		case msgs <- natsItem(m):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	batch := r.c.historyBatch
	if batch == 0 {
		batch = defaultHistoryBatch
	}
	for _, stream := range r.streams {
		req := natsbroker.DirectRequest{Seq: 1, NextBySubject: r.c.subject, Batch: batch, MaxBytes: historyMaxBytes}
		if !r.c.all {
			start := time.Now().Add(-r.c.since)
			req.Seq, req.StartTime = 0, &start
		}
		for {
			last, pending, err := natsbroker.DirectBatch(ctx, r.nc, stream, req, func(sm natsbroker.StoredMsg) error {
				if r.sub == nil && sm.Sequence > r.base[stream] {
					return errHistoryEnd
				}
				m := &nats.Msg{Subject: sm.Subject, Header: sm.Header, Data: sm.Data}
				r.seam.printed(seamKey(m), sm.Sequence > r.base[stream])
				return send(m)
			})
			if errors.Is(err, errHistoryEnd) {
				break
			}
			if err != nil {
				return fmt.Errorf("replay %s: %w", stream, err)
			}
			if r.c.afterBatch != nil {
				r.c.afterBatch()
			}
			if pending == 0 || last == 0 || r.sub == nil && last >= r.base[stream] {
				break
			}
			req = natsbroker.DirectRequest{Seq: last + 1, NextBySubject: r.c.subject, Batch: batch, MaxBytes: historyMaxBytes}
		}
	}
	if r.sub == nil {
		return nil
	}
	if r.c.atSeam != nil {
		r.c.atSeam()
	}
	for {
		m, err := r.seam.next(ctx)
		if err != nil {
			return err
		}
		if err := send(m); err != nil {
			return err
		}
	}
}

// seamKey tells an event apart from others on its subject: its
// Nats-Msg-Id, which every wahook event has, else its CloudEvent id, else
// its data.
func seamKey(m *nats.Msg) string {
	id := m.Header.Get(jetstream.MsgIDHeader)
	if id == "" {
		id = m.Header.Get("ce-id")
	}
	if id == "" {
		sum := sha256.Sum256(m.Data)
		id = "sha256:" + hex.EncodeToString(sum[:])
	}
	return m.Subject + "\x00" + id
}

// maxRecent bounds the keys of events the history printed that may still
// arrive live.
const maxRecent = 1 << 16

// seam holds live events in arrival order, up to limit bytes (the oldest
// go first: they are in the stream, which the history reads to its end),
// and drops those the history printed.
type seam struct {
	mu    sync.Mutex
	limit int
	bytes int
	queue *list.List // of *nats.Msg
	index map[string][]*list.Element
	added chan struct{}
	// recent are the keys of events stored after the subscription that
	// the history printed, oldest first: their live copies may come
	// later (nats.go hands the history and the live events to different
	// goroutines; in a cluster they take different routes).
	recent     map[string]bool
	recentFIFO []string
}

func newSeam(limit int) *seam {
	return &seam{limit: limit, queue: list.New(), index: map[string][]*list.Element{}, added: make(chan struct{}, 1),
		recent: map[string]bool{}}
}

func msgBytes(m *nats.Msg) int { return len(m.Subject) + len(m.Data) }

// add holds m, unless the history printed it; it is the subscription's
// handler.
func (s *seam) add(m *nats.Msg) {
	s.mu.Lock()
	k := seamKey(m)
	if s.recent[k] {
		s.mu.Unlock()
		return
	}
	s.index[k] = append(s.index[k], s.queue.PushBack(m))
	s.bytes += msgBytes(m)
	for s.bytes > s.limit && s.queue.Len() > 1 {
		s.remove(s.queue.Front())
	}
	s.mu.Unlock()
	select {
	case s.added <- struct{}{}:
	default:
	}
}

// remove drops e; s.mu is held.
func (s *seam) remove(e *list.Element) {
	m := s.queue.Remove(e).(*nats.Msg)
	s.bytes -= msgBytes(m)
	k := seamKey(m)
	rest := s.index[k][:0]
	for _, o := range s.index[k] {
		if o != e {
			rest = append(rest, o)
		}
	}
	if len(rest) == 0 {
		delete(s.index, k)
	} else {
		s.index[k] = rest
	}
}

// printed drops the held copies of the event with key k, which the
// history printed, and, when it was stored after the subscription, any
// copy still to come.
func (s *seam) printed(k string, recent bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.index[k]) > 0 {
		s.remove(s.index[k][0])
	}
	if !recent || s.recent[k] {
		return
	}
	s.recent[k] = true
	s.recentFIFO = append(s.recentFIFO, k)
	if len(s.recentFIFO) > maxRecent {
		delete(s.recent, s.recentFIFO[0])
		s.recentFIFO = s.recentFIFO[1:]
	}
}

// next takes the oldest held event, waiting for one.
func (s *seam) next(ctx context.Context) (*nats.Msg, error) {
	for {
		s.mu.Lock()
		if e := s.queue.Front(); e != nil {
			m := e.Value.(*nats.Msg)
			s.remove(e)
			s.mu.Unlock()
			return m, nil
		}
		s.mu.Unlock()
		select {
		case <-s.added:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}
