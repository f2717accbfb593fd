package waha

import (
	"encoding/json"
	"fmt"

	"github.com/wahook/wahook/pkg/chatid"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/provider"
)

// Feeds says which kinds each derived stream reads: the kinds Interpret
// has a case for, by the facts that case can give (joining a group is a new
// chat and a group change). Keep the two together.
func (*Provider) Feeds() provider.Feeds {
	return provider.Feeds{
		derive.LabelChanged: {KindLabelUpsert, KindLabelDeleted, KindLabelChatAdded, KindLabelChatDeleted},
		derive.ChatCreated:  {KindMessage, KindMessageAny, KindGroupV2Join},
		derive.Call:         {KindCallReceived, KindCallAccepted, KindCallRejected},
		derive.GroupNotification: {KindGroupV2Join, KindGroupV2Leave, KindGroupV2Update, KindGroupV2Participants,
			KindGroupJoin, KindGroupLeave},
	}
}

// Interpret reads one WAHA event as facts: labels, label associations,
// calls, group changes, the group you joined, and the chat of every message.
func (*Provider) Interpret(kind string, data []byte) (fact.Facts, error) {
	var read func(json.RawMessage) (fact.Facts, error)
	switch kind {
	case KindLabelUpsert:
		read = labelUpsert
	case KindLabelDeleted:
		read = labelDeleted
	case KindLabelChatAdded:
		read = func(p json.RawMessage) (fact.Facts, error) { return labelAssoc(p, true) }
	case KindLabelChatDeleted:
		read = func(p json.RawMessage) (fact.Facts, error) { return labelAssoc(p, false) }
	case KindCallReceived:
		read = func(p json.RawMessage) (fact.Facts, error) { return call(p, fact.CallOffered, kind) }
	case KindCallAccepted:
		read = func(p json.RawMessage) (fact.Facts, error) { return call(p, fact.CallAccepted, kind) }
	case KindCallRejected:
		read = func(p json.RawMessage) (fact.Facts, error) { return call(p, fact.CallRejected, kind) }
	case KindGroupV2Join:
		read = groupJoined
	case KindGroupV2Leave:
		read = groupLeft
	case KindGroupV2Update:
		read = groupUpdate
	case KindGroupV2Participants:
		read = groupParticipants
	case KindGroupJoin:
		read = func(p json.RawMessage) (fact.Facts, error) { return groupV1(p, fact.GroupParticipantsAdded) }
	case KindGroupLeave:
		read = func(p json.RawMessage) (fact.Facts, error) { return groupV1(p, fact.GroupParticipantsLeft) }
	case KindMessage, KindMessageAny:
		read = messageSeen
	default:
		return fact.Facts{}, nil
	}
	var env struct {
		Payload json.RawMessage `json:"payload"`
	}
	if err := decodeObject(data, &env); err != nil {
		return fact.Facts{}, err
	}
	if len(env.Payload) == 0 || env.Payload[0] != '{' {
		return fact.Facts{}, provider.Invalid("%s: payload is not an object", kind)
	}
	f, err := read(env.Payload)
	if err != nil {
		return fact.Facts{}, fmt.Errorf("%s: %w", kind, err)
	}
	return f, nil
}

// unmarshal decodes a payload part, reporting a mismatch as ErrInvalid.
func unmarshal(raw json.RawMessage, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return provider.Invalid("%v", err)
	}
	return nil
}

// label is WAHA's Label {id, name, color (index), colorHex}, or Wawp's
// {id, name, color "#hex"}.
type label struct {
	ID       json.RawMessage `json:"id"`
	Name     json.RawMessage `json:"name"`
	Color    json.RawMessage `json:"color"`
	ColorHex json.RawMessage `json:"colorHex"`
}

func (l label) fact() fact.Label {
	out := fact.Label{
		ID:       provider.Text(l.ID),
		Name:     provider.String(l.Name),
		Color:    provider.Text(l.Color),
		ColorHex: provider.String(l.ColorHex),
	}
	if out.ColorHex == "" && len(out.Color) > 0 && out.Color[0] == '#' {
		out.ColorHex = out.Color
	}
	return out
}

// labelOf reads a label object; null or absent is the zero label.
func labelOf(raw json.RawMessage) (label, error) {
	var l label
	if isNull(raw) {
		return l, nil
	}
	if raw[0] != '{' {
		return l, provider.Invalid("label is not an object")
	}
	return l, unmarshal(raw, &l)
}

