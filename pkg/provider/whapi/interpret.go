package whapi

import (
	"strings"
	"time"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/jsonscan"
)

// Feeds says which kinds each derived stream reads: the kinds Interpret
// has a case for, by the facts that case can give. Keep the two together.
func (*Provider) Feeds() provider.Feeds {
	return provider.Feeds{
		derive.LabelChanged: {KindChatsPatch, KindLabelsPost, KindLabelsDelete},
		// Whapi says when a chat is created (chats.post, groups.post), so
		// its messages are not read for it: chats are not inferred from them.
		derive.ChatCreated:       {KindChatsPost, KindGroupsPost},
		derive.Call:              {KindCallsPost},
		derive.GroupNotification: {KindGroupsPost, KindGroupsPut, KindGroupsPatch},
	}
}

// Interpret reads one item Split produced as provider-neutral facts.
func (*Provider) Interpret(kind string, data []byte) (fact.Facts, error) {
	if !provider.ValidJSON(data) {
		return fact.Facts{}, provider.Invalid("whapi %s: data is not JSON", kind)
	}
	data = jsonscan.Trim(data)
	switch kind {
	case KindChatsPost:
		return chatCreated(kind, data)
	case KindChatsPatch:
		return chatUpdated(kind, data)
	case KindGroupsPost:
		return groupCreated(kind, data)
	case KindGroupsPut:
		return groupParticipants(kind, data)
	case KindGroupsPatch:
		return groupUpdated(kind, data)
	case KindLabelsPost:
		return labelUpserted(kind, data)
	case KindLabelsDelete:
		return labelDeleted(kind, data)
	case KindCallsPost:
		return call(kind, data)
	}
	return fact.Facts{}, nil
}

func notObject(kind string) error {
	return provider.Invalid("whapi %s: item is not a JSON object", kind)
}

// direction tells the chat's direction from a message's from_me.
func direction(fromMe []byte) string {
	switch b, ok := jsonscan.Bool(fromMe); {
	case !ok:
		return ""
	case b:
		return fact.Outgoing
	default:
		return fact.Incoming
	}
}

func chatCreated(kind string, data []byte) (fact.Facts, error) {
	if jsonscan.First(data) != '{' {
		return fact.Facts{}, notObject(kind)
	}
	var f [4][]byte
	jsonscan.Pick(data, f[:], "id", "name", "unread", "last_message")
	id, name, unread, last := f[0], f[1], f[2], f[3]
	chat := jsonscan.String(id)
	if chat == "" {
		return fact.Facts{}, provider.Invalid("whapi %s: chat has no id", kind)
	}
	// Unread messages in a new chat were received; otherwise the last
	// message's author tells who opened it.
	var dir string
	if n, ok := jsonscan.Number(unread); ok && n > 0 {
		dir = fact.Incoming
	} else {
		dir = direction(jsonscan.Lookup(last, "from_me"))
	}
	return fact.Facts{ChatsCreated: []fact.ChatCreated{{Chat: chat, Name: jsonscan.String(name), Direction: dir}}}, nil
}

// update is a chats_updates or groups_updates element.
type update struct {
	before, after []byte
	changes       []string
}

func readUpdate(kind string, data []byte) (update, error) {
	if jsonscan.First(data) != '{' {
		return update{}, notObject(kind)
	}
	var u update
	for k, v := range jsonscan.Members(data) {
		switch string(k) {
		case "before_update":
			u.before = v
		case "after_update":
			u.after = v
		case "changes":
			u.changes = u.changes[:0]
			for c := range jsonscan.Elements(v) {
				u.changes = append(u.changes, jsonscan.String(c))
			}
		}
	}
	return u, nil
}

func (u update) id() string {
	if s := jsonscan.String(jsonscan.Lookup(u.after, "id")); s != "" {
		return s
	}
	return jsonscan.String(jsonscan.Lookup(u.before, "id"))
}

func (u update) changed(field string) bool {
	for _, c := range u.changes {
		if c == field {
			return true
		}
	}
	return false
}

func chatUpdated(kind string, data []byte) (fact.Facts, error) {
	u, err := readUpdate(kind, data)
	if err != nil {
		return fact.Facts{}, err
	}
	if !u.changed("labels") {
		return fact.Facts{}, nil
	}
	chat := u.id()
	if chat == "" {
		return fact.Facts{}, provider.Invalid("whapi %s: chat update has no chat id", kind)
	}
	return fact.Facts{LabelSets: []fact.LabelSet{{
		Chat:   chat,
		Before: labels(jsonscan.Lookup(u.before, "labels")),
		After:  labels(jsonscan.Lookup(u.after, "labels")),
	}}}, nil
}

// labels reads a chat's label list; a missing list is an empty one, since
// Whapi leaves out empty fields.
func labels(v []byte) []fact.Label {
	out := []fact.Label{}
	for el := range jsonscan.Elements(v) {
		if l, ok := label(el); ok {
			out = append(out, l)
		}
	}
	return out
}

