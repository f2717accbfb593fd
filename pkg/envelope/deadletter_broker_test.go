package envelope_test

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/kafkabroker"
	"github.com/wahook/wahook/pkg/broker/natsbroker/natstest"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/schemas"
)

// smallLimit is the brokers' message limit in these tests, far below the
// dead letter's body.
const smallLimit = 16 << 10

type dlBroker interface {
	broker.Publisher
	broker.Subscriber
	broker.Limits
}

// TestDeadLetterRoundTrip publishes a dead letter whose body is several
// times the broker's limit, twice (a retry), on NATS with a small
// max_payload and on Kafka with a small max.message.bytes, and reads it
// back through Subscribe: when the record arrives its parts have, and the
// body is reassembled exactly.
func TestDeadLetterRoundTrip(t *testing.T) {
	for name, tc := range map[string]struct {
		connect func(t *testing.T) dlBroker
		binding envelope.Binding
		// records stored by the two publishes: NATS drops the repeat by
		// id, Kafka keeps both.
		records int
	}{
		"nats":  {connect: connectSmallNATS, binding: envelope.NATS, records: 1},
		"kafka": {connect: connectSmallKafka, binding: envelope.Kafka, records: 2},
	} {
		t.Run(name, func(t *testing.T) {
			b := tc.connect(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()

			body := bytes.Repeat([]byte("<p>ação & \x01\xff</p>"), 6000)
			d := envelope.DeadLetter{
				Reason: "invalid payload: not JSON", Provider: "zapi", Channel: "3C0F",
				ReceivedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Method: "POST", Path: "/v1/webhooks/zapi",
			}
			d.SetBody(body)

			whole, err := envelope.DeadLetterMessage(d, tc.binding)
			if err != nil {
				t.Fatalf("DeadLetterMessage: %v", err)
			}
			if err := b.Publish(ctx, whole); !errors.Is(err, broker.ErrTooLarge) {
				t.Fatalf("Publish(the dead letter in one record) = %v, want ErrTooLarge", err)
			}

			msgs, err := envelope.DeadLetterMessages(d, tc.binding, broker.MaxMessageBytes(b))
			if err != nil {
				t.Fatalf("DeadLetterMessages: %v", err)
			}
			if len(msgs) < 3 {
				t.Fatalf("DeadLetterMessages = %d messages, want parts and a record", len(msgs))
			}
			for range 2 {
				if err := envelope.PublishDeadLetter(ctx, b.Publish, msgs); err != nil {
					t.Fatalf("PublishDeadLetter: %v", err)
				}
			}

			var (
				mu       sync.Mutex
				seen     []broker.Message
				bodies   [][]byte
				failures []error
			)
			handled := make(chan struct{}, 4)
			sctx, stop := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- b.Subscribe(sctx, broker.Subscription{Topic: envelope.DeadLetterTopic, Group: "dl-roundtrip"},
					func(_ context.Context, m broker.Received) error {
						mu.Lock()
						defer mu.Unlock()
						seen = append(seen, m.Message)
						id, rec, err := envelope.DecodeDeadLetter(m.Message, tc.binding)
						if err != nil {
							return nil // a part
						}
						if err := schemas.Validate(envelope.DeadLetterSchema, m.Data); err != nil {
							failures = append(failures, err)
						}
						raw, err := envelope.DeadLetterBody(id, rec, seen, tc.binding)
						if err != nil {
							failures = append(failures, err)
						}
						bodies = append(bodies, raw)
						handled <- struct{}{}
						return nil
					})
			}()
			for range tc.records {
				select {
				case <-handled:
				case <-ctx.Done():
					t.Fatalf("records not received: %v", ctx.Err())
				}
			}
			stop()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("Subscribe = %v, want context.Canceled", err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, err := range failures {
				t.Errorf("record received before its parts could be read: %v", err)
			}
			for _, raw := range bodies {
				if !bytes.Equal(raw, body) {
					t.Errorf("reassembled body of %d bytes differs from the %d published", len(raw), len(body))
				}
			}
		})
	}
}

func connectSmallNATS(t *testing.T) dlBroker {
	t.Helper()
	b := natstest.Small(t, smallLimit)
	if got := b.MaxMessageBytes(); got != smallLimit {
		t.Fatalf("MaxMessageBytes() = %d, want %d", got, smallLimit)
	}
	return b
}

func connectSmallKafka(t *testing.T) dlBroker {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(2))
	if err != nil {
		t.Fatalf("kfake.NewCluster: %v", err)
	}
	t.Cleanup(c.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	b, err := kafkabroker.Connect(ctx, kafkabroker.Config{
		Brokers: c.ListenAddrs(),
		Topics:  kafkabroker.TopicsConfig{Partitions: 2, MaxMessageBytes: smallLimit},
	})
	if err != nil {
		t.Fatalf("kafkabroker.Connect: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = b.Close(ctx)
	})
	return b
}
