// Package kafkastate keeps the derived streams' state in compacted Kafka
// topics: the label registry (derive.LabelRegistry), the set of known chats
// (derive.ChatRegistry), the first time of raw events stamped at receipt
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
//	wahook.state.chats   cleanup.policy=compact, min.compaction.lag.ms=3600000
//	wahook.state.dedup   cleanup.policy=compact,delete, retention.ms=window,
//	                     segment.ms=min(window, 1h)
//	wahook.state.times   cleanup.policy=compact,delete, retention.ms=TTL,
//	                     segment.ms=min(TTL, 1h)
//
// with Config.Partitions (6) and Config.ReplicationFactor (1), and refuses
// labels or chats topics that are not compacted. An existing topic keeps
// its partitions; never add partitions to a state topic, as keys would
// move away from their earlier records.
//
// Keys are natsstate's: "{provider}.{channel}.{label id}" (and
// "{provider}.{channel}.{name}.n" for a label name's deletions that
// missed), "{provider}.{channel}.{canonical chat id}", "{raw event id}" for
// times and "{scope}.{id}" for dedup,
// each part encoded on its own ([A-Za-z0-9-] kept, any other byte '_' and
// two hex digits, "" as "=", a part over 64 bytes "=" and its SHA-256).
// A chat or dedup record goes to the partition of its key by the Java
// client's partitioner (murmur2), a label record to the partition of its
// channel ("{provider}.{channel}"), so that a channel's labels are read to
// one offset when a deletion resolves a label by name.
//
// Values are JSON. A chat is {"first_event", "first_seen_at", "version"}. A
// label is natsstate's value (its state, "created_by", "updated_by",
// "previous", "deleted_by" and the outcomes told to its last 32 events, so
// that a reprocessed event is answered as the first time) and "version". A
// time is {"time", "at", "version"} ("at": when it was written, for the
// TTL). A dedup mark is {"at"}.
//
// # Versions: first writer wins
//
// A record is applied, in offset order, when its key has no record yet or
// when its version is above the applied one's; any other record lost a
// race (it was computed from a state that another record changed first)
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
// loser as the state.
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
// memory without a catch-up, as a chat's first event never changes.
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
// Memory holds 48 bytes per known chat (the key as a 16-byte hash, the
// first event, a wahook id, as its 16 bytes, in a slice sorted by key; the
// chats seen since the last merge cost about three times that until they
// are merged), 85 per dedup id (85 MB for a scope at the default bound) and
// about 100 per time. Every chat ever seen is held, and Open reads the
// whole chats topic: see BenchmarkRestoreChats for a million.
//
// # Errors
//
// Broker errors are returned wrapped and not retried inside: callers retry
// the call. A call that failed may still have written; as every write
// records its event, the retry answers what the first call would have.
// Calls after Close fail with ErrClosed.
package kafkastate
