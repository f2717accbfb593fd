// Package backbone opens the event broker a wahook service runs on, as
// configured: an external NATS JetStream server, or one embedded in the
// process when no URL is given. Services get a broker.Publisher, the
// matching CloudEvents binding and a readiness check, and never see the
// client library.
package backbone

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/state/natsstate"
)

// Config selects and configures the broker.
type Config struct {
	// Broker is "nats".
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
	// ClientName names the connection on the server.
	ClientName string
}

// RegisterFlags declares the backbone's flags on fs; with ff they are also
// read from WAHOOK_* environment variables.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Broker, "broker", "nats", "event broker: nats")
	fs.StringVar(&c.NATSURL, "nats-url", "", "NATS server URL(s), comma-separated; empty starts an embedded NATS server with JetStream")
	fs.StringVar(&c.NATSEmbeddedAddr, "nats-embedded-addr", "127.0.0.1:4222", "where the embedded NATS server accepts clients")
	fs.StringVar(&c.DataDir, "data-dir", "./data", "embedded JetStream storage and local state")
	fs.BoolVar(&c.NATSSyncAlways, "nats-sync-always", false, "embedded server: fsync every write (survives power loss, about 6x slower)")
	fs.DurationVar(&c.NATSDuplicateWindow, "nats-duplicate-window", 10*time.Minute, "JetStream duplicate window: retries within it are dropped by event id")
	fs.IntVar(&c.NATSReplicas, "nats-replicas", 1, "JetStream stream replicas")
}

// Validate checks c.
func (c Config) Validate() error {
	switch c.Broker {
	case "nats":
	default:
		return fmt.Errorf("broker %q: want nats", c.Broker)
	}
	if c.NATSURL == "" && c.DataDir == "" {
		return errors.New("the embedded NATS server needs a data dir")
	}
	return nil
}

// Backbone is an open broker.
type Backbone struct {
	Publisher broker.Publisher
	Binding   envelope.Binding
	// NATS is the JetStream broker (nil on other brokers).
	NATS *natsbroker.Broker
	// Embedded is the in-process server, when one was started.
	Embedded *natsbroker.Embedded
	log      *zap.Logger
	replicas int
}

// Open connects to (or starts) the configured broker and makes sure its
// streams exist.
func Open(ctx context.Context, cfg Config, log *zap.Logger) (*Backbone, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	bb := &Backbone{Binding: envelope.NATS, log: log, replicas: cfg.NATSReplicas}
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
	bb.NATS = b
	bb.Publisher = b
	return bb, nil
}

// Subscriber consumes from the broker.
func (bb *Backbone) Subscriber() broker.Subscriber { return bb.NATS }

// State opens the derived streams' durable state on the broker (JetStream
// key-value buckets), creating it when missing.
func (bb *Backbone) State(ctx context.Context) (derive.LabelRegistry, derive.ChatRegistry, error) {
	st, err := natsstate.Open(ctx, bb.NATS.JetStream(), natsstate.Config{Replicas: bb.replicas})
	if err != nil {
		return nil, nil, fmt.Errorf("state: %w", err)
	}
	return st.Labels(), st.Chats(), nil
}

// Ready reports whether the broker is reachable and its streams exist.
func (bb *Backbone) Ready(ctx context.Context) error { return bb.NATS.Ready(ctx) }

// Close drains the connection, then stops the embedded server, if any.
func (bb *Backbone) Close(ctx context.Context) error {
	var errs []error
	if bb.NATS != nil {
		if err := bb.NATS.Close(ctx); err != nil {
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
