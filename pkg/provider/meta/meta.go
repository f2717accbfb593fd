package meta

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"

	"github.com/wahook/wahook/pkg/provider"
)

// Name is the provider's path and event-type token.
const Name = "meta"

// Object is the envelope's object for WhatsApp Business Account webhooks.
const Object = "whatsapp_business_account"

// Kinds of items with elements.
const (
	KindMessages                = "messages"
	KindStatuses                = "statuses"
	KindErrors                  = "errors"
	KindCalls                   = "calls"
	KindCallStatuses            = "calls.statuses"
	KindCallErrors              = "calls.errors"
	KindGroupLifecycleUpdate    = "group_lifecycle_update"
	KindGroupParticipantsUpdate = "group_participants_update"
	KindGroupSettingsUpdate     = "group_settings_update"
	KindGroupStatusUpdate       = "group_status_update"
)

// Element arrays of a change's value, in the order Split reads them.
const (
	arrMessages = "messages"
	arrStatuses = "statuses"
	arrErrors   = "errors"
	arrCalls    = "calls"
	arrGroups   = "groups"
)

var elementArrays = [...]string{arrMessages, arrStatuses, arrCalls, arrGroups, arrErrors}

// kinds are the kinds of items with elements Split names.
var kinds = map[string]bool{
	KindMessages: true, KindStatuses: true, KindErrors: true, KindCalls: true, KindCallStatuses: true,
	KindCallErrors: true, KindGroupLifecycleUpdate: true, KindGroupParticipantsUpdate: true,
	KindGroupSettingsUpdate: true, KindGroupStatusUpdate: true,
}

// wholeFields are the documented fields of the whatsapp_business_account
// object whose changes carry no element arrays: each change is one item of
// kind field.
var wholeFields = map[string]bool{
	"account_alerts": true, "account_review_update": true, "account_update": true,
	"business_capability_update": true, "business_status_update": true, "flows": true,
	"history": true, "message_echoes": true, "message_template_components_update": true,
	"message_template_quality_update": true, "message_template_status_update": true,
	"messaging_handovers": true, "partner_solutions": true, "payment_configuration_update": true,
	"phone_number_name_update": true, "phone_number_quality_update": true, "security": true,
	"smb_app_state_sync": true, "smb_message_echoes": true, "template_category_update": true,
	"tracking_events": true, "user_preferences": true,
}

// isGroupField reports the Groups API's fields, whose elements are "groups".
func isGroupField(field string) bool {
	switch field {
	case KindGroupLifecycleUpdate, KindGroupParticipantsUpdate, KindGroupSettingsUpdate, KindGroupStatusUpdate:
		return true
	}
	return false
}

// kindOf names the items of array arr in a change of field (arr "" for a
// change without elements).
func kindOf(field, arr string) string {
	k := field + "." + arr
	switch {
	case arr == "":
		if wholeFields[field] {
			return field
		}
		return provider.KindUnknown
	case field == "messages" && (arr == arrMessages || arr == arrStatuses || arr == arrErrors):
		k = arr
	case field == "calls" && arr == arrCalls, isGroupField(field) && arr == arrGroups:
		k = field
	}
	if kinds[k] {
		return k
	}
	return provider.KindUnknown
}

// Provider is the Meta WhatsApp Cloud API webhook format. The zero value is
// ready to use.
type Provider struct{}

var (
	_ provider.Provider = (*Provider)(nil)
	_ provider.Feeder   = (*Provider)(nil)
)

// New returns a Meta provider.
func New() *Provider { return &Provider{} }

// Name returns "meta".
func (*Provider) Name() string { return Name }

// object is a JSON object's members, kept raw.
type object map[string]json.RawMessage

// head holds the element fields an item's identity is made of.
type head struct {
	ID            json.RawMessage `json:"id"`
	Timestamp     json.RawMessage `json:"timestamp"`
	From          json.RawMessage `json:"from"`
	To            json.RawMessage `json:"to"`
	Direction     json.RawMessage `json:"direction"`
	GroupID       json.RawMessage `json:"group_id"`
	RecipientID   json.RawMessage `json:"recipient_id"`
	Status        json.RawMessage `json:"status"`
	Event         json.RawMessage `json:"event"`
	Type          json.RawMessage `json:"type"`
	RequestID     json.RawMessage `json:"request_id"`
	JoinRequestID json.RawMessage `json:"join_request_id"`
}

