package envelope

import (
	"encoding/json"
	"fmt"

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

// Derived builds the broker message of a derived event.
func Derived(d derive.Event, raw derive.Raw, b Binding) (broker.Message, error) {
	data, err := json.Marshal(d.Data)
	if err != nil {
		return broker.Message{}, fmt.Errorf("derived event %s: %w", d.ID, err)
	}
	chat := d.Chat
	if chat == "" {
		chat = raw.Subject
	}
	ev := event.New(event.CloudEventsVersionV1)
	ev.SetID(d.ID)
	ev.SetType(d.Type)
	ev.SetSource(raw.Source)
	if d.Subject != "" {
		ev.SetSubject(d.Subject)
	}
	ev.SetTime(raw.Time)
	ev.SetDataSchema(SchemaURI(d.Stream))
	ev.SetExtension(ExtProvider, raw.Provider)
	ev.SetExtension(ExtChannel, raw.Channel)
	ev.SetExtension(ExtPartitionKey, PartitionKey(raw.Provider, raw.Channel, chat))
	ev.SetExtension(ExtCausationID, raw.ID)
	ev.SetDataContentType(JSON)
	ev.DataEncoded = data
	return Encode(ev, DerivedTopic(d.Stream), DerivedSubject(d.Stream, raw.Provider, raw.Channel), b)
}
