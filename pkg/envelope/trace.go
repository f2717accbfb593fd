package envelope

import "github.com/wahook/wahook/pkg/broker"

// TraceCarrier reads and writes a message's CloudEvents distributed-tracing
// extension, traceparent and tracestate, as binary-mode headers of its
// binding (ce-traceparent on NATS, ce_traceparent on Kafka), so that a
// subscriber's CloudEvents SDK reads them as the event's extensions. It is
// an OpenTelemetry TextMapCarrier; other keys are neither read nor written.
type TraceCarrier struct {
	Header  broker.Header
	Binding Binding
}

func traceKey(key string) bool { return key == ExtTraceParent || key == ExtTraceState }

// Get returns the decoded value of traceparent or tracestate, or "".
func (c TraceCarrier) Get(key string) string {
	if !traceKey(key) {
		return ""
	}
	return c.Binding.decode(c.Header.Get(c.Binding.attr(key)))
}

// Set writes traceparent or tracestate, encoded as the binding requires;
// an empty value removes the header.
func (c TraceCarrier) Set(key, value string) {
	if !traceKey(key) || c.Header == nil {
		return
	}
	if value == "" {
		delete(c.Header, c.Binding.attr(key))
		return
	}
	c.Header[c.Binding.attr(key)] = []string{c.Binding.encode(value)}
}

// Keys lists the trace headers the message has, by extension name.
func (c TraceCarrier) Keys() []string {
	var keys []string
	for _, k := range [...]string{ExtTraceParent, ExtTraceState} {
		if c.Header.Get(c.Binding.attr(k)) != "" {
			keys = append(keys, k)
		}
	}
	return keys
}

// Type returns the CloudEvent type a message's headers carry, or "".
func Type(h broker.Header, b Binding) string {
	return b.decode(h.Get(b.attr(AttrType)))
}