// Split returns one item per element of each change of each entry.
func (*Provider) Split(body []byte, d provider.Delivery) ([]provider.Item, error) {
	top, err := decodeObject(body)
	if err != nil {
		return nil, err
	}
	if o := provider.String(top["object"]); o != Object {
		return nil, provider.Invalid("object is not %q: not a WhatsApp Cloud API webhook", Object)
	}
	var entries []json.RawMessage
	if err := json.Unmarshal(top["entry"], &entries); err != nil || entries == nil {
		return nil, provider.Invalid("entry is not an array")
	}
	s := splitter{top: top, max: d.MaxItems, budget: 4*len(body) + dataSlack}
	for _, e := range entries {
		if err := s.entry(e); err != nil {
			return nil, err
		}
	}
	if len(s.items) == 0 {
		return nil, provider.Invalid("no changes in any entry")
	}
	return s.items, nil
}

// dataSlack is what the items' data may add to four times the body: each
// item repeats the envelope, its entry's and change's members and the
// value's metadata, a few hundred bytes, so a delivery of 1000 tiny
// elements stays well within it.
const dataSlack = 1 << 20

type splitter struct {
	top   object
	max   int
	items []provider.Item
	// budget bounds the bytes of all items' data: each item repeats the
	// members its element shares with the others, so a large member shared
	// by many elements would otherwise multiply the body.
	budget int
}

// full reports whether one more item would pass MaxItems.
func (s *splitter) full() error {
	if s.max > 0 && len(s.items) >= s.max {
		return provider.TooManyItems(s.max)
	}
	return nil
}

func (s *splitter) add(it provider.Item) error {
	if err := s.full(); err != nil {
		return err
	}
	if s.budget -= len(it.Data); s.budget < 0 {
		return provider.Invalid("the delivery's items would hold more than four times its size and 1 MiB")
	}
	s.items = append(s.items, it)
	return nil
}

func (s *splitter) entry(raw json.RawMessage) error {
	var entry object
	if err := json.Unmarshal(raw, &entry); err != nil || entry == nil {
		return provider.Invalid("an entry is not an object")
	}
	var changes []json.RawMessage
	if err := json.Unmarshal(entry["changes"], &changes); err != nil {
		return provider.Invalid("an entry's changes are not an array")
	}
	for _, c := range changes {
		if err := s.change(entry, c); err != nil {
			return err
		}
	}
	return nil
}

func (s *splitter) change(entry object, raw json.RawMessage) error {
	var change object
	if err := json.Unmarshal(raw, &change); err != nil || change == nil {
		return provider.Invalid("a change is not an object")
	}
	field := provider.String(change["field"])
	var value object
	if err := json.Unmarshal(change["value"], &value); err != nil {
		// A value that is not an object (null, absent) is one item of its own.
		value = nil
	}
	var metadata struct {
		PhoneNumberID json.RawMessage `json:"phone_number_id"`
	}
	_ = json.Unmarshal(value["metadata"], &metadata)
	channel := provider.Text(metadata.PhoneNumberID)
	if channel == "" {
		// Changes about the account itself name no phone number.
		channel = provider.Text(entry["id"])
	}
	contacts := newContacts(value["contacts"])

	found := false
	for _, arr := range elementArrays {
		var elements []json.RawMessage
		if json.Unmarshal(value[arr], &elements) != nil {
			continue
		}
		for _, el := range elements {
			found = true
			if err := s.full(); err != nil {
				return err
			}
			kind := kindOf(field, arr)
			var h head
			_ = json.Unmarshal(el, &h)
			user := userOf(kind, &h)
			data, err := one(s.top, entry, change, value, arr, el, contacts.of(user))
			if err != nil {
				return err
			}
			it := provider.Item{Kind: kind, Channel: channel, Key: key(kind, &h), Chat: chat(kind, &h, user), Data: data}
			it.Time, _ = provider.Unix(h.Timestamp)
			if err := s.add(it); err != nil {
				return err
			}
		}
	}
	if found {
		return nil
	}
	data, err := one(s.top, entry, change, value, "", nil, nil)
	if err != nil {
		return err
	}
	return s.add(provider.Item{Kind: kindOf(field, ""), Channel: channel, Data: data})
}

// userOf is the WhatsApp user an element is about: a message's sender, a
// status's recipient, a call's other party.
func userOf(kind string, h *head) string {
	switch kind {
	case KindMessages:
		return provider.Text(h.From)
	case KindStatuses, KindCallStatuses:
		return provider.Text(h.RecipientID)
	case KindCalls:
		if strings.EqualFold(provider.String(h.Direction), "BUSINESS_INITIATED") {
			return provider.Text(h.To)
		}
		return provider.Text(h.From)
	}
	return ""
}

// chat is the chat an element of kind is about, as written, or "".
func chat(kind string, h *head, user string) string {
	switch kind {
	case KindMessages, KindStatuses:
		if g := provider.Text(h.GroupID); g != "" {
			return g
		}
		return user
	case KindCalls, KindCallStatuses:
		return user
	case KindGroupLifecycleUpdate, KindGroupParticipantsUpdate, KindGroupSettingsUpdate, KindGroupStatusUpdate:
		return provider.Text(h.GroupID)
	}
	return ""
}

