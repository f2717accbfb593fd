// Package natstest starts wahook's embedded NATS server and brokers on it
// for the tests of other packages: a real nats-server in the test process,
// on a random loopback port, stopped when the test ends.
package natstest

import (
	"context"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/broker/natsbroker"
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
