// Package broker is the small abstraction wahook's services publish and
// consume through. It knows subjects, keys, headers and bytes; CloudEvents are
// mapped onto it by package envelope, and each backbone (NATS JetStream, Kafka)
// implements it in its own package so no client type leaks into providers,
// derivation or HTTP handlers.
package broker

import (
	"context"
	"errors"
)

// Header holds message headers. Its shape matches nats.Header so the NATS
// implementation converts it without copying.
type Header map[string][]string

// Get returns the first value of key, or "".
func (h Header) Get(key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// Set replaces the values of key with value.
func (h Header) Set(key, value string) { h[key] = []string{value} }

// Message is one record to publish or one record received.
type Message struct {
	// Topic is the logical stream the message belongs to, e.g.
	// "wahook.ingress". Kafka publishes to the topic of that name.
	Topic string
	// Subject is Topic followed by routing tokens, e.g.
	// "wahook.ingress.whapi.MANTIS-M72HC.chats.patch". NATS publishes on it.
	Subject string
	// Key orders messages: records with one key keep their order
	// (the Kafka message key; the partition on NATS consumers).
	Key string
	// ID is the de-duplication id (Nats-Msg-Id on NATS).
	ID     string
	Header Header
	Data   []byte
}

// Publisher stores messages durably.
type Publisher interface {
	// Publish returns nil only after the broker has durably stored every
	// message (a JetStream PubAck, a Kafka write acknowledged by all in-sync
	// replicas). Messages are published concurrently; on error some of them
	// may be stored, and publishing them again with the same IDs is safe.
	// A broker that is down or too slow yields an error wrapping ErrUnavailable.
	Publish(ctx context.Context, msgs ...Message) error
}

// ErrUnavailable marks errors that mean the broker could not be reached or did
// not acknowledge in time: the caller should retry later.
var ErrUnavailable = errors.New("broker unavailable")

// ErrClosed is returned by operations on a closed publisher or subscriber.
var ErrClosed = errors.New("broker closed")
