package natsstate

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/state"
)

// Labels is the label registry of every channel, a derive.LabelRegistry.
type Labels struct {
	kv jetstream.KeyValue
	// stream is the bucket's stream and subjects its subject prefix
	// ("$KV.{bucket}."): a channel's keys are listed from the stream's
	// subjects, see scan.
	stream   jetstream.Stream
	subjects string
}

var _ derive.LabelRegistry = (*Labels)(nil)

// ErrNoLabelID is returned by Upsert for a label without id: labels are
// kept by id.
var ErrNoLabelID = errors.New("natsstate: label has no id")

// scanTimeout bounds a name resolution whose ctx has no deadline, as
// jetstream's default timeout bounds every single request.
const scanTimeout = 5 * time.Second

// Upsert records label l as set by raw event eventID: see
// derive.LabelRegistry.
func (r *Labels) Upsert(ctx context.Context, provider, channel string, l fact.Label, eventID string) (bool, fact.Label, error) {
	if err := checkEvent(eventID); err != nil {
		return false, fact.Label{}, err
	}
	if l.ID == "" {
		return false, fact.Label{}, ErrNoLabelID
	}
	key := state.EntryKey(provider, channel, l.ID)
	for attempt := range maxAttempts {
		if attempt > 0 {
			if err := pause(ctx, attempt); err != nil {
				return false, fact.Label{}, fmt.Errorf("natsstate: upsert label %q of %s/%s: %w", l.ID, provider, channel, err)
			}
		}
		cur, rev, err := r.get(ctx, key, l.ID)
		if err != nil {
			return false, fact.Label{}, fmt.Errorf("natsstate: upsert label %q of %s/%s: %w", l.ID, provider, channel, err)
		}
		isNew, previous, next := state.UpsertLabel(cur, l, eventID)
		if next == nil {
			return isNew, previous, nil
		}
		err = r.put(ctx, key, next, cur != nil, rev)
		switch {
		case err == nil:
			return isNew, previous, nil
		case !conflict(err):
			return false, fact.Label{}, fmt.Errorf("natsstate: upsert label %q of %s/%s: %w", l.ID, provider, channel, err)
		}
	}
	return false, fact.Label{}, fmt.Errorf("natsstate: upsert label %q of %s/%s: %w", l.ID, provider, channel, ErrContended)
}

// Delete marks a label deleted by raw event eventID and returns what was
// known of it: see derive.LabelRegistry and the package documentation. An
// unknown label is returned as ref says it.
func (r *Labels) Delete(ctx context.Context, provider, channel string, ref fact.LabelRef, eventID string) (fact.Label, bool, error) {
	if err := checkEvent(eventID); err != nil {
		return fact.Label{}, false, err
	}
	var l fact.Label
	var known bool
	var err error
	switch {
	case ref.ID != "":
		l, known, err = r.deleteByID(ctx, provider, channel, ref.ID, eventID)
	case ref.Name != "":
		l, known, err = r.deleteByName(ctx, provider, channel, ref.Name, eventID)
	}
	if err != nil {
		return fact.Label{}, false, fmt.Errorf("natsstate: delete label %q of %s/%s: %w", cmp.Or(ref.ID, ref.Name), provider, channel, err)
	}
	if !known {
		l = fact.Label{ID: ref.ID, Name: ref.Name}
	}
	return l, known, nil
}

func (r *Labels) deleteByID(ctx context.Context, provider, channel, id, eventID string) (fact.Label, bool, error) {
	key := state.EntryKey(provider, channel, id)
	for attempt := range maxAttempts {
		if attempt > 0 {
			if err := pause(ctx, attempt); err != nil {
				return fact.Label{}, false, err
			}
		}
		cur, rev, err := r.get(ctx, key, id)
		if err != nil {
			return fact.Label{}, false, err
		}
		l, known, next := state.DeleteLabel(cur, id, eventID)
		if next == nil {
			return l, known, nil
		}
		err = r.put(ctx, key, next, cur != nil, rev)
		switch {
		case err == nil:
			return l, known, nil
		case !conflict(err):
			return fact.Label{}, false, err
		}
	}
	return fact.Label{}, false, ErrContended
}

func (r *Labels) deleteByName(ctx context.Context, provider, channel, name, eventID string) (fact.Label, bool, error) {
	nameKey := state.NameKey(provider, channel, name)
	for attempt := range maxAttempts {
		if attempt > 0 {
			if err := pause(ctx, attempt); err != nil {
				return fact.Label{}, false, err
			}
		}
		missed, missedRev, err := r.get(ctx, nameKey, "")
		if err != nil {
			return fact.Label{}, false, err
		}
		if state.MissedByName(missed, eventID) {
			return fact.Label{}, false, nil
		}
		entries, err := r.scan(ctx, state.ChannelPrefix(provider, channel), 0)
		if err != nil {
			return fact.Label{}, false, err
		}
		recs := make([]*state.Label, len(entries))
		for i := range entries {
			recs[i] = entries[i].rec
		}
		// Scan order decides among labels this event deleted before, as
		// the first found is the answer.
		i, l, known, next := state.DeleteLabelByName(recs, name, eventID)
		switch {
		case i < 0:
			// Remembered, so that reprocessing misses again whatever
			// labels appear meanwhile.
			err = r.put(ctx, nameKey, state.MissByName(missed, name, eventID), missed != nil, missedRev)
		case next == nil:
			return l, known, nil
		default:
			err = r.put(ctx, entries[i].key, next, true, entries[i].rev)
		}
		switch {
		case err == nil:
			return l, known, nil
		case !conflict(err):
			return fact.Label{}, false, err
		}
	}
	return fact.Label{}, false, ErrContended
}

