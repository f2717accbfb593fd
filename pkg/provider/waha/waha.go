package waha

import (
	"encoding/json"
	"errors"
	"strings"

	"github.com/wahook/wahook/pkg/provider"
)

// Name is the provider's path and event-type token.
const Name = "waha"

// WAHA event names (WAHAEvents in WAHA's enums.dto.ts).
const (
	KindSessionStatus       = "session.status"
	KindMessage             = "message"
	KindMessageAny          = "message.any"
	KindMessageReaction     = "message.reaction"
	KindMessageAck          = "message.ack"
	KindMessageAckGroup     = "message.ack.group"
	KindMessageWaiting      = "message.waiting"
	KindMessageRevoked      = "message.revoked"
	KindMessageEdited       = "message.edited"
	KindStateChange         = "state.change"
	KindGroupJoin           = "group.join"
	KindGroupLeave          = "group.leave"
	KindGroupV2Join         = "group.v2.join"
	KindGroupV2Leave        = "group.v2.leave"
	KindGroupV2Update       = "group.v2.update"
	KindGroupV2Participants = "group.v2.participants"
	KindGroupV2JoinRequest  = "group.v2.participants.join-request"
	KindPresenceUpdate      = "presence.update"
	KindPollVote            = "poll.vote"
	KindPollVoteFailed      = "poll.vote.failed"
	KindChatArchive         = "chat.archive"
	KindCallReceived        = "call.received"
	KindCallAccepted        = "call.accepted"
	KindCallRejected        = "call.rejected"
	KindLabelUpsert         = "label.upsert"
	KindLabelDeleted        = "label.deleted"
	KindLabelChatAdded      = "label.chat.added"
	KindLabelChatDeleted    = "label.chat.deleted"
	KindEventResponse       = "event.response"
	KindEventResponseFailed = "event.response.failed"
	KindEngineEvent         = "engine.event"
)

var kinds = map[string]bool{
	KindSessionStatus: true, KindMessage: true, KindMessageAny: true, KindMessageReaction: true,
	KindMessageAck: true, KindMessageAckGroup: true, KindMessageWaiting: true, KindMessageRevoked: true,
	KindMessageEdited: true, KindStateChange: true, KindGroupJoin: true, KindGroupLeave: true,
	KindGroupV2Join: true, KindGroupV2Leave: true, KindGroupV2Update: true, KindGroupV2Participants: true,
	KindGroupV2JoinRequest: true,
	KindPresenceUpdate:     true, KindPollVote: true, KindPollVoteFailed: true, KindChatArchive: true,
	KindCallReceived: true, KindCallAccepted: true, KindCallRejected: true, KindLabelUpsert: true,
	KindLabelDeleted: true, KindLabelChatAdded: true, KindLabelChatDeleted: true, KindEventResponse: true,
	KindEventResponseFailed: true, KindEngineEvent: true,
}

// Provider is the WAHA webhook format. The zero value is ready to use.
type Provider struct{}

var (
	_ provider.Provider = (*Provider)(nil)
	_ provider.Feeder   = (*Provider)(nil)
)

// New returns a WAHA provider.
func New() *Provider { return &Provider{} }

// Name returns "waha".
func (*Provider) Name() string { return Name }

// envelope is what Split reads of a delivery: the WAHA envelope, the payload
// fields that identify the event, and Wawp's flat session-status variant.
type envelope struct {
	ID        json.RawMessage `json:"id"`
	Timestamp json.RawMessage `json:"timestamp"`
	Session   json.RawMessage `json:"session"`
	Event     json.RawMessage `json:"event"`
	Payload   head            `json:"payload"`

	InstanceID json.RawMessage `json:"instance_id"`
	Status     json.RawMessage `json:"status"`
	TS         json.RawMessage `json:"ts"`
}

