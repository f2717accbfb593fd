package natsbroker

import (
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wahook/wahook/pkg/broker"
)

// Headers that carry a message's key and id on NATS, where a message has
// neither: the CloudEvents NATS binding's partitionkey extension and id
// attribute, as package envelope writes them (percent-encoded).
const (
	KeyHeader = "ce-partitionkey"
	IDHeader  = "ce-id"
)

// keyOf is a received message's ordering key: its KeyHeader decoded, else
// its subject (one subject's messages then keep their order).
func keyOf(h map[string][]string, subject string) string {
	if v := h[KeyHeader]; len(v) > 0 && v[0] != "" {
		return broker.UnescapeHeader(v[0])
	}
	return subject
}

// idOf is a received message's de-duplication id: Nats-Msg-Id, else the
// CloudEvent id.
func idOf(h map[string][]string) string {
	if v := h[jetstream.MsgIDHeader]; len(v) > 0 && v[0] != "" {
		return v[0]
	}
	if v := h[IDHeader]; len(v) > 0 {
		return broker.UnescapeHeader(v[0])
	}
	return ""
}
