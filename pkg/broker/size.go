package broker

// Framing Size counts beyond a message's bytes: per header value (its name,
// value and their separators or length prefixes), and per message.
const (
	sizeHeaderFraming  = 10
	sizeMessageFraming = 64
)

// Size is what a message counts against Limits.MaxMessageBytes: its data,
// its id, its key three times (NATS adds it as a percent-encoded header when
// the message has none), every header value with its name plus 10 bytes,
// and 64 bytes. It bounds from above what any of wahook's brokers sends for
// the message (NATS: header block and payload; Kafka: the record and its
// share of the record batch), so that a message whose Size is at most a
// broker's MaxMessageBytes is never refused for its size, whichever broker
// publishes it.
func Size(m Message) int {
	n := sizeMessageFraming + len(m.Data) + len(m.ID) + 3*len(m.Key)
	for k, vs := range m.Header {
		for _, v := range vs {
			n += len(k) + len(v) + sizeHeaderFraming
		}
	}
	return n
}

// MaxMessageBytes returns p's limit when p implements Limits, else 0
// (unknown: callers do not split).
func MaxMessageBytes(p Publisher) int {
	if l, ok := p.(Limits); ok {
		return l.MaxMessageBytes()
	}
	return 0
}

// ValidHeaderKey reports whether k may name a header on every broker: 1 or
// more printable ASCII characters other than `"(),/:;<=>?@[\]{}`, the rule
// NATS clients apply (ADR-4 forbids ':' and anything outside 33-126; nats.go
// also the HTTP separators). Kafka takes any string, but a message valid on
// one broker should be valid on the other.
func ValidHeaderKey(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if !headerKeyChar[k[i]] {
			return false
		}
	}
	return true
}

var headerKeyChar = func() (t [256]bool) {
	for c := 33; c <= 126; c++ {
		t[c] = true
	}
	for _, c := range []byte(`"(),/:;<=>?@[\]{}`) {
		t[c] = false
	}
	return t
}()
