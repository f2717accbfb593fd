package consumer_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/consumer"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/whapi"
)

type noDeriver struct{}

func (noDeriver) Stream() string { return "label-changed" }
func (noDeriver) Derive(context.Context, derive.Raw, fact.Facts) ([]derive.Event, error) {
	return nil, nil
}

// TestDeadLetterOverBrokerLimit: a raw event its provider cannot read,
// whose dead-letter record (the data in base64) would exceed the broker's
// max_payload, is dead-lettered in parts and terminated, not retried for
// ever.
func TestDeadLetterOverBrokerLimit(t *testing.T) {
	const maxPayload = 16 << 10
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(),
		MaxPayload: maxPayload, NoSigs: true, NoLog: true,
	})
	if err != nil {
		t.Fatalf("server.NewServer: %v", err)
	}
	srv.Start()
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := natsbroker.Connect(ctx, natsbroker.Config{URL: srv.ClientURL()})
	if err != nil {
		t.Fatalf("natsbroker.Connect: %v", err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	c, err := consumer.New(consumer.Config{
		Deriver: noDeriver{}, Providers: []provider.Provider{whapi.New()},
		Subscriber: b, Publisher: b, Binding: envelope.NATS,
		Metrics: consumer.NewMetrics(prometheus.NewRegistry()),
	})
	if err != nil {
		t.Fatalf("consumer.New: %v", err)
	}

	data := bytes.Repeat([]byte{0xff, 0xfe, '<'}, 4500) // not UTF-8: base64 in the record
	raw := envelope.Ingress(envelope.Raw{ID: "big-bad", Provider: "whapi", Channel: "CH", Kind: "labels.post",
		Time: time.Now(), Data: data}, envelope.NATS)
	if err := b.Publish(ctx, raw); err != nil {
		t.Fatalf("Publish(raw event): %v", err)
	}
	if err := c.Handle(ctx, broker.Received{Message: raw, Attempt: 1}); !broker.IsPermanent(err) {
		t.Fatalf("Handle = %v, want a permanent error: dead-lettered", err)
	}

	s, err := b.JetStream().Stream(ctx, natsbroker.DeadLetterStream)
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("OrderedConsumer: %v", err)
	}
	var msgs []broker.Message
	for {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("reading the dead-letter stream after %d messages: %v", len(msgs), err)
		}
		bm := broker.Message{Header: broker.Header(m.Headers()), Data: m.Data()}
		msgs = append(msgs, bm)
		id, d, err := envelope.DecodeDeadLetter(bm, envelope.NATS)
		if err != nil {
			continue // a part
		}
		body, err := envelope.DeadLetterBody(id, d, msgs, envelope.NATS)
		if err != nil {
			t.Fatalf("DeadLetterBody: %v", err)
		}
		if d.BodyParts == nil || d.SourceEventID != "big-bad" || !bytes.Equal(body, data) {
			t.Errorf("dead letter %+v with a body of %d bytes, want the raw event's %d in parts", d, len(body), len(data))
		}
		return
	}
}