// labelUpsert reads Wawp's {label: {...}} or WAHA's payload that is the Label.
func labelUpsert(p json.RawMessage) (fact.Facts, error) {
	var w struct {
		label
		Label json.RawMessage `json:"label"`
	}
	if err := unmarshal(p, &w); err != nil {
		return fact.Facts{}, err
	}
	l := w.label
	if !isNull(w.Label) {
		var err error
		if l, err = labelOf(w.Label); err != nil {
			return fact.Facts{}, err
		}
	}
	lbl := l.fact()
	if lbl.ID == "" {
		return fact.Facts{}, provider.Invalid("label has no id")
	}
	return fact.Facts{LabelUpserts: []fact.Label{lbl}}, nil
}

// labelDeleted reads Wawp's {labelId} or WAHA's payload that is the Label.
func labelDeleted(p json.RawMessage) (fact.Facts, error) {
	var w struct {
		label
		LabelID json.RawMessage `json:"labelId"`
		Label   json.RawMessage `json:"label"`
	}
	if err := unmarshal(p, &w); err != nil {
		return fact.Facts{}, err
	}
	nested, err := labelOf(w.Label)
	if err != nil {
		return fact.Facts{}, err
	}
	ref := fact.LabelRef{ID: provider.Text(w.LabelID), Name: provider.String(w.Name)}
	if ref.ID == "" {
		ref.ID = provider.Text(nested.ID)
	}
	if ref.ID == "" {
		ref.ID = provider.Text(w.ID)
	}
	if ref.Name == "" {
		ref.Name = provider.String(nested.Name)
	}
	if ref.ID == "" {
		return fact.Facts{}, provider.Invalid("no label id")
	}
	return fact.Facts{LabelDeletes: []fact.LabelRef{ref}}, nil
}

// labelAssoc reads {chatId, labelId, label?} (WAHA's LabelChatAssociation,
// whose label is the whole Label or null).
func labelAssoc(p json.RawMessage, assigned bool) (fact.Facts, error) {
	var w struct {
		ChatID  json.RawMessage `json:"chatId"`
		LabelID json.RawMessage `json:"labelId"`
		Label   json.RawMessage `json:"label"`
	}
	if err := unmarshal(p, &w); err != nil {
		return fact.Facts{}, err
	}
	l, err := labelOf(w.Label)
	if err != nil {
		return fact.Facts{}, err
	}
	lbl := l.fact()
	if id := provider.Text(w.LabelID); id != "" {
		lbl.ID = id
	}
	a := fact.LabelAssoc{Chat: provider.String(w.ChatID), Label: lbl, Assigned: assigned}
	if a.Chat == "" || a.Label.ID == "" {
		return fact.Facts{}, provider.Invalid("chatId or labelId missing")
	}
	return fact.Facts{LabelAssocs: []fact.LabelAssoc{a}}, nil
}

// call reads WAHA's CallData {id, from, timestamp, isVideo, isGroup}; Wawp
// documents {id, from, isVideo} and, once answered, {id}.
func call(p json.RawMessage, state, status string) (fact.Facts, error) {
	var w struct {
		ID      json.RawMessage `json:"id"`
		From    json.RawMessage `json:"from"`
		ChatID  json.RawMessage `json:"chatId"`
		IsVideo json.RawMessage `json:"isVideo"`
		IsGroup json.RawMessage `json:"isGroup"`
	}
	if err := unmarshal(p, &w); err != nil {
		return fact.Facts{}, err
	}
	c := fact.Call{
		CallID: provider.Text(w.ID),
		From:   provider.String(w.From),
		Chat:   provider.String(w.ChatID),
		State:  state,
		Status: status,
	}
	if c.Chat == "" {
		c.Chat = c.From
	}
	c.Video, _ = boolean(w.IsVideo)
	c.Group, _ = boolean(w.IsGroup)
	if c.CallID == "" {
		return fact.Facts{}, provider.Invalid("call has no id")
	}
	return fact.Facts{Calls: []fact.Call{c}}, nil
}

// groupPayload is a group event in both shapes: WAHA's {group: GroupInfo or
// GroupId, type, participants, _data} and Wawp's {chatId, action,
// participants, subject, description}.
type groupPayload struct {
	Group        json.RawMessage `json:"group"`
	ChatID       json.RawMessage `json:"chatId"`
	Type         json.RawMessage `json:"type"`
	Action       json.RawMessage `json:"action"`
	Participants json.RawMessage `json:"participants"`
	Data         json.RawMessage `json:"_data"`
	groupFields
}

