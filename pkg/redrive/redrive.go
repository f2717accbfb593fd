// Package redrive publishes dead-lettered deliveries again through the
// ingress's own path (ingress.Redeliver), so that the raw events are those
// the ingress gives the same body, with the same ids. A note stored beside
// each dead letter redriven (io.wahook.deadletter.redriven) makes a later
// run pass it over unless forced. A forced run publishes the same raw
// events, with the same ids: NATS stores them once within its duplicate
// window, Kafka stores them again and the consumers' id de-duplication
// passes them over. Concurrent RedriveOne calls for one id in a process
// run one after the other, so the second finds the first's note.
package redrive

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/eventlog"
	"github.com/wahook/wahook/pkg/ingress"
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/all"
)

// Actions of a Result.
const (
	Redriven        = "redriven"
	WouldRedrive    = "would_redrive"
	AlreadyRedriven = "already_redriven"
	Refused         = "refused"
)

// Result is what a redrive did with one dead letter.
type Result struct {
	DeadLetterID string    `json:"deadletter_id"`
	Provider     string    `json:"provider"`
	Channel      string    `json:"channel,omitempty"`
	Reason       string    `json:"reason"`
	ReceivedAt   time.Time `json:"received_at"`
	// Action is Redriven, WouldRedrive (dry run), AlreadyRedriven (a note
	// says so; forcing redrives it again) or Refused.
	Action string `json:"action"`
	// Why says why it was refused or passed over.
	Why string `json:"why,omitempty"`
	// IDs are the raw events' ids.
	IDs []string `json:"ids,omitempty"`
}

// ErrNotFound is what RedriveOne returns when no dead letter has the id in
// the range searched.
var ErrNotFound = errors.New("redrive: no such dead letter")

// Config configures a Redriver.
type Config struct {
	// Log reads the dead letters; required.
	Log *eventlog.Log
	// Publisher publishes the raw events and the notes, on the Log's
	// broker; nil allows dry runs only.
	Publisher broker.Publisher
	// Providers turn bodies into raw events, all.Providers() when nil.
	Providers []provider.Provider
	// MaxItems is the most items of one delivery, as the ingress's
	// WAHOOK_MAX_ITEMS; 1000 when zero.
	MaxItems int
	// Now is the clock of the notes, time.Now when nil.
	Now func() time.Time
}

// Redriver redrives dead letters. It is safe for concurrent use.
type Redriver struct {
	cfg       Config
	providers map[string]provider.Provider
	// busy holds the ids RedriveOne is redriving, each with a channel
	// closed when it is done: see lock.
	mu   sync.Mutex
	busy map[string]chan struct{}
}

