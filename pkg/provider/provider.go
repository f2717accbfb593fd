// Package provider defines what a WhatsApp API provider package offers the
// ingress: split one webhook delivery into items and identify each item
// (kind, channel, chat, time, identity). Each provider lives in its own
// package below this one (whapi, zapi, waha) and registers nothing globally:
// services pick the providers they serve.
package provider

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/wahook/wahook/pkg/fact"
)

// KindUnknown is the kind of an item the provider package does not recognise.
// Such items are still published, so nothing is lost when providers add events.
const KindUnknown = "unknown"

// Delivery is what the ingress knows of one webhook request beside its body.
type Delivery struct {
	// Method is the HTTP method (Whapi's "method" mode names the event in it).
	Method string
	// Segments are the URL path segments after /v1/webhooks/{provider}
	// (Whapi's "path" and "method" modes name the event type in them).
	Segments []string
	// MaxItems bounds the items of one delivery; 0 means no bound. A
	// batching provider stops at MaxItems+1 and returns an error wrapping
	// ErrTooManyItems, so a hostile body never becomes a million items.
	MaxItems int
}

// Item is one event of a delivery, identified but not interpreted.
type Item struct {
	// Kind is the event kind in the provider's own words, e.g. "chats.patch",
	// "received.notification", "label.chat.added", or KindUnknown. The
	// ingress publishes a kind ValidKind refuses as KindUnknown.
	Kind string
	// Channel is the provider account the event belongs to (Whapi channel_id,
	// Z-API instanceId, WAHA session), as the payload gives it; empty when
	// the payload does not say. The ingress refuses a delivery whose channel
	// ValidChannel refuses.
	Channel string
	// Key is the provider's own identity of the event (message id, call id
	// and state, envelope id...). Empty means: identify by canonical content.
	Key string
	// Chat is the chat id as the provider wrote it, empty when the event is not
	// about one chat.
	Chat string
	// Time is the provider's event time; zero when it gives none.
	Time time.Time
	// Data is the provider's JSON for this item, unchanged.
	Data []byte
}

// Provider is one WhatsApp API provider's webhook format.
type Provider interface {
	// Name is the provider's path token and event-type token: "whapi", "zapi", "waha".
	Name() string
	// Split parses one delivery into its items. A body that is not a payload
	// of this provider yields an error wrapping ErrInvalid. An item of a kind
	// the package does not know is returned with KindUnknown, never dropped.
	Split(body []byte, d Delivery) ([]Item, error)
	// Interpret reads one raw item (kind and data as Split returned them)
	// as provider-neutral facts. Kinds that feed no derived stream give empty
	// facts; data that cannot be read as its kind gives an error wrapping
	// ErrInvalid.
	Interpret(kind string, data []byte) (fact.Facts, error)
}

// RouteChecker is implemented by providers that accept more than
// "POST /v1/webhooks/{provider}". CheckRoute returns nil for an accepted route,
// an error wrapping ErrNoRoute (404) or ErrMethod (405).
type RouteChecker interface {
	CheckRoute(method string, segments []string) error
}

// Challenger is implemented by providers that check a webhook URL with a
// GET before they deliver to it (Meta's verification request). Challenge
// reads the request's query: the verify token it presents and the
// challenge to answer with. A query that is not such a request, or whose
// challenge is not one the provider sends, gives an error wrapping
// ErrInvalid. Comparing the token is the ingress's business.
type Challenger interface {
	Challenge(query url.Values) (token, challenge string, err error)
}

// Errors callers match with errors.Is.
var (
	ErrInvalid = errors.New("invalid payload")
	ErrNoRoute = errors.New("no such route")
	ErrMethod  = errors.New("method not allowed")
	// ErrTooManyItems: the delivery holds more items than Delivery.MaxItems.
	ErrTooManyItems = errors.New("too many items")
)

// Invalid returns an error wrapping ErrInvalid with a reason fit for an HTTP
// answer and a dead-letter record.
func Invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// TooManyItems returns an error wrapping ErrTooManyItems that names the bound.
func TooManyItems(max int) error {
	return fmt.Errorf("%w: more than %d in one delivery", ErrTooManyItems, max)
}

// CheckRoute applies p's RouteChecker, or the default: POST and no extra segments.
func CheckRoute(p Provider, method string, segments []string) error {
	if rc, ok := p.(RouteChecker); ok {
		return rc.CheckRoute(method, segments)
	}
	if len(segments) > 0 {
		return ErrNoRoute
	}
	if method != "POST" {
		return ErrMethod
	}
	return nil
}
