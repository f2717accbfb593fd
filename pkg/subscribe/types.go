package subscribe

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/wahook/wahook/pkg/envelope"
)

// Common is the data every derived event carries.
type Common struct {
	Provider string `json:"provider"`
	Channel  string `json:"channel"`
	// OccurredAt is when the provider says it happened (UTC).
	OccurredAt time.Time `json:"occurred_at"`
	// SourceEventID is the id of the raw event it was derived from.
	SourceEventID string `json:"source_event_id"`
}

// Chat names the chat an event is about; empty on events about no chat
// (a label's own creation, update or deletion; a call without a chat).
type Chat struct {
	// ChatID is canonical: 5511999999999@s.whatsapp.net, 1203...@g.us.
	ChatID string `json:"chat_id,omitempty"`
	// ChatIDRaw is the chat id as the provider wrote it.
	ChatIDRaw string `json:"chat_id_raw,omitempty"`
	// ChatType is contact, group, newsletter, broadcast or lid; empty when
	// the id has no known form.
	ChatType string `json:"chat_type,omitempty"`
	// ChatLID is the contact's hidden id (…@lid) when the provider gave it
	// beside the phone-number form in ChatID.
	ChatLID string `json:"chat_lid,omitempty"`
}

// LabelChanged is the data of io.wahook.label.added, .removed, .created,
// .updated and .deleted (schemas/label-changed.v1.json).
type LabelChanged struct {
	Common
	Chat
	Label Label `json:"label"`
	// Previous is set on io.wahook.label.updated only.
	Previous *LabelPrevious `json:"previous,omitempty"`
}

// Label is a label as far as it is known: ID or Name is set.
type Label struct {
	ID       string `json:"id,omitempty"`
	Name     string `json:"name,omitempty"`
	Color    string `json:"color,omitempty"`
	ColorHex string `json:"color_hex,omitempty"`
}

// LabelPrevious is a label before an update.
type LabelPrevious struct {
	Name  string `json:"name,omitempty"`
	Color string `json:"color,omitempty"`
}

// ChatCreated is the data of io.wahook.chat.created
// (schemas/chat-created.v1.json).
type ChatCreated struct {
	Common
	Chat
	// Inferred is true when the chat was first seen in a message rather
	// than announced by the provider.
	Inferred bool   `json:"inferred"`
	Name     string `json:"name,omitempty"`
	// Direction is incoming or outgoing, when known.
	Direction string `json:"direction,omitempty"`
}

// Call is the data of io.wahook.call.offered, .missed, .accepted,
// .rejected and .ended (schemas/call.v1.json).
type Call struct {
	Common
	Chat
	CallID string `json:"call_id"`
	// From is the caller's canonical id, when the provider tells it.
	From      string `json:"from,omitempty"`
	Video     bool   `json:"video"`
	GroupCall bool   `json:"group_call"`
	// Status is the provider's own word: ringing, CALL_MISSED_VIDEO...
	Status string `json:"status"`
}

// GroupNotification is the data of io.wahook.group.*
// (schemas/group-notification.v1.json). The chat is the group.
type GroupNotification struct {
	Common
	Chat
	// Participants are canonical ids; never nil after decoding.
	Participants []string `json:"participants"`
	Actor        string   `json:"actor,omitempty"`
	// Subject and Description are pointers: "" means cleared, nil absent.
	Subject       *string       `json:"subject,omitempty"`
	Description   *string       `json:"description,omitempty"`
	Setting       *GroupSetting `json:"setting,omitempty"`
	RequestMethod string        `json:"request_method,omitempty"`
}

// GroupSetting is a group setting's new value.
type GroupSetting struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// DeadLetter is the data of io.wahook.deadletter
// (schemas/deadletter.v1.json); envelope.DeadLetterBody reassembles a body
// stored in parts.
type DeadLetter = envelope.DeadLetter

// DeadLetterRedriven is the data of io.wahook.deadletter.redriven
// (schemas/deadletter-redriven.v1.json): the note a redrive stores on the
// dead-letter stream after a record whose raw events it published again,
// naming the record (DeadLetterID) and the raw event ids (IDs).
type DeadLetterRedriven = envelope.Redriven

// Schema URIs (dataschema) of the derived streams and dead letters.
const (
	LabelChangedSchema       = envelope.SchemaBase + "label-changed.v1.json"
	ChatCreatedSchema        = envelope.SchemaBase + "chat-created.v1.json"
	CallSchema               = envelope.SchemaBase + "call.v1.json"
	GroupNotificationSchema  = envelope.SchemaBase + "group-notification.v1.json"
	DeadLetterSchema         = envelope.DeadLetterSchema
	DeadLetterRedrivenSchema = envelope.DeadLetterRedrivenSchema
)

// ErrUnknownSchema is returned by Data for an event whose dataschema names
// no type this package knows (a newer version: upgrade, or read the JSON).
var ErrUnknownSchema = errors.New("subscribe: unknown dataschema")

// Data decodes a wahook event's data into its type, chosen by its
// dataschema: *LabelChanged, *ChatCreated, *Call, *GroupNotification,
// *DeadLetter or *DeadLetterRedriven. A dead letter's body parts carry no
// dataschema: envelope.DeadLetterBody reads them.
func Data(ev event.Event) (any, error) {
	var v any
	switch ev.DataSchema() {
	case LabelChangedSchema:
		v = new(LabelChanged)
	case ChatCreatedSchema:
		v = new(ChatCreated)
	case CallSchema:
		v = new(Call)
	case GroupNotificationSchema:
		v = new(GroupNotification)
	case DeadLetterSchema:
		v = new(DeadLetter)
	case DeadLetterRedrivenSchema:
		v = new(DeadLetterRedriven)
	default:
		return nil, fmt.Errorf("%w: %q (event %s, type %s)", ErrUnknownSchema, ev.DataSchema(), ev.ID(), ev.Type())
	}
	if err := json.Unmarshal(ev.Data(), v); err != nil {
		return nil, fmt.Errorf("subscribe: data of event %s (%s): %w", ev.ID(), ev.Type(), err)
	}
	if g, ok := v.(*GroupNotification); ok && g.Participants == nil {
		g.Participants = []string{}
	}
	return v, nil
}
