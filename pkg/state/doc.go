// Package state holds what the derived streams' state stores (natsstate on
// JetStream KV, kafkastate on compacted Kafka topics) share whatever the
// broker: the key encoding, the stored values and the pure decisions of the
// label and chat registries. A backend reads a record, asks a decision
// function for the answer and the record to write, and writes it with its
// own ordering (compare-and-set, or offset-ordered versions); that split
// keeps the semantics of derive.LabelRegistry and derive.ChatRegistry in one
// place, so that both backends agree on what every event did.
//
// # Keys
//
// A key is made of parts, each encoded on its own by Token and joined by
// '.': "{provider}.{channel}.{label id}" for a label,
// "{provider}.{channel}.{canonical chat id}" for a chat. The bytes
// [A-Za-z0-9-] are kept, every other byte becomes '_' and two upper-case
// hex digits ("@" is "_40", "." is "_2E", "_" is "_5F"), the empty string
// is "=", and a part longer than 64 bytes is "=" followed by the hex SHA-256
// of its bytes, so that keys stay short enough for a NATS subject whatever
// a provider sends. The encoding is injective (hashed parts up to SHA-256
// collisions) and never yields '.', so a channel's keys share the prefix
// "{provider}.{channel}.".
//
// # Values
//
// Values are JSON. A chat (Chat) is {"first_event", "first_seen_at"}. A
// label (Label) is its last known state {"id", "name", "color",
// "color_hex"} with "created_by" (the raw event that created it),
// "updated_by" (the last raw event that set it), "previous" (its state
// before updated_by), "deleted_by" (set on a tombstone) and "events": the
// outcome told to each of the last 32 events that wrote it, so that
// reprocessing any of them is answered as the first time without a write,
// even after later events changed the label. A backend may add fields of
// its own (kafkastate adds "version").
package state
