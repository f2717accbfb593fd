package natsstate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
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
	// nc and put, when put is set, create an entry with one request of
	// its own (see create): put is the subjects' prefix, "$KV.{bucket}.",
	// for a bucket that is no mirror on a JetStream without API prefix.
	nc      *nats.Conn
	put     string
	timeout time.Duration
}

// newTimes returns the registry on kv, creating its entries with create
// when the bucket's writes go to its own subjects.
func newTimes(kv jetstream.KeyValue, js jetstream.JetStream, info *jetstream.StreamInfo) *Times {
	r := &Times{kv: kv}
	opts := js.Options()
	if info.Config.Mirror == nil && (opts.APIPrefix == "" || opts.APIPrefix == jetstream.DefaultAPIPrefix) && opts.Domain == "" {
		r.nc, r.put, r.timeout = js.Conn(), "$KV."+kv.Bucket()+".", opts.DefaultTimeout
	}
	return r
}

// createOnly is the expected last sequence of a key that does not exist.
var createOnly = []string{"0"}

// okAck and errKey tell a stored message's PubAck, {"stream":…,"seq":…},
// from an error answer, which always has an "error" member.
var okAck, errKey = []byte(`{"stream":`), []byte(`"error"`)

// create is kv.Create for a key that does not exist, the common case: the
// same message and expected sequence, but a stored message's answer is
// recognised without decoding it as JSON (which cost almost half of
// FirstTime's CPU). Any other answer is decoded as nats.go does, so that
// a lost create is the same *jetstream.APIError (conflict).
func (r *Times) create(ctx context.Context, key string, val []byte) error {
	if _, ok := ctx.Deadline(); !ok && r.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.timeout)
		defer cancel()
	}
	m := &nats.Msg{Subject: r.put + key, Header: nats.Header{jetstream.ExpectedLastSubjSeqHeader: createOnly}, Data: val}
	resp, err := r.nc.RequestMsgWithContext(ctx, m)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return jetstream.ErrNoStreamResponse
	case err != nil:
		return err
	case bytes.HasPrefix(resp.Data, okAck) && !bytes.Contains(resp.Data, errKey):
		return nil
	}
	var ack struct {
		Error  *jetstream.APIError `json:"error"`
		Stream string              `json:"stream"`
	}
	if err := json.Unmarshal(resp.Data, &ack); err != nil {
		return jetstream.ErrInvalidJSAck
	}
	switch {
	case ack.Error != nil:
		return ack.Error
	case ack.Stream == "":
		return jetstream.ErrInvalidJSAck
	}
	return nil
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
		var err error
		if attempt == 0 && r.put != "" {
			err = r.create(ctx, key, val)
			if errors.Is(err, jetstream.ErrNoStreamResponse) {
				// The stream's leader may be changing: kv.Create
				// retries that within the call, as before.
				continue
			}
		} else {
			// Also re-creates a key whose last entry is a delete
			// marker, which create does not.
			_, err = r.kv.Create(ctx, key, val)
		}
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
