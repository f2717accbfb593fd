// Package backbone opens the event broker a wahook service runs on, as
// configured: NATS JetStream (an external server, or one embedded in the
// process when no URL is given) or Kafka. Services get a publisher, a
// subscriber, the matching CloudEvents binding, the derived streams' state
// and a readiness check, and never see a client library.
package backbone

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go/sasl"
	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/kafkabroker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/consumer"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/eventlog"
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/state/kafkastate"
	"github.com/wahook/wahook/pkg/state/natsstate"
)

// Config selects and configures the broker.
type Config struct {
	// Broker is "nats" or "kafka".
	Broker string
	// NATSURL lists NATS servers; empty starts an embedded server.
	NATSURL string
	// NATSEmbeddedAddr is where the embedded server accepts clients.
	NATSEmbeddedAddr string
	// DataDir holds the embedded server's JetStream storage.
	DataDir string
	// NATSSyncAlways makes the embedded server fsync every write.
	NATSSyncAlways bool
	// NATSDuplicateWindow is the streams' de-duplication window.
	NATSDuplicateWindow time.Duration
	// NATSReplicas is the streams' replica count (a clustered server).
	NATSReplicas int
	// NATSStorage limits the streams, buckets and embedded store.
	NATSStorage StorageConfig
	// KafkaBrokers are the Kafka bootstrap brokers, comma-separated.
	KafkaBrokers string
	// KafkaPartitions and KafkaReplication size the topics created at start.
	KafkaPartitions, KafkaReplication int
	// KafkaMinInSyncReplicas is those topics' min.insync.replicas (0: the
	// broker's default).
	KafkaMinInSyncReplicas int
	// KafkaDedupWindow bounds how long consumers remember raw event ids.
	KafkaDedupWindow time.Duration
	// KafkaChatsTTL forgets a known chat that long after it was first seen
	// (0: never); at least the raw topic's retention.
	KafkaChatsTTL time.Duration
	// ReceivedTimeTTL is how long consumers keep the time of raw events
	// stamped at receipt, so that later copies derive the same events.
	ReceivedTimeTTL time.Duration
	// ReceivedTimePerCopy derives every stored copy of a raw event stamped
	// at receipt with its own time: no first-time registry, one store and
	// one round trip less per such event, and copies a duplicate window
	// apart derive events with the same ids but different times.
	ReceivedTimePerCopy bool
	// ClientName names the connection on the server.
	ClientName string

	// NATSAuth is how to log in to an external NATS (one of user and
	// password, token, creds file, nkey seed file) and TLS to it. For the
	// embedded server only User and Password apply: its service user.
	NATSAuth natsbroker.Auth
	// NATSSubscribers are the embedded server's read-only users,
	// "user:password" pairs, comma-separated.
	NATSSubscribers string
	// NATSSubscriberConsumers are the durable consumers wahook keeps for
	// subscribers, "user:name:filter[:all|new]" entries, comma-separated
	// (natsbroker.ParseSubscriberConsumers). The embedded server lets each
	// user use its own; an external server needs the same rights in its
	// configuration (deployments/nats).
	NATSSubscriberConsumers string
	// KafkaSecurity is TLS and SASL to Kafka, for every client.
	KafkaSecurity kafkabroker.Security
	// ProtectedConsumers are wahook's own durable consumer names
	// (ConsumerNames), which no subscriber consumer may take.
	ProtectedConsumers []string

	// subscriberCheck is how often deleted subscriber consumers are looked
	// for, natsbroker.DefaultSubscriberConsumerCheck when zero.
	subscriberCheck time.Duration
}

