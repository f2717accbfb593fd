package envelope

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/derive"
)

// Default topic names (Kafka topics; prefixes of NATS subjects).
const (
	IngressTopic    = "wahook.ingress"
	DeadLetterTopic = "wahook.deadletter"
)

// CloudEvent attribute and extension names used by wahook.
const (
	AttrSpecVersion     = "specversion"
	AttrID              = "id"
	AttrSource          = "source"
	AttrType            = "type"
	AttrSubject         = "subject"
	AttrTime            = "time"
	AttrDataSchema      = "dataschema"
	AttrDataContentType = "datacontenttype"
	ExtProvider         = "provider"
	ExtChannel          = "channel"
	ExtPartitionKey     = "partitionkey"
	ExtCausationID      = "causationid"
	ExtTraceParent      = "traceparent"
	ExtTraceState       = "tracestate"
	ExtTimeSource       = "timesource"
	ExtRequestID        = "requestid"
)

// TimeReceived is the timesource of a raw event whose time is when the
// ingress received it: the provider gave none.
const TimeReceived = "received"

// IngressTypePrefix starts the type of every raw event.
const IngressTypePrefix = "io.wahook.ingress."

// JSON is the content type of every event wahook writes.
const JSON = "application/json"

// Raw is one identified provider item ready to become a raw CloudEvent.
type Raw struct {
	ID       string
	Provider string
	Channel  string
	Kind     string
	// Chat is the canonical chat id, empty when the item has none.
	Chat string
	Time time.Time
	// TimeReceived marks Time as the receive time (extension timesource).
	TimeReceived bool
	// TraceParent and TraceState are the CloudEvents distributed-tracing
	// extension; the ingress sets them on the message (TraceCarrier) when
	// tracing is on.
	TraceParent, TraceState string
	// RequestID is the delivery's request id (extension requestid), so
	// that the other items of one delivery can be found; empty: none.
	RequestID string
	Data      []byte
}

// Source is the CloudEvent source of a provider channel, a URI reference:
// the channel is path-escaped (real channel ids need no escaping).
func Source(provider, channel string) string {
	return string(appendSource(nil, provider, channel))
}

func appendSource(b []byte, provider, channel string) []byte {
	b = appendPathEscaped(append(b, '/'), provider)
	return appendPathEscaped(append(b, '/'), channel)
}

// appendPathEscaped appends url.PathEscape(s): as it is when it holds only
// bytes no escaping touches, the usual case, which spares a string.
func appendPathEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !unescaped[s[i]] {
			return append(b, url.PathEscape(s)...)
		}
	}
	return append(b, s...)
}

// unescaped are the bytes url.PathEscape keeps: unreserved ones, and a
// path segment's reserved ones other than '/', ';', ',' and '?'.
var unescaped = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("-_.~$&+:=@", byte(c)) >= 0
	}
	return t
}()

// PartitionKey orders a chat's events: "{provider}/{channel}/{chat}", or
// "{provider}/{channel}" for events not about one chat.
func PartitionKey(provider, channel, chat string) string {
	if chat == "" {
		return provider + "/" + channel
	}
	return provider + "/" + channel + "/" + chat
}

func appendPartitionKey(b []byte, provider, channel, chat string) []byte {
	b = append(append(append(b, provider...), '/'), channel...)
	if chat != "" {
		b = append(append(b, '/'), chat...)
	}
	return b
}

// IngressSubject is the NATS subject of a raw event:
// wahook.ingress.{provider}.{channel}.{kind}.
func IngressSubject(provider, channel, kind string) string {
	return string(appendIngressSubject(nil, provider, channel, kind))
}

func appendIngressSubject(b []byte, provider, channel, kind string) []byte {
	b = appendToken(append(b, IngressTopic+"."...), provider)
	b = appendToken(append(b, '.'), channel)
	return appendKindTokens(append(b, '.'), kind)
}

