package natsbroker

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/wahook/wahook/pkg/broker"
)

// startServer runs an embedded server on a random loopback port with its
// store in dir, shut down when the test ends.
func startServer(t testing.TB, dir string) *Embedded {
	t.Helper()
	return startServerAt(t, dir, "127.0.0.1:-1")
}

func startServerAt(t testing.TB, dir, addr string) *Embedded {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := StartEmbedded(ctx, EmbeddedConfig{Addr: addr, StoreDir: dir})
	if err != nil {
		t.Fatalf("StartEmbedded(%s): %v", addr, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return e
}

// connect connects a broker that is closed when the test ends.
func connect(t testing.TB, cfg Config) *Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := Connect(ctx, cfg)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

// newEmbeddedBroker starts a server and connects a broker in-process.
func newEmbeddedBroker(t testing.TB) (*Embedded, *Broker) {
	t.Helper()
	e := startServer(t, t.TempDir())
	return e, connect(t, Config{Embedded: e})
}

// ingressMsg builds a raw event the way package envelope does for NATS:
// binary-mode ce-* headers, content-type, Nats-Msg-Id from ID.
func ingressMsg(channel string, i int, data []byte) broker.Message {
	id := fmt.Sprintf("evt-%s-%05d", channel, i)
	subject := "wahook.ingress.whapi." + channel + ".messages.post"
	return broker.Message{
		Topic:   "wahook.ingress",
		Subject: subject,
		Key:     "whapi/" + channel,
		ID:      id,
		Header: broker.Header{
			"ce-specversion":  {"1.0"},
			"ce-id":           {id},
			"ce-source":       {"/whapi/" + channel},
			"ce-type":         {"io.wahook.ingress.whapi.messages.post"},
			"ce-subject":      {"4915112345678@s.whatsapp.net"},
			"ce-time":         {"2026-01-02T03:04:05.678Z"},
			"ce-provider":     {"whapi"},
			"ce-channel":      {channel},
			"ce-partitionkey": {"whapi/" + channel + "/4915112345678@s.whatsapp.net"},
			"ce-note":         {"caf%C3%A9%20au%20lait"}, // percent-encoded value survives as is
			"content-type":    {"application/json"},
		},
		Data: data,
	}
}

func jsonBody(i int) []byte {
	return fmt.Appendf(nil, `{"id":"m%d","text":{"body":"%s"}}`, i, strings.Repeat("x", i%64))
}

// streamMsgs reads every message of a stream in order with an ordered
// consumer, as a replaying consumer would.
func streamMsgs(t testing.TB, js jetstream.JetStream, stream string) []jetstream.Msg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("Stream(%s): %v", stream, err)
	}
	want := int(s.CachedInfo().State.Msgs)
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("OrderedConsumer(%s): %v", stream, err)
	}
	var got []jetstream.Msg
	for len(got) < want {
		batch, err := cons.Fetch(min(want-len(got), 1000), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatalf("Fetch(%s): %v", stream, err)
		}
		n := len(got)
		for m := range batch.Messages() {
			got = append(got, m)
		}
		if err := batch.Error(); err != nil {
			t.Fatalf("Fetch(%s) batch: %v", stream, err)
		}
		if len(got) == n {
			t.Fatalf("Fetch(%s): no progress after %d of %d messages", stream, n, want)
		}
	}
	return got
}

func streamCount(t testing.TB, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("Stream(%s): %v", stream, err)
	}
	return s.CachedInfo().State.Msgs
}
