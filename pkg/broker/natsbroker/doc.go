// Package natsbroker implements broker.Publisher on NATS JetStream and runs
// an embedded nats-server for single-machine setups.
//
// # Streams
//
// Connect creates or updates three file-backed streams with limits retention
// (EnsureStreams, idempotent): WAHOOK_INGRESS (wahook.ingress.>),
// WAHOOK_DEADLETTER (wahook.deadletter.>) and WAHOOK_DERIVED
// (wahook.label-changed.>, wahook.chat-created.>, wahook.call.>,
// wahook.group-notification.>). Publishing to any other subject fails with
// ErrNoStream.
//
// # Who acknowledges
//
// Publish returns nil only after JetStream has acknowledged every message
// (a PubAck: the stream leader stored it; with Replicas 3, a quorum did).
// Until then nothing is promised: on error some messages of the call may be
// stored, and the caller publishes them again with the same IDs.
//
// # Duplicates
//
// A message's ID travels as Nats-Msg-Id. Within the streams' duplicates
// window (StreamsConfig.Duplicates, 10 minutes by default) JetStream stores
// an ID once and acknowledges repeats as duplicates, which Publish counts as
// stored. The window must be longer than the delay after which a provider
// redelivers a webhook; a redelivery after it is stored again.
//
// # Errors
//
// Errors wrapping broker.ErrUnavailable mean "retry later": the connection is
// down or reconnecting (Publish fails at once, nothing is buffered), no ack
// came before ctx's deadline (or Config.PublishTimeout when ctx has none), no
// JetStream responder answered, or JetStream reports a temporary condition
// (no quorum, storage exhausted). The cause stays wrapped for errors.Is. A
// cancelled ctx returns context.Canceled, not ErrUnavailable: the caller
// gave up. Errors a retry cannot fix (message over the server's max payload
// or the stream's limit, ErrNoStream) do not wrap ErrUnavailable. After Close,
// Publish returns broker.ErrClosed.
//
// # Durability
//
// The embedded server fsyncs on nats-server's interval (2 minutes) unless
// EmbeddedConfig.SyncAlways is set: acknowledged messages survive a crash of
// the process either way, but only SyncAlways (about 6x slower) makes them
// survive a power loss of a single server. In a 3-replica cluster the
// replication covers that instead.
//
// # Connection
//
// Connect fails, bounded by its ctx, when no server is reachable. After that
// the client reconnects forever; Ready reports whether it is connected and
// the streams exist. With Config.Embedded the connection is in-process (no
// socket) while other processes connect to Embedded.ClientURL over TCP.
package natsbroker
