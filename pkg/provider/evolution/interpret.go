package evolution

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/wahook/wahook/pkg/chatid"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/provider"
)

// Feeds says which kinds each derived stream reads: the kinds Interpret
// has a case for, by the facts that case can give. Keep the two together.
func (*Provider) Feeds() provider.Feeds {
	return provider.Feeds{
		derive.LabelChanged:      {KindLabelsEdit, KindLabelsAssociation},
		derive.ChatCreated:       {KindMessagesUpsert, KindSendMessage, KindChatsUpsert, KindGroupsUpsert},
		derive.Call:              {KindCall},
		derive.GroupNotification: {KindGroupsUpsert, KindGroupsUpdate, KindGroupParticipantsUpdate},
	}
}

// Interpret reads one Evolution event as facts: labels and their chats,
// calls, groups created, joined and changed, chats created, and the chat
// of every message.
func (*Provider) Interpret(kind string, data []byte) (fact.Facts, error) {
	var read func(env *fullEnvelope) (fact.Facts, error)
	switch kind {
	case KindLabelsEdit:
		read = labelsEdit
	case KindLabelsAssociation:
		read = labelsAssociation
	case KindCall:
		read = calls
	case KindGroupsUpsert:
		read = groupsUpsert
	case KindGroupsUpdate:
		read = groupsUpdate
	case KindGroupParticipantsUpdate:
		read = groupParticipants
	case KindChatsUpsert:
		read = chatsUpsert
	case KindMessagesUpsert, KindSendMessage:
		read = messageSeen
	default:
		return fact.Facts{}, nil
	}
	var env fullEnvelope
	if err := decodeObject(data, &env); err != nil {
		return fact.Facts{}, fmt.Errorf("%s: %w", kind, err)
	}
	env.Data = bytes.TrimSpace(env.Data)
	if len(env.Data) == 0 || env.Data[0] != '{' && env.Data[0] != '[' {
		return fact.Facts{}, provider.Invalid("%s: data is not an object or array", kind)
	}
	f, err := read(&env)
	if err != nil {
		return fact.Facts{}, fmt.Errorf("%s: %w", kind, err)
	}
	return f, nil
}

// fullEnvelope is what Interpret reads of an event: data, and the
// instance's own JID (sender) which tells a group you created from one you
// were added to.
type fullEnvelope struct {
	Data   json.RawMessage `json:"data"`
	Sender json.RawMessage `json:"sender"`
}

// objects returns data's objects: data itself, or an array's elements.
func objects(data json.RawMessage) ([]json.RawMessage, error) {
	if data[0] == '{' {
		return []json.RawMessage{data}, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, provider.Invalid("%v", err)
	}
	out := list[:0]
	for _, e := range list {
		if e = bytes.TrimSpace(e); len(e) > 0 && e[0] == '{' {
			out = append(out, e)
		}
	}
	return out, nil
}

// unmarshal decodes an object, reporting a mismatch as ErrInvalid.
func unmarshal(raw json.RawMessage, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return provider.Invalid("%v", err)
	}
	return nil
}

// palette is WhatsApp's label colours by index (0-19), named as Whapi names
// them (its LabelColor enum, in the same order) with the hex WhatsApp Web
// and WAHA give them.
var palette = [20]struct{ name, hex string }{
	{"salmon", "#ff9485"}, {"lightskyblue", "#64c4ff"}, {"gold", "#ffd429"}, {"plum", "#dfaef0"},
	{"silver", "#99b6c1"}, {"mediumturquoise", "#55ccb3"}, {"violet", "#ff9dff"}, {"goldenrod", "#d3a91d"},
	{"cornflowerblue", "#6d7cce"}, {"greenyellow", "#d7e752"}, {"cyan", "#00d0e2"}, {"lightpink", "#ffc5c7"},
	{"mediumaquamarine", "#93ceac"}, {"orangered", "#f74848"}, {"deepskyblue", "#00a0f2"}, {"limegreen", "#83e422"},
	{"darkorange", "#ffaf04"}, {"lightsteelblue", "#b5ebff"}, {"mediumpurple", "#9ba6ff"}, {"rebeccapurple", "#9368cf"},
}

// color returns a colour index's name and hex; an index outside the
// palette is kept as written, with no hex.
func color(raw json.RawMessage) (name, hex string) {
	s := provider.Text(raw)
	if i, err := strconv.Atoi(s); err == nil && i >= 0 && i < len(palette) {
		return palette[i].name, palette[i].hex
	}
	return s, ""
}

