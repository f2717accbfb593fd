package whapi

import (
	"fmt"
	"strings"
	"time"

	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/jsonscan"
)

// Name is the provider's path and event-type token.
const Name = "whapi"

// Provider reads Whapi.Cloud webhooks. The zero value is ready to use.
type Provider struct{}

// New returns a Provider.
func New() *Provider { return &Provider{} }

var (
	_ provider.Provider     = (*Provider)(nil)
	_ provider.RouteChecker = (*Provider)(nil)
	_ provider.Feeder       = (*Provider)(nil)
)

// Name returns "whapi".
func (*Provider) Name() string { return Name }

// coll is one of the payload's collection members.
type coll uint8

const (
	cMessages coll = iota
	cMessagesUpdates
	cMessagesRemoved
	cMessagesRemovedAll
	cStatuses
	cChats
	cChatsUpdates
	cChatsRemoved
	cContacts
	cContactsUpdates
	cGroups
	cGroupsParticipants
	cGroupsUpdates
	cPresences
	cLabels
	cLabelsRemoved
	cCalls
	cHealth
	cQR
	cUser
	cErrors
	nColls
	cNone = nColls
)

var collNames = [nColls]string{
	cMessages:           "messages",
	cMessagesUpdates:    "messages_updates",
	cMessagesRemoved:    "messages_removed",
	cMessagesRemovedAll: "messages_removed_all",
	cStatuses:           "statuses",
	cChats:              "chats",
	cChatsUpdates:       "chats_updates",
	cChatsRemoved:       "chats_removed",
	cContacts:           "contacts",
	cContactsUpdates:    "contacts_updates",
	cGroups:             "groups",
	cGroupsParticipants: "groups_participants",
	cGroupsUpdates:      "groups_updates",
	cPresences:          "presences",
	cLabels:             "labels",
	cLabelsRemoved:      "labels_removed",
	cCalls:              "calls",
	cHealth:             "health",
	cQR:                 "qr",
	cUser:               "user",
	cErrors:             "errors",
}

func collOf(key []byte) coll {
	switch string(key) {
	case "messages":
		return cMessages
	case "messages_updates":
		return cMessagesUpdates
	case "messages_removed":
		return cMessagesRemoved
	case "messages_removed_all":
		return cMessagesRemovedAll
	case "statuses":
		return cStatuses
	case "chats":
		return cChats
	case "chats_updates":
		return cChatsUpdates
	case "chats_removed":
		return cChatsRemoved
	case "contacts":
		return cContacts
	case "contacts_updates":
		return cContactsUpdates
	case "groups":
		return cGroups
	case "groups_participants":
		return cGroupsParticipants
	case "groups_updates":
		return cGroupsUpdates
	case "presences":
		return cPresences
	case "labels":
		return cLabels
	case "labels_removed":
		return cLabelsRemoved
	case "calls":
		return cCalls
	case "health":
		return cHealth
	case "qr":
		return cQR
	case "user":
		return cUser
	case "errors":
		return cErrors
	}
	return cNone
}

// The kinds Split knows, in Whapi's own words ("{type}.{event}").
const (
	KindMessagesPost   = "messages.post"
	KindMessagesPut    = "messages.put"
	KindMessagesPatch  = "messages.patch"
	KindMessagesDelete = "messages.delete"
	KindStatusesPost   = "statuses.post"
	KindStatusesPut    = "statuses.put"
	KindChatsPost      = "chats.post"
	KindChatsPut       = "chats.put"
	KindChatsPatch     = "chats.patch"
	KindChatsDelete    = "chats.delete"
	KindContactsPost   = "contacts.post"
	KindContactsPatch  = "contacts.patch"
	KindGroupsPost     = "groups.post"
	KindGroupsPut      = "groups.put"
	KindGroupsPatch    = "groups.patch"
	KindPresencesPost  = "presences.post"
	KindLabelsPost     = "labels.post"
	KindLabelsDelete   = "labels.delete"
	KindCallsPost      = "calls.post"
	KindChannelPost    = "channel.post"
	KindChannelPatch   = "channel.patch"
	KindUsersPost      = "users.post"
	KindUsersDelete    = "users.delete"
)

