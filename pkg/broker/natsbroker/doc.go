// Package natsbroker implements broker.Publisher and broker.Subscriber on
// NATS JetStream and runs an embedded nats-server for single-machine setups.
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
// gave up. Errors a retry cannot fix wrap broker.ErrRejected instead, and
// nothing of the Publish call is sent when a message is refused before
// sending: a subject no stream captures (ErrNoStream) or that is not a
// valid literal subject, a header name or value the protocol cannot carry
// as given, an HPUB line over max_control_line (4096) or a header block over
// JetStream's 64 KiB, headers and data over the server's max_payload (also
// broker.ErrTooLarge, as is JetStream's "message size exceeds maximum"), and
// any JetStream answer of 400. A line the server could not parse would make
// it close the connection for good; these checks keep that from happening.
// After Close, Publish returns broker.ErrClosed.
//
// # Sizes and fairness
//
// MaxMessageBytes (broker.Limits) is the max_payload the server announced.
// The publish window (Config.MaxPending) is shared by every caller; one
// Publish keeps at most an eighth of it (256 at most) in flight, so that a
// call with many messages leaves room for the others.
//
// # Durability
//
// The embedded server fsyncs on nats-server's interval (2 minutes) unless
// EmbeddedConfig.SyncAlways is set: acknowledged messages survive a crash of
// the process either way, but only SyncAlways (a disk flush per
// acknowledgement: 6 to 15 times fewer on the test machine, BENCHMARKS.md)
// makes them survive a power loss of a single server. In a 3-replica
// cluster the replication covers that instead.
//
// # Storage
//
// Streams have byte and age limits (StreamsConfig); the raw and dead-letter
// streams refuse messages when full and the derived stream drops its
// oldest. A full stream or store fails Publish with broker.ErrUnavailable
// and fails Ready (storage.go). The embedded server's store is capped and a
// watchdog restarts JetStream when a full disk broke it
// (embedded_storage.go). EnsureStreams updates an existing stream only when
// a property wahook relies on is wrong (Reconcile).
//
// # Consuming
//
// Subscribe reads a topic's stream through a durable pull consumer:
// "wahook.ingress" is WAHOOK_INGRESS filtered on wahook.ingress.>,
// "wahook.deadletter" WAHOOK_DEADLETTER, and a derived topic such as
// "wahook.call" WAHOOK_DERIVED filtered on wahook.call.>; Subscription.Filter
// narrows that to subjects inside the topic. The consumer is named after
// the group (ConsumerName), with "-p{i}of{n}" appended when the topic is
// split in partitions, so each partition keeps its own position. A new
// consumer starts at Subscription.StartTime, or at the beginning of the
// stream; an existing one resumes where it was whatever StartTime says, and
// only its filters, AckWait, MaxAckPending and MaxDeliver are updated.
// Changed filters apply from the consumer's position on: JetStream keeps
// its ack floor, the messages it delivered and has not had acknowledged
// are delivered again even when the new filters no longer match them, and
// those stored before the position that only the new filters match are
// not delivered. Subscription.Skip, when set, is asked about every message
// that arrives, and those it reports are acknowledged unhandled.
//
// A message's key is its ce-partitionkey header (percent-decoded), else its
// subject; its ID is Nats-Msg-Id, else ce-id. Publish writes the key header
// for messages that lack it, so Message.Key round-trips.
//
// Acknowledgements are explicit. A handler returning nil acknowledges the
// message; an error wrapped by broker.Permanent terminates it (Term, with
// the error as the reason in JetStream's advisory): it is never delivered
// again. Other errors and panics follow the poison policy of broker.Handler
// (shared with kafkabroker, in internal/dispatch): retried in place after a
// pause of SubscribeConfig.RetryMin (100ms) doubling up to RetryMax (30s),
// jittered, forever for errors wrapping broker.ErrUnavailable, else until
// Subscription.MaxAttempts, when Subscription.Poison stores the message and
// it is terminated like a Permanent one. MaxDeliver is unlimited, so a
// message is never dropped by the server. Received.Attempt is JetStream's
// delivery count plus the retries in place. Every message held, being retried or queued behind one, is kept
// alive (InProgress every quarter of AckWait), so JetStream redelivers
// nothing while this instance lives.
//
// One instance consumes a durable consumer at a time: Subscribe first
// takes the consumer's lease, a key in the KV bucket LeaseBucket
// (WAHOOK_CONSUMER_LEASES, created when missing) whose max age is
// SubscribeConfig.LeaseTTL (10s). The holder renews it every quarter of
// the TTL; another Subscribe of the same group and partition waits as a
// standby, taking the lease over once its holder released it (a clean
// stop) or it expired (the holder died or lost the server). Taking over an
// expired lease with messages pending, the new holder resets the consumer
// to its ack floor (JetStream's consumer reset), so that every message
// after the floor, acknowledged or not, is delivered again in stream order
// before anything newer, as a Kafka group resumes from its committed
// offset. A stopping instance renews its lease until its handlers finished
// and it handed back what it held, and releases it only if every message
// it held was settled or handed back. A holder that could not renew its
// lease for half of the TTL stops consuming (its handlers' ctx is
// cancelled a quarter of the TTL later) and waits as a standby: it has
// stopped before anyone may take over, so a live instance is never reset
// under its feet.
//
// Messages go to Subscription.Concurrency workers by a hash of their key.
// What is guaranteed: a key's messages are handled one at a time and in
// stream order, a failing one holding back those after it, also across a
// crash and a restart; and each message is handled at least once. What is
// not:
//   - Exactly once: after a crash the messages after the ack floor are
//     handled again, also those acknowledged past it; an acknowledgement
//     lost in a crash, a consumer deleted and re-created (it starts over
//     at StartTime or the beginning) or an outage longer than AckWait
//     redeliver messages already handled. Handlers must be idempotent;
//     wahook's deterministic event ids and the streams' duplicates window
//     make publishing their results again harmless. Received.Attempt
//     starts over at 1 after a reset.
//   - A handler that ignores its ctx for longer than LeaseTTL/4 after its
//     instance lost the lease may overlap with the new holder's handling
//     of the same key.
//
// MaxAckPending (32 per worker, at least 256) bounds the messages held: a
// message retried for long keeps the later ones of its worker queued, and
// once they fill the window consuming pauses for every key until it passes.
//
// With Partitions > 1 every partition's consumer reads the whole topic and
// acknowledges at once, without calling the handler, the messages whose key
// broker.PartitionOf places in another partition: n partitions cost n
// deliveries per message. Changing Partitions creates new consumers, which
// start at StartTime: set it to where the old partitions stopped.
//
// When Subscribe's ctx is done it stops pulling and reads back what was
// already sent to it: it pauses the consumer (JetStream's consumer pause,
// ending by itself after 20s should the instance die) and waits for the
// deliveries the server counts but had not sent yet, so that dropping its
// pull requests loses none and the stop is clean. Each worker finishes the message it is handling; the
// handler's ctx is not cancelled until SubscribeConfig.ShutdownGrace (30s)
// later, so it can still publish its results. A handler failing meanwhile
// is not retried. Everything not handled is then Nak'd, in order, once the
// server has dropped this instance's pull requests, so that the next
// instance gets it at once and in order. Subscribe returns ctx's error
// after flushing the last acknowledgements.
//
// Subscribe survives outages: nats.go re-issues the pull requests after a
// reconnect or missed heartbeats, acknowledgements that cannot be sent are
// retried (holding their key) until the connection is back, and a consumer
// deleted under Subscribe is re-created. Subscribe returns early only for a
// subscription it cannot serve (unknown topic, empty group, a consumer that
// is not a pull consumer with explicit acknowledgements) or, with an error
// wrapping broker.ErrClosed, once the Broker is closed: cancel its ctx
// before calling Close.
//
// # Connection
//
// Connect fails, bounded by its ctx, when no server is reachable. After that
// the client reconnects forever; Ready reports whether it is connected and
// the streams exist. With Config.Embedded the connection is in-process (no
// socket) while other processes connect to Embedded.ClientURL over TCP.
//
// # Access
//
// Every client of the embedded server logs in: Connect with Config.Embedded
// as its service user (Embedded.ServiceAuth) in ServiceAccount, read-only
// subscribers each in an account of its own (AccountsConfig,
// SubscriberPermissions) that reads live events, stream info and stored
// messages (DirectBatch) and uses the consumers wahook keeps for it
// (EnsureSubscriberConsumers), anonymous clients not at all. Config.Auth logs in
// to an external server (user and password, token, creds or nkey file) and
// sets up TLS to it.
package natsbroker
