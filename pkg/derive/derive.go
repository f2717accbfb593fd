// Package derive turns the provider-neutral facts of one raw event into the
// events of wahook's derived streams. Each stream has its own package
// (label, chat, call, group) exporting a Deriver; they share the types here.
// Derivation is pure but for the state a stream needs (the label registry,
// the set of known chats), which is reached through the small interfaces
// below so that it can live on any broker's durable store.
//
// Ids are deterministic: a derived event's id is a hash of its raw event's
// id and what was derived, never of anything learnt from state, so
// reprocessing a raw event (a redelivery, a replay, a second consumer
// instance) yields the same ids and subscribers deduplicate.
package derive

import (
	"context"
	"fmt"
	"time"

	"github.com/wahook/wahook/pkg/chatid"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/provider"
)

// Stream names, as in subjects, topics and schema file names.
const (
	LabelChanged      = "label-changed"
	ChatCreated       = "chat-created"
	Call              = "call"
	GroupNotification = "group-notification"
)

// Streams lists every derived stream.
var Streams = []string{LabelChanged, ChatCreated, Call, GroupNotification}

// TypePrefix starts every derived event type.
const TypePrefix = "io.wahook."

// Raw is a raw event as derivation sees it.
type Raw struct {
	ID       string
	Provider string
	Channel  string
	Kind     string
	// Source is the raw event's CloudEvent source.
	Source string
	// Subject is the raw event's subject: its canonical chat, if any.
	Subject string
	Time    time.Time
	// TimeReceived reports that Time is when the ingress received the raw
	// event, the provider having given none: another stored copy of the
	// event has another Time, so consumers fix it with a TimeRegistry.
	TimeReceived bool
	Data         []byte
}

// Event is one derived event before it is encoded as a CloudEvent.
type Event struct {
	ID string
	// Stream is one of the stream names above.
	Stream string
	// Type is the full CloudEvent type, e.g. "io.wahook.label.added".
	Type string
	// Subject is the canonical chat the event is about, else the raw
	// event's subject.
	Subject string
	// Chat is the canonical chat the event's partition key names ("" for
	// none: the raw event's chat is used).
	Chat string
	// Data is the event's data; it marshals to JSON valid against the
	// stream's schema.
	Data any
}

// Deriver derives one stream's events from one raw event's facts.
type Deriver interface {
	Stream() string
	Derive(ctx context.Context, raw Raw, f fact.Facts) ([]Event, error)
}

// ID returns a derived event id: a hash of the raw event id and the parts
// that tell the derived events of one raw event apart.
func ID(rawID string, parts ...string) string {
	var buf [8]string
	return provider.HashID(append(append(buf[:0], rawID), parts...)...)
}

// Common is the data every derived event carries.
type Common struct {
	Provider      string `json:"provider"`
	Channel       string `json:"channel"`
	OccurredAt    string `json:"occurred_at"`
	SourceEventID string `json:"source_event_id"`
}

// NewCommon returns the common data of the events derived from raw.
func NewCommon(raw Raw) Common {
	return Common{
		Provider:      raw.Provider,
		Channel:       raw.Channel,
		OccurredAt:    raw.Time.UTC().Format(time.RFC3339Nano),
		SourceEventID: raw.ID,
	}
}

// ChatRef is the data of an event about a chat.
type ChatRef struct {
	ChatID    string `json:"chat_id,omitempty"`
	ChatIDRaw string `json:"chat_id_raw,omitempty"`
	ChatType  string `json:"chat_type,omitempty"`
	// ChatLID is the contact's hidden (…@lid) id when the raw event gave
	// it beside the phone-number form in ChatID.
	ChatLID string `json:"chat_lid,omitempty"`
}

// LabelRegistry is what a channel's labels were last known to be, kept on
// the broker so that it survives restarts and is shared by instances.
type LabelRegistry interface {
	// Upsert records label l as set by raw event eventID. It reports
	// whether eventID created the label (first sighting, or a reprocessing
	// of the event that first saw it) and, when it did not, the label as it
	// was before eventID changed it.
	Upsert(ctx context.Context, provider, channel string, l fact.Label, eventID string) (created bool, previous fact.Label, err error)
	// Delete marks a label deleted by raw event eventID and returns what was
	// known of it. A reference by name is resolved to the label of that
	// name; known reports whether the label was found.
	Delete(ctx context.Context, provider, channel string, ref fact.LabelRef, eventID string) (l fact.Label, known bool, err error)
	// Lookup returns what is known of a label by id.
	Lookup(ctx context.Context, provider, channel, id string) (l fact.Label, known bool, err error)
}

// TimeRegistry remembers the time of raw events whose time is their
// receive time, so that every copy of one raw event (a provider's retry
// stored after the broker's duplicate window) derives the same events.
type TimeRegistry interface {
	// FirstTime returns the time recorded for raw event id: t when this
	// call records it, else what an earlier call recorded. Concurrent
	// callers with different times all get the same answer.
	FirstTime(ctx context.Context, id string, t time.Time) (time.Time, error)
}

