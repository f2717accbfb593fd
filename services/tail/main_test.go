package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/envelope"
)

// TestReplayAcrossStreams replays a raw and a dead-letter event from two
// streams and prints them as CloudEvents, logged in with the context file
// of the server's data dir, or as a read-only subscriber; without
// credentials the server refuses it.
func TestReplayAcrossStreams(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	emb, err := natsbroker.StartEmbedded(ctx, natsbroker.EmbeddedConfig{Addr: "127.0.0.1:-1", StoreDir: dir,
		Subscribers: []natsbroker.Subscriber{{User: "reader", Password: "r-secret"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := emb.WriteContext(filepath.Join(dir, natsbroker.ContextFile)); err != nil {
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

	for name, args := range map[string][]string{
		"context file in the data dir": {"-data-dir", dir},
		"subscriber":                   {"-nats-url", emb.ClientURL(), "-nats-user", "reader", "-nats-password", "r-secret"},
	} {
		t.Run(name, func(t *testing.T) { replayBoth(t, ctx, append(args, "-subject", "wahook.>", "-all", "-count", "2")) })
	}
	if err := run(ctx, []string{"-nats-url", emb.ClientURL(), "-data-dir", t.TempDir(), "-count", "1"}, io.Discard); err == nil {
		t.Error("tail without credentials connected")
	}
}

func replayBoth(t *testing.T, ctx context.Context, args []string) {
	t.Helper()
	var out bytes.Buffer
	if err := run(ctx, args, &out); err != nil {
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
