package ingress

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/chatid"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/provider"
)

// splitDelivery splits an authenticated body into its items; a failure is
// answered and dead-lettered.
func splitDelivery(p provider.Provider, body []byte, method string, segments []string, maxItems int) ([]provider.Item, *outcome) {
	items, err := p.Split(body, provider.Delivery{Method: method, Segments: segments, MaxItems: maxItems})
	switch {
	case errors.Is(err, provider.ErrTooManyItems) || err == nil && len(items) > maxItems:
		return nil, &outcome{status: http.StatusBadRequest, code: "too_many_items",
			message: fmt.Sprintf("delivery has more than %d items", maxItems)}
	case errors.Is(err, provider.ErrInvalid):
		return nil, &outcome{status: http.StatusBadRequest, code: "invalid_payload", message: err.Error()}
	case err != nil:
		return nil, &outcome{status: http.StatusInternalServerError, code: "internal",
			message: "could not split delivery", err: err}
	case len(items) == 0:
		return nil, &outcome{status: http.StatusBadRequest, code: "invalid_payload", message: "delivery has no items"}
	}
	return items, nil
}

// buildFailure is why a delivery's items cannot become raw events: keep
// says whether the delivery is dead-lettered, under channel.
type buildFailure struct {
	o       outcome
	keep    bool
	channel string
}

// rawEvents gives each item its channel (its own, else pin), id and time
// (its own, else received) and builds its raw event. fillOnly takes pin
// for items without a channel only, where the handler refuses an item
// naming another channel than the one pinned. reqID, the delivery's request
// id, goes on every raw event ("" for none).
func rawEvents(providerName string, items []provider.Item, pin string, fillOnly bool, received time.Time, reqID string,
	b envelope.Binding) ([]broker.Message, []string, string, *buildFailure) {
	msgs := make([]broker.Message, len(items))
	ids := make([]string, len(items))
	channel := ""
	for i := range items {
		it := &items[i]
		switch {
		case it.Channel != "" && !provider.ValidChannel(it.Channel):
			return nil, nil, "", &buildFailure{o: invalidChannel("the payload's"), keep: true}
		case !fillOnly && pin != "" && it.Channel != "" && it.Channel != pin:
			return nil, nil, "", &buildFailure{o: outcome{status: http.StatusForbidden, code: "channel_mismatch",
				message: "payload names another channel than the one pinned by ?channel=", channel: it.Channel}}
		case it.Channel == "" && pin == "":
			return nil, nil, "", &buildFailure{o: outcome{status: http.StatusBadRequest, code: "no_channel",
				message: "payload names no channel; pin one with ?channel="}, keep: true, channel: pin}
		case it.Channel == "":
			it.Channel = pin
		}
		if !provider.ValidKind(it.Kind) {
			it.Kind = provider.KindUnknown
		}
		id, err := provider.EventID(providerName, *it)
		if err != nil {
			return nil, nil, "", &buildFailure{o: outcome{status: http.StatusBadRequest, code: "invalid_payload", message: err.Error()},
				keep: true, channel: pin}
		}
		t := it.Time
		if t.IsZero() {
			t = received
		}
		ids[i] = id
		channel = it.Channel
		msgs[i] = envelope.Ingress(envelope.Raw{
			ID:       id,
			Provider: providerName,
			Channel:  it.Channel,
			Kind:     it.Kind,
			Chat:     chatid.ID(it.Chat),
			Time:     t,
			Data:     it.Data,

			RequestID: reqID,

			// Copies stored apart have other receive times: consumers use the first's.
			TimeReceived: it.Time.IsZero(),
		}, b)
	}
	return msgs, ids, channel, nil
}