// ChatRegistry is the set of chats known per channel.
type ChatRegistry interface {
	// FirstSeen records chat (canonical id) as known and reports whether
	// raw event eventID is the one that first saw it: true on the first
	// sighting and on any reprocessing of that same event, false for every
	// other event. Concurrent callers for one chat never both get true for
	// different events.
	FirstSeen(ctx context.Context, provider, channel, chat, eventID string) (bool, error)
}

// StreamsOf returns the streams whose derivation reads some of f, in the
// order of Streams: what a provider's Feeds must declare for the kind f
// came from.
func StreamsOf(f fact.Facts) []string {
	var out []string
	if len(f.LabelSets)+len(f.LabelAssocs)+len(f.LabelUpserts)+len(f.LabelDeletes) > 0 {
		out = append(out, LabelChanged)
	}
	if len(f.ChatsCreated)+len(f.ChatsSeen) > 0 {
		out = append(out, ChatCreated)
	}
	if len(f.Calls) > 0 {
		out = append(out, Call)
	}
	if len(f.Groups) > 0 {
		out = append(out, GroupNotification)
	}
	return out
}

// AliasRegistry ties contacts' hidden (…@lid) ids to their phone-number
// ids, per channel, both ways. The first pair learnt for an id is kept:
// a later pair naming another form for it is ignored (a hidden id is not
// reassigned; a phone number that is, is not followed).
type AliasRegistry interface {
	// Learn records that lid and phone (canonical) name one contact, as
	// raw event eventID tells. Learning a known pair again writes nothing.
	Learn(ctx context.Context, provider, channel, lid, phone, eventID string) error
	// Lookup returns the other form of id (canonical, either form) when a
	// pair naming it was learnt.
	Lookup(ctx context.Context, provider, channel, id string) (other string, ok bool, err error)
}

// MaxAliases bounds the pairs one raw event teaches: each new pair costs
// two state writes, and a forged payload may name thousands. A group has
// at most 1024 members, so a real payload never gives more.
const MaxAliases = 1024

// LearnAliases records in reg the aliases a raw event's facts tell, before
// anything is derived from it; nil reg learns nothing. A pair that is not a
// hidden id and a phone-number id of provider.MaxAliasDigits digits at most
// is passed over, and so is every pair after the first MaxAliases.
func LearnAliases(ctx context.Context, reg AliasRegistry, raw Raw, aliases []fact.Alias) error {
	if reg == nil {
		return nil
	}
	done := make(map[fact.Alias]bool, min(len(aliases), MaxAliases))
	for _, a := range aliases {
		a, ok := provider.Alias(a.LID, a.Phone)
		if !ok || done[a] {
			continue
		}
		if len(done) == MaxAliases {
			break
		}
		done[a] = true
		if err := reg.Learn(ctx, raw.Provider, raw.Channel, a.LID, a.Phone, raw.ID); err != nil {
			return fmt.Errorf("learn alias %s of %s: %w", a.LID, a.Phone, err)
		}
	}
	return nil
}

// PhoneOf returns the phone-number form learnt for chat when chat is a
// hidden (…@lid) id, else ""; nil reg knows none. Only …@lid chats cost a
// lookup.
func PhoneOf(ctx context.Context, reg AliasRegistry, raw Raw, chat string) (string, error) {
	if _, typ := chatid.Canonical(chat); typ != chatid.LID {
		return "", nil
	}
	return OtherForm(ctx, reg, raw, chat)
}

// OtherForm returns the other form learnt for a contact's chat: a …@lid's
// phone-number id, a phone-number id's …@lid; "" when none was learnt, or
// chat is neither, or reg is nil. A stored form of the wrong kind is no
// answer, whoever wrote it.
func OtherForm(ctx context.Context, reg AliasRegistry, raw Raw, chat string) (string, error) {
	id, typ := chatid.Canonical(chat)
	var want chatid.Type
	switch typ {
	case chatid.LID:
		want = chatid.Contact
	case chatid.Contact:
		want = chatid.LID
	}
	if reg == nil || want == chatid.Unknown {
		return "", nil
	}
	other, ok, err := reg.Lookup(ctx, raw.Provider, raw.Channel, id)
	if err != nil {
		return "", fmt.Errorf("look up alias of %s: %w", id, err)
	}
	if _, t := chatid.Canonical(other); !ok || t != want {
		return "", nil
	}
	return other, nil
}

// PhoneForm returns ref, about a …@lid chat, in the contact's phone-number
// form phone, with the LID as chat_lid; chat_id_raw stays what the provider
// wrote.
func PhoneForm(ref ChatRef, phone string) ChatRef {
	return ChatRef{ChatID: phone, ChatIDRaw: ref.ChatIDRaw, ChatType: string(chatid.Contact), ChatLID: ref.ChatID}
}