// labelsEdit reads Baileys' Label {id, name, color, deleted, predefinedId}.
func labelsEdit(env *fullEnvelope) (fact.Facts, error) {
	var l struct {
		ID      json.RawMessage `json:"id"`
		Name    json.RawMessage `json:"name"`
		Color   json.RawMessage `json:"color"`
		Deleted json.RawMessage `json:"deleted"`
	}
	if env.Data[0] != '{' {
		return fact.Facts{}, provider.Invalid("label is not an object")
	}
	if err := unmarshal(env.Data, &l); err != nil {
		return fact.Facts{}, err
	}
	id := provider.Text(l.ID)
	if id == "" {
		return fact.Facts{}, provider.Invalid("label has no id")
	}
	name := provider.String(l.Name)
	if deleted, _ := boolean(l.Deleted); deleted {
		return fact.Facts{LabelDeletes: []fact.LabelRef{{ID: id, Name: name}}}, nil
	}
	c, hex := color(l.Color)
	return fact.Facts{LabelUpserts: []fact.Label{{ID: id, Name: name, Color: c, ColorHex: hex}}}, nil
}

// labelsAssociation reads {instance, type: add/remove, chatId, labelId}.
func labelsAssociation(env *fullEnvelope) (fact.Facts, error) {
	var a struct {
		Type    json.RawMessage `json:"type"`
		ChatID  json.RawMessage `json:"chatId"`
		LabelID json.RawMessage `json:"labelId"`
	}
	if env.Data[0] != '{' {
		return fact.Facts{}, provider.Invalid("association is not an object")
	}
	if err := unmarshal(env.Data, &a); err != nil {
		return fact.Facts{}, err
	}
	var assigned bool
	switch provider.String(a.Type) {
	case "add":
		assigned = true
	case "remove":
	default:
		return fact.Facts{}, provider.Invalid("association type is neither add nor remove")
	}
	as := fact.LabelAssoc{Chat: provider.String(a.ChatID), Label: fact.Label{ID: provider.Text(a.LabelID)}, Assigned: assigned}
	if as.Chat == "" || as.Label.ID == "" {
		return fact.Facts{}, provider.Invalid("chatId or labelId missing")
	}
	return fact.Facts{LabelAssocs: []fact.LabelAssoc{as}}, nil
}

// callStates maps Baileys' WACallUpdateType.
var callStates = map[string]string{
	"offer":     fact.CallOffered,
	"ringing":   fact.CallOffered,
	"accept":    fact.CallAccepted,
	"reject":    fact.CallRejected,
	"timeout":   fact.CallMissed,
	"terminate": fact.CallEnded,
}

// calls reads Baileys' WACallEvent {chatId, from, callerPn?, isGroup,
// groupJid?, id, date, isVideo, status, offline, latencyMs}; Evolution
// sends the first of a batch, an array is read whole.
func calls(env *fullEnvelope) (fact.Facts, error) {
	list, err := objects(env.Data)
	if err != nil {
		return fact.Facts{}, err
	}
	var f fact.Facts
	for _, raw := range list {
		var c struct {
			ID       json.RawMessage `json:"id"`
			ChatID   json.RawMessage `json:"chatId"`
			From     json.RawMessage `json:"from"`
			CallerPN json.RawMessage `json:"callerPn"`
			IsGroup  json.RawMessage `json:"isGroup"`
			GroupJID json.RawMessage `json:"groupJid"`
			IsVideo  json.RawMessage `json:"isVideo"`
			Status   json.RawMessage `json:"status"`
		}
		if err := unmarshal(raw, &c); err != nil {
			return fact.Facts{}, err
		}
		status := provider.String(c.Status)
		state, ok := callStates[status]
		if !ok {
			continue // a state Baileys adds later: the raw event keeps it
		}
		call := fact.Call{CallID: provider.Text(c.ID), From: provider.String(c.CallerPN), State: state, Status: status}
		if call.CallID == "" {
			return fact.Facts{}, provider.Invalid("call has no id")
		}
		if call.From == "" {
			call.From = provider.String(c.From)
		}
		call.Video, _ = boolean(c.IsVideo)
		call.Group, _ = boolean(c.IsGroup)
		call.Chat = provider.String(c.ChatID)
		if g := provider.String(c.GroupJID); call.Group && g != "" {
			call.Chat = g
		}
		if call.Chat == "" {
			call.Chat = call.From
		}
		f.Aliases = append(f.Aliases, provider.Aliases([2]string{provider.String(c.From), provider.String(c.CallerPN)})...)
		if pn := provider.String(c.CallerPN); !call.Group && pn != "" && !isLIDID(pn) &&
			isLIDID(call.Chat) && chatid.ID(call.Chat) == chatid.ID(provider.String(c.From)) {
			call.ChatPhone = pn
		}
		f.Calls = append(f.Calls, call)
	}
	return f, nil
}

