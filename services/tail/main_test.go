package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

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

// TestReplaySeam replays as a read-only subscriber, which may not create
// consumers, while events keep coming: those published while the history
// is read are printed once, those published at the seam are not lost, in
// the order they were stored, also when the live events held at the seam
// overflow.
func TestReplaySeam(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	emb, err := natsbroker.StartEmbedded(ctx, natsbroker.EmbeddedConfig{Addr: "127.0.0.1:-1", StoreDir: t.TempDir(),
		Subscribers: []natsbroker.Subscriber{{User: "reader", Password: "r-secret"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Shutdown(context.Background())
	b, err := natsbroker.Connect(ctx, natsbroker.Config{Embedded: emb})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(context.Background())
	n := 0
	publish := func(channel string, k int) {
		t.Helper()
		for range k {
			n++
			raw := envelope.Ingress(envelope.Raw{ID: fmt.Sprintf("raw-%d", n), Provider: "whapi", Channel: channel, Kind: "labels.post",
				Time: time.Now(), Data: []byte(`{"id":"1"}`)}, envelope.NATS)
			if err := b.Publish(ctx, raw); err != nil {
				t.Fatal(err)
			}
		}
	}

	for _, tc := range []struct {
		name      string
		seamBytes int
		since     bool
		// during events are published after the first batch of
		// history, at events at the seam, before the live events held
		// are printed.
		during, at int
	}{
		{name: "all", during: 3, at: 2},
		{name: "since", since: true, during: 3, at: 2},
		{name: "held events overflow", seamBytes: 1, during: 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			channel := strings.ReplaceAll(tc.name, " ", "-")
			first := n + 1
			publish(channel, 3)
			args := []string{"-nats-url", emb.ClientURL(), "-nats-user", "reader", "-nats-password", "r-secret",
				"-subject", "wahook.ingress.whapi." + channel + ".>", "-count", strconv.Itoa(3 + tc.during + tc.at)}
			if tc.since {
				args = append(args, "-since", "1h")
			} else {
				args = append(args, "-all")
			}
			c, err := parse(args)
			if err != nil {
				t.Fatal(err)
			}
			batches := 0
			c.historyBatch, c.seamBytes = 1, tc.seamBytes
			c.afterBatch = func() {
				if batches++; batches == 1 {
					publish(channel, tc.during)
				}
			}
			c.atSeam = func() { publish(channel, tc.at) }
			var out bytes.Buffer
			if err := c.tail(ctx, &out); err != nil {
				t.Fatalf("tail: %v", err)
			}
			var got, want []string
			for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
				var e struct{ Event struct{ ID string } }
				if err := json.Unmarshal([]byte(l), &e); err != nil {
					t.Fatalf("line %q: %v", l, err)
				}
				got = append(got, e.Event.ID)
			}
			for i := first; i <= n; i++ {
				want = append(want, fmt.Sprintf("raw-%d", i))
			}
			if !slices.Equal(got, want) {
				t.Errorf("printed %v, want %v", got, want)
			}
		})
	}
}

// TestSeam: the live events held come out in arrival order; one the
// history printed is dropped whether its live copy came before or after,
// the latter only when it was stored after the subscription; when full,
// the oldest go.
func TestSeam(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	msg := func(id string) *nats.Msg {
		return &nats.Msg{Subject: "wahook.ingress.whapi.CH.messages.post", Header: nats.Header{"Nats-Msg-Id": {id}}, Data: []byte("0123456789")}
	}
	drain := func(s *seam) []string {
		var ids []string
		for s.queue.Len() > 0 {
			m, err := s.next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, m.Header.Get("Nats-Msg-Id"))
		}
		return ids
	}
	s := newSeam(1 << 20)
	s.add(msg("a"))
	s.add(msg("b"))
	s.add(msg("b")) // a duplicate publish, both routed live
	s.printed(seamKey(msg("b")), true)
	s.printed(seamKey(msg("c")), true)  // printed before its live copy came
	s.printed(seamKey(msg("d")), false) // stored before the subscription
	s.add(msg("c"))
	s.add(msg("d"))
	s.add(msg("e"))
	if got := drain(s); !slices.Equal(got, []string{"a", "d", "e"}) {
		t.Errorf("held %v, want a d e", got)
	}

	// Without Nats-Msg-Id: the ce-id, else the data.
	noID := &nats.Msg{Subject: "x", Header: nats.Header{"ce-id": {"c1"}}, Data: []byte("1")}
	if k, k2 := seamKey(noID), seamKey(&nats.Msg{Subject: "x", Data: []byte("1")}); k == k2 || !strings.Contains(k, "c1") {
		t.Errorf("keys %q and %q", k, k2)
	}

	full := newSeam(3 * len(msg("x").Subject+string(msg("x").Data)))
	for _, id := range []string{"1", "2", "3", "4", "5"} {
		full.add(msg(id))
	}
	if got := drain(full); !slices.Equal(got, []string{"3", "4", "5"}) {
		t.Errorf("full seam kept %v, want the newest 3 4 5", got)
	}
}
