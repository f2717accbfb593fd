// Package envelope maps wahook's events onto broker messages as CloudEvents
// in binary content mode: the attributes travel as headers, the data is the
// message body unchanged. It is the one place that knows the CloudEvents
// bindings, the subject and topic names and the id rules of the contract.
package envelope

import (
	"strings"

	"github.com/wahook/wahook/pkg/broker"
)

// Binding is a CloudEvents protocol binding's binary-mode header convention.
type Binding struct {
	// Name is "nats" or "kafka".
	Name string
	// Prefix is put before attribute names: "ce-" (NATS), "ce_" (Kafka).
	Prefix string
	// ContentType is the header carrying datacontenttype.
	ContentType string
	// PercentEncode escapes header values as the HTTP and NATS bindings
	// require (space, '"', '%' and anything outside printable ASCII).
	PercentEncode bool
	// IDHeader, when set, also carries the event id for the broker's own
	// de-duplication (Nats-Msg-Id). Writing it here spares the broker a
	// copy of every message's headers.
	IDHeader string
}

// The bindings wahook writes and reads.
var (
	NATS  = Binding{Name: "nats", Prefix: "ce-", ContentType: "content-type", PercentEncode: true, IDHeader: "Nats-Msg-Id"}
	Kafka = Binding{Name: "kafka", Prefix: "ce_", ContentType: "content-type"}
)

func (b Binding) encode(v string) string {
	if !b.PercentEncode {
		return v
	}
	return broker.EscapeHeader(v)
}

func (b Binding) decode(v string) string {
	if !b.PercentEncode {
		return v
	}
	return broker.UnescapeHeader(v)
}

// Token makes s safe as one NATS subject token: '.', '*', '>', white space
// and control characters become '_'; an empty token becomes "_".
func Token(s string) string {
	if s == "" {
		return "_"
	}
	clean := true
	for i := 0; i < len(s); i++ {
		if badToken(s[i]) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	b := []byte(s)
	for i, c := range b {
		if badToken(c) {
			b[i] = '_'
		}
	}
	return string(b)
}

func badToken(c byte) bool { return c <= ' ' || c == '.' || c == '*' || c == '>' || c == 0x7f }

// kindTokens turns a kind such as "chats.patch" into subject tokens, keeping
// its dots as separators.
func kindTokens(kind string) string {
	if kind == "" {
		return "_"
	}
	parts := strings.Split(kind, ".")
	for i, p := range parts {
		parts[i] = Token(p)
	}
	return strings.Join(parts, ".")
}
