package redrive

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
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
// backward to find where the newest records start, reads forward from
// there, and looks up the parts stored before then by their ids. Page
// says how much the forward read read and whether MaxScan stopped one of
// the reads.
//
// With Newest, q.After continues from the Page.Next of the page before
// (its Next is where the backward read stopped): the next older Limit
// dead letters, each page bounded as the first. Without Newest, After is
// where the forward read starts and Next is not set.
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
	var next, end eventlog.Position
	if q.Newest {
		from, page, err := r.newestFrom(ctx, sel, limit)
		if err != nil || from.IsZero() {
			return nil, page, err
		}
		sel.Since, newestTruncated, next, end = from, page.Truncated, page.Next, page.End
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
		if q.Newest && pastPosition(rec.Position, q.After) {
			return nil // on a newer page
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
		page.Next, page.End = next, end
	}
	return out, page, nil
}

// pastPosition tells whether a record at position (a Record.Position:
// its source, a slash, its sequence) is at or past where a newest-first
// page ended in its source: on that page or a newer one.
func pastPosition(position string, after eventlog.Position) bool {
	i := strings.LastIndexByte(position, '/')
	if i < 0 {
		return false
	}
	end, ok := after[position[:i]]
	if !ok {
		return false
	}
	seq, err := strconv.ParseInt(position[i+1:], 10, 64)
	return err == nil && seq >= end
}

// newestFrom reads sel's range backward for its newest limit dead-letter
// records and returns the time the oldest of them was stored, zero when
// there is none: a forward read of the whole range would stop at MaxScan
// long before the newest ones in a stream that holds more.
func (r *Redriver) newestFrom(ctx context.Context, sel eventlog.Query, limit int) (time.Time, eventlog.Page, error) {
	sel.Types, sel.Newest, sel.Limit = []string{envelope.DeadLetterType}, true, limit
	page, err := r.cfg.Log.Query(ctx, sel)
	if err != nil {
		return time.Time{}, page, fmt.Errorf("redrive: newest dead letters: %w", err)
	}
	if len(page.Records) == 0 {
		return time.Time{}, page, nil
	}
	return page.Records[0].Stored, page, nil
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
		Since: l.Record.Stored.Add(-partsBefore), Until: l.Record.Stored, Limit: bp.Count, MaxScan: maxScan, Newest: true})
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
