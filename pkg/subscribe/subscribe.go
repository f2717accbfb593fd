// Package subscribe reads wahook's derived streams from NATS JetStream or
// Kafka as CloudEvents, for services that subscribe to them: it decodes the
// binary-mode headers (percent-encoded ce-* on NATS, ce_* on Kafka) with
// the envelope package that wrote them, drops an event whose id it has
// handled already, and acknowledges (NATS) or commits (Kafka) an event only
// after the handler returned nil, so every event is handled at least once.
// Data decodes an event's data into its typed struct.
//
// Duplicates are part of the contract: a deriver that crashes between
// publishing and acknowledging derives the same events again, with the same
// ids, and a replay derives them all again. Deduplication here is by
// CloudEvent id within a bounded window (MemoryDedup); a subscriber whose
// effects must never repeat across restarts plugs in a durable Dedup.
package subscribe

import (
	"container/list"
	"context"
	"sync"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Handler handles one event. Returning nil acknowledges it; an error has
// it delivered again after Options.RetryDelay (NATS: a negative
// acknowledgement with that delay; Kafka: retried in place, holding the
// partition, so that a chat's events stay in order).
type Handler func(ctx context.Context, ev event.Event) error

// Dedup remembers the ids of the events handled. Seen is asked before an
// event is handled; Mark after its handler returned nil, before the event
// is acknowledged.
type Dedup interface {
	Seen(ctx context.Context, id string) (bool, error)
	Mark(ctx context.Context, id string) error
}

// Options are what the NATS and Kafka consumers share.
type Options struct {
	// Dedup drops events handled already; a MemoryDedup of
	// DefaultDedupSize ids and DefaultDedupWindow when nil. NoDedup turns
	// it off.
	Dedup Dedup
	// RetryDelay is how long a failed event waits before it is tried
	// again; DefaultRetryDelay when zero.
	RetryDelay time.Duration
}

// Defaults of Options.
const (
	DefaultDedupSize   = 100_000
	DefaultDedupWindow = 24 * time.Hour
	DefaultRetryDelay  = time.Second
)

// NoDedup handles every delivery, duplicates included.
var NoDedup Dedup = noDedup{}

type noDedup struct{}

func (noDedup) Seen(context.Context, string) (bool, error) { return false, nil }
func (noDedup) Mark(context.Context, string) error         { return nil }

func (o *Options) setDefaults() {
	if o.Dedup == nil {
		o.Dedup = NewMemoryDedup(DefaultDedupSize, DefaultDedupWindow)
	}
	if o.RetryDelay <= 0 {
		o.RetryDelay = DefaultRetryDelay
	}
}

// handle runs h on ev unless ev was handled already, and marks it handled
// when h returns nil. skipped reports a duplicate.
func (o *Options) handle(ctx context.Context, ev event.Event, h Handler) (skipped bool, err error) {
	seen, err := o.Dedup.Seen(ctx, ev.ID())
	if err != nil {
		return false, err
	}
	if seen {
		return true, nil
	}
	if err := h(ctx, ev); err != nil {
		return false, err
	}
	return false, o.Dedup.Mark(ctx, ev.ID())
}

// MemoryDedup remembers the last size ids marked, each for window, in
// memory: enough for the redeliveries and re-derivations that follow a
// crash or a rebalance, not across a restart of the subscriber. It is safe
// for concurrent use.
type MemoryDedup struct {
	size   int
	window time.Duration
	now    func() time.Time

	mu    sync.Mutex
	ids   map[string]*list.Element
	order list.List // of entry, oldest mark first
}

type entry struct {
	id string
	at time.Time
}

// NewMemoryDedup remembers at most size ids (DefaultDedupSize when not
// positive), each for window (forever when zero).
func NewMemoryDedup(size int, window time.Duration) *MemoryDedup {
	if size <= 0 {
		size = DefaultDedupSize
	}
	return &MemoryDedup{size: size, window: window, now: time.Now, ids: make(map[string]*list.Element)}
}

// Seen reports whether id was marked within the window and is among the
// last size ids marked.
func (d *MemoryDedup) Seen(_ context.Context, id string) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expire()
	_, ok := d.ids[id]
	return ok, nil
}

// Mark remembers id, forgetting the oldest ids beyond size.
func (d *MemoryDedup) Mark(_ context.Context, id string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, ok := d.ids[id]; ok {
		d.order.Remove(e)
	}
	d.ids[id] = d.order.PushBack(entry{id: id, at: d.now()})
	for d.order.Len() > d.size {
		d.forget(d.order.Front())
	}
	d.expire()
	return nil
}

// Len is how many ids are remembered.
func (d *MemoryDedup) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.expire()
	return d.order.Len()
}

// expire forgets the ids marked before the window; marks are in time
// order, so it stops at the first one inside it.
func (d *MemoryDedup) expire() {
	if d.window <= 0 {
		return
	}
	cutoff := d.now().Add(-d.window)
	for e := d.order.Front(); e != nil && !e.Value.(entry).at.After(cutoff); e = d.order.Front() {
		d.forget(e)
	}
}

func (d *MemoryDedup) forget(e *list.Element) {
	delete(d.ids, e.Value.(entry).id)
	d.order.Remove(e)
}