type pair struct{ typ, event string }

type spec struct {
	kind  string
	colls []coll // where this kind's items are; any of them may be present
}

// kinds maps (type, event) to the kind and its collections (OpenAPI
// WebhookPayload, help desk examples).
var kinds = map[pair]spec{
	{"messages", "post"}:   {KindMessagesPost, []coll{cMessages}},
	{"messages", "put"}:    {KindMessagesPut, []coll{cMessages}},
	{"messages", "patch"}:  {KindMessagesPatch, []coll{cMessagesUpdates}},
	{"messages", "delete"}: {KindMessagesDelete, []coll{cMessagesRemoved, cMessagesRemovedAll}},
	{"statuses", "post"}:   {KindStatusesPost, []coll{cStatuses}},
	{"statuses", "put"}:    {KindStatusesPut, []coll{cStatuses}},
	{"chats", "post"}:      {KindChatsPost, []coll{cChats}},
	{"chats", "put"}:       {KindChatsPut, []coll{cChats}},
	{"chats", "patch"}:     {KindChatsPatch, []coll{cChatsUpdates}},
	{"chats", "delete"}:    {KindChatsDelete, []coll{cChatsRemoved}},
	{"contacts", "post"}:   {KindContactsPost, []coll{cContacts}},
	{"contacts", "patch"}:  {KindContactsPatch, []coll{cContactsUpdates}},
	{"groups", "post"}:     {KindGroupsPost, []coll{cGroups}},
	{"groups", "put"}:      {KindGroupsPut, []coll{cGroupsParticipants}},
	{"groups", "patch"}:    {KindGroupsPatch, []coll{cGroupsUpdates}},
	{"presences", "post"}:  {KindPresencesPost, []coll{cPresences}},
	{"labels", "post"}:     {KindLabelsPost, []coll{cLabels}},
	{"labels", "delete"}:   {KindLabelsDelete, []coll{cLabelsRemoved}},
	{"calls", "post"}:      {KindCallsPost, []coll{cCalls}},
	{"channel", "post"}:    {KindChannelPost, []coll{cHealth}},
	{"channel", "patch"}:   {KindChannelPatch, []coll{cQR}},
	{"users", "post"}:      {KindUsersPost, []coll{cUser}},
	{"users", "delete"}:    {KindUsersDelete, []coll{cUser}},
}

// header is what Split reads of a delivery's top level.
type header struct {
	typ, event string // from the body's "event" object, lower-cased
	hasEvent   bool
	channel    string
	hasChannel bool
	colls      [nColls][]byte // raw values; nil when absent
	lens       [nColls]int    // elements of the collections that are arrays
	hasColl    bool           // some collection key is present, even null
	other      bool           // members beside event, channel_id and collections
	// others are the members that are neither envelope (event, channel_id)
	// nor a known collection: a collection Whapi added later, kept beside a
	// known kind's items rather than dropped.
	others []member
}

type member struct{ name, value []byte }

func (e *header) read(body []byte) error {
	// Fields, not Members: the scan that finds where a collection ends
	// also counts its elements, so Split sizes its items without another.
	for k, f := range jsonscan.Fields(body) {
		v := f.Value
		switch string(k) {
		case "event":
			if jsonscan.First(v) != '{' {
				e.other = e.other || !jsonscan.Absent(v)
				continue
			}
			e.hasEvent, e.typ = true, ""
			var ev, method []byte
			for ek, evv := range jsonscan.Members(v) {
				switch string(ek) {
				case "type":
					e.typ = token(evv)
				case "event":
					ev = evv
				case "method":
					method = evv
				}
			}
			if e.event = token(ev); e.event == "" {
				e.event = token(method)
			}
		case "channel_id":
			e.channel, e.hasChannel = "", false
			if jsonscan.Absent(v) || string(v) == `""` {
				continue
			}
			// The ingress checks the channel's characters and length, as
			// for every provider.
			if e.channel = jsonscan.Text(v); e.channel == "" {
				return provider.Invalid("whapi: channel_id %.64s is not a string", v)
			}
			e.hasChannel = true
		default:
			c := collOf(k)
			if c == cNone {
				e.other = true
				if !jsonscan.Absent(v) {
					e.others = append(e.others, member{k, v})
				}
				continue
			}
			e.hasColl = true
			e.colls[c], e.lens[c] = nil, 0
			if !jsonscan.Absent(v) {
				e.colls[c], e.lens[c] = v, f.Len
			}
		}
	}
	if !e.hasEvent && !e.hasChannel && !e.hasColl {
		return provider.Invalid("whapi: no event, channel_id or known collection in the payload")
	}
	return nil
}

func tokenByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// safeToken accepts a URL segment naming a type or event.
func safeToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenByte(s[i]) {
			return false
		}
	}
	return true
}

func lower(s string) string { return strings.ToLower(s) }

// token reads a type or event name, lower-cased. The usual names come back
// as constants, sparing the hot path an allocation per delivery.
func token(v []byte) string {
	if jsonscan.First(v) == '"' && len(v) >= 2 {
		switch string(v[1 : len(v)-1]) {
		case "post":
			return "post"
		case "put":
			return "put"
		case "patch":
			return "patch"
		case "delete":
			return "delete"
		case "messages":
			return "messages"
		case "statuses":
			return "statuses"
		case "chats":
			return "chats"
		}
	}
	return lower(jsonscan.String(v))
}

// normType maps the deprecated type names (OpenAPI Webhook.events: "message",
// "ack", "chat", "status" -> "messages", "statuses", "chats", "channel") and the
// help desk's "channels" to today's names. "status" is ambiguous in practice,
// so the collection decides: statuses for a statuses array, channel otherwise.
func normType(t string, e *header) string {
	switch t {
	case "message":
		return "messages"
	case "ack":
		return "statuses"
	case "chat":
		return "chats"
	case "channels":
		return "channel"
	case "status":
		if e.colls[cStatuses] != nil && e.colls[cHealth] == nil && e.colls[cQR] == nil {
			return "statuses"
		}
		return "channel"
	}
	return t
}

// methodEvent is the event a "method" mode delivery names by its HTTP method.
func methodEvent(m string) string {
	switch m {
	case "POST":
		return "post"
	case "PUT":
		return "put"
	case "PATCH":
		return "patch"
	case "DELETE":
		return "delete"
	}
	return lower(m)
}

// CheckRoute accepts Whapi's three delivery modes: body (POST, no segments),
// method (POST/PUT/PATCH/DELETE .../{type}) and path (POST .../{type}/{event}).
// Type and event tokens it does not know are accepted (their items are of
// kind unknown) as long as they are plain tokens.
func (*Provider) CheckRoute(method string, segments []string) error {
	if len(segments) > 2 {
		return fmt.Errorf("whapi: %d path segments: %w", len(segments), provider.ErrNoRoute)
	}
	for _, s := range segments {
		if !safeToken(s) {
			return fmt.Errorf("whapi: path segment %.64q: %w", s, provider.ErrNoRoute)
		}
	}
	if method == "POST" {
		return nil
	}
	if len(segments) == 1 && (method == "PUT" || method == "PATCH" || method == "DELETE") {
		return nil
	}
	return fmt.Errorf("whapi: %s with %d path segments: %w", method, len(segments), provider.ErrMethod)
}

// route returns the type and event the URL names ("path" and "method" modes).
func route(d provider.Delivery) (typ, event string) {
	switch len(d.Segments) {
	case 1:
		if safeToken(d.Segments[0]) {
			return lower(d.Segments[0]), methodEvent(d.Method)
		}
	case 2:
		if safeToken(d.Segments[0]) && safeToken(d.Segments[1]) {
			return lower(d.Segments[0]), lower(d.Segments[1])
		}
	}
	return "", ""
}

