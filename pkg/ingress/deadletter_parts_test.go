package ingress_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/ingress"
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/whapi"
)

// TestRejectedBodyOverBrokerLimit: a bad delivery far larger than the
// broker's max_payload is dead-lettered in parts and answered 400, not 503
// for ever.
func TestRejectedBodyOverBrokerLimit(t *testing.T) {
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(),
		MaxPayload: 16 << 10, NoSigs: true, NoLog: true,
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
	h, err := ingress.New(ingress.Config{
		Providers:    []provider.Provider{whapi.New()},
		AuthDisabled: true,
		Publisher:    b,
		Binding:      envelope.NATS,
		Ready:        b.Ready,
		Metrics:      ingress.NewMetrics(prometheus.NewRegistry()),
	}, nil)
	if err != nil {
		t.Fatalf("ingress.New: %v", err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)

	body := bytes.Repeat([]byte("<not json> & "), 8000)
	resp, err := http.Post(hs.URL+"/v1/webhooks/whapi?channel=CH", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("POST of a bad %d-byte body = %d, want 400 with the body dead-lettered", len(body), resp.StatusCode)
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
		raw, err := envelope.DeadLetterBody(id, d, msgs, envelope.NATS)
		if err != nil {
			t.Fatalf("DeadLetterBody: %v", err)
		}
		if d.BodyParts == nil || !bytes.Equal(raw, body) {
			t.Errorf("dead letter body_parts %+v, body of %d bytes; want parts holding the %d bytes sent", d.BodyParts, len(raw), len(body))
		}
		return
	}
}
