package meta

import (
	"encoding/json"
	"strings"

	"github.com/wahook/wahook/pkg/chatid"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/provider"
)

// Feeds implements provider.Feeder. Meta has no label events.
func (*Provider) Feeds() provider.Feeds {
	return provider.Feeds{
		derive.ChatCreated: {KindMessages, KindStatuses, KindCalls, KindGroupLifecycleUpdate},
		derive.Call:        {KindCalls, KindCallStatuses},
		derive.GroupNotification: {KindGroupLifecycleUpdate, KindGroupParticipantsUpdate,
			KindGroupSettingsUpdate, KindGroupStatusUpdate},
	}
}

// item is what Interpret reads of an item's Data: the one element, with the
// value's contacts.
type item struct {
	Entry []struct {
		Changes []struct {
			Field json.RawMessage `json:"field"`
			Value struct {
				Contacts []contact         `json:"contacts"`
				Messages []json.RawMessage `json:"messages"`
				Statuses []json.RawMessage `json:"statuses"`
				Calls    []json.RawMessage `json:"calls"`
				Groups   []json.RawMessage `json:"groups"`
			} `json:"value"`
		} `json:"changes"`
	} `json:"entry"`
}

type contact struct {
	WaID    json.RawMessage `json:"wa_id"`
	Profile struct {
		Name json.RawMessage `json:"name"`
	} `json:"profile"`
}

// Interpret reads the element of one item: a message or an outgoing
// message's status shows its chat; calls and their statuses are call
// states; Groups API events are group changes.
func (*Provider) Interpret(kind string, data []byte) (fact.Facts, error) {
	var arr string
	switch kind {
	case KindMessages:
		arr = arrMessages
	case KindStatuses, KindCallStatuses:
		arr = arrStatuses
	case KindCalls:
		arr = arrCalls
	case KindGroupLifecycleUpdate, KindGroupParticipantsUpdate, KindGroupSettingsUpdate, KindGroupStatusUpdate:
		arr = arrGroups
	default:
		return fact.Facts{}, nil
	}
	var it item
	if err := json.Unmarshal(data, &it); err != nil {
		return fact.Facts{}, provider.Invalid("meta %s: %v", kind, err)
	}
	if len(it.Entry) != 1 || len(it.Entry[0].Changes) != 1 {
		return fact.Facts{}, provider.Invalid("meta %s: not one entry of one change", kind)
	}
	v := &it.Entry[0].Changes[0].Value
	var els []json.RawMessage
	switch arr {
	case arrMessages:
		els = v.Messages
	case arrStatuses:
		els = v.Statuses
	case arrCalls:
		els = v.Calls
	case arrGroups:
		els = v.Groups
	}
	if len(els) != 1 {
		return fact.Facts{}, provider.Invalid("meta %s: not one element in %s", kind, arr)
	}
	el := els[0]
	switch kind {
	case KindMessages:
		return message(el, v.Contacts)
	case KindStatuses:
		return status(el)
	case KindCalls:
		return call(el, v.Contacts)
	case KindCallStatuses:
		return callStatus(el)
	}
	return group(kind, el)
}

// decodeElement decodes an element object into v.
func decodeElement(kind string, el json.RawMessage, v any) error {
	if err := json.Unmarshal(el, v); err != nil {
		return provider.Invalid("meta %s: element: %v", kind, err)
	}
	return nil
}

// name is the profile name of user among contacts.
func name(contacts []contact, user string) string {
	for _, c := range contacts {
		if provider.Text(c.WaID) == user {
			return provider.String(c.Profile.Name)
		}
	}
	return ""
}

// message: an incoming message shows its chat, named by the sender's
// profile when the chat is theirs (not a group's).
func message(el json.RawMessage, contacts []contact) (fact.Facts, error) {
	var m struct {
		From    json.RawMessage `json:"from"`
		GroupID json.RawMessage `json:"group_id"`
	}
	if err := decodeElement(KindMessages, el, &m); err != nil {
		return fact.Facts{}, err
	}
	from := provider.Text(m.From)
	seen := fact.ChatSeen{Chat: provider.Text(m.GroupID), Direction: fact.Incoming}
	if seen.Chat == "" {
		seen.Chat, seen.Name = from, name(contacts, from)
	}
	if seen.Chat == "" {
		return fact.Facts{}, provider.Invalid("meta messages: message without from")
	}
	return fact.Facts{ChatsSeen: []fact.ChatSeen{seen}}, nil
}

