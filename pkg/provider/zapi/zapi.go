package zapi

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/jsonscan"
)

// Name is the provider's path and event-type token.
const Name = "zapi"

// Kinds of items, in Z-API's words.
const (
	KindStatus       = "message-status"
	KindDelivery     = "delivery"
	KindPresence     = "presence-chat"
	KindConnected    = "connected"
	KindDisconnected = "disconnected"
	// KindNotification is a ReceivedCallback carrying a notification
	// (calls, group changes, label associations, profile changes...).
	KindNotification = "received.notification"
	// KindWaiting is the "waiting for this message" placeholder: a
	// ReceivedCallback with waitingMessage true and no content yet.
	KindWaiting = "received.waitingMessage"
	// ReceivedPrefix starts every ReceivedCallback kind: "received." + the
	// message's content key (received.text, received.image...).
	ReceivedPrefix = "received."
)

// Callback types (the payload's "type").
const (
	typeReceived     = "ReceivedCallback"
	typeStatus       = "MessageStatusCallback"
	typeDelivery     = "DeliveryCallback"
	typePresence     = "PresenceChatCallback"
	typeConnected    = "ConnectedCallback"
	typeDisconnected = "DisconnectedCallback"
)

// receivedKinds[i] is the kind of a message whose content key is contentKeys[i].
var receivedKinds = func() (k [len(contentKeys)]string) {
	for i, c := range contentKeys {
		k[i] = ReceivedPrefix + c
	}
	return k
}()

// callback is one callback type: the kinds Split gives it, and how its
// item is identified.
type callback struct {
	typ   string
	kinds []string
	// split sets the item's kind (when the type has several), chat and
	// key; nil leaves the one kind and no chat or key.
	split func(f *fields, it *provider.Item) error
}

// callbacks is the one table of Z-API's callback types and their kinds:
// Split, Interpret's type check and the tests read it.
var callbacks = [...]callback{
	{typeReceived, append([]string{KindNotification, KindWaiting}, receivedKinds[:]...), splitReceived},
	{typeStatus, []string{KindStatus}, func(f *fields, it *provider.Item) error {
		it.Chat = jsonscan.Text(f.phone)
		it.Key = statusKey(f, it.Chat)
		return nil
	}},
	{typeDelivery, []string{KindDelivery}, func(f *fields, it *provider.Item) error {
		it.Chat = jsonscan.Text(f.phone)
		it.Key = deliveryKey(f)
		return nil
	}},
	{typePresence, []string{KindPresence}, func(f *fields, it *provider.Item) error {
		it.Chat = jsonscan.Text(f.phone)
		return nil
	}},
	// phone is the instance's own number, not a chat.
	{typeConnected, []string{KindConnected}, nil},
	{typeDisconnected, []string{KindDisconnected}, nil},
}

// kindTypes maps each kind in callbacks to its callback type.
var kindTypes = func() map[string]string {
	m := map[string]string{}
	for _, c := range callbacks {
		for _, k := range c.kinds {
			m[k] = c.typ
		}
	}
	return m
}()

// typeOfKind is the callback type Split gives kind, "" for unknown kinds.
func typeOfKind(kind string) string {
	return kindTypes[kind]
}

// allKinds is every kind Split can name, provider.KindUnknown included.
func allKinds() []string {
	out := []string{provider.KindUnknown}
	for _, c := range callbacks {
		out = append(out, c.kinds...)
	}
	return out
}

// Times a callback's momment is trusted in: from before WhatsApp existed
// to a day ahead of the receiving clock. The docs' ConnectedCallback
// placeholder (26151515154, the year 2798) is no time: such an item has
// none, and the ingress stamps it at receipt.
var earliestTime = time.Date(2009, time.January, 1, 0, 0, 0, 0, time.UTC)

const maxAhead = 24 * time.Hour

// trustedAt reports whether t is a time a callback received at now can
// carry.
func trustedAt(t, now time.Time) bool {
	return !t.Before(earliestTime) && !t.After(now.Add(maxAhead))
}

// Provider reads Z-API webhook callbacks. The zero value is ready to use.
type Provider struct{}

var (
	_ provider.Provider = (*Provider)(nil)
	_ provider.Feeder   = (*Provider)(nil)
)

// New returns a Z-API provider.
func New() *Provider { return &Provider{} }

// Name returns "zapi".
func (*Provider) Name() string { return Name }

