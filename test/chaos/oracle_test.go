package chaos

import (
	"context"
	"errors"
	"fmt"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/call"
	"github.com/wahook/wahook/pkg/derive/chat"
	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/derive/group"
	"github.com/wahook/wahook/pkg/derive/label"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/all"
)

// record is one message read back from a stream or topic, in stream order.
type record struct {
	// pos is the message's place in stream order: the stream sequence on
	// NATS; on Kafka partitions are laid end to end, which is a stream order
	// for anything kept per key.
	pos int
	// where names the message on its broker: "seq 812", "p3@204".
	where string
	msg   broker.Message
}

// rawEvent is a raw event of the stream as the oracle read it.
type rawEvent struct {
	record
	raw derive.Raw
	key string
	// repeat is set on a later copy of an id already in the stream (a
	// retried delivery stored twice): consumers drop it.
	repeat bool
	// deadLetter is why a consumer dead-letters it; "" when it does not.
	deadLetter string
	// events are the derived events of a crash-free run, as CloudEvents
	// decoded from the messages a consumer publishes.
	events []expectedEvent
}

type expectedEvent struct {
	stream string
	event  cloudevents.Event
}

// truth is what a crash-free run derives from a raw stream.
type truth struct {
	raws []*rawEvent
	byID map[string]*rawEvent // first copy of each raw event id
	// byEvent maps a derived event id to the raw event that derives it.
	byEvent map[string]*rawEvent
	events  int
	repeats int
}

// crashFree runs wahook's own derivation over the raw stream, one raw event
// at a time in stream order, with the in-memory reference registries of
// package derivetest for state: what the consumers derive when nothing
// crashes, nothing is redelivered and every key's events are taken in
// stream order. Consumers drop a raw event id they have seen (the NATS
// duplicate window, Kafka's Dedup); so does the oracle.
func crashFree(ctx context.Context, recs []record, b envelope.Binding) (*truth, error) {
	providers := map[string]provider.Provider{}
	for _, p := range all.Providers() {
		providers[p.Name()] = p
	}
	labels, chats := derivetest.NewLabelRegistry(), derivetest.NewChatRegistry()
	derivers := []derive.Deriver{
		label.Deriver{Registry: labels}, chat.Deriver{Registry: chats}, call.Deriver{}, group.Deriver{},
	}
	tr := &truth{byID: map[string]*rawEvent{}, byEvent: map[string]*rawEvent{}}
	for _, rec := range recs {
		re := &rawEvent{record: rec, key: rec.msg.Key}
		tr.raws = append(tr.raws, re)
		raw, err := envelope.DecodeRaw(rec.msg, b)
		if err != nil {
			re.deadLetter = fmt.Sprintf("not a raw event: %v", err)
			continue
		}
		re.raw = raw
		if k := envelope.PartitionKey(raw.Provider, raw.Channel, raw.Subject); re.key == "" {
			re.key = k
		}
		if _, ok := tr.byID[raw.ID]; ok {
			re.repeat = true
			tr.repeats++
			continue
		}
		tr.byID[raw.ID] = re
		p, ok := providers[raw.Provider]
		if !ok {
			re.deadLetter = fmt.Sprintf("unknown provider %q", raw.Provider)
			continue
		}
		facts, err := p.Interpret(raw.Kind, raw.Data)
		if err != nil {
			if errors.Is(err, provider.ErrInvalid) {
				re.deadLetter = err.Error()
				continue
			}
			return nil, fmt.Errorf("oracle: interpret %s (%s): %w", raw.ID, rec.where, err)
		}
		if facts.Empty() {
			continue
		}
		for _, d := range derivers {
			evs, err := d.Derive(ctx, raw, facts)
			if err != nil {
				if broker.IsPermanent(err) {
					re.deadLetter = d.Stream() + ": " + err.Error()
					continue
				}
				return nil, fmt.Errorf("oracle: %s derive %s (%s): %w", d.Stream(), raw.ID, rec.where, err)
			}
			for _, ev := range evs {
				msg, err := envelope.Derived(ev, raw, b)
				if err != nil {
					return nil, fmt.Errorf("oracle: %s event %s of %s: %w", d.Stream(), ev.ID, raw.ID, err)
				}
				ce, err := envelope.Decode(msg, b)
				if err != nil {
					return nil, fmt.Errorf("oracle: decode %s event %s of %s: %w", d.Stream(), ev.ID, raw.ID, err)
				}
				if prev, dup := tr.byEvent[ev.ID]; dup {
					return nil, fmt.Errorf("oracle: derived id %s from raw %s and %s", ev.ID, prev.raw.ID, raw.ID)
				}
				re.events = append(re.events, expectedEvent{stream: d.Stream(), event: ce})
				tr.byEvent[ev.ID] = re
				tr.events++
			}
		}
	}
	return tr, nil
}