// head holds the payload fields any kind's identity is made of.
type head struct {
	msgRef
	ChatID      json.RawMessage `json:"chatId"`
	Participant json.RawMessage `json:"participant"`
	Ack         json.RawMessage `json:"ack"`
	Reaction    json.RawMessage `json:"reaction"`
	Group       *struct {
		ID json.RawMessage `json:"id"`
	} `json:"group"`
	Data   json.RawMessage `json:"_data"`
	After  *msgRef         `json:"after"`
	Before *msgRef         `json:"before"`
	Vote   *msgRef         `json:"vote"`
	Poll   *msgRef         `json:"poll"`
}

// msgRef is a message as far as its id and chat go.
type msgRef struct {
	ID        json.RawMessage `json:"id"`
	Timestamp json.RawMessage `json:"timestamp"`
	From      json.RawMessage `json:"from"`
	To        json.RawMessage `json:"to"`
	FromMe    json.RawMessage `json:"fromMe"`
}

// Split returns the one event of a WAHA delivery.
func (*Provider) Split(body []byte, _ provider.Delivery) ([]provider.Item, error) {
	var env envelope
	if err := decodeObject(body, &env); err != nil {
		return nil, err
	}
	it := provider.Item{Data: body}
	if isNull(env.Event) {
		if len(env.InstanceID) == 0 || provider.String(env.Status) == "" {
			return nil, provider.Invalid("no event: not a WAHA webhook")
		}
		it.Kind = KindSessionStatus
		it.Channel = provider.Text(env.InstanceID)
		it.Time, _ = provider.Unix(env.TS)
		return []provider.Item{it}, nil
	}
	event := provider.String(env.Event)
	if event == "" {
		return nil, provider.Invalid("event is not a non-empty string")
	}
	it.Kind = provider.KindUnknown
	if kinds[event] {
		it.Kind = event
	}
	it.Channel = provider.Text(env.Session)
	p := &env.Payload
	it.Key = provider.Text(env.ID)
	if it.Key == "" {
		it.Key = key(it.Kind, p)
	}
	it.Chat = chat(it.Kind, p)
	var ok bool
	if it.Time, ok = provider.Unix(env.Timestamp); !ok {
		it.Time, _ = provider.Unix(p.Timestamp)
	}
	return []provider.Item{it}, nil
}

// decodeObject decodes a JSON object into v. Values of an unexpected type
// (a payload that is an array, a group that is a string) are left out rather
// than refused: the raw stream keeps every WAHA event whatever its payload.
func decodeObject(data []byte, v any) error {
	i := 0
	for i < len(data) && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n') {
		i++
	}
	if i == len(data) || data[i] != '{' {
		return provider.Invalid("not a JSON object")
	}
	err := json.Unmarshal(data, v)
	var typeErr *json.UnmarshalTypeError
	if err != nil && !errors.As(err, &typeErr) {
		return provider.Invalid("not valid JSON: %v", err)
	}
	return nil
}

// key is the payload's own identity of one event of kind k, or "" when the
// payload has none (its canonical content identifies it).
func key(k string, p *head) string {
	switch k {
	case KindMessage, KindMessageAny, KindMessageWaiting, KindEventResponse, KindEventResponseFailed,
		KindCallReceived, KindCallAccepted, KindCallRejected, KindGroupJoin, KindGroupLeave:
		// Calls: one id per call, and the kind tells the state.
		return serialized(p.ID)
	case KindMessageAck:
		return join(serialized(p.ID), ackLevel(p))
	case KindMessageAckGroup:
		return join(serialized(p.ID), provider.String(p.Participant), ackLevel(p))
	case KindMessageReaction:
		id := serialized(p.ID)
		if id == "" {
			return ""
		}
		return id + "/" + reactionText(p.Reaction)
	case KindMessageRevoked:
		if p.After != nil && serialized(p.After.ID) != "" {
			return serialized(p.After.ID)
		}
		if p.Before != nil {
			return serialized(p.Before.ID)
		}
		return ""
	case KindPollVote, KindPollVoteFailed:
		if p.Vote != nil {
			return serialized(p.Vote.ID)
		}
		return ""
	}
	// Label, chat, presence, group v2 and session payloads carry no event id
	// (their ids name a label or chat that changes many times); an edit's id
	// is the edited message's in some engines.
	return ""
}

