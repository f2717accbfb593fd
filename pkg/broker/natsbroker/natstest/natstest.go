// Package natstest starts wahook's embedded NATS server and brokers on it
// for the tests of other packages: a real nats-server in the test process,
// on a random loopback port, stopped when the test ends.
package natstest

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/envelope"
)

// setupTimeout bounds starting, connecting and stopping on a loaded
// machine.
const setupTimeout = 30 * time.Second

// Start runs an embedded server as cfg says, on 127.0.0.1 with a random
// port and a store in a test directory unless cfg sets them, and shuts it
// down when the test ends (Shutdown may be called before).
func Start(tb testing.TB, cfg natsbroker.EmbeddedConfig) *natsbroker.Embedded {
	tb.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:-1"
	}
	if cfg.StoreDir == "" {
		cfg.StoreDir = tb.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	e, err := natsbroker.StartEmbedded(ctx, cfg)
	if err != nil {
		tb.Fatalf("natstest: StartEmbedded: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		_ = e.Shutdown(ctx)
	})
	return e
}

// Connect connects a broker to e as its service user, with the rest of
// cfg, and closes it when the test ends (before e shuts down).
func Connect(tb testing.TB, e *natsbroker.Embedded, cfg natsbroker.Config) *natsbroker.Broker {
	tb.Helper()
	cfg.Embedded = e
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	b, err := natsbroker.Connect(ctx, cfg)
	if err != nil {
		tb.Fatalf("natstest: Connect: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
		defer cancel()
		_ = b.Close(ctx)
	})
	return b
}

// Broker starts a server with the defaults and connects a broker with cfg.
func Broker(tb testing.TB, cfg natsbroker.Config) *natsbroker.Broker {
	tb.Helper()
	return Connect(tb, Start(tb, natsbroker.EmbeddedConfig{}), cfg)
}

// Small runs a plain nats-server with JetStream, no login and the given
// max_payload (the embedded server fixes its own), and connects a broker
// to it; both stop when the test ends.
func Small(tb testing.TB, maxPayload int32) *natsbroker.Broker {
	tb.Helper()
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: tb.TempDir(),
		MaxPayload: maxPayload, NoSigs: true, NoLog: true,
	})
	if err != nil {
		tb.Fatalf("natstest: server.NewServer: %v", err)
	}
	srv.Start()
	tb.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	if !srv.ReadyForConnections(setupTimeout) {
		tb.Fatal("natstest: nats-server not ready")
	}
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	b, err := natsbroker.Connect(ctx, natsbroker.Config{URL: srv.ClientURL()})
	if err != nil {
		tb.Fatalf("natstest: Connect: %v", err)
	}
	tb.Cleanup(func() { _ = b.Close(context.Background()) })
	return b
}

// FirstDeadLetter reads the dead-letter stream from its start up to the
// first record and returns it with its body, reassembled from the parts
// stored before it.
func FirstDeadLetter(tb testing.TB, b *natsbroker.Broker) (envelope.DeadLetter, []byte) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), setupTimeout)
	defer cancel()
	s, err := b.JetStream().Stream(ctx, natsbroker.DeadLetterStream)
	if err != nil {
		tb.Fatalf("natstest: dead-letter stream: %v", err)
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		tb.Fatalf("natstest: OrderedConsumer: %v", err)
	}
	var msgs []broker.Message
	for {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			tb.Fatalf("natstest: reading the dead-letter stream after %d messages: %v", len(msgs), err)
		}
		bm := broker.Message{Header: broker.Header(m.Headers()), Data: m.Data()}
		msgs = append(msgs, bm)
		id, d, err := envelope.DecodeDeadLetter(bm, envelope.NATS)
		if err != nil {
			continue // a part
		}
		body, err := envelope.DeadLetterBody(id, d, msgs, envelope.NATS)
		if err != nil {
			tb.Fatalf("natstest: DeadLetterBody: %v", err)
		}
		return d, body
	}
}