// groupFields are GroupInfo's fields a change can be about, and the
// group-level settings WAHA engines and Wawp name.
type groupFields struct {
	ID                         json.RawMessage `json:"id"`
	Subject                    json.RawMessage `json:"subject"`
	Description                json.RawMessage `json:"description"`
	MembersCanAddNewMember     json.RawMessage `json:"membersCanAddNewMember"`
	MembersCanSendMessages     json.RawMessage `json:"membersCanSendMessages"`
	NewMembersApprovalRequired json.RawMessage `json:"newMembersApprovalRequired"`
	Announce                   json.RawMessage `json:"announce"`
	Restrict                   json.RawMessage `json:"restrict"`
}

// engineData is what a group event's raw engine object (_data) tells:
// whatsapp-web.js GroupNotification {type, author}, Baileys {action, author}.
type engineData struct {
	Type   json.RawMessage `json:"type"`
	Action json.RawMessage `json:"action"`
	Author json.RawMessage `json:"author"`
}

// readGroup decodes a group event; info is the group object (WAHA), else the
// payload itself (Wawp). The group id is required.
func readGroup(p json.RawMessage) (w groupPayload, info groupFields, gid string, err error) {
	if err = unmarshal(p, &w); err != nil {
		return w, info, "", err
	}
	info = w.groupFields
	if !isNull(w.Group) {
		if w.Group[0] != '{' {
			return w, info, "", provider.Invalid("group is not an object")
		}
		if err = unmarshal(w.Group, &info); err != nil {
			return w, info, "", err
		}
		gid = serialized(info.ID)
	}
	if gid == "" {
		gid = provider.String(w.ChatID)
	}
	if gid == "" {
		return w, info, "", provider.Invalid("no group id")
	}
	return w, info, gid, nil
}

func (w groupPayload) engine() engineData {
	var d engineData
	if len(w.Data) > 0 && w.Data[0] == '{' {
		_ = json.Unmarshal(w.Data, &d) // engine detail only refines the facts
	}
	return d
}

// groupJoined: you joined or were added to a group, which is a new chat.
func groupJoined(p json.RawMessage) (fact.Facts, error) {
	_, info, gid, err := readGroup(p)
	if err != nil {
		return fact.Facts{}, err
	}
	subject := provider.String(info.Subject)
	return fact.Facts{
		ChatsCreated: []fact.ChatCreated{{Chat: gid, Name: subject}},
		Groups:       []fact.GroupChange{{Chat: gid, Change: fact.GroupJoined, Subject: subject}},
	}, nil
}

// groupLeft: you left or were removed from a group.
func groupLeft(p json.RawMessage) (fact.Facts, error) {
	w, _, gid, err := readGroup(p)
	if err != nil {
		return fact.Facts{}, err
	}
	ids, err := participants(w.Participants)
	if err != nil {
		return fact.Facts{}, provider.Invalid("participants: %v", err)
	}
	return fact.Facts{Groups: []fact.GroupChange{{Chat: gid, Change: fact.GroupParticipantsLeft, Participants: ids}}}, nil
}

// groupUpdate emits one change per field present. whatsapp-web.js engines
// send the whole group info on every update; their notification type then
// says which field changed.
func groupUpdate(p json.RawMessage) (fact.Facts, error) {
	w, info, gid, err := readGroup(p)
	if err != nil {
		return fact.Facts{}, err
	}
	d := w.engine()
	only := provider.String(d.Type)
	switch only {
	case "subject", "description", "picture", "announce", "restrict":
	default:
		only = ""
	}
	actor := serialized(d.Author)
	var out []fact.GroupChange
	add := func(c fact.GroupChange) {
		c.Chat, c.Actor = gid, actor
		out = append(out, c)
	}
	if (only == "" || only == "subject") && !isNull(info.Subject) {
		add(fact.GroupChange{Change: fact.GroupSubjectChanged, Subject: provider.String(info.Subject)})
	}
	if (only == "" || only == "description") && !isNull(info.Description) {
		add(fact.GroupChange{Change: fact.GroupDescriptionChanged, Description: provider.String(info.Description)})
	}
	if only == "picture" {
		add(fact.GroupChange{Change: fact.GroupIconChanged})
	}
	if only == "" || only == "announce" || only == "restrict" {
		for _, s := range [...]struct {
			name string
			raw  json.RawMessage
		}{
			{"membersCanAddNewMember", info.MembersCanAddNewMember},
			{"membersCanSendMessages", info.MembersCanSendMessages},
			{"newMembersApprovalRequired", info.NewMembersApprovalRequired},
			{"announce", info.Announce},
			{"restrict", info.Restrict},
		} {
			if v := scalar(s.raw); v != "" {
				add(fact.GroupChange{Change: fact.GroupSettingsChanged, Setting: &fact.Setting{Name: s.name, Value: v}})
			}
		}
	}
	return fact.Facts{Groups: out}, nil
}

