package state

import "time"

// Chat is a chat's stored value. Its first event never changes once
// written, which lets backends cache it.
type Chat struct {
	FirstEvent  string    `json:"first_event"`
	FirstSeenAt time.Time `json:"first_seen_at"`
}

// FirstSeen decides derive.ChatRegistry.FirstSeen from the chat's record
// cur (nil when there is none): whether eventID is the chat's first event
// and, for a chat without a record, the record claiming it for eventID,
// seen at now. A nil next means no write: the answer is final. With a
// record to write, first holds only if that write is the one that wins.
func FirstSeen(cur *Chat, eventID string, now time.Time) (first bool, next *Chat) {
	if cur != nil {
		return cur.FirstEvent == eventID, nil
	}
	return true, &Chat{FirstEvent: eventID, FirstSeenAt: now.UTC()}
}