// RegisterFlags declares the backbone's flags on fs; with ff they are also
// read from WAHOOK_* environment variables.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Broker, "broker", "nats", "event broker: nats or kafka")
	fs.StringVar(&c.NATSURL, "nats-url", "", "NATS server URL(s), comma-separated; empty starts an embedded NATS server with JetStream")
	fs.StringVar(&c.NATSEmbeddedAddr, "nats-embedded-addr", "127.0.0.1:4222", "where the embedded NATS server accepts clients")
	fs.StringVar(&c.DataDir, "data-dir", "./data", "embedded JetStream storage and local state")
	fs.BoolVar(&c.NATSSyncAlways, "nats-sync-always", false, "embedded server: fsync every write (survives power loss; a disk flush per ack, see BENCHMARKS.md)")
	fs.DurationVar(&c.NATSDuplicateWindow, "nats-duplicate-window", 10*time.Minute, "JetStream duplicate window: retries within it are dropped by event id")
	fs.IntVar(&c.NATSReplicas, "nats-replicas", 1, "JetStream stream replicas")
	c.NATSStorage.RegisterFlags(fs)
	fs.StringVar(&c.KafkaBrokers, "kafka-brokers", "", "Kafka bootstrap brokers, comma-separated (required with -broker kafka)")
	fs.IntVar(&c.KafkaPartitions, "kafka-partitions", 6, "partitions of the topics created at start")
	fs.IntVar(&c.KafkaReplication, "kafka-replication", 1, "replication factor of the topics created at start")
	fs.IntVar(&c.KafkaMinInSyncReplicas, "kafka-min-insync-replicas", 0,
		"min.insync.replicas of the topics created at start (0: the broker's default); acks=all then means at least this many copies")
	fs.DurationVar(&c.KafkaDedupWindow, "kafka-dedup-window", 24*time.Hour, "how long consumers remember raw event ids to drop repeats (Kafka has no duplicate window)")
	fs.DurationVar(&c.KafkaChatsTTL, "kafka-chats-ttl", 0,
		"forget a known chat this long after it was first seen (0: never; else at least the raw topic's retention); a chat seen again after that is announced again")
	fs.DurationVar(&c.ReceivedTimeTTL, "received-time-ttl", 7*24*time.Hour, "how long consumers keep the first time of raw events without a provider time, so that a provider's later retry derives the same events")
	fs.BoolVar(&c.ReceivedTimePerCopy, "received-time-per-copy", false,
		"derive each stored copy of a raw event without a provider time with its own receive time, without the first-time registry (faster; copies stored a duplicate window apart then differ in time)")
	c.registerAccessFlags(fs)
}

// registerAccessFlags declares how wahook logs in to its brokers (contract
// section 8). Prefer the WAHOOK_* variables for secrets: flags show in
// process listings.
func (c *Config) registerAccessFlags(fs *flag.FlagSet) {
	c.NATSAuth.RegisterFlags(fs, "NATS user; for the embedded server, its service user (generated and kept in the data dir when empty)")
	fs.StringVar(&c.NATSSubscribers, "nats-subscribers", "", "embedded NATS: read-only users, user:password pairs, comma-separated")
	fs.StringVar(&c.NATSSubscriberConsumers, "nats-subscriber-consumers", "",
		"durable pull consumers wahook keeps for subscribers, user:name:filter[:all|new] entries, comma-separated; each named sub-{user}-{name}")
	c.KafkaSecurity.RegisterFlags(fs)
}

// ConsumerNames are the durable consumers wahook's derived streams use with
// group prefix prefix: unpartitioned, and each of partitions when more than
// one.
func ConsumerNames(prefix string, partitions int) []string {
	var names []string
	for _, s := range derive.Streams {
		if n, err := natsbroker.ConsumerName(prefix+s, 0, 1); err == nil {
			names = append(names, n)
		}
		for i := 0; partitions > 1 && i < partitions; i++ {
			if n, err := natsbroker.ConsumerName(prefix+s, i, partitions); err == nil {
				names = append(names, n)
			}
		}
	}
	return names
}

// validateAccess checks the broker access settings.
func (c Config) validateAccess() error {
	if c.Broker != "nats" {
		if c.NATSSubscriberConsumers != "" {
			return errors.New("-nats-subscriber-consumers applies to NATS")
		}
		return nil
	}
	consumers, err := natsbroker.ParseSubscriberConsumers(c.NATSSubscriberConsumers)
	if err != nil {
		return err
	}
	for _, n := range c.ProtectedConsumers {
		if strings.HasPrefix(n, natsbroker.SubscriberConsumerPrefix) {
			return fmt.Errorf("durable consumer %s: wahook's consumer names must not start with %q, which names subscribers' consumers: change the group prefix",
				n, natsbroker.SubscriberConsumerPrefix)
		}
	}
	if c.NATSURL == "" {
		a := c.NATSAuth
		a.User, a.Password = "", ""
		if !a.IsZero() {
			return errors.New("token, creds, nkey and TLS settings apply to an external NATS (-nats-url); the embedded server takes -nats-user and -nats-password")
		}
		subs, err := natsbroker.ParseSubscribers(c.NATSSubscribers)
		if err != nil {
			return err
		}
		users := map[string]bool{}
		for _, s := range subs {
			users[s.User] = true
		}
		for _, sc := range consumers {
			if !users[sc.User] {
				return fmt.Errorf("subscriber consumer %s is for %q, who is not in -nats-subscribers", sc.Durable(), sc.User)
			}
		}
		return nil
	}
	if c.NATSSubscribers != "" {
		return errors.New("-nats-subscribers configures the embedded server; give an external server its users in its own configuration (deployments/nats)")
	}
	return c.NATSAuth.Validate()
}