// group is Baileys' GroupMetadata, whole (groups.upsert) or in part
// (groups.update).
type group struct {
	ID               json.RawMessage `json:"id"`
	Subject          json.RawMessage `json:"subject"`
	Desc             json.RawMessage `json:"desc"`
	Owner            json.RawMessage `json:"owner"`
	Author           json.RawMessage `json:"author"`
	Announce         json.RawMessage `json:"announce"`
	Restrict         json.RawMessage `json:"restrict"`
	MemberAddMode    json.RawMessage `json:"memberAddMode"`
	JoinApprovalMode json.RawMessage `json:"joinApprovalMode"`
}

func readGroups(data json.RawMessage) ([]group, error) {
	list, err := objects(data)
	if err != nil {
		return nil, err
	}
	out := make([]group, 0, len(list))
	for _, raw := range list {
		var g group
		if err := unmarshal(raw, &g); err != nil {
			return nil, err
		}
		if provider.String(g.ID) == "" {
			return nil, provider.Invalid("group has no id")
		}
		out = append(out, g)
	}
	return out, nil
}

// groupsUpsert: groups you created or were added to, each a new chat. The
// owner being the instance's own JID (sender) tells a creation.
func groupsUpsert(env *fullEnvelope) (fact.Facts, error) {
	groups, err := readGroups(env.Data)
	if err != nil {
		return fact.Facts{}, err
	}
	me := chatid.ID(provider.String(env.Sender))
	var f fact.Facts
	for _, g := range groups {
		gid, subject, owner := provider.String(g.ID), provider.String(g.Subject), provider.String(g.Owner)
		change := fact.GroupJoined
		if owner != "" && me != "" && chatid.ID(owner) == me {
			change = fact.GroupCreated
		}
		f.ChatsCreated = append(f.ChatsCreated, fact.ChatCreated{Chat: gid, Name: subject})
		f.Groups = append(f.Groups, fact.GroupChange{Chat: gid, Change: change, Subject: subject, Actor: owner})
	}
	return f, nil
}

// groupsUpdate emits one change per field present: Baileys sends only the
// changed ones, with the author of the change.
func groupsUpdate(env *fullEnvelope) (fact.Facts, error) {
	groups, err := readGroups(env.Data)
	if err != nil {
		return fact.Facts{}, err
	}
	var f fact.Facts
	for _, g := range groups {
		gid, actor := provider.String(g.ID), provider.String(g.Author)
		add := func(c fact.GroupChange) {
			c.Chat, c.Actor = gid, actor
			f.Groups = append(f.Groups, c)
		}
		if !isNull(g.Subject) {
			add(fact.GroupChange{Change: fact.GroupSubjectChanged, Subject: provider.String(g.Subject)})
		}
		if !isNull(g.Desc) {
			add(fact.GroupChange{Change: fact.GroupDescriptionChanged, Description: provider.String(g.Desc)})
		}
		for _, s := range [...]struct {
			name string
			raw  json.RawMessage
		}{
			{"announce", g.Announce},
			{"restrict", g.Restrict},
			{"memberAddMode", g.MemberAddMode},
			{"joinApprovalMode", g.JoinApprovalMode},
		} {
			if v := scalar(s.raw); v != "" {
				add(fact.GroupChange{Change: fact.GroupSettingsChanged, Setting: &fact.Setting{Name: s.name, Value: v}})
			}
		}
	}
	return f, nil
}

// participantChanges maps Baileys' ParticipantAction.
var participantChanges = map[string]string{
	"add":     fact.GroupParticipantsAdded,
	"remove":  fact.GroupParticipantsRemoved,
	"promote": fact.GroupParticipantsPromote,
	"demote":  fact.GroupParticipantsDemote,
}