// Split reads one Whapi delivery. Every element of the kind's collection is
// one item; the body's "event" names the kind, else the URL does.
func (*Provider) Split(body []byte, d provider.Delivery) ([]provider.Item, error) {
	// One pass checks validity and the depth bound: ValidJSON refuses
	// what nests more than jsonscan.MaxDepth levels, as encoding/json does
	// (a body that deep was never given another answer). The message is
	// kept as it was: it is the dead letter's reason, part of its id.
	if !provider.ValidJSON(body) {
		return nil, provider.Invalid("whapi: body is not JSON")
	}
	body = jsonscan.Trim(body)
	if jsonscan.First(body) != '{' {
		return nil, provider.Invalid("whapi: body is not a JSON object")
	}
	var e header
	if err := e.read(body); err != nil {
		return nil, err
	}
	typ, event := e.typ, e.event
	if typ == "" || event == "" {
		ut, ue := route(d)
		if typ == "" {
			typ = ut
		}
		if event == "" {
			event = ue
		}
	}
	typ = normType(typ, &e)
	sp, known := kinds[pair{typ, event}]
	if known {
		known = false
		for _, c := range sp.colls {
			if e.colls[c] != nil {
				known = true
			}
		}
	}
	if !known {
		return unknownItems(body, &e, typ+"."+event, d.MaxItems)
	}

	// Room for the kind's items at once, up to the bound (add stops one
	// past it); other members' items, rare, grow it.
	n := 0
	for _, c := range sp.colls {
		if e.colls[c] != nil {
			n += max(e.lens[c], 1)
		}
	}
	if d.MaxItems > 0 {
		n = min(n, d.MaxItems+1)
	}
	out := collector{max: d.MaxItems, items: make([]provider.Item, 0, n)}
	// The items' keys and chats are written into text, on the stack, and
	// made one string for several items at a time (flush); spans say
	// whose they are. A batch's items then cost a string per chunk, not
	// one or two each.
	var textBuf [1024]byte
	var spanBuf [16]textSpan
	text, spans := textBuf[:0], spanBuf[:0]
	flush := func() {
		if len(spans) == 0 {
			return
		}
		s := string(text)
		for _, sp := range spans {
			setText(&out.items[sp.item], s, sp)
		}
		text, spans = text[:0], spans[:0]
	}
	var mine [nColls]bool
	for _, c := range sp.colls {
		mine[c] = true
		if e.colls[c] == nil {
			continue
		}
		eachElement(e.colls[c], e.lens[c], func(v []byte) bool {
			it := provider.Item{Kind: sp.kind, Channel: e.channel, Data: v}
			start := len(text)
			var key int
			text, key = describe(c, v, &it, text)
			more := out.add(it)
			switch {
			case len(text) == start:
			case out.over:
				text = text[:start] // Split fails: nothing to name
			default:
				spans = append(spans, textSpan{item: len(out.items) - 1, start: start, key: key, end: len(text)})
				if len(spans) == len(spanBuf) || len(text) > len(textBuf)-256 {
					flush()
				}
			}
			return more
		})
	}
	// Other collections in the same delivery, known or not, are not this
	// kind's, but are still published rather than dropped.
	for c := range nColls {
		if !mine[c] && e.colls[c] != nil {
			out.unknown(&e, sp.kind, collNames[c], e.colls[c])
		}
	}
	for _, m := range e.others {
		out.unknown(&e, sp.kind, string(m.name), m.value)
	}
	flush()
	return out.result()
}

// collector gathers a delivery's items up to max (0: no bound).
type collector struct {
	items []provider.Item
	max   int
	over  bool
}

// textSpan is where an item's Key (text[start:key]) and Chat
// (text[key:end]) are in the text Split collects.
type textSpan struct{ item, start, key, end int }

