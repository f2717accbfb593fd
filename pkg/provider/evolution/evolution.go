package evolution

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/provider"
)

// Name is the provider's path and event-type token.
const Name = "evolution"

// Evolution's event names as sent (the Events enum of its wa.types.ts,
// lower-cased with dots).
const (
	KindApplicationStartup      = "application.startup"
	KindQRCodeUpdated           = "qrcode.updated"
	KindConnectionUpdate        = "connection.update"
	KindMessagesSet             = "messages.set"
	KindMessagesUpsert          = "messages.upsert"
	KindMessagesEdited          = "messages.edited"
	KindMessagesUpdate          = "messages.update"
	KindMessagesDelete          = "messages.delete"
	KindSendMessage             = "send.message"
	KindSendMessageUpdate       = "send.message.update"
	KindContactsSet             = "contacts.set"
	KindContactsUpsert          = "contacts.upsert"
	KindContactsUpdate          = "contacts.update"
	KindPresenceUpdate          = "presence.update"
	KindChatsSet                = "chats.set"
	KindChatsUpsert             = "chats.upsert"
	KindChatsUpdate             = "chats.update"
	KindChatsDelete             = "chats.delete"
	KindGroupsUpsert            = "groups.upsert"
	KindGroupsUpdate            = "groups.update"
	KindGroupParticipantsUpdate = "group-participants.update"
	KindLabelsEdit              = "labels.edit"
	KindLabelsAssociation       = "labels.association"
	KindCall                    = "call"
	KindTypebotStart            = "typebot.start"
	KindTypebotChangeStatus     = "typebot.change-status"
	KindRemoveInstance          = "remove.instance"
	KindLogoutInstance          = "logout.instance"
	KindInstanceCreate          = "instance.create"
	KindInstanceDelete          = "instance.delete"
	KindStatusInstance          = "status.instance"
)

var kindList = []string{
	KindApplicationStartup, KindQRCodeUpdated, KindConnectionUpdate, KindMessagesSet, KindMessagesUpsert,
	KindMessagesEdited, KindMessagesUpdate, KindMessagesDelete, KindSendMessage, KindSendMessageUpdate,
	KindContactsSet, KindContactsUpsert, KindContactsUpdate, KindPresenceUpdate, KindChatsSet, KindChatsUpsert,
	KindChatsUpdate, KindChatsDelete, KindGroupsUpsert, KindGroupsUpdate, KindGroupParticipantsUpdate,
	KindLabelsEdit, KindLabelsAssociation, KindCall, KindTypebotStart, KindTypebotChangeStatus,
	KindRemoveInstance, KindLogoutInstance, KindInstanceCreate, KindInstanceDelete, KindStatusInstance,
}

var (
	kinds = map[string]bool{}
	// bySuffix maps the URL suffix of "webhook by events" back to the event:
	// Evolution writes the event with '.' and '-' as '-'.
	bySuffix = map[string]string{}
)

func init() {
	for _, k := range kindList {
		kinds[k] = true
		bySuffix[Suffix(k)] = k
	}
}

// Suffix is the path segment Evolution appends to the URL for event in
// "webhook by events" mode: messages.upsert -> messages-upsert.
func Suffix(event string) string {
	return strings.ToLower(strings.ReplaceAll(event, ".", "-"))
}

// maxChatBytes bounds the chat an item is keyed by: WhatsApp JIDs are well
// under 100 bytes, and the chat travels in headers and partition keys.
const maxChatBytes = 256

// maxSuffix bounds the path segment of "webhook by events".
const maxSuffix = provider.MaxKindBytes

// Provider is the Evolution API webhook format. The zero value is ready to use.
type Provider struct{}

var (
	_ provider.Provider     = (*Provider)(nil)
	_ provider.Feeder       = (*Provider)(nil)
	_ provider.RouteChecker = (*Provider)(nil)
	_ provider.Redactor     = (*Provider)(nil)
)

// New returns an Evolution provider.
func New() *Provider { return &Provider{} }

// Name returns "evolution".
func (*Provider) Name() string { return Name }

// CheckRoute accepts POST /v1/webhooks/evolution and, for "webhook by
// events", POST /v1/webhooks/evolution/{event-suffix} with one segment of
// lower-case letters, digits, '-' and '_' (unknown suffixes too: events
// Evolution adds later).
func (*Provider) CheckRoute(method string, segments []string) error {
	if len(segments) > 1 || len(segments) == 1 && !validSuffix(segments[0]) {
		return provider.ErrNoRoute
	}
	if method != "POST" {
		return provider.ErrMethod
	}
	return nil
}