// Split reads one callback: Z-API sends one event per request, so the
// delivery is one item whose Data is the whole body.
func (*Provider) Split(body []byte, _ provider.Delivery) ([]provider.Item, error) {
	f, err := decode(body)
	if err != nil {
		return nil, err
	}
	typ, err := callbackType(&f)
	if err != nil {
		return nil, err
	}
	// The ingress checks the channel's characters and length, as for every
	// provider.
	it := provider.Item{Kind: provider.KindUnknown, Channel: jsonscan.Text(f.instanceID), Data: body}
	if t, ok := provider.Unix(f.momment); ok && trustedAt(t, time.Now()) {
		it.Time = t
	}
	for _, c := range callbacks {
		if !strings.EqualFold(typ, c.typ) {
			continue
		}
		if len(c.kinds) == 1 {
			it.Kind = c.kinds[0]
		}
		if c.split != nil {
			if err := c.split(&f, &it); err != nil {
				return nil, err
			}
		}
		break
	}
	return []provider.Item{it}, nil
}

// callbackType returns the payload's type, which every Z-API callback has.
func callbackType(f *fields) (string, error) {
	if !isString(f.typ) {
		return "", provider.Invalid(`not a Z-API callback: no "type" string`)
	}
	typ := jsonscan.Text(f.typ)
	if typ == "" {
		return "", provider.Invalid(`not a Z-API callback: empty "type"`)
	}
	return typ, nil
}

func splitReceived(f *fields, it *provider.Item) error {
	n := f.notificationName()
	waiting, _ := jsonscan.Bool(f.waiting)
	switch c := f.firstContent(); {
	case n != "":
		it.Kind = KindNotification
	case c >= 0:
		it.Kind = receivedKinds[c]
	case waiting:
		it.Kind = KindWaiting
	}
	phone := jsonscan.Text(f.phone)
	if !accountNotification(n) {
		it.Chat = phone
	}
	id := jsonscan.Text(f.messageID)
	if id == "" {
		return nil
	}
	// A message id is unique in its chat. The notification tells a call's
	// events apart; the placeholder and the real message share the id, and so
	// do a message and its edits, which differ by content only.
	key := phone + "|" + id
	if n != "" {
		key += "|" + n
	}
	if waiting {
		key += "|waiting"
	}
	if edit, _ := jsonscan.Bool(f.isEdit); edit {
		ck, err := provider.ContentKey(it.Data)
		if err != nil {
			return fmt.Errorf("%w: edited message: %w", provider.ErrInvalid, err)
		}
		key += "|edit|" + ck
	}
	it.Key = key
	return nil
}

// accountNotification reports notifications about the connected account,
// whose phone is the instance's own number rather than a chat (a label
// association names its chats in notificationParameters).
func accountNotification(n string) bool {
	switch n {
	case "CHAT_LABEL_ASSOCIATION", "PROFILE_NAME_UPDATED", "PROFILE_PICTURE_UPDATED":
		return true
	}
	return false
}

// statusKey identifies a status change by status, chat, sender (group
// receipts, when given) and the sorted message ids; "" when no id is given.
func statusKey(f *fields, chat string) string {
	var ids []string
	ids = appendTexts(ids, f.ids)
	ids = appendTexts(ids, f.id)
	if len(ids) == 0 {
		return ""
	}
	if len(ids) > 1 {
		slices.Sort(ids)
		ids = slices.Compact(ids)
	}
	key := jsonscan.Text(f.status) + "|" + chat
	if p := participantOf(f); p != "" {
		key += "|" + p
	}
	return key + "|" + strings.Join(ids, ",")
}

// deliveryKey identifies a delivery report by zaapId and messageId, marking
// failures so that a failure and a later success stay two events.
func deliveryKey(f *fields) string {
	z, m := jsonscan.Text(f.zaapID), jsonscan.Text(f.messageID)
	if z == "" && m == "" {
		return ""
	}
	key := z + "|" + m
	if set(f.errorField) {
		key += "|error"
	}
	return key
}

// appendTexts appends raw's text, or the texts of its elements when it is an array.
func appendTexts(dst []string, raw []byte) []string {
	if jsonscan.First(raw) == '[' {
		for v := range jsonscan.Elements(raw) {
			if s := jsonscan.Text(v); s != "" {
				dst = append(dst, s)
			}
		}
		return dst
	}
	if s := jsonscan.Text(raw); s != "" {
		dst = append(dst, s)
	}
	return dst
}

// participantOf is the group member an event names: participantPhone,
// else participantLid, else participant.
func participantOf(f *fields) string {
	for _, raw := range [...][]byte{f.participantPhone, f.participantLid, f.participant} {
		if s := jsonscan.Text(raw); s != "" {
			return s
		}
	}
	return ""
}