// groupParticipants reads {id, author?, participants, action,
// participantsData?}. Participants are JIDs, or objects {id, phoneNumber}
// in newer Baileys; the phone-number form is preferred. A removal whose
// author is the participant is a leave.
func groupParticipants(env *fullEnvelope) (fact.Facts, error) {
	var w struct {
		ID           json.RawMessage   `json:"id"`
		Author       json.RawMessage   `json:"author"`
		Action       json.RawMessage   `json:"action"`
		Participants []json.RawMessage `json:"participants"`
		// ParticipantsData: Evolution's {jid, phoneNumber} per member, beside
		// participants as JIDs.
		ParticipantsData json.RawMessage `json:"participantsData"`
	}
	if env.Data[0] != '{' {
		return fact.Facts{}, provider.Invalid("data is not an object")
	}
	if err := unmarshal(env.Data, &w); err != nil {
		return fact.Facts{}, err
	}
	gid := provider.String(w.ID)
	if gid == "" {
		return fact.Facts{}, provider.Invalid("no group id")
	}
	change, ok := participantChanges[provider.String(w.Action)]
	if !ok {
		return fact.Facts{}, nil // "modify" (a number change) and later actions
	}
	actor := provider.String(w.Author)
	var ids, all []string
	var pairs [][2]string
	for _, raw := range w.Participants {
		pref, other := participant(raw)
		if pref == "" {
			continue
		}
		ids = append(ids, pref)
		all = append(all, pref, other)
		pairs = append(pairs, [2]string{pref, other})
	}
	var data []json.RawMessage
	_ = json.Unmarshal(w.ParticipantsData, &data) // only aliases: another shape tells none
	for _, raw := range data {
		pref, other := participant(raw)
		pairs = append(pairs, [2]string{pref, other})
	}
	if change == fact.GroupParticipantsRemoved && actor != "" {
		a := chatid.ID(actor)
		for _, id := range all {
			if id != "" && chatid.ID(id) == a {
				change = fact.GroupParticipantsLeft
				break
			}
		}
	}
	return fact.Facts{Groups: []fact.GroupChange{{Chat: gid, Change: change, Participants: ids, Actor: actor}},
		Aliases: provider.Aliases(pairs...)}, nil
}

// participant returns a member's preferred id (phone-number form when
// given) and its other id.
func participant(raw json.RawMessage) (pref, other string) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return provider.String(raw), ""
	}
	var p struct {
		ID          json.RawMessage `json:"id"`
		JID         json.RawMessage `json:"jid"`
		PhoneNumber json.RawMessage `json:"phoneNumber"`
	}
	if json.Unmarshal(raw, &p) != nil {
		return "", ""
	}
	id := provider.String(p.ID)
	if id == "" {
		id = provider.String(p.JID)
	}
	if pn := provider.String(p.PhoneNumber); pn != "" {
		return pn, id
	}
	return id, ""
}

// chatsUpsert reads [{remoteJid, instanceId, name, unreadMessages}]:
// Evolution sends known chats this way too, so each is a creation only the
// first time the chat is seen.
func chatsUpsert(env *fullEnvelope) (fact.Facts, error) {
	list, err := objects(env.Data)
	if err != nil {
		return fact.Facts{}, err
	}
	var f fact.Facts
	for _, raw := range list {
		var c struct {
			RemoteJID json.RawMessage `json:"remoteJid"`
			ID        json.RawMessage `json:"id"`
			Name      json.RawMessage `json:"name"`
		}
		if err := unmarshal(raw, &c); err != nil {
			return fact.Facts{}, err
		}
		jid := provider.String(c.RemoteJID)
		if jid == "" {
			jid = provider.String(c.ID)
		}
		if jid == "" {
			continue
		}
		f.ChatsCreated = append(f.ChatsCreated, fact.ChatCreated{Chat: jid, Name: provider.String(c.Name), Repeated: true})
	}
	return f, nil
}

// messageSeen: a message shows its chat (key.remoteJid, by phone number
// when it is an @lid with one beside it); the sender's
// pushName names a chat with someone who wrote first.
func messageSeen(env *fullEnvelope) (fact.Facts, error) {
	var m struct {
		Key      *msgKey         `json:"key"`
		PushName json.RawMessage `json:"pushName"`
	}
	if env.Data[0] != '{' {
		return fact.Facts{}, provider.Invalid("message is not an object")
	}
	if err := unmarshal(env.Data, &m); err != nil {
		return fact.Facts{}, err
	}
	if m.Key == nil || provider.String(m.Key.RemoteJID) == "" {
		return fact.Facts{}, provider.Invalid("message has no key.remoteJid")
	}
	c := m.Key.chat()
	if c == "status@broadcast" {
		// A story's poster is still one contact in both forms.
		return fact.Facts{Aliases: m.Key.aliases()}, nil
	}
	seen := fact.ChatSeen{Chat: c, LID: m.Key.lid()}
	if fromMe, known := boolean(m.Key.FromMe); known {
		seen.Direction = fact.Incoming
		if fromMe {
			seen.Direction = fact.Outgoing
		} else if _, typ := chatid.Canonical(c); typ != chatid.Group {
			seen.Name = provider.String(m.PushName)
		}
	}
	return fact.Facts{ChatsSeen: []fact.ChatSeen{seen}, Aliases: m.Key.aliases()}, nil
}

// isNull reports a missing or null value.
func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

// scalar returns a string's value or a number's or boolean's literal, else "".
func scalar(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if s := string(raw); s == "true" || s == "false" {
		return s
	}
	return provider.Text(raw)
}

// isLIDID reports a hidden (…@lid) id.
func isLIDID(id string) bool {
	_, typ := chatid.Canonical(id)
	return typ == chatid.LID
}
