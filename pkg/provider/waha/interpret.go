package waha

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

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
			KindGroupV2JoinRequest, KindGroupJoin, KindGroupLeave},
	}
}

// Interpret reads one WAHA event as facts: labels, label associations,
// calls, group changes and join requests, the group you joined, and the
// chat of every message.
func (*Provider) Interpret(kind string, data []byte) (fact.Facts, error) {
	var read func(json.RawMessage, envMeta) (fact.Facts, error)
	switch kind {
	case KindLabelUpsert:
		read = labelUpsert
	case KindLabelDeleted:
		read = labelDeleted
	case KindLabelChatAdded:
		read = func(p json.RawMessage, _ envMeta) (fact.Facts, error) { return labelAssoc(p, true) }
	case KindLabelChatDeleted:
		read = func(p json.RawMessage, _ envMeta) (fact.Facts, error) { return labelAssoc(p, false) }
	case KindCallReceived:
		read = func(p json.RawMessage, _ envMeta) (fact.Facts, error) { return call(p, fact.CallOffered, kind) }
	case KindCallAccepted:
		read = func(p json.RawMessage, _ envMeta) (fact.Facts, error) { return call(p, fact.CallAccepted, kind) }
	case KindCallRejected:
		read = func(p json.RawMessage, _ envMeta) (fact.Facts, error) { return call(p, fact.CallRejected, kind) }
	case KindGroupV2Join:
		read = groupJoined
	case KindGroupV2Leave:
		read = groupLeft
	case KindGroupV2Update:
		read = groupUpdate
	case KindGroupV2Participants:
		read = groupParticipants
	case KindGroupV2JoinRequest:
		read = groupJoinRequest
	case KindGroupJoin:
		read = func(p json.RawMessage, _ envMeta) (fact.Facts, error) { return groupV1(p, fact.GroupParticipantsAdded) }
	case KindGroupLeave:
		read = func(p json.RawMessage, _ envMeta) (fact.Facts, error) { return groupV1(p, fact.GroupParticipantsLeft) }
	case KindMessage, KindMessageAny:
		read = messageSeen
	default:
		return fact.Facts{}, nil
	}
	var env struct {
		Payload json.RawMessage `json:"payload"`
		Engine  json.RawMessage `json:"engine"`
		Me      json.RawMessage `json:"me"`
	}
	if err := decodeObject(data, &env); err != nil {
		return fact.Facts{}, err
	}
	if len(env.Payload) == 0 || env.Payload[0] != '{' {
		return fact.Facts{}, provider.Invalid("%s: payload is not an object", kind)
	}
	f, err := read(env.Payload, readMeta(env.Engine, env.Me))
	if err != nil {
		return fact.Facts{}, fmt.Errorf("%s: %w", kind, err)
	}
	return f, nil
}

// WAHA engines, as the envelope's engine names them.
const (
	engineWEBJS = "WEBJS"
	engineNOWEB = "NOWEB"
	engineGOWS  = "GOWS"
)

// envMeta is what a WAHA envelope tells beside the payload.
type envMeta struct {
	// engine is the engine that produced the event, upper-cased, or "".
	engine string
	// me are the session's own ids (MeInfo id, lid, jid), phone-number id
	// first: "you" in group.v2.leave, which names no participant.
	me []string
}

