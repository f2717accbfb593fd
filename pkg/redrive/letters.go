package redrive

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/wahook/wahook/pkg/broker"
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

// partsBefore is how long before a record its parts may have been
// stored: they are published just before it, within a publish's timeout.
const partsBefore = time.Minute

// Letters reads the dead-letter records q selects by its Provider,
// Channel, IDs, Since and Until, within its Limit and MaxScan, in stored
// order: the oldest Limit, or with Newest the newest Limit of the range.
// It reads forward to put bodies in parts together and to find the
// notes, which follow what they are about; with Newest it first reads
// backward for the newest records, reads forward from the oldest of
// them, and looks up the parts stored before then by their ids. Page
// says how much the forward read read and whether MaxScan stopped one of
// the reads.
//
// With Newest, the letters are those the backward read found, and Page's
// Next is that read's: set when older dead letters are left (or MaxScan
// stopped it), where q.After continues for the next older Limit, each
// page bounded as the first. Without Newest, After is where the forward
// read starts and Next is not set.
func (r *Redriver) Letters(ctx context.Context, q eventlog.Query) ([]Letter, eventlog.Page, error) {
	sel := eventlog.Query{Streams: []eventlog.Stream{eventlog.DeadLetter}, Provider: q.Provider, Since: q.Since, Until: q.Until,
		MaxScan: q.MaxScan, IDs: q.IDs, Channel: q.Channel, Limit: q.Limit, After: q.After}
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
	var newestTruncated bool
	var next eventlog.Position
	// listed holds, with Newest, the positions of the records the
	// backward read found: the forward read meets newer ones too, of
	// newer pages or stored since.
	var listed map[string]bool
	if q.Newest {
		page, err := r.newest(ctx, sel, limit)
		if err != nil || len(page.Records) == 0 {
			return nil, page, err
		}
		listed = map[string]bool{}
		for _, rec := range page.Records {
			listed[rec.Position] = true
		}
		sel.Since, newestTruncated, next = page.Records[0].Stored, page.Truncated, page.Next
		// The forward read goes on past the page's end for the notes,
		// which follow what they are about.
		sel.After = nil
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
		if listed != nil && !listed[rec.Position] {
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
		return nil
	})
	if err != nil {
		return nil, page, fmt.Errorf("redrive: dead letters: %w", err)
	}
	for i := range out {
		out[i].Redriven = noted[out[i].ID]
		if q.Newest && out[i].BodyErr != nil && out[i].DeadLetter.BodyParts != nil {
			truncated, err := r.earlierParts(ctx, &out[i], sel.MaxScan)
			if err != nil {
				return nil, page, err
			}
			newestTruncated = newestTruncated || truncated
		}
	}
	page.Truncated = page.Truncated || newestTruncated
	if q.Newest {
		page.Next = next
	}
	return out, page, nil
}

// newest reads sel's range backward for its newest limit dead-letter
// records: a forward read of the whole range would stop at MaxScan long
// before the newest ones in a stream that holds more.
func (r *Redriver) newest(ctx context.Context, sel eventlog.Query, limit int) (eventlog.Page, error) {
	sel.Types, sel.Newest, sel.Limit = []string{envelope.DeadLetterType}, true, limit
	page, err := r.cfg.Log.Query(ctx, sel)
	if err != nil {
		return page, fmt.Errorf("redrive: newest dead letters: %w", err)
	}
	return page, nil
}

// earlierParts puts l's body together from its parts looked up by id in
// the time before its record, where a read from the record leaves them,
// and tells whether MaxScan stopped the look-up.
func (r *Redriver) earlierParts(ctx context.Context, l *Letter, maxScan int) (bool, error) {
	bp := l.DeadLetter.BodyParts
	if bp.Count > eventlog.MaxFilterValues {
		return false, nil // BodyErr stays: too many parts to look up
	}
	ids := make([]string, bp.Count)
	for i := range ids {
		ids[i] = envelope.DeadLetterPartID(l.ID, bp.PartSize, i)
	}
	page, err := r.cfg.Log.Query(ctx, eventlog.Query{Streams: []eventlog.Stream{eventlog.DeadLetter}, IDs: ids,
		Since: l.Record.Stored.Add(-partsBefore), Until: l.Record.Stored, Limit: bp.Count, MaxScan: maxScan, Newest: true, NoNext: true})
	if err != nil {
		return false, fmt.Errorf("redrive: parts of %s: %w", l.ID, err)
	}
	var msgs []broker.Message
	for _, rec := range page.Records {
		m, _ := rec.Message()
		msgs = append(msgs, m)
	}
	if body, err := envelope.DeadLetterBody(l.ID, l.DeadLetter, msgs, r.cfg.Log.Binding()); err == nil {
		l.Body, l.BodyErr = body, nil
	}
	return page.Truncated, nil
}
