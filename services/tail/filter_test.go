package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/eventlog/eventlogtest"
)

const chatA, chatB = eventlogtest.ChatA, eventlogtest.ChatB

// printed runs tail with args and returns its lines.
func printed(t *testing.T, ctx context.Context, args ...string) []string {
	t.Helper()
	var out bytes.Buffer
	if err := run(ctx, args, &out); err != nil {
		t.Fatalf("tail %v: %v", args, err)
	}
	return strings.Split(strings.TrimSpace(out.String()), "\n")
}

func eventIDs(t *testing.T, lines []string) []string {
	t.Helper()
	var ids []string
	for _, l := range lines {
		var e struct{ Event struct{ ID string } }
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		ids = append(ids, e.Event.ID)
	}
	slices.Sort(ids)
	return ids
}

// filterCases are checked on both brokers; base reads every event stored.
// -idle, the same code on both, is checked when idle is set.
func filterCases(t *testing.T, ctx context.Context, base []string, idle string) {
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"chat, as a phone number", []string{"-chat", "+5511999990000", "-n", "2"}, []string{"derived-a", "raw-a"}},
		{"chat, in another provider's form", []string{"-chat", "5511999990000@c.us", "-n", "2"}, []string{"derived-a", "raw-a"}},
		{"type glob", []string{"-type", "io.wahook.ingress.whapi.*", "-n", "2"}, []string{"raw-a", "raw-b"}},
		{"types and chat", []string{"-type", "io.wahook.label.*", "-type", "io.wahook.ingress.whapi.messages.post", "-chat", chatB, "-n", "1"}, []string{"raw-b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := eventIDs(t, printed(t, ctx, append(slices.Clone(base), tc.args...)...)); !slices.Equal(got, tc.want) {
				t.Errorf("printed %v, want %v", got, tc.want)
			}
		})
	}
	t.Run("data", func(t *testing.T) {
		got := printed(t, ctx, append(slices.Clone(base), "-type", "io.wahook.ingress.whapi.chats.patch", "-data", "-n", "1")...)
		if !slices.Equal(got, []string{`{"id":"a"}`}) {
			t.Errorf("-data printed %q, want the raw event's data on one line", got)
		}
		got = printed(t, ctx, append(slices.Clone(base), "-type", envelope.DeadLetterType, "-data", "-n", "1")...)
		var d envelope.DeadLetter
		if len(got) != 1 || json.Unmarshal([]byte(got[0]), &d) != nil || d.Body == nil || *d.Body != "not json" {
			t.Errorf("-data of a dead letter printed %q, want its record", got)
		}
	})
	if idle == "" {
		return
	}
	t.Run("idle", func(t *testing.T) {
		// Nothing more comes after the 4 events: tail stops by itself.
		if got := printed(t, ctx, append(slices.Clone(base), "-idle", idle)...); len(got) != 4 {
			t.Errorf("printed %d lines before going idle, want 4", len(got))
		}
	})
}

// TestFiltersNATS filters a replay by chat, type, both, prints only the
// data, and stops when idle.
func TestFiltersNATS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	emb, err := natsbroker.StartEmbedded(ctx, natsbroker.EmbeddedConfig{Addr: "127.0.0.1:-1", StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Shutdown(context.Background())
	if _, err := emb.WriteContext(filepath.Join(dir, natsbroker.ContextFile)); err != nil {
		t.Fatal(err)
	}
	b, err := natsbroker.Connect(ctx, natsbroker.Config{Embedded: emb})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	if err := b.Publish(ctx, eventlogtest.Sample(t, envelope.NATS)...); err != nil {
		t.Fatal(err)
	}
	filterCases(t, ctx, []string{"-data-dir", dir, "-all"}, "1s")
}

// TestTailKafka reads Kafka (kfake over TCP) without a consumer group:
// from the first record kept, from an offset, from a time, filtered.
func TestTailKafka(t *testing.T) {
	cluster, kb := eventlogtest.Kafka(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := kb.Publish(ctx, eventlogtest.Sample(t, envelope.Kafka)...); err != nil {
		t.Fatal(err)
	}
	brokers := strings.Join(cluster.ListenAddrs(), ",")
	filterCases(t, ctx, []string{"-broker", "kafka", "-kafka-brokers", brokers, "-all"}, "")

	for name, args := range map[string][]string{
		"offset": {"-offset", "0"},
		"since":  {"-since", "1h"},
	} {
		t.Run(name, func(t *testing.T) {
			got := eventIDs(t, printed(t, ctx, append([]string{"-broker", "kafka", "-kafka-brokers", brokers, "-topic", envelope.IngressTopic, "-n", "2"}, args...)...))
			if !slices.Equal(got, []string{"raw-a", "raw-b"}) {
				t.Errorf("printed %v, want the 2 raw events", got)
			}
		})
	}
	if _, err := parse([]string{"-offset", "3"}); err == nil {
		t.Error("-offset accepted on NATS")
	}
}
