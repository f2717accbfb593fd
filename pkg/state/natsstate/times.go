package natsstate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/state"
)

// Times remembers the time of raw events stamped at receipt, a
// derive.TimeRegistry: the first call for an id writes its time with Create,
// and every later call, or one that lost the Create, reads it. The bucket
// forgets an entry Config.TimesTTL after it was written.
type Times struct {
	kv jetstream.KeyValue
}

var _ derive.TimeRegistry = (*Times)(nil)

// FirstTime returns the time recorded for raw event id, recording t when
// there is none: see derive.TimeRegistry.
func (r *Times) FirstTime(ctx context.Context, id string, t time.Time) (time.Time, error) {
	if err := checkEvent(id); err != nil {
		return time.Time{}, err
	}
	key := state.Token(id)
	val, err := t.UTC().MarshalText()
	if err != nil {
		return time.Time{}, fmt.Errorf("natsstate: first time of %q: %w", id, err)
	}
	for attempt := range maxAttempts {
		if attempt > 0 {
			if err := pause(ctx, attempt); err != nil {
				return time.Time{}, fmt.Errorf("natsstate: first time of %q: %w", id, natsbroker.Classify(err))
			}
		}
		_, err := r.kv.Create(ctx, key, val)
		switch {
		case err == nil:
			return t, nil
		case !conflict(err):
			return time.Time{}, fmt.Errorf("natsstate: first time of %q: create: %w", id, natsbroker.Classify(err))
		}
		e, err := r.kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
			continue // expired since the Create failed: create it again
		case err != nil:
			return time.Time{}, fmt.Errorf("natsstate: first time of %q: get: %w", id, natsbroker.Classify(err))
		}
		var first time.Time
		if err := first.UnmarshalText(e.Value()); err != nil {
			return time.Time{}, fmt.Errorf("natsstate: first time of %q: decode %s: %w", id, key, err)
		}
		return first, nil
	}
	return time.Time{}, fmt.Errorf("natsstate: first time of %q: %w", id, ErrContended)
}