// setText gives it the key and chat of sp in s, the text as a string; an
// empty part leaves what describe set.
func setText(it *provider.Item, s string, sp textSpan) {
	if sp.key > sp.start {
		it.Key = s[sp.start:sp.key]
	}
	if sp.end > sp.key {
		it.Chat = s[sp.key:sp.end]
	}
}

// add appends it and reports whether more may follow.
func (o *collector) add(it provider.Item) bool {
	if o.over {
		return false
	}
	o.items = append(o.items, it)
	o.over = o.max > 0 && len(o.items) > o.max
	return !o.over
}

func (o *collector) result() ([]provider.Item, error) {
	if o.over {
		return nil, provider.TooManyItems(o.max)
	}
	return o.items, nil
}

// eachValue calls fn with each element of an array, or with v itself, until
// fn returns false.
func eachValue(v []byte, fn func([]byte) bool) {
	if jsonscan.First(v) != '[' {
		fn(v)
		return
	}
	for el := range jsonscan.Elements(v) {
		if !fn(el) {
			return
		}
	}
}

// eachElement is eachValue for a collection whose elements Fields counted
// (n): an array of one, the usual delivery, is its element without
// another scan to find where it ends. The body is valid JSON, so what the
// brackets hold is that element alone.
func eachElement(v []byte, n int, fn func([]byte) bool) {
	if n == 1 && len(v) >= 2 && v[0] == '[' && v[len(v)-1] == ']' {
		fn(jsonscan.Trim(v[1 : len(v)-1]))
		return
	}
	eachValue(v, fn)
}

// unknownItems are the items of a delivery whose kind is not known: one per
// element of each collection it carries, or the whole body when it carries
// anything else (so nothing is lost).
func unknownItems(body []byte, e *header, label string, max int) ([]provider.Item, error) {
	out := collector{max: max}
	if !e.other {
		for c := range nColls {
			if e.colls[c] != nil {
				out.unknown(e, label, collNames[c], e.colls[c])
			}
		}
	}
	if len(out.items) == 0 && !out.over {
		return []provider.Item{{Kind: provider.KindUnknown, Channel: e.channel, Data: body}}, nil
	}
	return out.result()
}

// unknown adds the elements of the member name (a collection, or a member
// Split does not know) as unknown items. Their key names the kind or the
// type and event they came with, and the member, so the same element under
// two different events or members keeps two identities.
func (o *collector) unknown(e *header, label, name string, v []byte) {
	eachValue(v, func(el []byte) bool {
		ck, err := provider.ContentKey(el)
		if err != nil {
			ck = string(el)
		}
		return o.add(provider.Item{
			Kind:    provider.KindUnknown,
			Channel: e.channel,
			Key:     label + "\x00" + name + "\x00" + ck,
			Data:    el,
		})
	})
}

