package ingress

import (
	"errors"
	"fmt"
	"strings"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/provider"
)

// ErrNotRedeliverable marks a dead letter Redeliver refuses: one that is
// not a delivery the ingress kept, or whose body would not give back what
// the provider sent.
var ErrNotRedeliverable = errors.New("not redeliverable")

// WebhookPath is the path prefix of every provider's webhook.
const WebhookPath = "/v1/webhooks/"

// Redeliver builds the raw events of a delivery the ingress dead-lettered,
// from its record and its whole body, as the handler builds them: the
// provider's split, the channel (the payload's, else the record's, which
// is the ?channel= pin when there was one), ids and receive time.
// Its sender was authenticated when it arrived (the ingress
// dead-letters nothing before), so no credential is checked again. The ids
// are those the handler gives the same body: publishing the events twice
// stores them once within the broker's duplicate window, and consumers
// drop repeats by id beyond it.
//
// It fails wrapping ErrNotRedeliverable for a record that is not an
// ingress delivery (a consumer's dead letter, whose raw event is in the
// raw stream: replay it instead), for a body that is not kept, and when
// the body still cannot become events (the reason, as the ingress gives
// it).
func Redeliver(p provider.Provider, d envelope.DeadLetter, body []byte, maxItems int, b envelope.Binding) ([]broker.Message, []string, error) {
	if maxItems <= 0 {
		maxItems = 1000
	}
	if b.Prefix == "" {
		b = envelope.NATS
	}
	switch {
	case d.SourceEventID != "":
		return nil, nil, fmt.Errorf("%w: a consumer's dead letter of raw event %s, which is in the raw stream: re-derive it by replaying the stream",
			ErrNotRedeliverable, d.SourceEventID)
	case d.Provider != p.Name():
		return nil, nil, fmt.Errorf("%w: dead letter of provider %q, not %q", ErrNotRedeliverable, d.Provider, p.Name())
	case d.BodyParts != nil && body == nil, d.BodyParts == nil && d.Body == nil && d.BodyBase64 == "":
		return nil, nil, fmt.Errorf("%w: the record keeps no body", ErrNotRedeliverable)
	}
	prefix := WebhookPath + p.Name()
	if d.Method == "" || d.Path != prefix && !strings.HasPrefix(d.Path, prefix+"/") {
		return nil, nil, fmt.Errorf("%w: not a delivery to %s (method %q, path %q)", ErrNotRedeliverable, prefix, d.Method, d.Path)
	}
	var segments []string
	if rest := strings.Trim(strings.TrimPrefix(d.Path, prefix), "/"); rest != "" {
		segments = strings.Split(rest, "/")
	}
	if err := provider.CheckRoute(p, d.Method, segments); err != nil {
		return nil, nil, fmt.Errorf("%w: %s %s is no webhook route: %w", ErrNotRedeliverable, d.Method, d.Path, err)
	}
	pin := d.Channel
	if pin != "" && !provider.ValidChannel(pin) {
		return nil, nil, fmt.Errorf("%w: %s", ErrNotRedeliverable, invalidChannel("the record's").message)
	}
	// The ingress kept the body with the credential already removed;
	// removing it again changes nothing else.
	body = provider.Redact(p, body)
	items, f := splitDelivery(p, body, d.Method, segments, maxItems)
	if f != nil {
		return nil, nil, fmt.Errorf("%w: still %s: %s", ErrNotRedeliverable, f.code, reason(*f))
	}
	// The delivery's own request id, when it sent one, ties the redriven
	// events to it.
	reqID := d.Headers["X-Request-Id"]
	if !printable(reqID, maxRequestID) {
		reqID = ""
	}
	msgs, ids, _, bf := rawEvents(p.Name(), items, pin, true, d.ReceivedAt, reqID, b)
	if bf != nil {
		return nil, nil, fmt.Errorf("%w: still %s: %s", ErrNotRedeliverable, bf.o.code, reason(bf.o))
	}
	return msgs, ids, nil
}

func reason(o outcome) string {
	if o.err != nil {
		return o.message + ": " + o.err.Error()
	}
	return o.message
}