func readMeta(engine, me json.RawMessage) envMeta {
	m := envMeta{engine: strings.ToUpper(provider.String(engine))}
	if len(me) > 0 && me[0] == '{' {
		var w struct {
			ID  json.RawMessage `json:"id"`
			LID json.RawMessage `json:"lid"`
			JID json.RawMessage `json:"jid"`
		}
		if json.Unmarshal(me, &w) == nil {
			for _, raw := range [...]json.RawMessage{w.ID, w.LID, w.JID} {
				if id := serialized(raw); id != "" {
					m.me = append(m.me, id)
				}
			}
		}
	}
	return m
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
func labelUpsert(p json.RawMessage, _ envMeta) (fact.Facts, error) {
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
func labelDeleted(p json.RawMessage, _ envMeta) (fact.Facts, error) {
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

// call reads WAHA's CallData {id, from, timestamp, isVideo, isGroup, _data};
// Wawp documents {id, from, isVideo} and, once answered, {id}.
func call(p json.RawMessage, state, status string) (fact.Facts, error) {
	var w struct {
		ID      json.RawMessage `json:"id"`
		From    json.RawMessage `json:"from"`
		ChatID  json.RawMessage `json:"chatId"`
		IsVideo json.RawMessage `json:"isVideo"`
		IsGroup json.RawMessage `json:"isGroup"`
		Data    json.RawMessage `json:"_data"`
	}
	if err := unmarshal(p, &w); err != nil {
		return fact.Facts{}, err
	}
	gows := decodeGOWSCall(w.Data)
	chat, from := callParties(provider.String(w.From), gows)
	c := fact.Call{
		CallID: provider.Text(w.ID),
		From:   from,
		Chat:   provider.String(w.ChatID),
		State:  state,
		Status: status,
	}
	if c.Chat == "" {
		c.Chat = chat
	}
	c.Video, _ = boolean(w.IsVideo)
	c.Group, _ = boolean(w.IsGroup)
	if !c.Group && isLID(chat) && from != chat && !isLID(from) && chatid.ID(c.Chat) == chatid.ID(chat) {
		c.ChatPhone = from
	}
	if c.CallID == "" {
		return fact.Facts{}, provider.Invalid("call has no id")
	}
	return fact.Facts{Calls: []fact.Call{c}, Aliases: callAliases(gows)}, nil
}

// callParties returns a call's chat and caller from CallData's from and the
// engine's raw call. WAHA's GOWS toCallData sets from to whatsmeow's
// BasicCallMeta.From (the call stanza's sender, else GroupJID) without its
// device part, and _data to the whole event; that from is the chat, as WAHA
// gives it, and CallCreator only stands in when from is missing. When the
// caller is a …@lid, its phone-number id is CallCreatorAlt (whatsmeow sets
// it from the node's caller_pn when CallCreator is a …@lid) or, from a
// whatsmeow without that field, the node's caller_pn attribute.
func callParties(from string, d gowsCall) (chat, caller string) {
	chat, caller = from, from
	if caller == "" {
		chat, caller = d.creator, d.creator
	}
	if !isLID(caller) || (d.creator != "" && chatid.ID(d.creator) != chatid.ID(caller)) {
		return chat, caller
	}
	for _, alt := range [...]string{d.creatorAlt, d.callerPN} {
		if alt != "" && !isLID(alt) {
			return chat, alt
		}
	}
	return chat, caller
}

// gowsCall is what a GOWS call's _data tells of its caller.
type gowsCall struct {
	creator, creatorAlt, callerPN string
}

// decodeGOWSCall reads a call's _data, once for both callParties and
// callAliases: whatsmeow's CallCreator, its CallCreatorAlt and the call
// node's caller_pn attribute; none from other engines' _data.
func decodeGOWSCall(data json.RawMessage) gowsCall {
	if len(data) == 0 || data[0] != '{' {
		return gowsCall{}
	}
	var d struct {
		CallCreator    json.RawMessage `json:"CallCreator"`
		CallCreatorAlt json.RawMessage `json:"CallCreatorAlt"`
		Data           struct {
			Attrs struct {
				CallerPN json.RawMessage `json:"caller_pn"`
			} `json:"Attrs"`
		} `json:"Data"`
	}
	if json.Unmarshal(data, &d) != nil {
		return gowsCall{}
	}
	return gowsCall{
		creator:    provider.String(d.CallCreator),
		creatorAlt: provider.String(d.CallCreatorAlt),
		callerPN:   provider.String(d.Data.Attrs.CallerPN),
	}
}

// callAliases returns the caller's LID↔phone pair in GOWS's raw call:
// CallCreator beside CallCreatorAlt or the node's caller_pn, in either form.
func callAliases(d gowsCall) []fact.Alias {
	return provider.Aliases([2]string{d.creator, d.creatorAlt}, [2]string{d.creator, d.callerPN})
}

// isLID reports a hidden (…@lid) id.
func isLID(id string) bool {
	return strings.HasSuffix(id, "@lid")
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
// whatsapp-web.js GroupNotification {type, author, body, recipientIds},
// Baileys {action, author, authorPn} or Partial<GroupMetadata> {restrict},
// whatsmeow GroupInfoEvent {JID, Sender, SenderPN, Locked}.
type engineData struct {
	Type     json.RawMessage `json:"type"`
	Action   json.RawMessage `json:"action"`
	Author   json.RawMessage `json:"author"`
	AuthorPN json.RawMessage `json:"authorPn"`
	Sender   json.RawMessage `json:"Sender"`
	SenderPN json.RawMessage `json:"SenderPN"`
	Body     json.RawMessage `json:"body"`
	Restrict json.RawMessage `json:"restrict"`
	Locked   *struct {
		IsLocked json.RawMessage `json:"IsLocked"`
	} `json:"Locked"`
	keys map[string]bool
}

// actor is who acted, by the phone-number id when the engine gives it.
func (d engineData) actor() string {
	for _, raw := range [...]json.RawMessage{d.SenderPN, d.AuthorPN, d.Sender, d.Author} {
		if id := serialized(raw); id != "" {
			return id
		}
	}
	return ""
}

// actorIDs are every id the engine gives the actor, canonical.
func (d engineData) actorIDs() []string {
	var ids []string
	for _, raw := range [...]json.RawMessage{d.SenderPN, d.AuthorPN, d.Sender, d.Author} {
		if id := chatid.ID(serialized(raw)); id != "" {
			ids = append(ids, id)
		}
	}
	return ids
}

// engineOf names the engine of a group event: the envelope's word, else
// the shape of its raw object, else "".
func engineOf(m envMeta, d engineData) string {
	switch m.engine {
	case engineWEBJS, engineNOWEB, engineGOWS:
		return m.engine
	case "":
	default:
		return ""
	}
	switch {
	case d.keys["JID"]:
		return engineGOWS
	case d.keys["recipientIds"]:
		return engineWEBJS
	case d.keys["id"] && (d.keys["announce"] || d.keys["restrict"] || d.keys["subject"] || d.keys["desc"]):
		return engineNOWEB
	}
	return ""
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
		// Engine detail only refines the facts: a mismatch leaves it out.
		var keys map[string]json.RawMessage
		if json.Unmarshal(w.Data, &keys) == nil {
			_ = json.Unmarshal(w.Data, &d)
			d.keys = make(map[string]bool, len(keys))
			for k := range keys {
				d.keys[k] = true
			}
		}
	}
	return d
}

// groupJoined: you joined or were added to a group, which is a new chat.
func groupJoined(p json.RawMessage, _ envMeta) (fact.Facts, error) {
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

// groupLeft: you left or were removed from a group. WAHA's payload names
// nobody (the session left), so the participant is the envelope's me; the
// engine's actor tells a removal from a leave.
func groupLeft(p json.RawMessage, m envMeta) (fact.Facts, error) {
	w, _, gid, err := readGroup(p)
	if err != nil {
		return fact.Facts{}, err
	}
	ids, err := participants(w.Participants)
	if err != nil {
		return fact.Facts{}, provider.Invalid("participants: %v", err)
	}
	went := participantForms(w.Participants)
	if len(ids) == 0 && len(m.me) > 0 {
		ids = m.me[:1]
		went = went[:0]
		for _, id := range m.me {
			went = append(went, chatid.ID(id))
		}
	}
	d := w.engine()
	change := fact.GroupParticipantsLeft
	if removed(d, went) {
		change = fact.GroupParticipantsRemoved
	}
	return fact.Facts{Groups: []fact.GroupChange{{Chat: gid, Change: change, Participants: ids, Actor: d.actor()}},
		Aliases: participantAliases(w.Participants)}, nil
}

// whatsapp-web.js notification types of a group update, by the GroupInfo
// field each changes.
const (
	webjsSubject     = "subject"
	webjsDescription = "description"
	webjsPicture     = "picture"
	webjsAnnounce    = "announce"
	webjsRestrict    = "restrict"
)

// membersCanSendMessages is the one setting whose meaning WAHA engines
// disagree on: WEBJS and NOWEB put the group's raw announce flag in it (true:
// only admins send), GOWS its negation. Derived events always say what the
// name says: true when every member may send.
const membersCanSendMessages = "membersCanSendMessages"

// groupUpdate emits one change per group field that changed. NOWEB and GOWS
// send only the changed fields; WEBJS sends the whole group on every change,
// and its notification's type says which one changed: an update of another
// type (or none) cannot be told from the one event, and gives nothing rather
// than every field present. Wawp's flat payload carries the changed fields.
func groupUpdate(p json.RawMessage, m envMeta) (fact.Facts, error) {
	w, info, gid, err := readGroup(p)
	if err != nil {
		return fact.Facts{}, err
	}
	d := w.engine()
	engine := engineOf(m, d)
	actor := d.actor()
	var out []fact.GroupChange
	add := func(c fact.GroupChange) {
		c.Chat, c.Actor = gid, actor
		out = append(out, c)
	}
	setting := func(name, value string) {
		if value != "" {
			add(fact.GroupChange{Change: fact.GroupSettingsChanged, Setting: &fact.Setting{Name: name, Value: value}})
		}
	}
	canSend := func() string {
		v, ok := boolean(info.MembersCanSendMessages)
		switch {
		case !ok:
			return ""
		case engine == engineWEBJS || engine == engineNOWEB:
			v = !v
		case engine != engineGOWS:
			return "" // an engine whose meaning is not known
		}
		return strconv.FormatBool(v)
	}
	if engine == engineWEBJS && !isNull(w.Group) {
		switch provider.String(d.Type) {
		case webjsSubject:
			add(fact.GroupChange{Change: fact.GroupSubjectChanged, Subject: provider.String(info.Subject)})
		case webjsDescription:
			add(fact.GroupChange{Change: fact.GroupDescriptionChanged, Description: provider.String(info.Description)})
		case webjsPicture:
			add(fact.GroupChange{Change: fact.GroupIconChanged})
		case webjsAnnounce:
			setting(membersCanSendMessages, canSend())
		case webjsRestrict:
			// WAHA's GroupInfo has no such field, so only the notification's
			// body (whatsapp-web.js: the message's body, else "") could say;
			// neither library documents what WhatsApp Web puts there, so
			// anything but on/off tells nothing.
			setting("restrict", onOff(d.Body))
		}
		return fact.Facts{Groups: out}, nil
	}
	if !isNull(info.Subject) {
		add(fact.GroupChange{Change: fact.GroupSubjectChanged, Subject: provider.String(info.Subject)})
	}
	if !isNull(info.Description) {
		add(fact.GroupChange{Change: fact.GroupDescriptionChanged, Description: provider.String(info.Description)})
	}
	setting("membersCanAddNewMember", scalar(info.MembersCanAddNewMember))
	setting(membersCanSendMessages, canSend())
	setting("newMembersApprovalRequired", scalar(info.NewMembersApprovalRequired))
	setting("announce", scalar(info.Announce))
	restrict := scalar(info.Restrict)
	if restrict == "" && !isNull(w.Group) {
		// Not in GroupInfo: NOWEB's raw update or GOWS's Locked says it.
		switch engine {
		case engineNOWEB:
			restrict = scalar(d.Restrict)
		case engineGOWS:
			if d.Locked != nil {
				restrict = scalar(d.Locked.IsLocked)
			}
		}
	}
	setting("restrict", restrict)
	return fact.Facts{Groups: out}, nil
}

// onOff reads a whatsapp-web.js setting notification's body: "on", "off",
// or a boolean; else "".
func onOff(raw json.RawMessage) string {
	switch scalar(raw) {
	case "on", "true":
		return "true"
	case "off", "false":
		return "false"
	}
	return ""
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
func groupParticipants(p json.RawMessage, _ envMeta) (fact.Facts, error) {
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
	if change == fact.GroupParticipantsLeft && removed(d, participantForms(w.Participants)) {
		change = fact.GroupParticipantsRemoved
	}
	return fact.Facts{Groups: []fact.GroupChange{{Chat: gid, Change: change, Participants: ids, Actor: d.actor()}},
		Aliases: participantAliases(w.Participants)}, nil
}

// joinRequestChanges maps GroupV2ParticipantsJoinRequestEvent's action.
var joinRequestChanges = map[string]string{
	"created":  fact.GroupJoinRequested,
	"rejected": fact.GroupJoinRejected,
	"revoked":  fact.GroupJoinRevoked,
}

// groupJoinRequest reads a request to join a group created, rejected by an
// admin or revoked by its requester: {group: {id}, action, requesterId,
// requesterPn?, requestMethod?, _data}. The requester is the participant,
// by the phone-number id when given; the engine's sender is the actor.
func groupJoinRequest(p json.RawMessage, _ envMeta) (fact.Facts, error) {
	w, _, gid, err := readGroup(p)
	if err != nil {
		return fact.Facts{}, err
	}
	change, ok := joinRequestChanges[provider.String(w.Action)]
	if !ok {
		return fact.Facts{}, nil
	}
	var r struct {
		RequesterID   json.RawMessage `json:"requesterId"`
		RequesterPN   json.RawMessage `json:"requesterPn"`
		RequestMethod json.RawMessage `json:"requestMethod"`
	}
	if err := unmarshal(p, &r); err != nil {
		return fact.Facts{}, err
	}
	requester := serialized(r.RequesterPN)
	if requester == "" {
		requester = serialized(r.RequesterID)
	}
	if requester == "" {
		return fact.Facts{}, provider.Invalid("join request has no requester")
	}
	return fact.Facts{Groups: []fact.GroupChange{{
		Chat:          gid,
		Change:        change,
		Participants:  []string{requester},
		Actor:         w.engine().actor(),
		RequestMethod: provider.String(r.RequestMethod),
	}}, Aliases: provider.Aliases([2]string{serialized(r.RequesterID), serialized(r.RequesterPN)})}, nil
}

// removed tells a removal from a leave, which WAHA calls both "leave" (and
// NOWEB "remove"): whatsapp-web.js's notification type, else an actor who
// is none of those who went (went: their canonical ids, every form known).
// An actor known only in a form none of theirs is in (a …@lid against
// phone-number ids) cannot be compared: a leave.
func removed(d engineData, went []string) bool {
	switch provider.String(d.Type) {
	case "remove":
		return true
	case "leave":
		return false
	}
	comparable := false
	for _, a := range d.actorIDs() {
		for _, id := range went {
			if a == id {
				return false
			}
			if isLID(a) == isLID(id) {
				comparable = true
			}
		}
	}
	return comparable
}

// participantForms returns every id of a participant list, canonical: each
// member's id and its phone-number id pn.
func participantForms(raw json.RawMessage) []string {
	list, _ := elements(raw)
	var ids []string
	for _, e := range list {
		if len(e) > 0 && e[0] == '{' {
			var pt participant
			if json.Unmarshal(e, &pt) == nil {
				for _, r := range [...]json.RawMessage{pt.ID, pt.PN} {
					if id := chatid.ID(serialized(r)); id != "" {
						ids = append(ids, id)
					}
				}
			}
			continue
		}
		if id := chatid.ID(provider.Text(e)); id != "" {
			ids = append(ids, id)
		}
	}
	return ids
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
	if change == fact.GroupParticipantsLeft && removed(engineData{Type: w.Type, Author: w.Author}, participantForms(w.RecipientIDs)) {
		change = fact.GroupParticipantsRemoved
	}
	return fact.Facts{Groups: []fact.GroupChange{{Chat: gid, Change: change, Participants: ids, Actor: actor}}}, nil
}

// messageSeen: a message shows its chat; status updates are no chat.
func messageSeen(p json.RawMessage, _ envMeta) (fact.Facts, error) {
	var w struct {
		msgRef
		ChatID json.RawMessage `json:"chatId"`
		Data   json.RawMessage `json:"_data"`
	}
	if err := unmarshal(p, &w); err != nil {
		return fact.Facts{}, err
	}
	aliases := messageAliases(w.Data)
	fromMe, known := boolean(w.FromMe)
	c := provider.String(w.ChatID)
	if c == "" {
		c = w.chat()
	}
	if c == "" {
		return fact.Facts{}, provider.Invalid("message has no chat")
	}
	if c == "status@broadcast" {
		// A story's poster is still one contact in both forms.
		return fact.Facts{Aliases: aliases}, nil
	}
	seen := fact.ChatSeen{Chat: c}
	if known {
		seen.Direction = fact.Incoming
		if fromMe {
			seen.Direction = fact.Outgoing
		}
	}
	return fact.Facts{ChatsSeen: []fact.ChatSeen{seen}, Aliases: aliases}, nil
}

// messageAliases returns the LID↔phone pairs of a message's engine data:
// GOWS's whatsmeow event {Info: MessageInfo}, whose MessageSource gives
// the sender's other form (SenderAlt) and, in a one-to-one chat of ours,
// the chat's (RecipientAlt); NOWEB's Baileys message {key}, whose
// WAMessageKey gives remoteJid's (remoteJidAlt, senderPn, senderLid) and a
// group sender's (participantAlt, participantPn). Other engines give none.
func messageAliases(data json.RawMessage) []fact.Alias {
	if len(data) == 0 || data[0] != '{' {
		return nil
	}
	var d struct {
		Info *struct {
			Chat         json.RawMessage `json:"Chat"`
			Sender       json.RawMessage `json:"Sender"`
			SenderAlt    json.RawMessage `json:"SenderAlt"`
			RecipientAlt json.RawMessage `json:"RecipientAlt"`
			IsFromMe     json.RawMessage `json:"IsFromMe"`
			IsGroup      json.RawMessage `json:"IsGroup"`
		} `json:"Info"`
		Key *struct {
			RemoteJID      json.RawMessage `json:"remoteJid"`
			RemoteJIDAlt   json.RawMessage `json:"remoteJidAlt"`
			SenderPN       json.RawMessage `json:"senderPn"`
			SenderLID      json.RawMessage `json:"senderLid"`
			Participant    json.RawMessage `json:"participant"`
			ParticipantAlt json.RawMessage `json:"participantAlt"`
			ParticipantPN  json.RawMessage `json:"participantPn"`
		} `json:"key"`
	}
	if json.Unmarshal(data, &d) != nil {
		return nil
	}
	var pairs [][2]string
	if i := d.Info; i != nil {
		pairs = append(pairs, [2]string{provider.String(i.Sender), provider.String(i.SenderAlt)})
		fromMe, _ := boolean(i.IsFromMe)
		group, _ := boolean(i.IsGroup)
		if fromMe && !group {
			pairs = append(pairs, [2]string{provider.String(i.Chat), provider.String(i.RecipientAlt)})
		}
	}
	if k := d.Key; k != nil {
		remote, part := provider.String(k.RemoteJID), provider.String(k.Participant)
		pairs = append(pairs,
			[2]string{remote, provider.String(k.RemoteJIDAlt)},
			[2]string{remote, provider.String(k.SenderPN)},
			[2]string{remote, provider.String(k.SenderLID)},
			[2]string{part, provider.String(k.ParticipantAlt)},
			[2]string{part, provider.String(k.ParticipantPN)})
	}
	return provider.Aliases(pairs...)
}
