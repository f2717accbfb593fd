// Package kafkabroker implements broker.Publisher and broker.Subscriber on
// Kafka with github.com/segmentio/kafka-go.
//
// # Topics
//
// Connect checks that the cluster answers and runs EnsureTopics, which
// creates the topics of Topics that are missing (wahook.ingress,
// wahook.deadletter, wahook.label-changed, wahook.chat-created, wahook.call,
// wahook.group-notification) with TopicsConfig's partitions, replication,
// retention and max.message.bytes, and leaves existing ones as they are.
// A Message's Topic is the Kafka topic; its Subject is not sent: Kafka
// routes by topic alone, and a received message's Subject is its topic.
//
// # Who acknowledges
//
// Publish returns nil only after every message is acknowledged by all the
// in-sync replicas of its partition (acks=all; with replication 3 and
// TopicsConfig.MinInSyncReplicas 2 that is at least two brokers). All
// Publish calls share one writer, so concurrent callers' messages travel in
// the same batches (Config.BatchTimeout, 2ms). Until Publish returns nil
// nothing is promised: on error some messages of the call may be stored,
// and may even be stored after the call returned (the writer retries a
// batch a few times whoever waits for it).
//
// # Keys and partitions
//
// A message's Key is the record key, and the partition is murmur2(key) mod
// partitions, as the Java client's default partitioner computes it: other
// producers and consumers agree on where a key's records are. A key's
// records are in one partition, in the order they were written.
//
// # Duplicates
//
// Kafka keeps no de-duplication window, and kafka-go has no idempotent
// producer: a message published twice (a webhook the provider retried, a
// Publish retried after an error, a batch the writer retried after a lost
// acknowledgement) is stored twice. Message.ID travels as the ce_id header
// (IDHeader) and comes back as Received.ID; consumers drop repeats by that
// id (the CloudEvent id, deterministic in wahook), and derived events keep
// deterministic ids so that reprocessing publishes the same ids again.
//
// # Errors
//
// Errors wrapping broker.ErrUnavailable mean "retry later": no broker
// reachable, no acknowledgement before ctx's deadline (or
// Config.PublishTimeout when ctx has none), no leader, too few in-sync
// replicas, or any other error Kafka calls temporary; the cause stays
// wrapped for errors.Is. A cancelled ctx returns context.Canceled: the
// caller gave up. Errors a retry cannot fix wrap broker.ErrRejected
// instead: a message without topic, a header name broker.ValidHeaderKey
// refuses, a record over max.message.bytes (also broker.ErrTooLarge;
// refused before anything of the call is written, or answered
// kafka.MessageSizeTooLarge by a topic configured lower), a topic the
// cluster does not have (ErrUnknownTopic), an invalid topic or record.
// After Close, Publish and Subscribe return broker.ErrClosed.
//
// # Sizes
//
// MaxMessageBytes (broker.Limits) is TopicsConfig.MaxMessageBytes less the
// 61-byte record batch header. The writer's BatchBytes is the same, so no
// batch, of one record or of several callers' records, goes over the
// topics' max.message.bytes: a broker refuses a batch whole. One Publish
// writes at most 256 messages at a time, so that a call with many of them
// queues at most that many ahead of a concurrent caller's in a partition.
//
// # Consuming
//
// Subscribe consumes a topic in a Kafka consumer group named after
// Subscription.Group. Kafka balances the topic's partitions among the
// group's instances, so the natural way to scale on Kafka is to run several
// instances with the same Group and Partitions 1: each gets some of the
// topic's partitions, up to one instance per partition. Subscription
// Partition and Partitions work as on NATS, for deployments that use them:
// each partition of the subscription is a group of its own (GroupID appends
// "-p{i}of{n}"), reads the whole topic and commits, without calling the
// handler, the records whose key broker.PartitionOf places in another
// partition; n partitions cost n reads of every record.
//
// Subscription.Filter (NATS subject filters) is ignored: Kafka records carry
// no subject, and a subscriber gets every record of its topic. A
// subscriber passes over records by their headers with Subscription.Skip:
// those it reports are finished as they are fetched, like another
// partition's, and committed with the records around them.
//
// A new group starts at the first record whose timestamp is at or after
// Subscription.StartTime, or at the beginning of each partition when
// StartTime is zero; the start offsets are committed at once, so that the
// group exists from then on. An existing group (one with committed offsets
// on the topic) resumes where it was whatever StartTime says; a partition it
// has no offset for yet (one added to the topic) starts at its beginning.
// Kafka forgets a group's offsets offsets.retention.minutes (7 days by
// default) after its last instance left: the group then starts over as a
// new one.
//
// # Acknowledgements, order, retries
//
// Records go to Subscription.Concurrency workers by a hash of their key; a
// key's records are handled one at a time and in offset order. A handler
// returning nil acknowledges its record; an error wrapped by
// broker.Permanent terminates it (the handler has dead-lettered it): it is
// done and never delivered again. Other errors and panics follow the poison
// policy of broker.Handler (shared with natsbroker, in internal/dispatch):
// the record is retried in place after a pause of SubscribeConfig.RetryMin
// (100ms) doubling up to RetryMax (30s), jittered, holding back the key's
// later records, forever for errors wrapping broker.ErrUnavailable, else
// until Subscription.MaxAttempts, when Subscription.Poison stores it and it
// is done like a terminated one.
//
// Kafka keeps one committed offset per partition, so a group commits, for
// each partition, the offset below which every record is done (handled or
// terminated): a record retried for long holds its partition's commit
// point, and records of other keys finished after it are delivered again
// if the partition changes hands meanwhile. Commits follow the work as it
// finishes (SubscribeConfig.CommitInterval spaces them out). At most
// SubscribeConfig.MaxPending records per partition are fetched ahead of
// the commit point; fetching that partition pauses beyond it.
//
// Received.Attempt counts deliveries. Kafka has no delivery count, so the
// group's commit metadata carries one for the record at each partition's
// commit point ("wahook:attempts=N"): the first delivery of that record
// after a start or a rebalance is committed before its handler runs, later
// ones right after. A record redelivered after a crash or a rebalance thus
// gets an Attempt above 1 when it was the oldest unfinished record of its
// partition, which is the one a crash loop keeps failing on; other records
// redelivered start at 1 again.
//
// # Rebalances, crashes, shutdown
//
// When Subscribe's ctx ends it stops fetching; each worker finishes the
// record it is handling (the handler's ctx is cancelled only after
// SubscribeConfig.ShutdownGrace, 30s, so it can still publish its results),
// a handler failing meanwhile is not retried, and queued records are left
// for the group. Subscribe then commits what is done, leaves the group and
// returns ctx's error. A rebalance that takes partitions away goes the same
// way, with at most half of RebalanceTimeout as grace, and the instance
// rejoins; the new owner of a partition starts at its commit point.
//
// What is guaranteed: each record is handled at least once, and a key's
// records are handled one at a time and in order while one instance owns
// the key's partition. What is not:
//   - A crashed instance's partitions go to the others only after
//     SubscribeConfig.SessionTimeout (30s), and their records after the
//     commit point are handled again, some of them maybe already handled.
//   - A handler still running when its partition changes hands (it ignored
//     its ctx past the grace period) may overlap with the new owner's
//     handling of the same key.
//   - Exactly once: handlers must be idempotent; commits lost in a crash or
//     a rebalance redeliver records already handled.
//
// Subscribe survives outages: kafka-go reconnects, rejoins the group and
// resumes fetching; commits that fail are retried, and a commit refused
// because the partition changed hands only means the next owner redelivers
// those records. Subscribe returns early only for a subscription it cannot
// serve (empty group, negative concurrency, partition out of range,
// ErrUnknownTopic) or, with broker.ErrClosed, when the Broker is closed.
//
// # Stalls
//
// A group can look healthy while a partition makes no progress: a member
// heartbeats while its fetching or a handler is wedged, or the coordinator
// keeps a member that died (kfake, the test broker, keeps one killed while
// its JoinGroup waited in a rebalance, for good once the group is stable).
// Each subscription therefore watches the group's commit on every
// partition: when records wait on a partition and the commit has not moved
// for SubscribeConfig.StallTimeout (2m), it reports the partition stalled,
// leaves the group and joins it again as a new member; the rebalance that
// follows drops members that do not rejoin and gives their partitions to
// live ones, and a wedged member's handlers are cancelled as at any
// rebalance. A failing join is logged at warn level at once and then once
// a minute, with the count and the last error. Broker.Groups reports all
// of it: whether each subscription is joined, since when, its failures in
// a row and last error, and its stalled partitions; Broker.GroupsErr sums
// it up for readiness.
package kafkabroker