// participantChanges maps WAHA's type and Wawp's (and Baileys') action.
var participantChanges = map[string]string{
	"join":              fact.GroupParticipantsAdded,
	"add":               fact.GroupParticipantsAdded,
	"invite":            fact.GroupParticipantsAdded,
	"linked_group_join": fact.GroupParticipantsAdded,
	"leave":             fact.GroupParticipantsLeft,
	"remove":            fact.GroupParticipantsRemoved,
	"promote":           fact.GroupParticipantsPromote,
	"demote":            fact.GroupParticipantsDemote,
}

// groupParticipants reads members joining, leaving, promoted or demoted.
func groupParticipants(p json.RawMessage) (fact.Facts, error) {
	w, _, gid, err := readGroup(p)
	if err != nil {
		return fact.Facts{}, err
	}
	word := provider.String(w.Type)
	if word == "" {
		word = provider.String(w.Action)
	}
	change, ok := participantChanges[word]
	if !ok {
		return fact.Facts{}, nil
	}
	ids, err := participants(w.Participants)
	if err != nil {
		return fact.Facts{}, provider.Invalid("participants: %v", err)
	}
	d := w.engine()
	actor := serialized(d.Author)
	if change == fact.GroupParticipantsLeft && removed(d, actor, ids, w.Participants) {
		change = fact.GroupParticipantsRemoved
	}
	return fact.Facts{Groups: []fact.GroupChange{{Chat: gid, Change: change, Participants: ids, Actor: actor}}}, nil
}

// removed tells a removal from a leave, which WAHA both calls "leave": the
// engine's own word, else an author who is not among those who went.
func removed(d engineData, actor string, ids []string, raw json.RawMessage) bool {
	switch provider.String(d.Type) {
	case "remove":
		return true
	case "leave":
		return false
	}
	if provider.String(d.Action) != "remove" || actor == "" {
		return false
	}
	a := chatid.ID(actor)
	for _, id := range ids {
		if chatid.ID(id) == a {
			return false
		}
	}
	// A participant's other id (…@lid beside its phone-number id).
	list, _ := elements(raw)
	for _, e := range list {
		if len(e) > 0 && e[0] == '{' {
			var pt participant
			if json.Unmarshal(e, &pt) == nil && chatid.ID(serialized(pt.ID)) == a {
				return false
			}
		}
	}
	return true
}

// groupV1 reads WAHA's first group events, whose payload is the engine's
// notification (whatsapp-web.js: {id, chatId, author, recipientIds, type}).
// A shape without a group gives no facts.
func groupV1(p json.RawMessage, change string) (fact.Facts, error) {
	var w struct {
		ID           json.RawMessage `json:"id"`
		ChatID       json.RawMessage `json:"chatId"`
		Type         json.RawMessage `json:"type"`
		Author       json.RawMessage `json:"author"`
		RecipientIDs json.RawMessage `json:"recipientIds"`
	}
	if json.Unmarshal(p, &w) != nil {
		return fact.Facts{}, nil
	}
	gid := provider.String(w.ChatID)
	if gid == "" {
		gid = remote(w.ID)
	}
	if gid == "" {
		return fact.Facts{}, nil
	}
	ids, err := participants(w.RecipientIDs)
	if err != nil {
		return fact.Facts{}, nil
	}
	actor := serialized(w.Author)
	if change == fact.GroupParticipantsLeft && removed(engineData{Type: w.Type}, actor, ids, nil) {
		change = fact.GroupParticipantsRemoved
	}
	return fact.Facts{Groups: []fact.GroupChange{{Chat: gid, Change: change, Participants: ids, Actor: actor}}}, nil
}

// messageSeen: a message shows its chat; status updates are no chat.
func messageSeen(p json.RawMessage) (fact.Facts, error) {
	var w struct {
		msgRef
		ChatID json.RawMessage `json:"chatId"`
	}
	if err := unmarshal(p, &w); err != nil {
		return fact.Facts{}, err
	}
	fromMe, known := boolean(w.FromMe)
	c := provider.String(w.ChatID)
	if c == "" {
		c = w.chat()
	}
	if c == "" {
		return fact.Facts{}, provider.Invalid("message has no chat")
	}
	if c == "status@broadcast" {
		return fact.Facts{}, nil
	}
	seen := fact.ChatSeen{Chat: c}
	if known {
		seen.Direction = fact.Incoming
		if fromMe {
			seen.Direction = fact.Outgoing
		}
	}
	return fact.Facts{ChatsSeen: []fact.ChatSeen{seen}}, nil
}