// status: a message the business sent shows its chat (the first one sent
// to a user opens it), unless it failed: then no chat came of it.
func status(el json.RawMessage) (fact.Facts, error) {
	var s struct {
		RecipientID json.RawMessage `json:"recipient_id"`
		GroupID     json.RawMessage `json:"group_id"`
		Status      json.RawMessage `json:"status"`
	}
	if err := decodeElement(KindStatuses, el, &s); err != nil {
		return fact.Facts{}, err
	}
	if strings.EqualFold(provider.String(s.Status), "failed") {
		return fact.Facts{}, nil
	}
	c := provider.Text(s.GroupID)
	if c == "" {
		c = provider.Text(s.RecipientID)
	}
	if c == "" {
		return fact.Facts{}, nil
	}
	return fact.Facts{ChatsSeen: []fact.ChatSeen{{Chat: c, Direction: fact.Outgoing}}}, nil
}

// callElement is a Calling API call webhook's element.
type callElement struct {
	ID        json.RawMessage `json:"id"`
	From      json.RawMessage `json:"from"`
	To        json.RawMessage `json:"to"`
	Event     json.RawMessage `json:"event"`
	Direction json.RawMessage `json:"direction"`
	Status    json.RawMessage `json:"status"`
	StartTime json.RawMessage `json:"start_time"`
}

// call: connect offers a call; terminate ends it, or misses it when it was
// never picked up. Meta sends start_time, end_time and duration "only
// present when the call was picked up by the other party", so their absence
// is the miss. Status (COMPLETED or FAILED) does not tell: a call picked up
// and then dropped for lack of media ends FAILED with a start_time and a
// duration (testdata/SOURCES.md). A call the user placed also shows its chat.
func call(el json.RawMessage, contacts []contact) (fact.Facts, error) {
	var c callElement
	if err := decodeElement(KindCalls, el, &c); err != nil {
		return fact.Facts{}, err
	}
	id := provider.Text(c.ID)
	if id == "" {
		return fact.Facts{}, provider.Invalid("meta calls: call without id")
	}
	byBusiness := strings.EqualFold(provider.String(c.Direction), "BUSINESS_INITIATED")
	user := provider.Text(c.From)
	if byBusiness {
		user = provider.Text(c.To)
	}
	event := strings.ToLower(provider.String(c.Event))
	fc := fact.Call{CallID: id, Chat: user, From: provider.Text(c.From), Status: event}
	var f fact.Facts
	switch event {
	case "connect":
		fc.State = fact.CallOffered
		if !byBusiness && user != "" {
			f.ChatsSeen = []fact.ChatSeen{{Chat: user, Name: name(contacts, user), Direction: fact.Incoming}}
		}
	case "terminate":
		status := provider.String(c.Status)
		if status != "" {
			fc.Status = status
		}
		fc.State = fact.CallEnded
		if provider.Text(c.StartTime) == "" {
			fc.State = fact.CallMissed
		}
	default:
		return fact.Facts{}, nil
	}
	f.Calls = []fact.Call{fc}
	return f, nil
}

// callStatus: the statuses of a call the business placed.
func callStatus(el json.RawMessage) (fact.Facts, error) {
	var s struct {
		ID          json.RawMessage `json:"id"`
		Type        json.RawMessage `json:"type"`
		Status      json.RawMessage `json:"status"`
		RecipientID json.RawMessage `json:"recipient_id"`
	}
	if err := decodeElement(KindCallStatuses, el, &s); err != nil {
		return fact.Facts{}, err
	}
	status := provider.String(s.Status)
	var state string
	switch strings.ToUpper(status) {
	case "RINGING":
		state = fact.CallOffered
	case "ACCEPTED":
		state = fact.CallAccepted
	case "REJECTED":
		state = fact.CallRejected
	default:
		return fact.Facts{}, nil
	}
	id := provider.Text(s.ID)
	if id == "" {
		return fact.Facts{}, provider.Invalid("meta calls.statuses: status without id")
	}
	return fact.Facts{Calls: []fact.Call{{CallID: id, Chat: provider.Text(s.RecipientID), State: state, Status: status}}}, nil
}

// groupElement is a Groups API webhook's element.
type groupElement struct {
	GroupID             json.RawMessage `json:"group_id"`
	Type                json.RawMessage `json:"type"`
	Subject             json.RawMessage `json:"subject"`
	Description         json.RawMessage `json:"description"`
	Reason              json.RawMessage `json:"reason"`
	InitiatedBy         json.RawMessage `json:"initiated_by"`
	WaID                json.RawMessage `json:"wa_id"`
	Errors              json.RawMessage `json:"errors"`
	AddedParticipants   []participant   `json:"added_participants"`
	RemovedParticipants []participant   `json:"removed_participants"`
	GroupSubject        *update         `json:"group_subject"`
	GroupDescription    *update         `json:"group_description"`
	ProfilePicture      *update         `json:"profile_picture"`
}

type participant struct {
	WaID  json.RawMessage `json:"wa_id"`
	Input json.RawMessage `json:"input"`
}

// update is one part of a settings update, which may fail on its own.
type update struct {
	Text             json.RawMessage `json:"text"`
	UpdateSuccessful json.RawMessage `json:"update_successful"`
}