// New checks cfg and fills its defaults.
func New(cfg Config) (*Redriver, error) {
	if cfg.Log == nil {
		return nil, errors.New("redrive: no event log")
	}
	if cfg.MaxItems < 0 {
		return nil, fmt.Errorf("redrive: max items %d", cfg.MaxItems)
	}
	if cfg.MaxItems == 0 {
		cfg.MaxItems = 1000
	}
	if cfg.Providers == nil {
		cfg.Providers = all.Providers()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	r := &Redriver{cfg: cfg, providers: map[string]provider.Provider{}, busy: map[string]chan struct{}{}}
	for _, p := range cfg.Providers {
		r.providers[p.Name()] = p
	}
	return r, nil
}

// Selection is which dead letters a run redrives.
type Selection struct {
	// Since bounds the time the dead letters were stored; zero: every one
	// kept.
	Since time.Time
	// Until bounds the time they were received; zero: no bound.
	Until time.Time
	// IDs are the dead letters' CloudEvent ids; empty: any.
	IDs []string
	// Provider selects one provider's dead letters; empty: any.
	Provider string
	// Count is the most dead letters redriven (or that would be); 100
	// when zero.
	Count int
	// MaxScan bounds the messages read, none when zero.
	MaxScan int
	// DryRun publishes nothing and says what would be.
	DryRun bool
	// Force redrives dead letters a note says were redriven already.
	Force bool
}

// Summary counts what a run did.
type Summary struct {
	Redriven, Refused int
	// Truncated tells that MaxScan stopped the read before the end.
	Truncated bool
}

// candidate is a dead-letter record read, with its whole body when it
// could be put together.
type candidate struct {
	id      string
	d       envelope.DeadLetter
	body    []byte
	bodyErr error
}

// Run publishes again the dead letters stored up to now that sel selects
// and no note says were redriven, in the order they were stored, leaving
// a note beside each, and passes fn what it did with each one. It reads
// the range twice: for the notes, which follow their records, then for
// the records, so that it holds one body at a time, not every one until
// the notes are read.
func (r *Redriver) Run(ctx context.Context, sel Selection, fn func(Result) error) (Summary, error) {
	if sel.Count < 0 {
		return Summary{}, fmt.Errorf("redrive: count %d", sel.Count)
	}
	if sel.Count == 0 {
		sel.Count = 100
	}
	if !sel.DryRun && r.cfg.Publisher == nil {
		return Summary{}, errors.New("redrive: no publisher")
	}
	noted := map[string]bool{}
	page, err := r.each(ctx, sel, func(id string) { noted[id] = true }, nil)
	if err != nil {
		return Summary{}, err
	}
	sum := Summary{Truncated: page.Truncated}
	errCount := errors.New("count reached")
	page, err = r.each(ctx, sel, nil, func(k candidate) error {
		if sum.Redriven >= sel.Count {
			return errCount
		}
		res, err := r.redrive(ctx, k, noted[k.id], sel.DryRun, sel.Force)
		if err != nil {
			return err
		}
		switch res.Action {
		case Refused:
			sum.Refused++
		case Redriven, WouldRedrive:
			sum.Redriven++
		}
		return fn(res)
	})
	sum.Truncated = sum.Truncated || page.Truncated
	if errors.Is(err, errCount) {
		err = nil
	}
	return sum, err
}

// RedriveOne redrives the dead letter whose CloudEvent id is id, searched
// among those stored since then (at most eventlog.MaxMaxScan messages
// read). One a note says was redriven is not, unless forced: the Result
// says AlreadyRedriven. A refused one is a Result too, with its why.
func (r *Redriver) RedriveOne(ctx context.Context, id string, since time.Time, force bool) (Result, error) {
	if id == "" || len(id) > eventlog.MaxFilterLen {
		return Result{}, fmt.Errorf("redrive: dead letter id of %d bytes", len(id))
	}
	if r.cfg.Publisher == nil {
		return Result{}, errors.New("redrive: no publisher")
	}
	unlock, err := r.lock(ctx, id)
	if err != nil {
		return Result{}, fmt.Errorf("redrive %s: %w", id, err)
	}
	defer unlock()
	var cands []candidate
	noted := false
	page, err := r.each(ctx, Selection{Since: since, IDs: []string{id}, MaxScan: eventlog.MaxMaxScan},
		func(nid string) { noted = noted || nid == id },
		func(k candidate) error {
			cands = append(cands, k)
			return nil
		})
	if err != nil {
		return Result{}, err
	}
	if len(cands) == 0 {
		if page.Truncated {
			return Result{}, fmt.Errorf("%w: %s, in the %d messages read since %s (more are stored: search from a later time)",
				ErrNotFound, id, page.Scanned, since.Format(time.RFC3339))
		}
		return Result{}, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	// The same record twice (a duplicate publish): the last one.
	return r.redrive(ctx, cands[len(cands)-1], noted, false, force)
}

// lock waits until no other RedriveOne of r redrives id, or ctx ends. Two
// operators redriving the same dead letter at once would both read it
// before either note is stored and publish it twice: on Kafka, which
// does not de-duplicate, a second set of raw events. One after the other,
// the second reads the first's note. Redrivers in other processes are
// not held back; their events have the same ids all the same.
func (r *Redriver) lock(ctx context.Context, id string) (unlock func(), err error) {
	for {
		r.mu.Lock()
		done, held := r.busy[id]
		if !held {
			done = make(chan struct{})
			r.busy[id] = done
			r.mu.Unlock()
			return func() {
				r.mu.Lock()
				delete(r.busy, id)
				r.mu.Unlock()
				close(done)
			}, nil
		}
		r.mu.Unlock()
		select {
		case <-done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// redrive publishes k's raw events and note, or says why not.
func (r *Redriver) redrive(ctx context.Context, k candidate, noted, dryRun, force bool) (Result, error) {
	res := Result{DeadLetterID: k.id, Provider: k.d.Provider, Channel: k.d.Channel, Reason: k.d.Reason, ReceivedAt: k.d.ReceivedAt}
	b := r.cfg.Log.Binding()
	msgs, ids, err := r.build(k)
	switch {
	case noted && !force:
		res.Action, res.Why = AlreadyRedriven, "a redrive note says so; -force redrives it again"
	case err != nil:
		res.Action, res.Why = Refused, err.Error()
	case dryRun:
		res.Action, res.IDs = WouldRedrive, ids
	default:
		if err := r.cfg.Publisher.Publish(ctx, msgs...); err != nil {
			return res, fmt.Errorf("redrive %s: %w", k.id, err)
		}
		note, err := envelope.RedrivenMessage(k.d, envelope.Redriven{DeadLetterID: k.id, IDs: ids, RedrivenAt: r.cfg.Now().UTC()}, b)
		if err == nil {
			err = r.cfg.Publisher.Publish(ctx, note)
		}
		if err != nil {
			return res, fmt.Errorf("redrive %s: raw events published, note not stored (a later run publishes them again, with the same ids): %w", k.id, err)
		}
		res.Action, res.IDs = Redriven, ids
	}
	return res, nil
}

// build turns a dead letter into the raw events its delivery gives, or
// says why it cannot.
func (r *Redriver) build(k candidate) ([]broker.Message, []string, error) {
	if k.bodyErr != nil {
		return nil, nil, fmt.Errorf("%w: body incomplete, so the delivery would not be the one received: %w", ingress.ErrNotRedeliverable, k.bodyErr)
	}
	p := r.providers[k.d.Provider]
	if k.d.SourceEventID != "" && p == nil {
		// Redeliver says why for a known provider (a consumer names
		// "unknown" when the raw event named none).
		return nil, nil, fmt.Errorf("%w: a consumer's dead letter of raw event %s, which is in the raw stream: re-derive it by replaying the stream",
			ingress.ErrNotRedeliverable, k.d.SourceEventID)
	}
	if p == nil {
		return nil, nil, fmt.Errorf("%w: no provider %q", ingress.ErrNotRedeliverable, k.d.Provider)
	}
	return ingress.Redeliver(p, k.d, k.body, r.cfg.MaxItems, r.cfg.Log.Binding())
}

// each reads the dead-letter stream in sel's range up to now, in stored
// order, and passes onNote the id of each dead letter a note says was
// redriven and onRecord each record sel selects, its body put together
// from the parts before it. A nil one is not called, and without onRecord
// no part is held. An error of onRecord is returned as it is.
func (r *Redriver) each(ctx context.Context, sel Selection, onNote func(id string), onRecord func(candidate) error) (eventlog.Page, error) {
	var held Parts
	var recErr error
	page, err := r.cfg.Log.Scan(ctx, eventlog.Query{Streams: []eventlog.Stream{eventlog.DeadLetter}, Provider: sel.Provider, Since: sel.Since, MaxScan: sel.MaxScan},
		func(rec eventlog.Record) error {
			m, b := rec.Message()
			if _, ok := envelope.DeadLetterPart(m, b); ok {
				if onRecord != nil {
					held.Hold(m)
				}
				return nil
			}
			if id, ok := envelope.DeadLetterRedriven(m, b); ok {
				if onNote != nil {
					onNote(id)
				}
				return nil
			}
			if onRecord == nil {
				return nil
			}
			id, d, err := envelope.DecodeDeadLetter(m, b)
			if err != nil {
				return nil // not a record: nothing to redrive
			}
			if len(sel.IDs) > 0 && !slices.Contains(sel.IDs, id) || sel.Provider != "" && d.Provider != sel.Provider ||
				!sel.Until.IsZero() && d.ReceivedAt.After(sel.Until) {
				return nil
			}
			k := candidate{id: id, d: d}
			if d.BodyParts != nil {
				k.body, k.bodyErr = held.Body(id, d, b)
			} else {
				k.body, k.bodyErr = envelope.DeadLetterBody(id, d, nil, b)
			}
			recErr = onRecord(k)
			return recErr
		})
	if recErr != nil {
		return page, recErr
	}
	if err != nil {
		return page, fmt.Errorf("redrive: dead letters: %w", err)
	}
	return page, nil
}