// Validate checks c.
func (c Config) Validate() error {
	switch c.Broker {
	case "nats":
		if c.NATSURL == "" && c.DataDir == "" {
			return errors.New("the embedded NATS server needs a data dir")
		}
		if err := c.NATSStorage.validate(c.NATSURL == "", c.NATSReplicas, c.NATSDuplicateWindow); err != nil {
			return err
		}
	case "kafka":
		if len(c.kafkaBrokers()) == 0 {
			return errors.New("-broker kafka needs -kafka-brokers (WAHOOK_KAFKA_BROKERS)")
		}
		if c.KafkaMinInSyncReplicas < 0 || c.KafkaMinInSyncReplicas > max(c.KafkaReplication, 1) {
			return fmt.Errorf("kafka min in-sync replicas %d: want 0 (the broker's default) to the replication factor %d",
				c.KafkaMinInSyncReplicas, max(c.KafkaReplication, 1))
		}
		if err := checkKafkaChatsTTL(c.KafkaChatsTTL, c.kafkaTopics().IngressRetention); err != nil {
			return err
		}
	default:
		return fmt.Errorf("broker %q: want nats or kafka", c.Broker)
	}
	return c.validateAccess()
}

func (c Config) kafkaBrokers() []string {
	var out []string
	for _, b := range strings.Split(c.KafkaBrokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

func (c Config) kafkaTopics() kafkabroker.TopicsConfig {
	return kafkabroker.TopicsConfig{Partitions: c.KafkaPartitions, ReplicationFactor: c.KafkaReplication,
		MinInSyncReplicas: c.KafkaMinInSyncReplicas}
}

// Backbone is an open broker.
type Backbone struct {
	Publisher broker.Publisher
	Binding   envelope.Binding
	// Embedded is the in-process NATS server, when one was started.
	Embedded *natsbroker.Embedded

	cfg   Config
	log   *zap.Logger
	nats  *natsbroker.Broker
	kafka *kafkabroker.Broker
	// kafkaState is opened by State; the collector reads it on scrape.
	kafkaState atomic.Pointer[kafkastate.Store]
	kafkaTLS   *tls.Config
	kafkaSASL  sasl.Mechanism
	// stopKeep stops re-creating deleted subscriber consumers; kept is
	// closed once it has stopped.
	stopKeep context.CancelFunc
	kept     chan struct{}
}

// Open connects to (or starts) the configured broker and makes sure its
// streams or topics exist.
func Open(ctx context.Context, cfg Config, log *zap.Logger) (*Backbone, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	bb := &Backbone{cfg: cfg, log: log}
	if cfg.Broker == "kafka" {
		var err error
		if bb.kafkaTLS, err = cfg.KafkaSecurity.TLSConfig(); err != nil {
			return nil, err
		}
		if bb.kafkaSASL, err = cfg.KafkaSecurity.SASLMechanism(); err != nil {
			return nil, err
		}
		kb, err := kafkabroker.Connect(ctx, kafkabroker.Config{
			Brokers:  cfg.kafkaBrokers(),
			ClientID: cfg.ClientName,
			Topics:   cfg.kafkaTopics(),
			Logger:   log.Named("kafka"),
			TLS:      bb.kafkaTLS,
			SASL:     bb.kafkaSASL,
		})
		if err != nil {
			return nil, fmt.Errorf("kafka: %w", err)
		}
		bb.kafka, bb.Publisher, bb.Binding = kb, kb, envelope.Kafka
		log.Info("kafka connected", zap.Strings("brokers", cfg.kafkaBrokers()),
			zap.Bool("tls", bb.kafkaTLS != nil), zap.String("sasl", cfg.KafkaSecurity.Mechanism))
		return bb, nil
	}
	nc := natsbroker.Config{
		URL:     cfg.NATSURL,
		Auth:    cfg.NATSAuth,
		Name:    cfg.ClientName,
		Logger:  log,
		Streams: cfg.NATSStorage.streams(cfg.NATSReplicas, cfg.NATSDuplicateWindow),
	}
	nc.StorageHighWater = cfg.NATSStorage.HighWater
	if cfg.NATSURL == "" {
		emb, err := startEmbedded(ctx, cfg, log)
		if err != nil {
			return nil, err
		}
		bb.Embedded = emb
		nc.Embedded, nc.Auth = emb, natsbroker.Auth{}
	}
	b, err := natsbroker.Connect(ctx, nc)
	if err != nil {
		if bb.Embedded != nil {
			_ = bb.Embedded.Shutdown(ctx)
		}
		return nil, fmt.Errorf("nats: %w", err)
	}
	bb.nats, bb.Publisher, bb.Binding = b, b, envelope.NATS
	if err := bb.keepSubscriberConsumers(ctx); err != nil {
		_ = bb.Close(ctx)
		return nil, fmt.Errorf("nats: %w", err)
	}
	return bb, nil
}

// keepSubscriberConsumers creates the configured subscriber consumers and
// re-creates any that is deleted while the backbone is open.
func (bb *Backbone) keepSubscriberConsumers(ctx context.Context) error {
	consumers, err := natsbroker.ParseSubscriberConsumers(bb.cfg.NATSSubscriberConsumers)
	if err != nil || len(consumers) == 0 {
		return err
	}
	if err := bb.nats.EnsureSubscriberConsumers(ctx, consumers); err != nil {
		return err
	}
	every := bb.cfg.subscriberCheck
	if every == 0 {
		every = natsbroker.DefaultSubscriberConsumerCheck
	}
	keepCtx, stop := context.WithCancel(context.Background())
	bb.stopKeep, bb.kept = stop, make(chan struct{})
	go func() {
		defer close(bb.kept)
		bb.nats.KeepSubscriberConsumers(keepCtx, consumers, every)
	}()
	return nil
}

// Subscriber consumes from the broker.
func (bb *Backbone) Subscriber() broker.Subscriber {
	if bb.kafka != nil {
		return bb.kafka
	}
	return bb.nats
}

// State is the derived streams' durable state on the broker.
type State struct {
	Labels derive.LabelRegistry
	Chats  derive.ChatRegistry
	// Aliases ties contacts' LIDs to their phone-number ids, kept with
	// the chats.
	Aliases derive.AliasRegistry
	// Dedup remembers processed raw events where the broker does not drop
	// repeats itself (Kafka); nil on NATS, whose duplicate window does.
	Dedup consumer.Dedup
	// Times fixes the time of raw events stamped at receipt.
	Times derive.TimeRegistry
}

// State opens the derived streams' state, creating it when missing:
// JetStream key-value buckets, or compacted Kafka topics restored into
// memory.
func (bb *Backbone) State(ctx context.Context) (State, error) {
	if bb.kafka != nil {
		st := bb.kafkaState.Load()
		if st == nil {
			var err error
			st, err = kafkastate.Open(ctx, kafkastate.Config{
				Brokers:           bb.cfg.kafkaBrokers(),
				Partitions:        bb.cfg.KafkaPartitions,
				ReplicationFactor: bb.cfg.KafkaReplication,
				MinInSyncReplicas: bb.cfg.KafkaMinInSyncReplicas,
				DedupWindow:       bb.cfg.KafkaDedupWindow,
				TimesTTL:          bb.cfg.ReceivedTimeTTL,
				ChatsTTL:          bb.cfg.KafkaChatsTTL,
				Logger:            bb.log.Named("kafka-state"),
				TLS:               bb.kafkaTLS,
				SASL:              bb.kafkaSASL,
			})
			if err != nil {
				return State{}, fmt.Errorf("state: %w", err)
			}
			bb.kafkaState.Store(st)
		}
		return State{Labels: st.Labels(), Chats: st.Chats(), Aliases: st.Aliases(), Dedup: st.Dedup(), Times: bb.times(st.Times())}, nil
	}
	scfg := bb.natsStateConfig()
	st, err := natsstate.Open(ctx, bb.nats.JetStream(), scfg)
	if err != nil {
		return State{}, fmt.Errorf("state: %w", err)
	}
	return State{Labels: st.Labels(), Chats: st.Chats(), Aliases: st.Aliases(), Times: bb.times(st.Times())}, nil
}

// natsStateConfig is the state's configuration on NATS, for Open and
// OpenExisting alike.
func (bb *Backbone) natsStateConfig() natsstate.Config {
	scfg := bb.cfg.NATSStorage.state(bb.cfg.NATSReplicas)
	scfg.Logger = bb.log.Named("nats-state")
	scfg.TimesTTL = bb.cfg.ReceivedTimeTTL
	return scfg
}

// ErrNoReadState reports that the broker offers no read-only state: on
// Kafka the state is the compacted topics restored whole into memory and
// kept by tailing them, as heavy as the deriver's own.
var ErrNoReadState = errors.New("backbone: the state cannot be opened to read only on Kafka")

// ReadState opens the derived streams' state to read it in a process that
// derives nothing (an ingress's console): it creates nothing, and fails
// with natsstate.ErrNoState until a deriving process has created it. The
// registries must only be read; Times is nil.
func (bb *Backbone) ReadState(ctx context.Context) (State, error) {
	if bb.nats == nil {
		return State{}, ErrNoReadState
	}
	scfg := bb.natsStateConfig()
	st, err := natsstate.OpenExisting(ctx, bb.nats.JetStream(), scfg)
	if err != nil {
		return State{}, fmt.Errorf("state: %w", err)
	}
	return State{Labels: st.Labels(), Chats: st.Chats(), Aliases: st.Aliases()}, nil
}

// times is the first-time registry consumers use, none with
// ReceivedTimePerCopy: the registry's entries may stay behind, unused.
func (bb *Backbone) times(t derive.TimeRegistry) derive.TimeRegistry {
	if bb.cfg.ReceivedTimePerCopy {
		return nil
	}
	return t
}

// ConsumerDeps opens the state and returns what the derived-stream
// consumers of this process share.
func (bb *Backbone) ConsumerDeps(ctx context.Context, providers []provider.Provider, metrics *consumer.Metrics, log *zap.Logger) (consumer.Deps, error) {
	st, err := bb.State(ctx)
	if err != nil {
		return consumer.Deps{}, err
	}
	return consumer.Deps{
		Subscriber: bb.Subscriber(),
		Publisher:  bb.Publisher,
		Binding:    bb.Binding,
		Labels:     st.Labels,
		Chats:      st.Chats,
		Aliases:    st.Aliases,
		Dedup:      st.Dedup,
		Times:      st.Times,
		Providers:  providers,
		Metrics:    metrics,
		Logger:     log,
	}, nil
}

// Ready reports whether the broker is reachable and its streams exist.
func (bb *Backbone) Ready(ctx context.Context) error {
	if bb.kafka != nil {
		return bb.kafka.Ready(ctx)
	}
	return bb.nats.Ready(ctx)
}

// ConsumerGroups reports consumer groups that do not consume: on Kafka, a
// subscription out of its group or with a stalled partition for longer
// than the stall timeout (kafkabroker.Broker.GroupsErr); nil on NATS, whose
// consumers report stalls through their progress.
func (bb *Backbone) ConsumerGroups() error {
	if bb.kafka != nil {
		return bb.kafka.GroupsErr()
	}
	return nil
}

// Collector exports the broker's storage use (streams, state buckets,
// account, embedded server) as Prometheus metrics; on Kafka, the state
// held in memory, once State has opened it.
func (bb *Backbone) Collector() prometheus.Collector {
	if bb.kafka != nil {
		return collectors{kafkaStateCollector{&bb.kafkaState},
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Name:        "wahook_broker_dial_errors_total",
				Help:        "Connections to the Kafka brokers that could not be opened (kafka-go reconnects by dialing again).",
				ConstLabels: prometheus.Labels{"broker": "kafka"},
			}, func() float64 { return float64(bb.kafka.DialErrors()) })}
	}
	if bb.nats == nil {
		return nil
	}
	return collectors{bb.nats.StorageCollector("KV_"+natsstate.DefaultLabelsBucket, "KV_"+natsstate.DefaultChatsBucket,
		"KV_"+natsstate.DefaultTimesBucket, "KV_"+natsbroker.LeaseBucket),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "wahook_broker_reconnects_total",
			Help:        "Times the NATS connection was lost and opened again.",
			ConstLabels: prometheus.Labels{"broker": "nats"},
		}, func() float64 { return float64(bb.nats.Reconnects()) })}
}