// join joins parts with '/', or returns "" when one is missing.
func join(parts ...string) string {
	for _, s := range parts {
		if s == "" {
			return ""
		}
	}
	return strings.Join(parts, "/")
}

func ackLevel(p *head) string {
	return scalar(p.Ack)
}

// reactionText is Wawp's reaction string or WAHA's reaction.text.
func reactionText(raw json.RawMessage) string {
	if len(raw) > 0 && raw[0] == '{' {
		var r struct {
			Text json.RawMessage `json:"text"`
		}
		if json.Unmarshal(raw, &r) != nil {
			return ""
		}
		return provider.String(r.Text)
	}
	return provider.String(raw)
}

// chat is the chat an event of kind k is about, as written, or "".
func chat(k string, p *head) string {
	if c := provider.String(p.ChatID); c != "" {
		return c
	}
	switch k {
	case KindSessionStatus, KindStateChange, KindEngineEvent, KindLabelUpsert, KindLabelDeleted,
		KindLabelChatAdded, KindLabelChatDeleted, provider.KindUnknown:
		return ""
	case KindGroupJoin, KindGroupLeave, KindGroupV2Join, KindGroupV2Leave, KindGroupV2Update,
		KindGroupV2Participants, KindGroupV2JoinRequest:
		if p.Group != nil {
			return serialized(p.Group.ID)
		}
		return remote(p.ID)
	case KindChatArchive, KindPresenceUpdate:
		// WAHA's ChatArchiveEvent and WAHAChatPresences name the chat "id".
		return provider.String(p.ID)
	case KindCallReceived, KindCallAccepted, KindCallRejected:
		c, _ := callParties(provider.String(p.From), decodeGOWSCall(p.Data))
		return c
	case KindPollVote, KindPollVoteFailed:
		if p.Poll != nil {
			if c := p.Poll.chat(); c != "" {
				return c
			}
		}
		if p.Vote != nil {
			return p.Vote.chat()
		}
		return ""
	}
	if c := p.chat(); c != "" {
		return c
	}
	for _, m := range [...]*msgRef{p.After, p.Before} {
		if m != nil {
			if c := m.chat(); c != "" {
				return c
			}
		}
	}
	return idChat(serialized(p.ID))
}

// chat is a message's chat: from, or to for a message you sent, or the
// chat part of its serialized id.
func (m *msgRef) chat() string {
	var c string
	if fromMe, _ := boolean(m.FromMe); fromMe {
		c = provider.String(m.To)
	} else {
		c = provider.String(m.From)
	}
	if c != "" {
		return c
	}
	return idChat(serialized(m.ID))
}

// idChat returns the chat of a serialized message id "{fromMe}_{chat}_{id}",
// or "".
func idChat(id string) string {
	rest, ok := strings.CutPrefix(id, "false_")
	if !ok {
		if rest, ok = strings.CutPrefix(id, "true_"); !ok {
			return ""
		}
	}
	c, _, ok := strings.Cut(rest, "_")
	if !ok || !strings.Contains(c, "@") {
		return ""
	}
	return c
}

// remote is the chat of a whatsapp-web.js serialized message key object
// {"remote": ..., "_serialized": ...}, as WAHA's v1 group events carry it.
func remote(raw json.RawMessage) string {
	if len(raw) == 0 || raw[0] != '{' {
		return ""
	}
	var k struct {
		Remote     json.RawMessage `json:"remote"`
		Serialized json.RawMessage `json:"_serialized"`
	}
	if json.Unmarshal(raw, &k) != nil {
		return ""
	}
	if c := serialized(k.Remote); c != "" {
		return c
	}
	return idChat(provider.String(k.Serialized))
}