// Ingress builds the broker message of a raw event. It is on the ingress's
// hot path: the texts it makes (source, type, time, partition key,
// subject) share one string, and header values one backing array.
func Ingress(r Raw, b Binding) broker.Message {
	var buf [512]byte
	text := buf[:0]
	var end [5]int
	text = appendSource(text, r.Provider, r.Channel)
	end[0] = len(text)
	text = append(append(append(append(text, IngressTypePrefix...), r.Provider...), '.'), r.Kind...)
	end[1] = len(text)
	text = r.Time.UTC().AppendFormat(text, time.RFC3339Nano)
	end[2] = len(text)
	text = appendPartitionKey(text, r.Provider, r.Channel, r.Chat)
	end[3] = len(text)
	text = appendIngressSubject(text, r.Provider, r.Channel, r.Kind)
	end[4] = len(text)
	all := string(text)
	source, typ, when, key, subject := all[:end[0]], all[end[0]:end[1]], all[end[1]:end[2]], all[end[2]:end[3]], all[end[3]:end[4]]

	names := b.names()
	vals := make([]string, 0, 15)
	// 14 keeps the map in one table of 16 slots, enough for every header
	// but tracing's two; 15 would double it.
	h := make(broker.Header, 14)
	set := func(a attrIndex, v string) {
		vals = append(vals, b.encode(v))
		h[names[a]] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	set(iSpecVersion, event.CloudEventsVersionV1)
	set(iID, r.ID)
	set(iSource, source)
	set(iType, typ)
	if r.Chat != "" {
		set(iSubject, r.Chat)
	}
	set(iTime, when)
	if r.TimeReceived {
		set(iTimeSource, TimeReceived)
	}
	set(iProvider, r.Provider)
	set(iChannel, r.Channel)
	set(iPartitionKey, key)
	if r.RequestID != "" {
		set(iRequestID, r.RequestID)
	}
	if r.TraceParent != "" {
		set(iTraceParent, r.TraceParent)
		if r.TraceState != "" {
			set(iTraceState, r.TraceState)
		}
	}
	vals = append(vals, JSON)
	h[b.ContentType] = vals[len(vals)-1 : len(vals) : len(vals)]
	if b.IDHeader != "" {
		vals = append(vals, r.ID)
		h[b.IDHeader] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	return broker.Message{
		Topic:   IngressTopic,
		Subject: subject,
		Key:     key,
		ID:      r.ID,
		Header:  h,
		Data:    r.Data,
	}
}

// Encode writes any CloudEvent as a binary-mode message on topic/subject.
// The message key is the event's partitionkey extension.
func Encode(ev event.Event, topic, subject string, b Binding) (broker.Message, error) {
	if err := ev.Validate(); err != nil {
		return broker.Message{}, fmt.Errorf("encode event %s: %w", ev.ID(), err)
	}
	h := make(broker.Header, 8+len(ev.Extensions()))
	set := func(name, v string) {
		if v != "" {
			h[b.attr(name)] = []string{b.encode(v)}
		}
	}
	set(AttrSpecVersion, ev.SpecVersion())
	set(AttrID, ev.ID())
	set(AttrSource, ev.Source())
	set(AttrType, ev.Type())
	set(AttrSubject, ev.Subject())
	if !ev.Time().IsZero() {
		set(AttrTime, ev.Time().UTC().Format(time.RFC3339Nano))
	}
	set(AttrDataSchema, ev.DataSchema())
	for name, v := range ev.Extensions() {
		s, err := extensionString(v)
		if err != nil {
			return broker.Message{}, fmt.Errorf("encode event %s: extension %s: %w", ev.ID(), name, err)
		}
		set(name, s)
	}
	if ct := ev.DataContentType(); ct != "" {
		h[b.ContentType] = []string{ct}
	}
	if b.IDHeader != "" {
		h[b.IDHeader] = []string{ev.ID()}
	}
	key, _ := ev.Extensions()[ExtPartitionKey].(string)
	return broker.Message{Topic: topic, Subject: subject, Key: key, ID: ev.ID(), Header: h, Data: ev.Data()}, nil
}

func extensionString(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case fmt.Stringer:
		return x.String(), nil
	case bool, int32, int, int64:
		return fmt.Sprint(x), nil
	}
	return "", fmt.Errorf("unsupported type %T", v)
}

// Decode reads a binary-mode message back into a CloudEvent and validates it.
func Decode(m broker.Message, b Binding) (event.Event, error) {
	ev := event.New(event.CloudEventsVersionV1)
	var sv string
	for k, vs := range m.Header {
		if len(vs) == 0 {
			continue
		}
		v := b.decode(vs[0])
		if strings.EqualFold(k, b.ContentType) {
			ev.SetDataContentType(v)
			continue
		}
		if len(k) <= len(b.Prefix) || !strings.EqualFold(k[:len(b.Prefix)], b.Prefix) {
			continue
		}
		name := strings.ToLower(k[len(b.Prefix):])
		switch name {
		case AttrSpecVersion:
			sv = v
		case AttrID:
			ev.SetID(v)
		case AttrSource:
			ev.SetSource(v)
		case AttrType:
			ev.SetType(v)
		case AttrSubject:
			ev.SetSubject(v)
		case AttrDataSchema:
			ev.SetDataSchema(v)
		case AttrDataContentType:
			ev.SetDataContentType(v)
		case AttrTime:
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return event.Event{}, fmt.Errorf("decode event: time %q: %w", v, err)
			}
			ev.SetTime(t)
		default:
			if err := ev.Context.SetExtension(name, v); err != nil {
				return event.Event{}, fmt.Errorf("decode event: extension %s: %w", name, err)
			}
		}
	}
	if sv != event.CloudEventsVersionV1 {
		return event.Event{}, fmt.Errorf("decode event: specversion %q, want %s", sv, event.CloudEventsVersionV1)
	}
	ev.DataEncoded = m.Data
	if err := ev.Validate(); err != nil {
		return event.Event{}, fmt.Errorf("decode event: %w", err)
	}
	return ev, nil
}

