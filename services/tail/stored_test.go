package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/eventlog"
	"github.com/wahook/wahook/pkg/eventlog/eventlogtest"
)

// storedEvents are the sample events and ten more of one channel.
func storedEvents(t *testing.T, b envelope.Binding) []broker.Message {
	t.Helper()
	msgs := eventlogtest.Sample(t, b)
	for i := range 10 {
		msgs = append(msgs, envelope.Ingress(envelope.Raw{ID: fmt.Sprintf("bulk-%d", i), Provider: "whapi", Channel: "BULK", Kind: "messages.post",
			Chat: chatA, Time: time.Now(), Data: []byte(`{"id":"x"}`)}, b))
	}
	return msgs
}

// TestStored: -stored prints every stored event once and stops on its
// own, on NATS and on Kafka; its pages go on from one another's end and
// stop at their bound.
func TestStored(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for name, start := range map[string]func(t *testing.T) ([]string, eventlog.Option){
		"nats": func(t *testing.T) ([]string, eventlog.Option) {
			dir := t.TempDir()
			emb, err := natsbroker.StartEmbedded(ctx, natsbroker.EmbeddedConfig{Addr: "127.0.0.1:-1", StoreDir: dir})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { emb.Shutdown(context.Background()) })
			if _, err := emb.WriteContext(filepath.Join(dir, natsbroker.ContextFile)); err != nil {
				t.Fatal(err)
			}
			b, err := natsbroker.Connect(ctx, natsbroker.Config{Embedded: emb})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close(context.Background()) })
			if err := b.Publish(ctx, storedEvents(t, envelope.NATS)...); err != nil {
				t.Fatal(err)
			}
			return []string{"-data-dir", dir}, eventlog.WithNATSSubject("wahook.>")
		},
		"kafka": func(t *testing.T) ([]string, eventlog.Option) {
			cluster, kb := eventlogtest.Kafka(t)
			if err := kb.Publish(ctx, storedEvents(t, envelope.Kafka)...); err != nil {
				t.Fatal(err)
			}
			return []string{"-broker", "kafka", "-kafka-brokers", strings.Join(cluster.ListenAddrs(), ",")}, eventlog.WithKafkaTopics(kafkaTopics()...)
		},
	} {
		t.Run(name, func(t *testing.T) {
			args, opt := start(t)
			c, err := parse(args)
			if err != nil {
				t.Fatal(err)
			}
			l, closeLog, err := c.eventLog(opt)
			if err != nil {
				t.Fatal(err)
			}
			defer closeLog()
			all, err := l.Query(ctx, eventlog.Query{Limit: eventlog.MaxLimit})
			if err != nil || all.Next != nil || len(all.Records) != 14 {
				t.Fatalf("Query of all: %d records, next %v, %v; want 14, no next", len(all.Records), all.Next, err)
			}
			want := slices.Sorted(slices.Values(ids(all.Records)))

			if got := eventIDs(t, printed(t, ctx, append(args, "-stored")...)); !slices.Equal(got, want) {
				t.Errorf("tail -stored printed %v, want %v", got, want)
			}

			var got []string
			collect := func(r eventlog.Record) error {
				got = append(got, r.Event.ID())
				return nil
			}
			if err := pages(ctx, l, eventlog.Query{Limit: 3}, 100, collect); err != nil || !slices.Equal(slices.Sorted(slices.Values(got)), want) {
				t.Errorf("pages of 3: %v, %v; want each of %v once", got, err, want)
			}
			got = nil
			if err := pages(ctx, l, eventlog.Query{Limit: 3}, 5, collect); err == nil || len(got) != 5 {
				t.Errorf("pages of 3 up to 5: %v, %v; want 5 and an error", got, err)
			}
		})
	}
}

func ids(recs []eventlog.Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Event.ID())
	}
	return out
}