func validSuffix(s string) bool {
	if len(s) == 0 || len(s) > maxSuffix {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Redact removes the top-level "apikey" member: the instance's API token.
func (*Provider) Redact(body []byte) []byte {
	body, _ = provider.RemoveMember(body, "apikey")
	return body
}

// envelope is what Split reads of a delivery.
type envelope struct {
	Event    json.RawMessage `json:"event"`
	Instance json.RawMessage `json:"instance"`
	Data     json.RawMessage `json:"data"`
}

// head holds the data fields any kind's identity is made of.
type head struct {
	Key              *msgKey         `json:"key"`
	MessageTimestamp json.RawMessage `json:"messageTimestamp"`
	KeyID            json.RawMessage `json:"keyId"`
	RemoteJID        json.RawMessage `json:"remoteJid"`
	Status           json.RawMessage `json:"status"`
	ID               json.RawMessage `json:"id"`
	ChatID           json.RawMessage `json:"chatId"`
	From             json.RawMessage `json:"from"`
	GroupJID         json.RawMessage `json:"groupJid"`
	IsGroup          json.RawMessage `json:"isGroup"`
	Date             json.RawMessage `json:"date"`
	Name             json.RawMessage `json:"name"`
	Color            json.RawMessage `json:"color"`
	Deleted          json.RawMessage `json:"deleted"`
}

// msgKey is Baileys' WAMessageKey, with the phone-number forms newer
// Baileys (remoteJidAlt) and Evolution (senderPn) give beside an @lid.
type msgKey struct {
	RemoteJID    json.RawMessage `json:"remoteJid"`
	RemoteJIDAlt json.RawMessage `json:"remoteJidAlt"`
	SenderPN     json.RawMessage `json:"senderPn"`
	FromMe       json.RawMessage `json:"fromMe"`
	ID           json.RawMessage `json:"id"`
	Participant  json.RawMessage `json:"participant"`
	// Baileys' LID↔phone fields (v6.8 and v7 WAMessageKey): the other
	// form of remoteJid (remoteJidAlt, senderPn, senderLid) and of a group
	// message's participant (participantAlt, participantPn).
	SenderLID      json.RawMessage `json:"senderLid"`
	ParticipantAlt json.RawMessage `json:"participantAlt"`
	ParticipantPN  json.RawMessage `json:"participantPn"`
}

// aliases returns the LID↔phone pairs the key gives.
func (k *msgKey) aliases() []fact.Alias {
	remote, part := provider.String(k.RemoteJID), provider.String(k.Participant)
	return provider.Aliases(
		[2]string{remote, provider.String(k.RemoteJIDAlt)},
		[2]string{remote, provider.String(k.SenderPN)},
		[2]string{remote, provider.String(k.SenderLID)},
		[2]string{part, provider.String(k.ParticipantAlt)},
		[2]string{part, provider.String(k.ParticipantPN)},
	)
}

// chat is the message's chat: remoteJid, or its phone-number form when
// remoteJid is an @lid and the key gives one, so that a contact's messages
// keep one chat whichever addressing WhatsApp used.
func (k *msgKey) chat() string {
	c := provider.String(k.RemoteJID)
	if !strings.HasSuffix(c, "@lid") {
		return c
	}
	for _, alt := range [...]json.RawMessage{k.RemoteJIDAlt, k.SenderPN} {
		if a := provider.String(alt); strings.HasSuffix(a, "@s.whatsapp.net") {
			return a
		}
	}
	return c
}

// lid is remoteJid when it is an @lid that chat replaced by its phone-number
// form, else "".
func (k *msgKey) lid() string {
	if c := provider.String(k.RemoteJID); c != k.chat() {
		return c
	}
	return ""
}

// Split returns the one event of an Evolution delivery.
func (*Provider) Split(body []byte, d provider.Delivery) ([]provider.Item, error) {
	var env envelope
	if err := decodeObject(body, &env); err != nil {
		return nil, err
	}
	event := provider.String(env.Event)
	if event == "" && len(d.Segments) == 1 {
		event = bySuffix[d.Segments[0]]
	}
	if event == "" {
		return nil, provider.Invalid("no event: not an Evolution webhook")
	}
	it := provider.Item{Kind: provider.KindUnknown, Channel: provider.String(env.Instance), Data: body}
	if kinds[event] {
		it.Kind = event
	}
	var h head
	if one := single(env.Data); len(one) > 0 && one[0] == '{' {
		_ = decodeObject(one, &h) // an object by the check above; odd fields are left out
	}
	it.Key = key(it.Kind, &h)
	if it.Chat = chat(it.Kind, &h); len(it.Chat) > maxChatBytes {
		it.Chat = "" // not a JID: it would become the subject and partition key
	}
	it.Time = eventTime(it.Kind, &h)
	return []provider.Item{it}, nil
}

// decodeObject decodes a JSON object into v. Values of an unexpected type
// are left out rather than refused: the raw stream keeps every event
// whatever its data.
func decodeObject(data []byte, v any) error {
	data = bytes.TrimLeft(data, " \t\r\n")
	if len(data) == 0 || data[0] != '{' {
		return provider.Invalid("not a JSON object")
	}
	err := json.Unmarshal(data, v)
	var typeErr *json.UnmarshalTypeError
	if err != nil && !errors.As(err, &typeErr) {
		return provider.Invalid("not valid JSON: %v", err)
	}
	return nil
}

// single returns data itself, or the element of a one-element array (groups
// and chats events carry arrays), else nil.
func single(data json.RawMessage) json.RawMessage {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '[' {
		return data
	}
	var list []json.RawMessage
	if json.Unmarshal(data, &list) != nil || len(list) != 1 {
		return nil
	}
	return bytes.TrimSpace(list[0])
}

// key is the event's own identity, or "" (its canonical content then).
func key(k string, h *head) string {
	switch k {
	case KindMessagesUpsert, KindSendMessage:
		if h.Key != nil {
			return provider.String(h.Key.ID)
		}
	case KindMessagesUpdate, KindSendMessageUpdate:
		// One message id, one event per status it reaches.
		id := provider.String(h.KeyID)
		if id == "" && h.Key != nil {
			id = provider.String(h.Key.ID)
		}
		return join(id, provider.Text(h.Status))
	case KindCall:
		return join(provider.Text(h.ID), provider.String(h.Status))
	case KindLabelsEdit:
		// The delete Evolution sends twice is one event: a label is deleted
		// once. Edits are identified by their content, date_time included:
		// a label edited back to an earlier name or colour is a new event,
		// never taken for a retry of the first.
		id := provider.Text(h.ID)
		if deleted, _ := boolean(h.Deleted); !deleted || id == "" {
			return ""
		}
		return id + "/deleted"
	}
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

// chat is the chat the event is about, as written, or "".
func chat(k string, h *head) string {
	switch k {
	case KindLabelsEdit, KindConnectionUpdate, KindQRCodeUpdated, KindApplicationStartup, provider.KindUnknown:
		return ""
	case KindCall:
		if g, _ := boolean(h.IsGroup); g {
			if c := provider.String(h.GroupJID); c != "" {
				return c
			}
		}
		if c := provider.String(h.ChatID); c != "" {
			return c
		}
		return provider.String(h.From)
	case KindLabelsAssociation:
		return provider.String(h.ChatID)
	case KindGroupParticipantsUpdate, KindGroupsUpsert, KindGroupsUpdate, KindPresenceUpdate,
		KindContactsUpsert, KindContactsUpdate:
		return provider.String(h.ID)
	}
	if h.Key != nil {
		if c := h.Key.chat(); c != "" {
			return c
		}
	}
	return provider.String(h.RemoteJID)
}

// eventTime is the time inside data: a message's messageTimestamp
// (seconds, or a protobuf Long {low, high}), a call's date (ISO or Unix).
func eventTime(k string, h *head) time.Time {
	if k == KindCall {
		return parseTime(h.Date)
	}
	t, _ := unixOrLong(h.MessageTimestamp)
	return t
}

// parseTime reads an RFC 3339 string (a JavaScript Date as JSON) or a Unix
// time in seconds or milliseconds.
func parseTime(raw json.RawMessage) time.Time {
	if s := provider.String(raw); s != "" {
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil && t.Year() > 1970 && t.Year() < 10000 {
			return t.UTC()
		}
	}
	t, _ := provider.Unix(raw)
	return t
}

// unixOrLong reads a Unix time, or Baileys' Long {low, high, unsigned} as
// protobufjs writes a 64-bit timestamp when it is not converted.
func unixOrLong(raw json.RawMessage) (time.Time, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return provider.Unix(raw)
	}
	var l struct {
		Low  *int64 `json:"low"`
		High *int64 `json:"high"`
	}
	if json.Unmarshal(raw, &l) != nil || l.Low == nil || l.High == nil {
		return time.Time{}, false
	}
	return provider.UnixInt(*l.High<<32 | int64(uint32(*l.Low)))
}

// boolean reads true/false, "true"/"false" and 1/0; ok is false otherwise.
func boolean(raw json.RawMessage) (v, ok bool) {
	switch s := string(bytes.TrimSpace(raw)); s {
	case "true", `"true"`, "1":
		return true, true
	case "false", `"false"`, "0":
		return false, true
	}
	return false, false
}
