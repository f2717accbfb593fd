package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/envelope"
)

// TestReplayAcrossStreams replays a raw and a dead-letter event from two
// streams and prints them as CloudEvents.
func TestReplayAcrossStreams(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	emb, err := natsbroker.StartEmbedded(ctx, natsbroker.EmbeddedConfig{Addr: "127.0.0.1:-1", StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Shutdown(context.Background())
	b, err := natsbroker.Connect(ctx, natsbroker.Config{Embedded: emb})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	raw := envelope.Ingress(envelope.Raw{ID: "raw-1", Provider: "whapi", Channel: "CH", Kind: "labels.post",
		Time: time.Now(), Data: []byte(`{"id":"1","name":"VIP"}`)}, envelope.NATS)
	dl := envelope.DeadLetter{Reason: "bad", Provider: "zapi", ReceivedAt: time.Now().UTC()}
	dl.SetBody([]byte("not json"))
	dead, err := envelope.DeadLetterMessage(dl, envelope.NATS)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, raw, dead); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	if err := run(ctx, []string{"-nats-url", emb.ClientURL(), "-subject", "wahook.>", "-all", "-count", "2"}, &out); err != nil {
		t.Fatalf("run: %v", err)
	}
	types := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var got struct {
			Subject string
			Event   struct{ Type, ID string }
			Error   string
		}
		if err := json.Unmarshal([]byte(l), &got); err != nil || got.Error != "" {
			t.Fatalf("line %q: %v %s", l, err, got.Error)
		}
		types[got.Event.Type] = true
	}
	if !types["io.wahook.ingress.whapi.labels.post"] || !types[envelope.DeadLetterType] {
		t.Errorf("printed %v; want the raw and the dead-letter event", types)
	}
}
