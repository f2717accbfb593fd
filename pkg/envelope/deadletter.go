package envelope

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/wahook/wahook/pkg/broker"
)

// DeadLetterType is the CloudEvent type of every dead-letter record.
const DeadLetterType = "io.wahook.deadletter"

// DeadLetterSchema is the dataschema of dead-letter records.
const DeadLetterSchema = SchemaBase + "deadletter.v1.json"

// SchemaBase prefixes every wahook schema URI; the file names are those in schemas/.
const SchemaBase = "https://wahook.dev/schemas/"

// DeadLetter is the data of a dead-letter record: input that could not be
// turned into events, kept whole so that it can be inspected and replayed.
type DeadLetter struct {
	Reason   string `json:"reason"`
	Provider string `json:"provider"`
	Channel  string `json:"channel,omitempty"`
	// ReceivedAt is when the ingress received the request, or when a
	// consumer gave up on a raw event.
	ReceivedAt time.Time `json:"received_at"`
	Method     string    `json:"method,omitempty"`
	Path       string    `json:"path,omitempty"`
	// Headers are the request's headers worth keeping; secrets never are.
	Headers map[string]string `json:"headers,omitempty"`
	// Body holds the raw bytes when they are valid UTF-8, else BodyBase64.
	Body       *string `json:"body,omitempty"`
	BodyBase64 string  `json:"body_base64,omitempty"`
	// SourceEventID is the raw event a consumer could not interpret.
	SourceEventID string `json:"source_event_id,omitempty"`
}

// SetBody stores raw as text or base64, whichever keeps it exact.
func (d *DeadLetter) SetBody(raw []byte) {
	if utf8.Valid(raw) {
		s := string(raw)
		d.Body = &s
		d.BodyBase64 = ""
		return
	}
	d.Body = nil
	d.BodyBase64 = base64.StdEncoding.EncodeToString(raw)
}

// DeadLetterSubject is the NATS subject of a provider's dead letters.
func DeadLetterSubject(provider string) string {
	return DeadLetterTopic + "." + Token(provider)
}

// DeadLetterMessage builds the broker message of a dead-letter record. Its id
// is derived from its content (without the receive time), so the same bad
// delivery retried by a provider is stored once within the duplicate window.
func DeadLetterMessage(d DeadLetter, b Binding) (broker.Message, error) {
	data, err := json.Marshal(d)
	if err != nil {
		return broker.Message{}, fmt.Errorf("dead letter: %w", err)
	}
	h := sha256.New()
	for _, part := range [...]string{d.Provider, d.Channel, d.Reason, d.SourceEventID, d.BodyBase64} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	if d.Body != nil {
		h.Write([]byte(*d.Body))
	}
	var sum [sha256.Size]byte
	id := hex.EncodeToString(h.Sum(sum[:0])[:16])

	ev := event.New(event.CloudEventsVersionV1)
	ev.SetID(id)
	ev.SetType(DeadLetterType)
	if d.Channel != "" {
		ev.SetSource(Source(d.Provider, d.Channel))
	} else {
		ev.SetSource("/" + url.PathEscape(d.Provider))
	}
	ev.SetTime(d.ReceivedAt)
	ev.SetDataSchema(DeadLetterSchema)
	ev.SetExtension(ExtProvider, d.Provider)
	if d.Channel != "" {
		ev.SetExtension(ExtChannel, d.Channel)
	}
	ev.SetExtension(ExtPartitionKey, PartitionKey(d.Provider, d.Channel, ""))
	if d.SourceEventID != "" {
		ev.SetExtension(ExtCausationID, d.SourceEventID)
	}
	ev.SetDataContentType(JSON)
	ev.DataEncoded = data
	return Encode(ev, DeadLetterTopic, DeadLetterSubject(d.Provider), b)
}
