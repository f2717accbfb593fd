package consumer_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/natsbroker/natstest"
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
	b := natstest.Small(t, maxPayload)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
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

	d, body := natstest.FirstDeadLetter(t, b)
	if d.BodyParts == nil || d.SourceEventID != "big-bad" || !bytes.Equal(body, data) {
		t.Errorf("dead letter %+v with a body of %d bytes, want the raw event's %d in parts", d, len(body), len(data))
	}
}
