package zapi

import (
	"slices"
	"strings"

	"github.com/wahook/wahook/pkg/chatid"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/jsonscan"
)

// Feeds says which kinds each derived stream reads, by the facts Interpret
// gives them: notifications tell labels, calls and group changes; every
// ReceivedCallback (a notification too) and a delivery report show a chat.
// Keep the two together.
func (*Provider) Feeds() provider.Feeds {
	return provider.Feeds{
		derive.LabelChanged:      {KindNotification},
		derive.ChatCreated:       {ReceivedPrefix + ">", KindDelivery},
		derive.Call:              {KindNotification},
		derive.GroupNotification: {KindNotification},
	}
}

// Interpret reads one item as facts: calls, group changes and label
// associations from notifications, a chat seen from every message and from
// call and group notifications, and an outgoing chat seen from a successful
// delivery report.
func (*Provider) Interpret(kind string, data []byte) (fact.Facts, error) {
	f, err := decode(data)
	if err != nil {
		return fact.Facts{}, err
	}
	if want := typeOfKind(kind); want != "" {
		if typ := jsonscan.Text(f.typ); !strings.EqualFold(typ, want) {
			return fact.Facts{}, provider.Invalid("%s item has type %q, want %s", kind, typ, want)
		}
	}
	switch {
	case kind == KindNotification:
		return notificationFacts(&f)
	case strings.HasPrefix(kind, ReceivedPrefix):
		return fact.Facts{ChatsSeen: chatSeen(&f), Aliases: aliases(&f)}, nil
	case kind == KindDelivery:
		if set(f.errorField) {
			return fact.Facts{}, nil
		}
		if chat := jsonscan.Text(f.phone); chat != "" && !statusChat(chat) {
			return fact.Facts{ChatsSeen: []fact.ChatSeen{{Chat: chat, Direction: fact.Outgoing}}}, nil
		}
	}
	return fact.Facts{}, nil
}

// chatSeen is the chat a message or notification was seen in, with its name
// and direction; none for status stories ("status@broadcast").
func chatSeen(f *fields) []fact.ChatSeen {
	chat := jsonscan.Text(f.phone)
	if chat == "" || statusChat(chat) {
		return nil
	}
	seen := fact.ChatSeen{Chat: chat, Direction: direction(f.fromMe)}
	if isString(f.chatName) {
		seen.Name = jsonscan.Text(f.chatName)
	}
	return []fact.ChatSeen{seen}
}

// aliases returns the LID↔phone pairs of a ReceivedCallback: a one-to-one
// chat's phone beside its chatLid, a group sender's participantPhone beside
// its participantLid (pairs of other kinds, a group's phone, are left out).
func aliases(f *fields) []fact.Alias {
	if !isString(f.chatLid) && !isString(f.participantLid) {
		return nil
	}
	return provider.Aliases(
		[2]string{jsonscan.Text(f.phone), jsonscan.Text(f.chatLid)},
		[2]string{jsonscan.Text(f.participantPhone), jsonscan.Text(f.participantLid)})
}

// statusChat reports WhatsApp's status (stories) pseudo-chat.
func statusChat(chat string) bool {
	return chat == "status" || strings.HasPrefix(chat, "status@")
}

func direction(fromMe []byte) string {
	v, known := jsonscan.Bool(fromMe)
	switch {
	case !known:
		return ""
	case v:
		return fact.Outgoing
	}
	return fact.Incoming
}

func notificationFacts(f *fields) (fact.Facts, error) {
	n := f.notificationName()
	if n == "" {
		return fact.Facts{}, provider.Invalid("%s item has no notification", KindNotification)
	}
	if n == "CHAT_LABEL_ASSOCIATION" {
		return fact.Facts{LabelAssocs: labelAssocs(f.params)}, nil
	}
	if c, ok := callFact(n, f); ok {
		return fact.Facts{Calls: []fact.Call{c}, ChatsSeen: chatSeen(f), Aliases: aliases(f)}, nil
	}
	if g, ok := groupFact(n, f); ok {
		return fact.Facts{Groups: []fact.GroupChange{g}, ChatsSeen: chatSeen(f), Aliases: aliases(f)}, nil
	}
	// Other notices (encryption banners, business verification, revoked
	// messages, channel roles, payments, profile changes) say nothing a
	// derived stream carries, nor that a conversation took place.
	return fact.Facts{}, nil
}

