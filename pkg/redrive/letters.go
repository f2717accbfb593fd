package redrive

import (
	"context"
	"fmt"
	"slices"

	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/eventlog"
)

// Letter is a dead letter as stored: its record, its body put together
// from its parts when it has some, and whether a note says it was
// redriven.
type Letter struct {
	Record     eventlog.Record
	ID         string
	DeadLetter envelope.DeadLetter
	// Body is the raw body; BodyErr says why it could not be put
	// together (a part lost).
	Body    []byte
	BodyErr error
	// Redriven tells that a note stored in the range read says so.
	Redriven bool
}

// Letters reads the dead-letter records q selects by its Provider,
// Channel, IDs, Since and Until, within its Limit and MaxScan (the newest
// Limit with Newest), in stored order. It reads the range forward to put
// bodies in parts together and to find the notes, which follow what they
// are about; Page says how much it read and whether MaxScan stopped it.
func (r *Redriver) Letters(ctx context.Context, q eventlog.Query) ([]Letter, eventlog.Page, error) {
	sel := eventlog.Query{Streams: []eventlog.Stream{eventlog.DeadLetter}, Provider: q.Provider, Since: q.Since, Until: q.Until,
		MaxScan: q.MaxScan, IDs: q.IDs, Channel: q.Channel, Limit: q.Limit}
	if err := sel.Check(); err != nil {
		return nil, eventlog.Page{}, err
	}
	limit := q.Limit
	switch {
	case limit == 0:
		limit = eventlog.DefaultLimit
	case limit > eventlog.MaxLimit:
		limit = eventlog.MaxLimit
	}
	if sel.MaxScan == 0 {
		sel.MaxScan = eventlog.DefaultMaxScan
	}
	// The ids and the channel select records, not their parts and notes.
	sel.IDs, sel.Channel = nil, ""
	var held Parts
	var out []Letter
	noted := map[string]bool{}
	page, err := r.cfg.Log.Scan(ctx, sel, func(rec eventlog.Record) error {
		m, b := rec.Message()
		if _, ok := envelope.DeadLetterPart(m, b); ok {
			held.Hold(m)
			return nil
		}
		if id, ok := envelope.DeadLetterRedriven(m, b); ok {
			noted[id] = true
			return nil
		}
		id, d, err := envelope.DecodeDeadLetter(m, b)
		if err != nil || len(q.IDs) > 0 && !slices.Contains(q.IDs, id) || q.Channel != "" && d.Channel != q.Channel {
			return nil
		}
		if !q.Newest && len(out) >= limit {
			return nil // read on for the notes
		}
		l := Letter{Record: rec, ID: id, DeadLetter: d}
		if d.BodyParts != nil {
			l.Body, l.BodyErr = held.Body(id, d, b)
		} else {
			l.Body, l.BodyErr = envelope.DeadLetterBody(id, d, nil, b)
		}
		out = append(out, l)
		if len(out) > limit {
			out = slices.Delete(out, 0, 1)
		}
		return nil
	})
	if err != nil {
		return nil, page, fmt.Errorf("redrive: dead letters: %w", err)
	}
	for i := range out {
		out[i].Redriven = noted[out[i].ID]
	}
	return out, page, nil
}
