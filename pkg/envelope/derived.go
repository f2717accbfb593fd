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
func DerivedTopic(stream string) string { return "wahook." + stream }

// DerivedSubject is the NATS subject of a derived event:
// wahook.{stream}.{provider}.{channel}.
func DerivedSubject(stream, provider, channel string) string {
	return DerivedTopic(stream) + "." + Token(provider) + "." + Token(channel)
}

// SchemaURI is the dataschema of a derived stream's events, equal to the
// $id of schemas/{stream}.v1.json.
func SchemaURI(stream string) string { return SchemaBase + stream + ".v1.json" }

// Derived builds the broker message of a derived event. Consumers call it
// for every derived event, so it writes the headers directly, as Ingress
// does; tests decode its output with Decode, which validates.
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
	key := PartitionKey(raw.Provider, raw.Channel, chat)
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
	enc(AttrTime, raw.Time.UTC().Format(time.RFC3339Nano))
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
		Topic:   DerivedTopic(d.Stream),
		Subject: DerivedSubject(d.Stream, raw.Provider, raw.Channel),
		Key:     key,
		ID:      d.ID,
		Header:  h,
		Data:    data,
	}, nil
}