// labelAssocs reads CHAT_LABEL_ASSOCIATION's [{phone, label, assigned}],
// skipping elements that do not name a chat, a label and an assignment.
func labelAssocs(params []byte) []fact.LabelAssoc {
	var out []fact.LabelAssoc
	for v := range jsonscan.Elements(params) {
		var chat, label string
		var assigned, known bool
		for key, val := range jsonscan.Members(v) {
			switch string(key) {
			case "phone":
				chat = jsonscan.Text(val)
			case "label":
				label = jsonscan.Text(val)
			case "assigned":
				assigned, known = jsonscan.Bool(val)
			}
		}
		if chat != "" && label != "" && known {
			out = append(out, fact.LabelAssoc{Chat: chat, Label: fact.Label{ID: label}, Assigned: assigned})
		}
	}
	return out
}

// callFact reads the CALL_* notifications: CALL_VOICE (a call came in),
// CALL_MISSED_VOICE and CALL_MISSED_VIDEO, and by the same pattern
// CALL_VIDEO and WhatsApp's CALL_MISSED_GROUP_VOICE/VIDEO.
func callFact(n string, f *fields) (fact.Call, bool) {
	if !strings.HasPrefix(n, "CALL_") {
		return fact.Call{}, false
	}
	var state string
	switch {
	case strings.Contains(n, "MISSED"):
		state = fact.CallMissed
	case n == "CALL_VOICE" || n == "CALL_VIDEO":
		state = fact.CallOffered
	default:
		return fact.Call{}, false
	}
	chat := jsonscan.Text(f.phone)
	c := fact.Call{
		CallID: jsonscan.Text(f.callID),
		Chat:   chat,
		Video:  strings.Contains(n, "VIDEO"),
		Group:  isGroup(f, chat) || strings.Contains(n, "GROUP"),
		State:  state,
		Status: n,
	}
	if c.CallID == "" {
		c.CallID = jsonscan.Text(f.messageID)
	}
	fromMe, _ := jsonscan.Bool(f.fromMe)
	switch {
	case c.Group:
		c.From = participantOf(f)
	case fromMe:
		c.From = jsonscan.Text(f.connectedPhone)
	default:
		c.From = chat
	}
	return c, true
}

// withoutActor returns ids without the member the event names as its
// actor (by any of its ids).
func withoutActor(ids []string, f *fields) []string {
	var actor []string
	for _, raw := range [...][]byte{f.participantPhone, f.participantLid, f.participant} {
		if s := jsonscan.Text(raw); s != "" {
			actor = append(actor, chatid.ID(s))
		}
	}
	out := make([]string, 0, len(ids))
	for _, id := range ids {
		if !slices.Contains(actor, chatid.ID(id)) {
			out = append(out, id)
		}
	}
	return out
}

func isGroup(f *fields, chat string) bool {
	g, _ := jsonscan.Bool(f.isGroup)
	return g || strings.HasSuffix(chat, "-group") || strings.HasSuffix(chat, "@g.us")
}

// groupChange is how a group notification reads.
type groupChange struct {
	change string
	// params says what notificationParameters hold: participants, the new
	// subject or description, or a setting's value.
	params  paramsRole
	setting string
	// requestMethod is implied by the notification when the payload has none.
	requestMethod string
}

type paramsRole int

const (
	participants paramsRole = iota
	subject
	description
	settingValue
	linkMode // the payload's linkMode, else the first parameter
	nothing
)