// RawKind reads a raw event's provider and kind from its headers alone, as
// DecodeRaw reads them (the provider extension, the type after
// io.wahook.ingress.{provider}.), without decoding the rest: consumers
// pass over the kinds they do not read with it. It reports false when the
// headers are not those of a raw event.
func RawKind(h broker.Header, b Binding) (provider, kind string, ok bool) {
	provider = b.decode(h.Get(b.attr(ExtProvider)))
	kind, ok = rawKind(provider, b.decode(h.Get(b.attr(AttrType))))
	if !ok {
		return "", "", false
	}
	return provider, kind, true
}

// rawKind returns the kind a raw event type of provider names:
// io.wahook.ingress.{provider}.{kind}.
func rawKind(provider, typ string) (string, bool) {
	rest, ok := strings.CutPrefix(typ, IngressTypePrefix)
	if !ok || provider == "" {
		return "", false
	}
	kind, ok := strings.CutPrefix(rest, provider+".")
	return kind, ok && kind != ""
}

// DecodeRaw reads a raw event's attributes from a binary-mode message
// without building a full CloudEvent: consumers do it for every raw event.
// It checks what they rely on: specversion, id, source, a raw event type,
// the provider and channel extensions and the time.
func DecodeRaw(m broker.Message, b Binding) (derive.Raw, error) {
	get := func(name string) string { return b.decode(m.Header.Get(b.attr(name))) }
	if sv := get(AttrSpecVersion); sv != event.CloudEventsVersionV1 {
		return derive.Raw{}, fmt.Errorf("decode raw event: specversion %q, want %s", sv, event.CloudEventsVersionV1)
	}
	r := derive.Raw{
		ID:       get(AttrID),
		Source:   get(AttrSource),
		Subject:  get(AttrSubject),
		Provider: get(ExtProvider),
		Channel:  get(ExtChannel),
		Data:     m.Data,
	}
	typ := get(AttrType)
	kind, isRaw := rawKind(r.Provider, typ)
	switch {
	case r.ID == "" || r.Source == "":
		return derive.Raw{}, errors.New("decode raw event: id and source are required")
	case r.Provider == "" || r.Channel == "":
		return derive.Raw{}, fmt.Errorf("decode raw event %s: provider and channel extensions are required", r.ID)
	case !isRaw:
		return derive.Raw{}, fmt.Errorf("decode raw event %s: type %q is not a raw %s event", r.ID, typ, r.Provider)
	}
	r.Kind = kind
	t, err := time.Parse(time.RFC3339Nano, get(AttrTime))
	if err != nil {
		return derive.Raw{}, fmt.Errorf("decode raw event %s: time: %w", r.ID, err)
	}
	r.Time = t
	r.TimeReceived = get(ExtTimeSource) == TimeReceived
	return r, nil
}
