package natsstate_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/state/natsstate"
)

// testCtx bounds one step of a test.
func testCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// startServer runs an embedded server with its store in dir, shut down when
// the test ends (if the test did not stop it before).
func startServer(t testing.TB, dir string) *natsbroker.Embedded {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Tests open many bucket pairs on one server, each reserving its byte
	// limits: a store limit far above the default leaves room for all.
	e, err := natsbroker.StartEmbedded(ctx, natsbroker.EmbeddedConfig{Addr: "127.0.0.1:-1", StoreDir: dir,
		Storage: natsbroker.EmbeddedStorageConfig{MaxStore: 1 << 40}})
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(func() { stopServer(t, e) })
	return e
}

func stopServer(t testing.TB, e *natsbroker.Embedded) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// connect connects a broker, closed when the test ends.
func connect(t testing.TB, cfg natsbroker.Config) *natsbroker.Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := natsbroker.Connect(ctx, cfg)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { closeBroker(t, b) })
	return b
}

func closeBroker(t testing.TB, b *natsbroker.Broker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func open(t testing.TB, js jetstream.JetStream, cfg natsstate.Config) *natsstate.Store {
	t.Helper()
	s, err := natsstate.Open(testCtx(t), js, cfg)
	if err != nil {
		t.Fatalf("Open(%+v): %v", cfg, err)
	}
	return s
}

// newStore starts a server and opens a store on it over an in-process
// connection.
func newStore(t testing.TB) (*natsbroker.Broker, *natsstate.Store) {
	t.Helper()
	e := startServer(t, t.TempDir())
	b := connect(t, natsbroker.Config{Embedded: e})
	return b, open(t, b.JetStream(), natsstate.Config{})
}

// twoStores opens two stores on one server as two processes would: one over
// an in-process connection, one over TCP. The second has no chat cache, so
// that every FirstSeen of it reaches the bucket. js is the first one's
// JetStream, to read the buckets.
func twoStores(t testing.TB) (s1, s2 *natsstate.Store, js jetstream.JetStream) {
	t.Helper()
	e := startServer(t, t.TempDir())
	b1 := connect(t, natsbroker.Config{Embedded: e})
	b2 := connect(t, natsbroker.Config{URL: e.ClientURL(), Auth: e.ServiceAuth()})
	return open(t, b1.JetStream(), natsstate.Config{}), open(t, b2.JetStream(), natsstate.Config{ChatCacheSize: -1}), b1.JetStream()
}

// storedLabel reads a label's value from the default bucket.
func storedLabel(t testing.TB, js jetstream.JetStream, key string) map[string]any {
	t.Helper()
	ctx := testCtx(t)
	kv, err := js.KeyValue(ctx, natsstate.DefaultLabelsBucket)
	if err != nil {
		t.Fatalf("KeyValue: %v", err)
	}
	e, err := kv.Get(ctx, key)
	if err != nil {
		t.Fatalf("Get(%s): %v", key, err)
	}
	var v map[string]any
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		t.Fatalf("value of %s: %v", key, err)
	}
	return v
}

var bucketSeq atomic.Int64

// freshConfig names buckets no other store of the server uses.
func freshConfig() natsstate.Config {
	n := bucketSeq.Add(1)
	return natsstate.Config{
		LabelsBucket: fmt.Sprintf("LABELS_%d", n),
		ChatsBucket:  fmt.Sprintf("CHATS_%d", n),
		TimesBucket:  fmt.Sprintf("TIMES_%d", n),
	}
}