// Lookup returns what is known of a label by id: its last state, also once
// deleted.
func (r *Labels) Lookup(ctx context.Context, provider, channel, id string) (fact.Label, bool, error) {
	cur, _, err := r.get(ctx, state.EntryKey(provider, channel, id), id)
	if err != nil {
		return fact.Label{}, false, fmt.Errorf("natsstate: look up label %q of %s/%s: %w", id, provider, channel, err)
	}
	l, known := state.LookupLabel(cur)
	return l, known, nil
}

// get reads the record and revision of label id at key: nil and 0 when
// absent.
func (r *Labels) get(ctx context.Context, key, id string) (*state.Label, uint64, error) {
	e, err := r.kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, 0, nil
	case err != nil:
		return nil, 0, fmt.Errorf("get %s: %w", key, natsbroker.Classify(err))
	}
	rec, err := decodeLabel(key, e.Value())
	if err != nil {
		return nil, 0, err
	}
	// The caller's id is exact; the stored one went through JSON, which
	// replaces invalid UTF-8.
	rec.ID = id
	return rec, e.Revision(), nil
}

// put writes rec at key: Create when it was absent, else Update at rev, so
// that a concurrent writer makes it fail with a conflict.
func (r *Labels) put(ctx context.Context, key string, rec *state.Label, exists bool, rev uint64) error {
	val, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	if exists {
		_, err = r.kv.Update(ctx, key, val, rev)
	} else {
		_, err = r.kv.Create(ctx, key, val)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", key, natsbroker.Classify(err))
	}
	return nil
}

func decodeLabel(key string, val []byte) (*state.Label, error) {
	var rec state.Label
	if err := json.Unmarshal(val, &rec); err != nil {
		return nil, fmt.Errorf("decode %s: %w", key, err)
	}
	return &rec, nil
}

// scanned is one label read by scan.
type scanned struct {
	key string
	rev uint64
	rec *state.Label
}

// scan reads the last value of every label of the channel whose key prefix
// is prefix, in key order, of the first limit keys when limit > 0. A channel holds a few labels (WhatsApp allows
// 20) and deletes by name are rare, so a scan is cheaper than keeping a
// name index consistent across writers.
//
// The keys come from the stream's subject counts, which the server takes
// from its index in one piece, and each value from a Get. A KV watch (or
// Keys, built on one) cannot be used: it ends its initial values when the
// consumer's pending count says so, and that count can read 0 while a key
// is being rewritten (the server removes the replaced revision before it
// counts the new one), so the watch ends before it delivered a label that
// exists, and a delete by name racing a write to that label answered
// "unknown".
func (r *Labels) scan(ctx context.Context, prefix string, limit int) ([]scanned, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, scanTimeout)
		defer cancel()
	}
	info, err := r.stream.Info(ctx, jetstream.WithSubjectFilter(r.subjects+prefix+".*"))
	if err != nil {
		return nil, fmt.Errorf("list keys %s.*: %w", prefix, natsbroker.Classify(err))
	}
	keys := make([]string, 0, len(info.State.Subjects))
	for subj := range info.State.Subjects {
		keys = append(keys, strings.TrimPrefix(subj, r.subjects))
	}
	slices.Sort(keys)
	if limit > 0 {
		keys = keys[:min(len(keys), limit)]
	}
	out := make([]scanned, 0, len(keys))
	for _, key := range keys {
		e, err := r.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			continue // a delete marker, or removed by the bucket's limits
		case err != nil:
			return nil, fmt.Errorf("get %s: %w", key, natsbroker.Classify(err))
		}
		rec, err := decodeLabel(key, e.Value())
		if err != nil {
			return nil, err
		}
		out = append(out, scanned{key: key, rev: e.Revision(), rec: rec})
	}
	return out, nil
}

// Channels lists the channels that have labels, in provider and channel
// order, at most state.MaxListed; channels of more than 64 bytes are kept
// under a hash of their name and are not listed.
func (r *Labels) Channels(ctx context.Context) ([]state.ProviderChannel, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, scanTimeout)
		defer cancel()
	}
	// Three tokens: a label, never a name's record (four).
	info, err := r.stream.Info(ctx, jetstream.WithSubjectFilter(r.subjects+"*.*.*"))
	if err != nil {
		return nil, fmt.Errorf("natsstate: list label channels: %w", natsbroker.Classify(err))
	}
	seen := map[state.ProviderChannel]bool{}
	for subj := range info.State.Subjects {
		key := strings.TrimPrefix(subj, r.subjects)
		prefix := key[:strings.LastIndexByte(key, '.')]
		if pc, ok := state.ParseChannelPrefix(prefix); ok {
			seen[pc] = true
		}
	}
	out := slices.SortedFunc(maps.Keys(seen), compareChannels)
	return out[:min(len(out), state.MaxListed)], nil
}

func compareChannels(a, b state.ProviderChannel) int {
	return cmp.Or(strings.Compare(a.Provider, b.Provider), strings.Compare(a.Channel, b.Channel))
}

// List returns a channel's labels as last known, deleted ones included, in
// id order, at most state.MaxListed.
func (r *Labels) List(ctx context.Context, provider, channel string) ([]state.Label, error) {
	entries, err := r.scan(ctx, state.ChannelPrefix(provider, channel), state.MaxListed)
	if err != nil {
		return nil, fmt.Errorf("natsstate: list labels of %s/%s: %w", provider, channel, err)
	}
	recs := make([]*state.Label, len(entries))
	for i, e := range entries {
		recs[i] = e.rec
	}
	return state.Listed(recs), nil
}
