package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"strconv"
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

// TestDeadLetterInParts prints the parts of a dead letter without their
// data and its record with the body reassembled.
func TestDeadLetterInParts(t *testing.T) {
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
	body := strings.Repeat(`{"text":"<ok>"}`, 1000)
	dl := envelope.DeadLetter{Reason: "bad", Provider: "waha", ReceivedAt: time.Now().UTC()}
	dl.SetBody([]byte(body))
	msgs, err := envelope.DeadLetterMessages(dl, envelope.NATS, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := envelope.PublishDeadLetter(ctx, b.Publish, msgs); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	if err := run(ctx, []string{"-data-dir", dir, "-subject", "wahook.deadletter.>", "-all", "-count", strconv.Itoa(len(msgs))}, &out); err != nil {
		t.Fatalf("run: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(msgs) {
		t.Fatalf("printed %d lines, want %d", len(lines), len(msgs))
	}
	for i, l := range lines {
		var got struct {
			Event map[string]any
			Part  *struct {
				DeadLetterID string `json:"deadletter_id"`
				Bytes        int
			}
			Body  *string
			Error string
		}
		if err := json.Unmarshal([]byte(l), &got); err != nil || got.Error != "" {
			t.Fatalf("line %q: %v %s", l, err, got.Error)
		}
		if i < len(msgs)-1 {
			if got.Part == nil || got.Part.DeadLetterID != msgs[len(msgs)-1].ID || got.Part.Bytes != len(msgs[i].Data) {
				t.Errorf("line %d = %s, want part %d of %s", i, l, i, msgs[len(msgs)-1].ID)
			}
			if _, ok := got.Event["data_base64"]; ok {
				t.Errorf("part line %d prints the part's data", i)
			}
			continue
		}
		if got.Body == nil || *got.Body != body {
			t.Errorf("record line has body %v, want the %d bytes reassembled", got.Body, len(body))
		}
	}
}
