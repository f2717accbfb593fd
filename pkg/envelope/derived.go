package envelope

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/derive"
)

// DerivedTopic is the Kafka topic of a derived stream, and the prefix of its
// NATS subjects: "wahook.label-changed".
func DerivedTopic(stream string) string {
	if n, ok := streamNames[stream]; ok {
		return n.topic
	}
	return "wahook." + stream
}

// DerivedSubject is the NATS subject of a derived event:
// wahook.{stream}.{provider}.{channel}.
func DerivedSubject(stream, provider, channel string) string {
	return DerivedTopic(stream) + "." + Token(provider) + "." + Token(channel)
}

// SchemaURI is the dataschema of a derived stream's events, equal to the
// $id of schemas/{stream}.v1.json.
func SchemaURI(stream string) string {
	if n, ok := streamNames[stream]; ok {
		return n.schema
	}
	return SchemaBase + stream + ".v1.json"
}

// streamNames are each derived stream's topic and schema, built once:
// Derived needs both for every event.
var streamNames = func() map[string]struct{ topic, schema string } {
	m := make(map[string]struct{ topic, schema string }, len(derive.Streams))
	for _, s := range derive.Streams {
		m[s] = struct{ topic, schema string }{"wahook." + s, SchemaBase + s + ".v1.json"}
	}
	return m
}()

// Derived builds the broker message of a derived event. Consumers call it
// for every derived event, so it writes the headers directly, as Ingress
// does, and builds its key, time and subject in one string; tests decode
// its output with Decode, which validates.
func Derived(d derive.Event, raw derive.Raw, b Binding) (broker.Message, error) {
	data, err := json.Marshal(d.Data)
	if err != nil {
		return broker.Message{}, fmt.Errorf("derived event %s: %w", d.ID, err)
	}
	if d.ID == "" || d.Type == "" || raw.Source == "" {
		return broker.Message{}, fmt.Errorf("derived event %q: id, type and source are required", d.ID)
	}
	chat := d.Chat
	if chat == "" {
		chat = raw.Subject
	}
	topic := DerivedTopic(d.Stream)
	// The partition key, the time and the subject share one allocation:
	// they are written into buf and sliced out of one string.
	var arr [256]byte
	buf := arr[:0]
	buf = append(buf, raw.Provider...)
	buf = append(buf, '/')
	buf = append(buf, raw.Channel...)
	if chat != "" {
		buf = append(buf, '/')
		buf = append(buf, chat...)
	}
	keyEnd := len(buf)
	buf = raw.Time.UTC().AppendFormat(buf, time.RFC3339Nano)
	timeEnd := len(buf)
	buf = append(buf, topic...)
	buf = append(buf, '.')
	buf = appendToken(buf, raw.Provider)
	buf = append(buf, '.')
	buf = appendToken(buf, raw.Channel)
	all := string(buf)
	key, at, subject := all[:keyEnd], all[keyEnd:timeEnd], all[timeEnd:]

	vals := make([]string, 0, 13)
	h := make(broker.Header, 13)
	set := func(name, v string) {
		vals = append(vals, v)
		h[name] = vals[len(vals)-1 : len(vals) : len(vals)]
	}
	enc := func(name, v string) { set(b.attr(name), b.encode(v)) }
	enc(AttrSpecVersion, event.CloudEventsVersionV1)
	enc(AttrID, d.ID)
	enc(AttrSource, raw.Source)
	enc(AttrType, d.Type)
	if d.Subject != "" {
		enc(AttrSubject, d.Subject)
	}
	enc(AttrTime, at)
	enc(AttrDataSchema, SchemaURI(d.Stream))
	enc(ExtProvider, raw.Provider)
	enc(ExtChannel, raw.Channel)
	enc(ExtPartitionKey, key)
	enc(ExtCausationID, raw.ID)
	set(b.ContentType, JSON)
	if b.IDHeader != "" {
		set(b.IDHeader, d.ID)
	}
	return broker.Message{
		Topic:   topic,
		Subject: subject,
		Key:     key,
		ID:      d.ID,
		Header:  h,
		Data:    data,
	}, nil
}
