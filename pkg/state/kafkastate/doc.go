// Package kafkastate keeps the derived streams' state in compacted Kafka
// topics: the label registry (derive.LabelRegistry), the set of known chats
// (derive.ChatRegistry) with the LID↔phone aliases (derive.AliasRegistry)
// on the same topic, the first time of raw events stamped at receipt
// (derive.TimeRegistry) and the ids a subscriber has handled (Dedup). It is
// the Kafka counterpart of natsstate, with the same values and semantics.
// Kafka has no compare-and-set, so writers are ordered by the partition
// itself: every write is a versioned record, every process applies the
// records of a partition in offset order with the same rule, and a writer
// learns the outcome of its write by reading the partition back up to it.
//
// # Topics, keys, values
//
// Open creates what is missing of
//
//	wahook.state.labels  cleanup.policy=compact, min.compaction.lag.ms=3600000
//	wahook.state.chats   cleanup.policy=compact, min.compaction.lag.ms=3600000;
//	                     with a chats TTL cleanup.policy=compact,delete and
//	                     retention.ms=chats TTL + 1h
//	wahook.state.dedup   cleanup.policy=compact,delete, retention.ms=window,
//	                     segment.ms=min(window, 1h)
//	wahook.state.times   cleanup.policy=compact,delete, retention.ms=TTL,
//	                     segment.ms=min(TTL, 1h)
//
// with Config.Partitions (6) and Config.ReplicationFactor (1). An existing
// topic is never altered: it keeps its partitions (never add partitions to
// a state topic, as keys would move away from their earlier records) and
// its configuration, which Open checks: it refuses labels or chats topics
// that are not compacted, a labels topic that also deletes records by age,
// and a chats topic that does while chats never expire (ChatsTTL 0) or
// before they leave memory (see Expiry); it logs the dedup and times
// topics, and a chats topic with a TTL, when they keep every record.
//
// Keys are natsstate's: "{provider}.{channel}.{label id}" (and
// "{provider}.{channel}.{name}.n" for a label name's deletions that
// missed), "{provider}.{channel}.{canonical chat id}" (and
// "{provider}.{channel}.{canonical chat id}.a" for its alias, on the chats
// topic: one token more, so the two never meet), "{raw event id}" for
// times and "{scope}.{id}" for dedup,
// each part encoded on its own ([A-Za-z0-9-] kept, any other byte '_' and
// two hex digits, "" as "=", a part over 64 bytes "=" and its SHA-256).
// A chat or dedup record goes to the partition of its key by the Java
// client's partitioner (murmur2), a label record to the partition of its
// channel ("{provider}.{channel}"), so that a channel's labels are read to
// one offset when a deletion resolves a label by name.
//
// Values are JSON. A chat is {"first_event", "first_seen_at", "version"},
// and "expires_at" when it was claimed with a TTL (see Expiry). A
// label is natsstate's value (its state, "created_by", "updated_by",
// "previous", "deleted_by" and the outcomes told to its last 32 events, so
// that a reprocessed event is answered as the first time) and "version". A
// time is {"time", "at", "version"} ("at": when it was written, for the
// TTL). A dedup mark is {"at"}.
//
// # Versions: first writer wins
//
// A record is applied, in offset order, when its key has no record yet or
// when its version is above the applied one's (for chats that expire, see
// Expiry); any other record lost a race (it was computed from a state that another record changed first)
// and is ignored. Writers write the applied version plus one, so of two
// writers racing from the same state the first in the partition wins, in
// every process. A writer appends its record (acknowledged by every in-sync
// replica, RequireAll), waits until its own tailer has applied the
// partition up to that record, and answers from what was applied: if its
// record lost, it computes again from the winner and writes again, at most
// 32 rounds (then ErrContended). Two stores racing FirstSeen on one chat
// with different events thus both answer from the same first_event:
// exactly one of them is first, and so is every reprocessing, anywhere.
//
// A lost record that is its key's last record would be what compaction
// keeps. So a writer that finds itself beaten writes the winner again, one
// version up (a repair), and so does any later call on a key whose last
// record lost (a writer crashed before repairing): the key's last record is
// then the winner's state. min.compaction.lag.ms keeps every record for an
// hour at least, far longer than a repair takes. What remains: a writer
// that crashes between its losing write and the repair, when no call
// touches that key again for an hour (its raw event is redelivered, so its
// own retry does), leaves a store restored after compaction reading the
// loser as the state. With expiry, the same crash leaves the loser held by
// a store that applies the chat's records over an hour after the winner
// expired (a restore), if the loser expires over an hour after the winner:
// its claimer had a TTL over an hour longer, or claimed an hour after the
// winner without having applied it.
//
// # Expiry
//
// Config.ChatsTTL (0, never, by default) forgets a known chat that long
// after it was first seen, as natsstate's: a chat seen again later is
// claimed again, and its new first event is announced again. A claim made
// with a TTL carries its expiry, "expires_at" = first_seen_at + TTL; one
// without never expires. Processes decide expiry from the records alone,
// whatever their own ChatsTTL. A chat's records from one claim to the next
// form an epoch, and a record is applied, in offset order, against its
// key's applied record:
//
//   - none: the record wins;
//   - the record was claimed once the applied one had expired (its
//     first_seen_at at or after the applied expires_at): it wins, a new
//     epoch, whatever the versions;
//   - the record is of an older epoch (its expires_at at or before the
//     applied first_seen_at), a repair from a writer that read the chat
//     just before it expired: it loses, whatever its version;
//   - otherwise it is of the applied epoch: it wins when its version is
//     above the applied one's (a repair), else it lost a race.
//
// Without expires_at the second and third cases never hold, and the rule
// is the one above. A record that loses marks the chat for a repair, as
// above, so that compaction keeps the winner. FirstSeen takes a chat whose
// expiry has passed (by Config.Now) as unknown and claims it again at
// version 1, with first_seen_at the very instant that found it expired: in
// every process the claim is a new epoch. Two processes claiming again
// race as for a new chat: the first in the partition wins and both answer
// from it. Around the expiry each process answers by its own clock until
// it applies the new claim.
//
// Memory holds a chat until an hour after its expiry (answered as unknown
// meanwhile); a record applied later than that, as at a restore, is not
// held, and if it wins its key is forgotten. An entry held past its hour
// counts as none, so that when a process sweeps never matters. The hour
// keeps a process that applies a chat's records late (a restore) deciding
// as those that applied them live: it still holds the winner when the
// records that raced it arrive, unless one of those expires over an hour
// after the winner (see above). Merges of a shard, and a sweep every
// minute (a quarter of a TTL below four minutes), drop the chats past
// their hour. Expiries are held as whole seconds after first_seen_at,
// rounded up (at least one; none when over 136 years), and the rule
// compares those.
//
// The chats topic Open creates with a TTL also deletes records by age,
// retention.ms the TTL and an hour: a segment goes once no process holds
// its chats. Processes with different TTLs agree, each chat expiring as
// its claimer's TTL said, but one whose TTL is longer than the topic
// keeps records, less an hour, refuses to open, as its chats would leave
// the topic before they expire. Chats claimed without a TTL never expire,
// and a chats topic created without one keeps every record (Open logs it):
// to bound it, delete the topic while no process runs, and each chat is
// claimed, and announced, once more when next seen.
//
// # Restore, tailing, catch-up
//
// Open reads every partition from its first offset to the end offset it
// had when Open began, into memory, and then tails every partition in the
// background (a long-polling fetch per partition) until Close, so that
// other processes' writes are applied too.
//
// Writes need no catch-up: reading back to one's own record reads every
// record acknowledged before the call. A read does: a label call (Lookup,
// and the deletion by name, whose miss writes nothing) and Dedup.Seen first
// ask the partition's end offset, with a request sent after the call began
// and shared by the callers waiting at that moment, then wait until the
// tailer has applied the partition up to it, bounded by ctx. Every write
// acknowledged before the call, by any process, is then seen: after a
// consumer group rebalance, the new owner of a chat sees the previous
// owner's writes. FirstSeen of a chat already in memory answers from
// memory without a catch-up until it expires, as a chat's first event
// never changes before.
//
// Config.CatchUpCache (off by default) lets one catch-up serve the reads of
// a partition for that long after it was asked for. It is safe only when
// no other process can have written in that interval, which holds for a
// chat's partition while no rebalance moves it: keep it below the group's
// shortest rebalance.
//
// Times follows the chats' rule: FirstTime of an id in memory answers from
// memory, an unknown one writes its time at version 1 and reads it back.
// Memory keeps at most Config.TimesMaxIDs ids, none older than
// Config.TimesTTL; a copy of a raw event later than that keeps its own
// time.
//
// Within a process, calls on one chat, and calls on one channel's labels,
// are serialised. Two processes write the same key only around a
// rebalance, or when a paused process (a zombie) resumes: both compute, the
// versions order them, and each is answered from the outcome recorded for
// its own event, so both agree on what each event did.
//
// # Dedup
//
// Kafka has no broker-side duplicate window: the ingress can write a
// provider's retried webhook twice, and a consumer redelivers what it had
// not committed. Derived events have deterministic ids, so a subscriber
// drops duplicates by CloudEvent id:
//
//	seen, err := d.Seen(ctx, stream, ev.ID()) // an error: do not commit, retry
//	if !seen {
//		handle(ev)                    // at least once: a crash before Mark repeats it
//		err = d.Mark(ctx, stream, ev.ID())
//	}
//	commit the offset
//
// Marks are written to the dedup topic with their time and kept in memory
// per scope: at most Config.DedupMaxIDs ids per scope (1,000,000; the
// oldest are forgotten first) and only those younger than
// Config.DedupWindow (24h). Open restores them from the topic, ignoring
// marks older than the window. The topic needs no tombstones: compaction
// keeps an id's last mark and retention.ms (the window) deletes segments
// whose marks are all out of it; a tailer behind a deleted segment skips
// it. An id forgotten for the bound, or marked longer ago than the window,
// is not seen: a duplicate that late passes.
//
// # Costs
//
// Measured on kfake over loopback on 2 shared cores (kfake included): a new
// chat's FirstSeen takes 56-73µs (write plus read-back; 40µs each with 8
// callers), a known one 0.3-0.6µs; a catch-up 43µs (8µs each with 8
// callers, who share the end offset request; 0.4µs within CatchUpCache); a
// label Upsert 144µs; a Mark 46µs. Restore reads about 580,000 records/s.
// Memory holds 48 bytes per chat held (the key as a 16-byte hash, the
// first event, a wahook id, as its 16 bytes, the first time, the expiry as
// whole seconds after it and a 16-bit version, in a slice sorted by key;
// the chats seen since the last merge cost about three times that until
// they are merged), 85 per dedup id (85 MB for a scope at the default
// bound) and about 100 per time. Without a TTL every chat ever seen is
// held, and Open reads the whole chats topic: see BenchmarkRestoreChats for
// a million. With one, the chats held (Chats.Held) are those first seen
// within the TTL and an hour, and Open reads what the topic keeps: as
// long, and what its oldest segment holds beyond.
//
// # Errors
//
// Broker errors are returned wrapped and not retried inside: callers retry
// the call. A call that failed may still have written; as every write
// records its event, the retry answers what the first call would have.
// Calls after Close fail with ErrClosed.
package kafkastate