// collectors is several collectors registered as one.
type collectors []prometheus.Collector

func (cs collectors) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range cs {
		c.Describe(ch)
	}
}

func (cs collectors) Collect(ch chan<- prometheus.Metric) {
	for _, c := range cs {
		c.Collect(ch)
	}
}

var descChatsHeld = prometheus.NewDesc("wahook_state_chats_held",
	"Known chats held in memory by the Kafka state, and those expired less than an hour ago until swept.", nil, nil)

// kafkaStateCollector exports what the Kafka state holds in memory: nothing
// before State opened it (an ingress never does).
type kafkaStateCollector struct {
	st *atomic.Pointer[kafkastate.Store]
}

func (c kafkaStateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- descChatsHeld }

func (c kafkaStateCollector) Collect(ch chan<- prometheus.Metric) {
	if st := c.st.Load(); st != nil {
		ch <- prometheus.MustNewConstMetric(descChatsHeld, prometheus.GaugeValue, float64(st.Chats().Held()))
	}
}

// Close drains the connections, then stops the embedded server, if any.
func (bb *Backbone) Close(ctx context.Context) error {
	var errs []error
	if bb.stopKeep != nil {
		bb.stopKeep()
		<-bb.kept
	}
	if st := bb.kafkaState.Load(); st != nil {
		if err := st.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close kafka state: %w", err))
		}
	}
	if bb.kafka != nil {
		if err := bb.kafka.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close kafka: %w", err))
		}
	}
	if bb.nats != nil {
		if err := bb.nats.Close(ctx); err != nil {
			errs = append(errs, fmt.Errorf("close nats: %w", err))
		}
	}
	if bb.Embedded != nil {
		if err := bb.Embedded.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop embedded nats: %w", err))
		}
	}
	return errors.Join(errs...)
}

