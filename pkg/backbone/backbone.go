// Package backbone opens the event broker a wahook service runs on, as
// configured: NATS JetStream (an external server, or one embedded in the
// process when no URL is given) or Kafka. Services get a publisher, a
// subscriber, the matching CloudEvents binding, the derived streams' state
// and a readiness check, and never see a client library.
package backbone

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/kafkabroker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/consumer"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/envelope"
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
	// KafkaBrokers are the Kafka bootstrap brokers, comma-separated.
	KafkaBrokers string
	// KafkaPartitions and KafkaReplication size the topics created at start.
	KafkaPartitions, KafkaReplication int
	// KafkaDedupWindow bounds how long consumers remember raw event ids.
	KafkaDedupWindow time.Duration
	// ReceivedTimeTTL is how long consumers keep the time of raw events
	// stamped at receipt, so that later copies derive the same events.
	ReceivedTimeTTL time.Duration
	// ClientName names the connection on the server.
	ClientName string
}

// RegisterFlags declares the backbone's flags on fs; with ff they are also
// read from WAHOOK_* environment variables.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Broker, "broker", "nats", "event broker: nats or kafka")
	fs.StringVar(&c.NATSURL, "nats-url", "", "NATS server URL(s), comma-separated; empty starts an embedded NATS server with JetStream")
	fs.StringVar(&c.NATSEmbeddedAddr, "nats-embedded-addr", "127.0.0.1:4222", "where the embedded NATS server accepts clients")
	fs.StringVar(&c.DataDir, "data-dir", "./data", "embedded JetStream storage and local state")
	fs.BoolVar(&c.NATSSyncAlways, "nats-sync-always", false, "embedded server: fsync every write (survives power loss, about 6x slower)")
	fs.DurationVar(&c.NATSDuplicateWindow, "nats-duplicate-window", 10*time.Minute, "JetStream duplicate window: retries within it are dropped by event id")
	fs.IntVar(&c.NATSReplicas, "nats-replicas", 1, "JetStream stream replicas")
	fs.StringVar(&c.KafkaBrokers, "kafka-brokers", "", "Kafka bootstrap brokers, comma-separated (required with -broker kafka)")
	fs.IntVar(&c.KafkaPartitions, "kafka-partitions", 6, "partitions of the topics created at start")
	fs.IntVar(&c.KafkaReplication, "kafka-replication", 1, "replication factor of the topics created at start")
	fs.DurationVar(&c.KafkaDedupWindow, "kafka-dedup-window", 24*time.Hour, "how long consumers remember raw event ids to drop repeats (Kafka has no duplicate window)")
	fs.DurationVar(&c.ReceivedTimeTTL, "received-time-ttl", 7*24*time.Hour, "how long consumers keep the first time of raw events without a provider time, so that a provider's later retry derives the same events")
}

// Validate checks c.
func (c Config) Validate() error {
	switch c.Broker {
	case "nats":
		if c.NATSURL == "" && c.DataDir == "" {
			return errors.New("the embedded NATS server needs a data dir")
		}
	case "kafka":
		if len(c.kafkaBrokers()) == 0 {
			return errors.New("-broker kafka needs -kafka-brokers (WAHOOK_KAFKA_BROKERS)")
		}
	default:
		return fmt.Errorf("broker %q: want nats or kafka", c.Broker)
	}
	return nil
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

// Backbone is an open broker.
type Backbone struct {
	Publisher broker.Publisher
	Binding   envelope.Binding
	// Embedded is the in-process NATS server, when one was started.
	Embedded *natsbroker.Embedded

	cfg        Config
	log        *zap.Logger
	nats       *natsbroker.Broker
	kafka      *kafkabroker.Broker
	kafkaState *kafkastate.Store
}

// Open connects to (or starts) the configured broker and makes sure its
// streams or topics exist.
func Open(ctx context.Context, cfg Config, log *zap.Logger) (*Backbone, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	bb := &Backbone{cfg: cfg, log: log}
	if cfg.Broker == "kafka" {
		kb, err := kafkabroker.Connect(ctx, kafkabroker.Config{
			Brokers:  cfg.kafkaBrokers(),
			ClientID: cfg.ClientName,
			Topics:   kafkabroker.TopicsConfig{Partitions: cfg.KafkaPartitions, ReplicationFactor: cfg.KafkaReplication},
			Logger:   log.Named("kafka"),
		})
		if err != nil {
			return nil, fmt.Errorf("kafka: %w", err)
		}
		bb.kafka, bb.Publisher, bb.Binding = kb, kb, envelope.Kafka
		log.Info("kafka connected", zap.Strings("brokers", cfg.kafkaBrokers()))
		return bb, nil
	}
	nc := natsbroker.Config{
		URL:    cfg.NATSURL,
		Name:   cfg.ClientName,
		Logger: log,
		Streams: natsbroker.StreamsConfig{
			Replicas:   cfg.NATSReplicas,
			Duplicates: cfg.NATSDuplicateWindow,
		},
	}
	if cfg.NATSURL == "" {
		emb, err := natsbroker.StartEmbedded(ctx, natsbroker.EmbeddedConfig{
			Addr:       cfg.NATSEmbeddedAddr,
			StoreDir:   cfg.DataDir,
			SyncAlways: cfg.NATSSyncAlways,
			ServerName: "wahook-embedded",
			Logger:     log.Named("nats-server"),
		})
		if err != nil {
			return nil, fmt.Errorf("embedded nats: %w", err)
		}
		bb.Embedded = emb
		nc.Embedded = emb
		log.Info("embedded NATS server started", zap.String("client_url", emb.ClientURL()), zap.String("data_dir", cfg.DataDir))
	}
	b, err := natsbroker.Connect(ctx, nc)
	if err != nil {
		if bb.Embedded != nil {
			_ = bb.Embedded.Shutdown(ctx)
		}
		return nil, fmt.Errorf("nats: %w", err)
	}
	bb.nats, bb.Publisher, bb.Binding = b, b, envelope.NATS
	return bb, nil
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
		if bb.kafkaState == nil {
			st, err := kafkastate.Open(ctx, kafkastate.Config{
				Brokers:           bb.cfg.kafkaBrokers(),
				Partitions:        bb.cfg.KafkaPartitions,
				ReplicationFactor: bb.cfg.KafkaReplication,
				DedupWindow:       bb.cfg.KafkaDedupWindow,
				TimesTTL:          bb.cfg.ReceivedTimeTTL,
				Logger:            bb.log.Named("kafka-state"),
			})
			if err != nil {
				return State{}, fmt.Errorf("state: %w", err)
			}
			bb.kafkaState = st
		}
		return State{Labels: bb.kafkaState.Labels(), Chats: bb.kafkaState.Chats(), Dedup: bb.kafkaState.Dedup(), Times: bb.kafkaState.Times()}, nil
	}
	st, err := natsstate.Open(ctx, bb.nats.JetStream(), natsstate.Config{Replicas: bb.cfg.NATSReplicas, TimesTTL: bb.cfg.ReceivedTimeTTL})
	if err != nil {
		return State{}, fmt.Errorf("state: %w", err)
	}
	return State{Labels: st.Labels(), Chats: st.Chats(), Times: st.Times()}, nil
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

// Close drains the connections, then stops the embedded server, if any.
func (bb *Backbone) Close(ctx context.Context) error {
	var errs []error
	if bb.kafkaState != nil {
		if err := bb.kafkaState.Close(ctx); err != nil {
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