// groupChanges maps the group notifications. Besides Z-API's documented
// names these are WhatsApp's message stub types, which Z-API passes through
// (its notification list describes subject, description, icon, promote,
// demote and invite-link joins without printing their names).
var groupChanges = map[string]groupChange{
	"GROUP_CREATE":                                         {change: fact.GroupCreated, params: subject},
	"GROUP_PARTICIPANT_ADD":                                {change: fact.GroupParticipantsAdded},
	"GROUP_PARTICIPANT_INVITE":                             {change: fact.GroupParticipantsAdded, requestMethod: "invite_link"},
	"GROUP_PARTICIPANT_ACCEPT":                             {change: fact.GroupParticipantsAdded},
	"GROUP_PARTICIPANT_ADD_REQUEST_JOIN":                   {change: fact.GroupParticipantsAdded},
	"GROUP_PARTICIPANT_LINKED_GROUP_JOIN":                  {change: fact.GroupParticipantsAdded},
	"GROUP_PARTICIPANT_REMOVE":                             {change: fact.GroupParticipantsRemoved},
	"GROUP_PARTICIPANT_LEAVE":                              {change: fact.GroupParticipantsLeft},
	"GROUP_PARTICIPANT_PROMOTE":                            {change: fact.GroupParticipantsPromote},
	"GROUP_PARTICIPANT_DEMOTE":                             {change: fact.GroupParticipantsDemote},
	"GROUP_CHANGE_SUBJECT":                                 {change: fact.GroupSubjectChanged, params: subject},
	"GROUP_CHANGE_DESCRIPTION":                             {change: fact.GroupDescriptionChanged, params: description},
	"GROUP_CHANGE_ICON":                                    {change: fact.GroupIconChanged, params: nothing},
	"MEMBERSHIP_APPROVAL_REQUEST":                          {change: fact.GroupJoinRequested},
	"GROUP_MEMBERSHIP_JOIN_APPROVAL_REQUEST":               {change: fact.GroupJoinRequested},
	"GROUP_MEMBERSHIP_JOIN_APPROVAL_REQUEST_NON_ADMIN_ADD": {change: fact.GroupJoinRequested, requestMethod: "non_admin_add"},
	"REVOKED_MEMBERSHIP_REQUESTS":                          {change: fact.GroupJoinRevoked},
	"GROUP_MEMBER_LINK_PROPERTY_UPDATE":                    {change: fact.GroupSettingsChanged, params: linkMode, setting: "member_link_mode"},
	"GROUP_CHANGE_ANNOUNCE":                                {change: fact.GroupSettingsChanged, params: settingValue, setting: "announcements"},
	"GROUP_CHANGE_RESTRICT":                                {change: fact.GroupSettingsChanged, params: settingValue, setting: "restricted"},
	"GROUP_CHANGE_INVITE_LINK":                             {change: fact.GroupSettingsChanged, params: settingValue, setting: "invite_link"},
	"GROUP_MEMBER_ADD_MODE":                                {change: fact.GroupSettingsChanged, params: settingValue, setting: "member_add_mode"},
	"GROUP_MEMBERSHIP_JOIN_APPROVAL_MODE":                  {change: fact.GroupSettingsChanged, params: settingValue, setting: "membership_approval_mode"},
}

// groupFact reads a group notification; other GROUP_CHANGE_* names are
// settings changes named after the notification (GROUP_CHANGE_X → "x").
func groupFact(n string, f *fields) (fact.GroupChange, bool) {
	gc, ok := groupChanges[n]
	if !ok {
		rest, found := strings.CutPrefix(n, "GROUP_CHANGE_")
		if !found || rest == "" {
			return fact.GroupChange{}, false
		}
		gc = groupChange{change: fact.GroupSettingsChanged, params: settingValue, setting: strings.ToLower(rest)}
	}
	chat := jsonscan.Text(f.phone)
	if chat == "" {
		return fact.GroupChange{}, false
	}
	g := fact.GroupChange{
		Chat:          chat,
		Change:        gc.change,
		Actor:         participantOf(f),
		RequestMethod: jsonscan.Text(f.requestMethod),
	}
	if g.RequestMethod == "" {
		g.RequestMethod = gc.requestMethod
	}
	params := appendTexts(nil, f.params)
	first := ""
	if len(params) > 0 {
		first = params[0]
	}
	switch gc.params {
	case participants:
		g.Participants = params
		if g.Change == fact.GroupJoinRequested && g.RequestMethod == "non_admin_add" {
			// A member adding others asks the admins' approval: the
			// first parameter is that member (participantPhone), the
			// actor, not someone asking to join.
			g.Participants = withoutActor(params, f)
		}
	case subject:
		g.Subject = first
	case description:
		g.Description = first
	case settingValue:
		g.Setting = &fact.Setting{Name: gc.setting, Value: first}
	case linkMode:
		v := jsonscan.Text(f.linkMode)
		if v == "" {
			v = first
		}
		g.Setting = &fact.Setting{Name: gc.setting, Value: v}
	}
	// A new group's name is its chat name when the parameters omit it.
	if gc.change == fact.GroupCreated && g.Subject == "" && isString(f.chatName) {
		g.Subject = jsonscan.Text(f.chatName)
	}
	return g, true
}
