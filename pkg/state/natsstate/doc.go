// Package natsstate keeps the derived streams' state in JetStream key-value
// buckets: the label registry (derive.LabelRegistry), the set of known
// chats (derive.ChatRegistry), the LID↔phone aliases (derive.AliasRegistry,
// in the chats bucket) and the first time of raw events stamped at
// receipt (derive.TimeRegistry). The state lives on the broker, so it survives
// restarts and is shared by every consumer instance; instances coordinate
// only through the buckets' compare-and-set writes (Create, and Update at a
// revision), never through locks or leaders.
//
// # Buckets and keys
//
// Open creates or updates three buckets, WAHOOK_LABELS, WAHOOK_CHATS and
// WAHOOK_TIMES by default, each keeping one revision per key; WAHOOK_TIMES
// forgets a key Config.TimesTTL after it was written (its max age). Keys
// are
//
//	labels: {provider}.{channel}.{label id}
//	chats:  {provider}.{channel}.{canonical chat id}
//	        {provider}.{channel}.{canonical chat id}.a  (its alias)
//	times:  {raw event id}
//
// where each part is one key token encoded on its own: the bytes
// [A-Za-z0-9-] are kept, every other byte becomes '_' and two upper-case hex
// digits ("@" is "_40", "." is "_2E", "_" is "_5F"), the empty string is
// "=", and a part longer than 64 bytes is "=" followed by the hex SHA-256 of
// its bytes, so that keys stay short enough for a NATS subject whatever a
// provider sends. The encoding is injective (hashed parts up to SHA-256
// collisions), never yields '.', and so keeps one channel's keys under the
// filter "{provider}.{channel}.*". "whapi.MANTIS-M72HC.4915112345678_40s_2Ewhatsapp_2Enet"
// is a chat key.
//
// # Values
//
// Values are JSON. A chat is {"first_event", "first_seen_at"} and never
// changes once written. An alias is {"id", "first_event", "learnt_at"}: id
// is the other form (a …@lid's phone-number id, or the reverse), written
// with Create and never changed either. An alias key has one token more
// than a chat key, so "{provider}.{channel}.*" still lists chats only; the
// aliases share the chats bucket's byte limit and ChatsTTL (an alias
// forgotten is learnt again from the next payload giving the pair). A time is the RFC 3339 text of the time. A label is its last known state
// {"id", "name", "color", "color_hex"} with "created_by" (the raw event that
// created it), "updated_by" (the last raw event that set it), "previous"
// (its state before updated_by), "deleted_by" (set on a tombstone) and
// "events": the outcome told to each of the last 32 events that wrote it,
// so that reprocessing any of them is answered as the first time without a
// write, even after later events changed the label.
//
// # Semantics
//
// FirstSeen reports true only to the event whose Create wrote the chat, and
// to any reprocessing of it. Chats whose first event is known are remembered
// in memory (Config.ChatCacheSize), since that value never changes while
// the entry lives: each until its entry's creation plus the bucket's max
// age, so that a process does not answer from a chat the bucket forgot and
// another process announced again. Known aliases share that cache, and an
// id without an alias is read each time. Chats.Lookup reads the bucket,
// never the cache.
//
// Learn writes the LID's alias, then the phone's only when the LID's names
// this phone: a pair conflicting with a known one is ignored (logged at
// debug), and the first pair for an id wins across processes, by Create.
//
// The label registry follows derivetest.LabelRegistry, the reference, and
// remembers more of the past. Upsert of an absent label, or of a deleted one
// by a new event, is a creation; the creating event reprocessed is told
// "created" again, and an updating event the state it replaced, also after
// later changes (within the last 32 events of the label; the reference
// remembers only the last update). Any other event updates the label and is
// told the state it replaced.
//
// Delete resolves a reference by id, or, without an id, by name among the
// channel's labels, listed from the bucket stream's subjects and read one
// by one (a KV watch may end before a key being rewritten: see
// Labels.scan): the label this event deleted before (a reprocessing),
// else a live label of that name, else a deleted one, the smallest id (as
// text) among several. It marks the label deleted and returns its last
// state as known, also when the label was deleted already (by another
// event). A label never set is unknown and returned as the reference says;
// by id, the miss is recorded on the label's key, so that reprocessing the
// Delete after a later creation still misses; by name, on the name's key
// "{provider}.{channel}.{name}.n" (one token more than a label's), so that
// reprocessing the Delete after a label of that name appeared still misses
// and leaves that label alone. Lookup returns a label's last state, also
// once deleted.
//
// FirstTime writes a raw event's time with Create; the first writer wins
// and every other caller, in any process, reads its time, until the entry
// expires.
//
// # Errors
//
// Every broker error (no connection, timeout, missing bucket) is returned
// wrapped and nothing is retried for it inside: callers retry the call. A
// call that failed may still have written; as every write records its
// event, the retry then answers what the first call would have. Compare-and-
// set conflicts are retried inside a call a bounded number of times, then
// reported as ErrContended.
package natsstate