// describe fills an item's key, chat and time from its collection element.
// The keys and chats of messages, statuses and calls, one or two per item of
// a batch, it appends to text instead, the key before key and the chat
// after, for the collector to make one string of them all (setText).
func describe(c coll, v []byte, it *provider.Item, text []byte) (_ []byte, key int) {
	switch c {
	case cMessages:
		var f [3][]byte
		jsonscan.Pick(v, f[:], "id", "chat_id", "timestamp")
		id, chat, ts := f[0], f[1], f[2]
		text = jsonscan.AppendText(text, id)
		key = len(text)
		text = jsonscan.AppendString(text, chat)
		it.Time = unix(ts)
	case cStatuses:
		var f [6][]byte
		jsonscan.Pick(v, f[:], "id", "status", "recipient_id", "viewer_id", "chat_id", "timestamp")
		id, status, recipient, viewer, chat, ts := f[0], f[1], f[2], f[3], f[4], f[5]
		start := len(text)
		if text = jsonscan.AppendText(text, id); len(text) > start {
			text = jsonscan.AppendText(append(text, 0), status)
			text = jsonscan.AppendText(append(text, 0), recipient)
			text = jsonscan.AppendText(append(text, 0), viewer)
		}
		key = len(text)
		if text = jsonscan.AppendString(text, chat); len(text) == key {
			text = jsonscan.AppendString(text, recipient)
		}
		if string(text[key:]) == storiesPseudoID {
			// A story's status: "stories" is Whapi's word for the
			// status broadcast, not a chat id.
			text, it.Chat = text[:key], statusBroadcast
		}
		it.Time = unix(ts)
	case cCalls:
		var f [5][]byte
		jsonscan.Pick(v, f[:], "id", "status", "chat_id", "from", "timestamp")
		id, status, chat, from, ts := f[0], f[1], f[2], f[3], f[4]
		start := len(text)
		if text = jsonscan.AppendText(text, id); len(text) > start {
			text = jsonscan.AppendText(append(text, 0), status)
		}
		key = len(text)
		if text = jsonscan.AppendString(text, chat); len(text) == key {
			text = jsonscan.AppendString(text, from)
		}
		it.Time = unix(ts)
	case cChats, cGroups:
		var f [2][]byte
		jsonscan.Pick(v, f[:], "id", "timestamp")
		id, ts := f[0], f[1]
		it.Chat, it.Time = jsonscan.String(id), unix(ts)
	case cChatsUpdates, cGroupsUpdates, cContactsUpdates:
		// The chat's timestamp is its last activity, not this change's time.
		it.Chat = updatedID(v, "id")
	case cMessagesUpdates:
		// One look at the update's members and one at its trigger's.
		var f [3][]byte
		jsonscan.Pick(v, f[:], "before_update", "after_update", "trigger")
		var t [2][]byte
		jsonscan.Pick(f[2], t[:], "chat_id", "timestamp")
		if it.Chat = beforeAfterID(f[0], f[1], "chat_id"); it.Chat == "" {
			it.Chat = jsonscan.String(t[0])
		}
		it.Time = unix(t[1])
	case cChatsRemoved, cMessagesRemovedAll:
		it.Chat = jsonscan.String(v)
	case cContacts:
		it.Chat = jsonscan.Text(jsonscan.Lookup(v, "id"))
	case cGroupsParticipants:
		it.Chat = jsonscan.String(jsonscan.Lookup(v, "group_id"))
	case cPresences:
		var f [2][]byte
		jsonscan.Pick(v, f[:], "chat_id", "contact_id")
		chat, contact := f[0], f[1]
		it.Chat = jsonscan.String(chat)
		if it.Chat == "" {
			it.Chat = jsonscan.Text(contact)
		}
	case cHealth:
		it.Time = healthTime(v)
	}
	return text, key
}

// Whapi's pseudo chat id of stories (statuses' recipient_id or chat_id),
// and WhatsApp's id of the status broadcast they are about.
const (
	storiesPseudoID = "stories"
	statusBroadcast = "status@broadcast"
)

// updatedID reads field of after_update, else of before_update.
func updatedID(v []byte, field string) string {
	var f [2][]byte
	jsonscan.Pick(v, f[:], "before_update", "after_update")
	return beforeAfterID(f[0], f[1], field)
}

// beforeAfterID reads field of after, else of before.
func beforeAfterID(before, after []byte, field string) string {
	if s := jsonscan.Text(jsonscan.Lookup(after, field)); s != "" {
		return s
	}
	return jsonscan.Text(jsonscan.Lookup(before, field))
}

// healthTime is when a health report was made: start_at plus uptime seconds.
func healthTime(v []byte) time.Time {
	var f [2][]byte
	jsonscan.Pick(v, f[:], "start_at", "uptime")
	start, uptime := f[0], f[1]
	t := unix(start)
	if t.IsZero() {
		return t
	}
	if up, ok := jsonscan.Number(uptime); ok && up > 0 && up < 1e10 {
		t = t.Add(time.Duration(up * float64(time.Second)))
	}
	return t
}

// unix reads a timestamp in seconds or milliseconds, number or string.
func unix(v []byte) time.Time {
	if jsonscan.Absent(v) {
		return time.Time{}
	}
	t, _ := provider.Unix(v)
	return t
}