func (u *update) done() bool {
	return u != nil && string(u.UpdateSuccessful) != "false"
}

func (p participant) id() string {
	if id := provider.Text(p.WaID); id != "" {
		return id
	}
	return provider.Text(p.Input)
}

func ids(ps []participant) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		if id := p.id(); id != "" {
			out = append(out, id)
		}
	}
	return out
}

// failed reports an element whose operation failed as a whole: it
// carries errors and, for participant changes, no participant it did. A
// settings update says per part whether it succeeded.
func (g *groupElement) failed() bool {
	e := strings.TrimSpace(string(g.Errors))
	return e != "" && e != "null" && e != "[]" && len(g.AddedParticipants) == 0 && len(g.RemovedParticipants) == 0
}

// groupTypes are the Groups API's event types by the field that carries them.
var groupTypes = map[string]string{
	"group_create":               KindGroupLifecycleUpdate,
	"group_delete":               KindGroupLifecycleUpdate,
	"group_participants_add":     KindGroupParticipantsUpdate,
	"group_participants_remove":  KindGroupParticipantsUpdate,
	"group_join_request_created": KindGroupParticipantsUpdate,
	"group_join_request_revoked": KindGroupParticipantsUpdate,
	"group_settings_update":      KindGroupSettingsUpdate,
	"group_suspend":              KindGroupStatusUpdate,
	"group_suspend_cleared":      KindGroupStatusUpdate,
}

// group reads a Groups API event. A request that failed as a whole
// changed nothing and tells nothing.
func group(kind string, el json.RawMessage) (fact.Facts, error) {
	var g groupElement
	if err := decodeElement(kind, el, &g); err != nil {
		return fact.Facts{}, err
	}
	gid := provider.Text(g.GroupID)
	if gid == "" || provider.String(g.Type) != "group_settings_update" && g.failed() {
		return fact.Facts{}, nil
	}
	typ := provider.String(g.Type)
	if groupTypes[typ] != kind {
		// Each field carries its own types: feeds stay per field.
		return fact.Facts{}, nil
	}
	change := func(c string) fact.GroupChange { return fact.GroupChange{Chat: gid, Change: c} }
	var f fact.Facts
	switch typ {
	case "group_create":
		gc := change(fact.GroupCreated)
		gc.Subject, gc.Description = provider.String(g.Subject), provider.String(g.Description)
		f.Groups = []fact.GroupChange{gc}
		// The business created it: a new chat, said so.
		f.ChatsCreated = []fact.ChatCreated{{Chat: gid, Name: gc.Subject}}
	case "group_delete":
		f.Groups = []fact.GroupChange{change(fact.GroupDeleted)}
	case "group_participants_add":
		gc := change(fact.GroupParticipantsAdded)
		gc.Participants, gc.RequestMethod = ids(g.AddedParticipants), provider.String(g.Reason)
		if len(gc.Participants) > 0 {
			f.Groups = []fact.GroupChange{gc}
		}
	case "group_participants_remove":
		removed := ids(g.RemovedParticipants)
		if len(removed) == 0 {
			break
		}
		by := provider.Text(g.InitiatedBy)
		gc := change(fact.GroupParticipantsRemoved)
		// A member who leaves is reported as removed by themself.
		if len(removed) == 1 && by == removed[0] {
			gc.Change = fact.GroupParticipantsLeft
		}
		if _, t := chatid.Canonical(by); t == chatid.Contact {
			gc.Actor = by
		}
		gc.Participants = removed
		f.Groups = []fact.GroupChange{gc}
	case "group_join_request_created", "group_join_request_revoked":
		gc := change(fact.GroupJoinRequested)
		if typ == "group_join_request_revoked" {
			gc.Change = fact.GroupJoinRevoked
		}
		if u := provider.Text(g.WaID); u != "" {
			gc.Participants = []string{u}
		}
		f.Groups = []fact.GroupChange{gc}
	case "group_settings_update":
		if g.GroupSubject.done() {
			gc := change(fact.GroupSubjectChanged)
			gc.Subject = provider.String(g.GroupSubject.Text)
			f.Groups = append(f.Groups, gc)
		}
		if g.GroupDescription.done() {
			gc := change(fact.GroupDescriptionChanged)
			gc.Description = provider.String(g.GroupDescription.Text)
			f.Groups = append(f.Groups, gc)
		}
		if g.ProfilePicture.done() {
			f.Groups = append(f.Groups, change(fact.GroupIconChanged))
		}
	case "group_suspend", "group_suspend_cleared":
		gc := change(fact.GroupSettingsChanged)
		gc.Setting = &fact.Setting{Name: "suspended", Value: "true"}
		if typ == "group_suspend_cleared" {
			gc.Setting.Value = "false"
		}
		f.Groups = []fact.GroupChange{gc}
	}
	return f, nil
}
