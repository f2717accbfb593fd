// Package envelopetest gives benchmarks and load tests the raw event a bare
// handler that follows the contract publishes: the ingress's attributes
// around any body, without the ingress's work to find them. Every yardstick
// that carries "the contract's headers" takes them from here.
package envelopetest

import (
	"fmt"
	"time"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/envelope"
)

// Reference is the raw event of a Whapi message with id and body, as b
// writes it: the ce-* headers, content-type and, on NATS, Nats-Msg-Id (so
// that the server also keeps its duplicate window), keyed by one chat.
func Reference(id string, body []byte, b envelope.Binding) broker.Message {
	return envelope.Ingress(envelope.Raw{ID: id, Provider: "whapi", Channel: "BENCH", Kind: "messages.post",
		Chat: "919984351847@s.whatsapp.net", Time: time.Now(), Data: body}, b)
}

// ID is the n-th event id of a run: 32 hex digits like the ingress's ids,
// run's first, so that runs against one server (a duplicate window) never
// share an id.
func ID(run uint64, n int64) string {
	return fmt.Sprintf("%016x%016x", run, uint64(n))
}
