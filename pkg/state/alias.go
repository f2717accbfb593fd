package state

import "time"

// Alias is the stored value of one direction of a LID↔phone alias: the
// other form of the keyed id. It never changes once written.
type Alias struct {
	ID         string    `json:"id"`
	FirstEvent string    `json:"first_event"`
	LearntAt   time.Time `json:"learnt_at"`
}

// AliasKey is the key of id's alias: its chat key and the token "a", one
// token more than any chat key, so the two never meet in one bucket or
// topic.
func AliasKey(provider, channel, id string) string {
	return EntryKey(provider, channel, id) + ".a"
}

// LearnAlias decides one direction of derive.AliasRegistry.Learn from the
// id's record cur (nil when there is none): the record to create for other
// when there is none, else no write, and whether cur names another form
// (a conflicting pair, ignored: the first pair wins).
func LearnAlias(cur *Alias, other, eventID string, now time.Time) (conflict bool, next *Alias) {
	if cur != nil {
		return cur.ID != other, nil
	}
	return false, &Alias{ID: other, FirstEvent: eventID, LearntAt: now.UTC()}
}
