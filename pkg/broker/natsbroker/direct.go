package natsbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// DirectRequest is a batched direct get ($JS.API.DIRECT.GET.<stream>), the
// way subscribers read a stream's history without a consumer: no state on
// the server, nothing to clean up. Start at Seq or at StartTime (not
// both); NextBySubject filters (wildcards allowed).
type DirectRequest struct {
	Seq           uint64     `json:"seq,omitempty"`
	StartTime     *time.Time `json:"start_time,omitempty"`
	NextBySubject string     `json:"next_by_subj,omitempty"`
	// Batch is how many messages one request returns at most, 1 or more.
	Batch int `json:"batch"`
	// MaxBytes stops the batch early once this much was sent (0: the
	// server's limit for a client's pending data).
	MaxBytes int `json:"max_bytes,omitempty"`
}

// StoredMsg is a message as a stream stored it.
type StoredMsg struct {
	Subject  string
	Sequence uint64
	Time     time.Time
	// Header holds the headers it was published with.
	Header nats.Header
	Data   []byte
}

// Headers nats-server adds to a directly read message, removed from
// StoredMsg.Header.
var directHeaders = []string{"Nats-Stream", "Nats-Subject", "Nats-Sequence", "Nats-Time-Stamp", "Nats-Num-Pending", "Nats-Last-Sequence"}

// DirectBatch sends one batched direct get to stream and passes every
// message it returns to fn, in stream order. It returns the sequence of
// the last one (0 when none matched) and how many matching messages
// follow it: ask again from last+1 while that is more than 0. It needs
// the stream's AllowDirect, which wahook's streams and buckets have, and
// nothing but publish on $JS.API.DIRECT.GET.> and subscribe on inboxes.
func DirectBatch(ctx context.Context, nc *nats.Conn, stream string, req DirectRequest, fn func(StoredMsg) error) (last, pending uint64, err error) {
	if req.Batch < 1 {
		return 0, 0, fmt.Errorf("natsbroker: direct get %s: batch %d, want 1 or more", stream, req.Batch)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return 0, 0, fmt.Errorf("natsbroker: direct get %s: %w", stream, err)
	}
	inbox := nc.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return 0, 0, fmt.Errorf("natsbroker: direct get %s: %w", stream, err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	if err := nc.PublishRequest("$JS.API.DIRECT.GET."+stream, inbox, body); err != nil {
		return 0, 0, fmt.Errorf("natsbroker: direct get %s: %w", stream, err)
	}
	for {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return last, 0, fmt.Errorf("natsbroker: direct get %s: %w", stream, err)
		}
		switch status := m.Header.Get("Status"); status {
		case "":
		case "204": // end of the batch
			n, err := strconv.ParseUint(m.Header.Get("Nats-Num-Pending"), 10, 64)
			if err != nil {
				return last, 0, fmt.Errorf("natsbroker: direct get %s: end of batch without a pending count", stream)
			}
			return last, n, nil
		case "404": // nothing matches
			return last, 0, nil
		case "503":
			return last, 0, fmt.Errorf("natsbroker: direct get %s: %w (no stream, or no direct gets on it)", stream, nats.ErrNoResponders)
		default:
			return last, 0, fmt.Errorf("natsbroker: direct get %s: status %s %s", stream, status, m.Header.Get("Description"))
		}
		sm := StoredMsg{Subject: m.Header.Get("Nats-Subject"), Header: m.Header, Data: m.Data}
		if sm.Sequence, err = strconv.ParseUint(m.Header.Get("Nats-Sequence"), 10, 64); err != nil {
			return last, 0, errors.New("natsbroker: direct get " + stream + ": message without a sequence")
		}
		sm.Time, _ = time.Parse(time.RFC3339Nano, m.Header.Get("Nats-Time-Stamp"))
		for _, h := range directHeaders {
			sm.Header.Del(h)
		}
		last = sm.Sequence
		if err := fn(sm); err != nil {
			return last, 0, err
		}
	}
}