// label reads a Label object, or a bare label id.
func label(v []byte) (fact.Label, bool) {
	if jsonscan.First(v) != '{' {
		id := jsonscan.Text(v)
		return fact.Label{ID: id}, id != ""
	}
	var l fact.Label
	for k, val := range jsonscan.Members(v) {
		switch string(k) {
		case "id":
			l.ID = jsonscan.Text(val)
		case "name":
			l.Name = jsonscan.String(val)
		case "color":
			l.Color = jsonscan.Text(val)
		}
	}
	if strings.HasPrefix(l.Color, "#") {
		l.ColorHex = l.Color
	}
	return l, l.ID != "" || l.Name != ""
}

func labelUpserted(kind string, data []byte) (fact.Facts, error) {
	if jsonscan.First(data) != '{' {
		return fact.Facts{}, notObject(kind)
	}
	l, _ := label(data)
	if l.ID == "" {
		return fact.Facts{}, provider.Invalid("whapi %s: label has no id", kind)
	}
	return fact.Facts{LabelUpserts: []fact.Label{l}}, nil
}

// labelDeleted reads a labels_removed element. The help desk example names
// the label ("New order") while the OpenAPI types it as a LabelID: digits are
// taken for an id, anything else for a name that derivation resolves.
func labelDeleted(kind string, data []byte) (fact.Facts, error) {
	var ref fact.LabelRef
	switch jsonscan.First(data) {
	case '{':
		l, _ := label(data)
		ref = fact.LabelRef{ID: l.ID, Name: l.Name}
	default:
		s := strings.TrimSpace(jsonscan.Text(data))
		if allDigits(s) {
			ref.ID = s
		} else {
			ref.Name = s
		}
	}
	if ref.ID == "" && ref.Name == "" {
		return fact.Facts{}, provider.Invalid("whapi %s: removed label has no id or name", kind)
	}
	return fact.Facts{LabelDeletes: []fact.LabelRef{ref}}, nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// participants reads ContactIDs, or Participant objects {id, rank}.
func participants(v []byte) []string {
	var out []string
	for el := range jsonscan.Elements(v) {
		id := jsonscan.Text(el)
		if jsonscan.First(el) == '{' {
			id = jsonscan.Text(jsonscan.Lookup(el, "id"))
		}
		if id != "" {
			out = append(out, id)
		}
	}
	return out
}

// newGroupWindow is how far a group's created_at may be from the event's
// timestamp for groups.post to report the group's creation.
const newGroupWindow = time.Minute

// groupCreated reads groups.post, which Whapi sends both when a group is
// created and when you are added to an existing one: a new chat either way,
// and the group's creation when it was created as the event happened (by
// created_by: you, or someone who added you as they created it), else the
// group you joined, as WAHA's group.v2.join. Without both times it is the
// creation, as the documented example (created_at = timestamp).
func groupCreated(kind string, data []byte) (fact.Facts, error) {
	if jsonscan.First(data) != '{' {
		return fact.Facts{}, notObject(kind)
	}
	var f [6][]byte
	jsonscan.Pick(data, f[:], "id", "name", "participants", "created_by", "created_at", "timestamp")
	id, name, parts, by, createdAt, ts := f[0], f[1], f[2], f[3], f[4], f[5]
	chat := jsonscan.String(id)
	if chat == "" {
		return fact.Facts{}, provider.Invalid("whapi %s: group has no id", kind)
	}
	subject := jsonscan.String(name)
	out := fact.Facts{ChatsCreated: []fact.ChatCreated{{Chat: chat, Name: subject}}}
	if created, at := unix(createdAt), unix(ts); !created.IsZero() && !at.IsZero() && at.Sub(created) > newGroupWindow {
		out.Groups = []fact.GroupChange{{Chat: chat, Change: fact.GroupJoined, Subject: subject}}
		return out, nil
	}
	out.Groups = []fact.GroupChange{{
		Chat:         chat,
		Change:       fact.GroupCreated,
		Participants: participants(parts),
		Actor:        jsonscan.Text(by),
		Subject:      subject,
	}}
	return out, nil
}

// participantChanges maps ParticipantEvent.action to group changes.
var participantChanges = map[string]string{
	"add":              fact.GroupParticipantsAdded,
	"remove":           fact.GroupParticipantsRemoved,
	"leave":            fact.GroupParticipantsLeft,
	"promote":          fact.GroupParticipantsPromote,
	"demote":           fact.GroupParticipantsDemote,
	"request":          fact.GroupJoinRequested,
	"revoke_request":   fact.GroupJoinRevoked,
	"rejected_request": fact.GroupJoinRejected,
}

func groupParticipants(kind string, data []byte) (fact.Facts, error) {
	if jsonscan.First(data) != '{' {
		return fact.Facts{}, notObject(kind)
	}
	var f [3][]byte
	jsonscan.Pick(data, f[:], "group_id", "participants", "action")
	group, parts, action := f[0], f[1], f[2]
	chat := jsonscan.String(group)
	if chat == "" {
		return fact.Facts{}, provider.Invalid("whapi %s: participant event has no group_id", kind)
	}
	change, ok := participantChanges[lower(jsonscan.String(action))]
	if !ok {
		return fact.Facts{}, nil
	}
	return fact.Facts{Groups: []fact.GroupChange{{
		Chat:         chat,
		Change:       change,
		Participants: participants(parts),
	}}}, nil
}

// groupSettings are the Group fields reported as settings.changed, with the
// value an absent field means (Whapi leaves out false and zero fields).
var groupSettings = map[string]string{
	"announcements":      "false",
	"restricted":         "false",
	"adminAddMemberMode": "false",
	"ephemeral":          "0",
}

func groupUpdated(kind string, data []byte) (fact.Facts, error) {
	u, err := readUpdate(kind, data)
	if err != nil {
		return fact.Facts{}, err
	}
	chat := u.id()
	if chat == "" {
		return fact.Facts{}, provider.Invalid("whapi %s: group update has no group id", kind)
	}
	// One change per field named in changes; participant changes are left
	// out, as groups.put reports them.
	var out []fact.GroupChange
	seen := map[string]bool{}
	add := func(g fact.GroupChange) {
		key := g.Change
		if g.Setting != nil {
			key += "/" + g.Setting.Name
		}
		if seen[key] {
			return
		}
		seen[key] = true
		g.Chat = chat
		out = append(out, g)
	}
	for _, c := range u.changes {
		switch c {
		case "name", "subject":
			add(fact.GroupChange{
				Change:  fact.GroupSubjectChanged,
				Subject: jsonscan.String(jsonscan.Lookup(u.after, "name")),
				Actor:   jsonscan.Text(jsonscan.Lookup(u.after, "name_owner")),
			})
		case "description":
			add(fact.GroupChange{
				Change:      fact.GroupDescriptionChanged,
				Description: jsonscan.String(jsonscan.Lookup(u.after, "description")),
				Actor:       jsonscan.Text(jsonscan.Lookup(u.after, "description_owner")),
			})
		case "chat_pic", "chat_pic_full", "icon":
			add(fact.GroupChange{Change: fact.GroupIconChanged})
		default:
			def, ok := groupSettings[c]
			if !ok {
				continue
			}
			add(fact.GroupChange{
				Change:  fact.GroupSettingsChanged,
				Setting: &fact.Setting{Name: c, Value: settingValue(jsonscan.Lookup(u.after, c), def)},
			})
		}
	}
	return fact.Facts{Groups: out}, nil
}

// settingValue is a setting's JSON value as text: true, false, 86400.
func settingValue(v []byte, def string) string {
	switch jsonscan.First(v) {
	case 0, 'n':
		return def
	case '"':
		return jsonscan.String(v)
	case 't', 'f':
		return string(v)
	}
	return jsonscan.Text(v)
}

// callStates maps Whapi call statuses to call states. "initiated" and
// "ringing" are both the offer, which Whapi reports one after the other for
// one call: one offer, derived once per call (fact.Call.PerCall);
// "canceled" (the caller hung up before an answer) ends the call, and Whapi
// reports the callee's miss as "missed".
var callStates = map[string]string{
	"initiated":  fact.CallOffered,
	"ringing":    fact.CallOffered,
	"answered":   fact.CallAccepted,
	"accepted":   fact.CallAccepted,
	"missed":     fact.CallMissed,
	"rejected":   fact.CallRejected,
	"canceled":   fact.CallEnded,
	"cancelled":  fact.CallEnded,
	"ended":      fact.CallEnded,
	"terminated": fact.CallEnded,
}

func call(kind string, data []byte) (fact.Facts, error) {
	if jsonscan.First(data) != '{' {
		return fact.Facts{}, notObject(kind)
	}
	var f [6][]byte
	jsonscan.Pick(data, f[:], "id", "chat_id", "from", "status", "video_call", "group_call")
	id, chat, from, status, video, group := f[0], f[1], f[2], f[3], f[4], f[5]
	c := fact.Call{CallID: jsonscan.Text(id), Chat: jsonscan.String(chat), From: jsonscan.String(from), Status: jsonscan.String(status)}
	if c.CallID == "" {
		return fact.Facts{}, provider.Invalid("whapi %s: call has no id", kind)
	}
	state, ok := callStates[lower(c.Status)]
	if !ok {
		return fact.Facts{}, nil
	}
	c.State = state
	c.PerCall = state == fact.CallOffered
	if c.Chat == "" {
		c.Chat = c.From
	}
	c.Video, _ = jsonscan.Bool(video)
	c.Group, _ = jsonscan.Bool(group)
	return fact.Facts{Calls: []fact.Call{c}}, nil
}