// key is the element's own identity, or "" when it has none (its canonical
// content identifies it).
func key(kind string, h *head) string {
	switch kind {
	case KindMessages:
		return provider.Text(h.ID)
	case KindStatuses, KindCallStatuses:
		// One message or call goes through several statuses.
		return join(provider.Text(h.ID), provider.Text(h.Status))
	case KindCalls:
		return join(provider.Text(h.ID), provider.Text(h.Event))
	case KindGroupLifecycleUpdate, KindGroupParticipantsUpdate, KindGroupSettingsUpdate, KindGroupStatusUpdate:
		req := provider.Text(h.RequestID)
		if req == "" {
			req = provider.Text(h.JoinRequestID)
		}
		if req == "" {
			return ""
		}
		// A request's outcome may come as several events (a partial failure).
		return join(provider.Text(h.Type), req) + "/" + provider.Text(h.GroupID)
	}
	return ""
}

// join joins parts with '/', or returns "" when one is missing.
func join(parts ...string) string {
	for _, p := range parts {
		if p == "" {
			return ""
		}
	}
	return strings.Join(parts, "/")
}

// contacts are a change's contacts, indexed by wa_id once so that each of
// many elements finds its sender's without reading them all again.
type contacts struct {
	all    []json.RawMessage
	byWaID map[string][]json.RawMessage
}

func newContacts(raw json.RawMessage) contacts {
	var c contacts
	if json.Unmarshal(raw, &c.all) != nil {
		return contacts{}
	}
	c.byWaID = make(map[string][]json.RawMessage, len(c.all))
	for _, ct := range c.all {
		var head struct {
			WaID json.RawMessage `json:"wa_id"`
		}
		if json.Unmarshal(ct, &head) == nil {
			id := provider.Text(head.WaID)
			c.byWaID[id] = append(c.byWaID[id], ct)
		}
	}
	return c
}

// of returns, as a JSON array, the contacts whose wa_id is user, or the
// only contact when none matches: each item carries the profile of its own
// sender, not every contact of a batch. Nil when there is none.
func (c contacts) of(user string) json.RawMessage {
	kept := c.byWaID[user]
	if user == "" {
		kept = nil
	}
	if len(kept) == 0 && len(c.all) == 1 {
		kept = c.all
	}
	if len(kept) == 0 {
		return nil
	}
	return array(kept...)
}

// array writes raw values as a JSON array.
func array(vs ...json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	b.WriteByte('[')
	for i, v := range vs {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(v)
	}
	b.WriteByte(']')
	return b.Bytes()
}

// one builds the Meta delivery of one entry, one change and one element:
// the envelope's members, the entry's without its other changes, the
// change's, and the value's without other element arrays and other
// contacts. Nothing is added that the delivery did not hold.
func one(top, entry, change, value object, arr string, el, contacts json.RawMessage) ([]byte, error) {
	c := clone(change)
	if value != nil {
		v := make(object, len(value))
		for k, m := range value {
			if k == "contacts" || isElementArray(k) && k != arr {
				continue
			}
			v[k] = m
		}
		if arr != "" {
			v[arr] = array(el)
		}
		if contacts != nil {
			v["contacts"] = contacts
		}
		b, err := json.Marshal(v)
		if err != nil {
			return nil, provider.Invalid("value: %v", err)
		}
		c["value"] = b
	}
	cb, err := json.Marshal(c)
	if err != nil {
		return nil, provider.Invalid("change: %v", err)
	}
	e := clone(entry)
	e["changes"] = array(cb)
	eb, err := json.Marshal(e)
	if err != nil {
		return nil, provider.Invalid("entry: %v", err)
	}
	t := clone(top)
	t["entry"] = array(eb)
	b, err := json.Marshal(t)
	if err != nil {
		return nil, provider.Invalid("delivery: %v", err)
	}
	return b, nil
}

func isElementArray(k string) bool {
	for _, a := range elementArrays {
		if k == a {
			return true
		}
	}
	return false
}

func clone(o object) object {
	c := make(object, len(o)+1)
	for k, v := range o {
		c[k] = v
	}
	return c
}

// decodeObject decodes a JSON object's members.
func decodeObject(data []byte) (object, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return nil, provider.Invalid("not a JSON object")
	}
	var o object
	if err := json.Unmarshal(data, &o); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) {
			return nil, provider.Invalid("not a JSON object")
		}
		return nil, provider.Invalid("not valid JSON: %v", err)
	}
	return o, nil
}
