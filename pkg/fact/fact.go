// Package fact holds the provider-neutral facts a raw event tells: what the
// derived streams are made of. Provider packages turn their own payloads into
// facts; package derive turns facts into derived events. Chat and participant
// ids here are as the provider wrote them; derivation canonicalises them and
// keeps the original as chat_id_raw.
package fact

// Facts is everything one raw item tells that a derived stream cares about.
// Most items tell nothing (empty Facts), some several things (a Whapi
// groups.post is a new chat and a group creation).
type Facts struct {
	// LabelSets are a chat's whole label list before and after a change
	// (Whapi chats.patch); derivation emits the difference.
	LabelSets []LabelSet
	// LabelAssocs are one label put on or taken off one chat.
	LabelAssocs []LabelAssoc
	// LabelUpserts are a label created or edited (providers do not say which).
	LabelUpserts []Label
	// LabelDeletes are labels removed, named by id or by name.
	LabelDeletes []LabelRef
	// ChatsCreated are chats the provider says are new.
	ChatsCreated []ChatCreated
	// ChatsSeen are chats a message or notification was seen in; the first
	// one seen per channel is an inferred chat creation.
	ChatsSeen []ChatSeen
	// Calls are call state changes.
	Calls []Call
	// Groups are group notifications.
	Groups []GroupChange
	// Aliases are the contacts whose hidden id and phone-number id the
	// payload gives side by side. They feed no stream of their own: every
	// stream reading the item learns them before deriving.
	Aliases []Alias
}

// Empty reports whether f tells nothing.
func (f Facts) Empty() bool {
	return len(f.LabelSets) == 0 && len(f.LabelAssocs) == 0 && len(f.LabelUpserts) == 0 &&
		len(f.LabelDeletes) == 0 && len(f.ChatsCreated) == 0 && len(f.ChatsSeen) == 0 &&
		len(f.Calls) == 0 && len(f.Groups) == 0 && len(f.Aliases) == 0
}

// Label is a label as a provider describes it. ID is always a string.
type Label struct {
	ID       string
	Name     string
	Color    string // the provider's colour: a name ("gold"), an index or "#RRGGBB"
	ColorHex string // "#RRGGBB" when the provider gives it
}

// LabelRef names a label by id, by name, or both.
type LabelRef struct {
	ID   string
	Name string
}

// LabelSet is a chat's labels before and after one change.
type LabelSet struct {
	Chat   string
	Before []Label
	After  []Label
}

// LabelAssoc is one label put on (Assigned) or taken off a chat.
type LabelAssoc struct {
	Chat     string
	Label    Label // at least ID
	Assigned bool
}

// Direction of a chat's first message.
const (
	Incoming = "incoming"
	Outgoing = "outgoing"
)

// ChatCreated is a chat the provider reports as new.
type ChatCreated struct {
	Chat      string
	Name      string
	Direction string // Incoming, Outgoing or ""
	// Repeated: the provider reports known chats this way too (Evolution's
	// chats.upsert), so the chat is new only when first seen.
	Repeated bool
}

// ChatSeen is a chat in which a message or notification was seen.
type ChatSeen struct {
	Chat      string
	Name      string
	Direction string
	// LID is the chat's hidden (…@lid) id when the payload gave it beside
	// Chat, its phone-number form: both name one contact.
	LID string
}

// Alias ties a contact's hidden id to its phone-number id, both canonical
// (chatid): LID "…@lid", Phone "…@s.whatsapp.net".
type Alias struct {
	LID   string
	Phone string
}

// Call states, as far as a provider tells them.
const (
	CallOffered  = "offered"
	CallMissed   = "missed"
	CallAccepted = "accepted"
	CallRejected = "rejected"
	CallEnded    = "ended"
)

// Call is one call state change.
type Call struct {
	CallID string
	Chat   string
	From   string
	Video  bool
	Group  bool
	// ChatPhone is the phone-number form of a one-to-one call's …@lid
	// Chat when the payload gives it (the caller's, who is the chat).
	ChatPhone string
	State     string // one of the Call* states
	Status    string // the provider's own word, e.g. "ringing", "CALL_MISSED_VIDEO"
	// PerCall makes this state one event per call, whichever raw event
	// reports it: for a provider that reports one state under two words
	// (Whapi's initiated then ringing), so both derive the same id.
	PerCall bool
}

// Group changes; the derived type is "io.wahook.group." + change.
const (
	GroupCreated             = "created"
	GroupParticipantsAdded   = "participants.added"
	GroupParticipantsRemoved = "participants.removed"
	GroupParticipantsLeft    = "participants.left"
	GroupParticipantsPromote = "participants.promoted"
	GroupParticipantsDemote  = "participants.demoted"
	GroupSubjectChanged      = "subject.changed"
	GroupDescriptionChanged  = "description.changed"
	GroupIconChanged         = "icon.changed"
	GroupSettingsChanged     = "settings.changed"
	GroupJoinRequested       = "join.requested"
	GroupJoinRevoked         = "join.revoked"
	GroupJoinRejected        = "join.rejected"
	GroupJoined              = "joined"
	// GroupDeleted: the group no longer exists (Meta's Groups API deletes
	// groups the business created).
	GroupDeleted = "deleted"
)

// GroupChange is one group notification.
type GroupChange struct {
	Chat          string // the group
	Change        string // one of the Group* changes
	Participants  []string
	Actor         string
	Subject       string
	Description   string
	Setting       *Setting
	RequestMethod string
}

// Setting is a group setting's new value, e.g. {"announcements", "true"}.
type Setting struct {
	Name  string
	Value string
}