// startEmbedded starts the embedded NATS server with its users and writes a
// nats CLI context for its service user into the data dir, logging how to
// use it (never the password).
func startEmbedded(ctx context.Context, cfg Config, log *zap.Logger) (*natsbroker.Embedded, error) {
	subs, err := natsbroker.ParseSubscribers(cfg.NATSSubscribers)
	if err != nil {
		return nil, err
	}
	consumers, err := natsbroker.ParseSubscriberConsumers(cfg.NATSSubscriberConsumers)
	if err != nil {
		return nil, err
	}
	emb, err := natsbroker.StartEmbedded(ctx, natsbroker.EmbeddedConfig{
		Addr:                cfg.NATSEmbeddedAddr,
		StoreDir:            cfg.DataDir,
		SyncAlways:          cfg.NATSSyncAlways,
		ServerName:          "wahook-embedded",
		Logger:              log.Named("nats-server"),
		User:                cfg.NATSAuth.User,
		Password:            cfg.NATSAuth.Password,
		Subscribers:         subs,
		SubscriberConsumers: consumers,
		Storage:             cfg.NATSStorage.embedded(),
	})
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	cmd, err := emb.WriteContext(filepath.Join(cfg.DataDir, natsbroker.ContextFile))
	if err != nil {
		_ = emb.Shutdown(ctx)
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	names := make([]string, len(subs))
	for i, s := range subs {
		names[i] = s.User
	}
	durables := make([]string, len(consumers))
	for i, c := range consumers {
		durables[i] = c.Stream() + "/" + c.Durable()
	}
	log.Info("embedded NATS server started; clients must log in",
		zap.String("client_url", emb.ClientURL()), zap.String("data_dir", cfg.DataDir),
		zap.String("service_user", emb.ServiceAuth().User), zap.Strings("subscribers", names),
		zap.Strings("subscriber_consumers", durables), zap.String("connect", cmd+" sub 'wahook.>'"))
	return emb, nil
}

// EventLog reads the broker's streams (raw, derived, dead letters) as a
// read-only subscriber would, for the console; on NATS over the backbone's
// connection.
func (bb *Backbone) EventLog() (*eventlog.Log, error) {
	if bb.kafka != nil {
		return eventlog.NewKafka(bb.cfg.kafkaBrokers(), bb.cfg.KafkaSecurity, eventlog.WithClientID(bb.cfg.ClientName+"-eventlog"))
	}
	return eventlog.NewNATS(bb.nats.Conn())
}
