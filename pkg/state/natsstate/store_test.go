package natsstate_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/state/natsstate"
)

func TestOpen(t *testing.T) {
	e := startServer(t, t.TempDir())
	b1 := connect(t, natsbroker.Config{Embedded: e})
	b2 := connect(t, natsbroker.Config{URL: e.ClientURL(), Auth: e.ServiceAuth()})

	// Processes starting together open the same buckets.
	var wg sync.WaitGroup
	stores := make([]*natsstate.Store, 4)
	for i := range stores {
		js := b1.JetStream()
		if i%2 == 1 {
			js = b2.JetStream()
		}
		wg.Go(func() {
			s, err := natsstate.Open(testCtx(t), js, natsstate.Config{})
			if err != nil {
				t.Errorf("Open %d: %v", i, err)
			}
			stores[i] = s
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if first, err := stores[0].Chats().FirstSeen(testCtx(t), prov, chan1, "1@s.whatsapp.net", "e1"); err != nil || !first {
		t.Fatalf("FirstSeen = %t, %v; want true", first, err)
	}
	// Opening again keeps the state.
	s := open(t, b2.JetStream(), natsstate.Config{ChatCacheSize: -1})
	if first, err := s.Chats().FirstSeen(testCtx(t), prov, chan1, "1@s.whatsapp.net", "e2"); err != nil || first {
		t.Errorf("FirstSeen after reopening = %t, %v; want false", first, err)
	}
	for _, name := range []string{natsstate.DefaultLabelsBucket, natsstate.DefaultChatsBucket} {
		kv, err := b1.JetStream().KeyValue(testCtx(t), name)
		if err != nil {
			t.Fatalf("KeyValue(%s): %v", name, err)
		}
		st, err := kv.Status(testCtx(t))
		if err != nil {
			t.Fatalf("Status(%s): %v", name, err)
		}
		if st.History() != 1 || st.Config().Storage != jetstream.FileStorage || st.Config().Replicas != 1 {
			t.Errorf("bucket %s: history %d, storage %s, replicas %d; want 1, file, 1", name, st.History(), st.Config().Storage, st.Config().Replicas)
		}
	}

	custom := open(t, b1.JetStream(), natsstate.Config{LabelsBucket: "L_CUSTOM", ChatsBucket: "C_CUSTOM", TimesBucket: "T_CUSTOM",
		TimesMaxBytes: 16 << 20, Storage: jetstream.MemoryStorage})
	if first, err := custom.Chats().FirstSeen(testCtx(t), prov, chan1, "1@s.whatsapp.net", "e2"); err != nil || !first {
		t.Errorf("FirstSeen in custom buckets = %t, %v; want true: they are not the default ones", first, err)
	}

	for name, tc := range map[string]struct {
		give    natsstate.Config
		wantErr string
	}{
		"shared bucket":   {give: natsstate.Config{LabelsBucket: "X", ChatsBucket: "X"}, wantErr: "share a bucket"},
		"times share":     {give: natsstate.Config{TimesBucket: natsstate.DefaultChatsBucket}, wantErr: "share a bucket"},
		"short times TTL": {give: natsstate.Config{TimesTTL: time.Millisecond}, wantErr: "TTL"},
		"too many copies": {give: natsstate.Config{Replicas: 6}, wantErr: "replicas"},
		"bad storage":     {give: natsstate.Config{Storage: 7}, wantErr: "storage"},
		"bad bucket name": {give: natsstate.Config{LabelsBucket: "a.b"}, wantErr: "bucket a.b"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := natsstate.Open(testCtx(t), b1.JetStream(), tc.give)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Open(%+v) = %v, want an error containing %q", tc.give, err, tc.wantErr)
			}
		})
	}
}

// TestRestart stops the server and starts it again on the same store
// directory: the state is still there.
func TestRestart(t *testing.T) {
	dir := t.TempDir()
	e := startServer(t, dir)
	b := connect(t, natsbroker.Config{Embedded: e})
	s := open(t, b.JetStream(), natsstate.Config{})
	ctx := testCtx(t)
	if _, err := s.Chats().FirstSeen(ctx, prov, chan1, "1@s.whatsapp.net", "e1"); err != nil {
		t.Fatalf("FirstSeen: %v", err)
	}
	runSteps(t, s.Labels(), []step{
		upsertStep("create", vip, "e2", result{Created: true}),
		upsertStep("change", top, "e3", result{Label: vip}),
		upsertStep("other", lbl("2", "Gold", ""), "e4", result{Created: true}),
		deleteStep("delete other", fact.LabelRef{Name: "Gold"}, "e5", result{Known: true, Label: lbl("2", "Gold", "")}),
	})
	closeBroker(t, b)
	stopServer(t, e)

	e = startServer(t, dir)
	b = connect(t, natsbroker.Config{Embedded: e})
	s = open(t, b.JetStream(), natsstate.Config{})
	for _, tc := range []struct {
		event string
		want  bool
	}{{"e1", true}, {"e9", false}} {
		if first, err := s.Chats().FirstSeen(testCtx(t), prov, chan1, "1@s.whatsapp.net", tc.event); err != nil || first != tc.want {
			t.Errorf("FirstSeen(%s) after restart = %t, %v; want %t", tc.event, first, err, tc.want)
		}
	}
	runSteps(t, s.Labels(), []step{
		lookupStep("changed label", "1", result{Known: true, Label: top}),
		lookupStep("deleted label", "2", result{Known: true, Label: lbl("2", "Gold", "")}),
		upsertStep("change reprocessed", top, "e3", result{Label: vip}),
		deleteStep("delete reprocessed", fact.LabelRef{Name: "Gold"}, "e5", result{Known: true, Label: lbl("2", "Gold", "")}),
		upsertStep("new change", neu, "e6", result{Label: top}),
	})
}

// TestHostileIDs uses providers, channels, chats and label ids made of
// everything a key token forbids, and near-identical pairs that a lossy
// encoding would merge.
func TestHostileIDs(t *testing.T) {
	e := startServer(t, t.TempDir())
	b1 := connect(t, natsbroker.Config{Embedded: e})
	b2 := connect(t, natsbroker.Config{URL: e.ClientURL(), Auth: e.ServiceAuth()})
	s := open(t, b1.JetStream(), natsstate.Config{})
	// A second process without cache reads every chat from the bucket.
	uncached := open(t, b2.JetStream(), natsstate.Config{ChatCacheSize: -1})
	long := strings.Repeat("x", 300)
	ids := []string{
		"a.b c*>@lid:1/x", "a_b c*>@lid:1/x", "a_2Eb c*>@lid:1/x", "a-b c*>@lid:1/x",
		"", "=", "_", ".", "*", ">", "$KV", "café ☕", "\x00\xff", long + "1", long + "2",
	}
	labelIDs := ids[:0:0]
	for _, id := range ids {
		if id != "" { // labels need an id
			labelIDs = append(labelIDs, id)
		}
	}
	providers := []string{prov, "wh.api"}
	ctx := testCtx(t)
	for _, p := range providers {
		for _, ch := range ids {
			for _, chat := range ids {
				ev := strconv.Quote(p + "|" + ch + "|" + chat)
				if first, err := s.Chats().FirstSeen(ctx, p, ch, chat, ev); err != nil || !first {
					t.Fatalf("FirstSeen(%q, %q, %q) = %t, %v; want true: a fresh chat", p, ch, chat, first, err)
				}
			}
			for _, id := range labelIDs {
				l := fact.Label{ID: id, Name: strconv.Quote(p + "|" + ch + "|" + id)}
				if created, _, err := s.Labels().Upsert(ctx, p, ch, l, "u"+l.Name); err != nil || !created {
					t.Fatalf("Upsert(%q, %q, %q) = %t, %v; want a creation", p, ch, id, created, err)
				}
			}
		}
	}
	// Every item was stored under its own key: each answers as its own.
	for _, p := range providers {
		for _, ch := range ids {
			for _, chat := range ids {
				ev := strconv.Quote(p + "|" + ch + "|" + chat)
				if first, err := uncached.Chats().FirstSeen(ctx, p, ch, chat, ev); err != nil || !first {
					t.Errorf("FirstSeen(%q, %q, %q, first event) = %t, %v; want true", p, ch, chat, first, err)
				}
			}
			for _, id := range labelIDs {
				want := fact.Label{ID: id, Name: strconv.Quote(p + "|" + ch + "|" + id)}
				got, known, err := s.Labels().Lookup(ctx, p, ch, id)
				if err != nil || !known || got != want {
					t.Errorf("Lookup(%q, %q, %q) = %+v, %t, %v; want %+v", p, ch, id, got, known, err, want)
				}
			}
			// Resolving a name looks at this channel only.
			name := strconv.Quote(p + "|" + ch + "|" + ids[0])
			got, known, err := s.Labels().Delete(ctx, p, ch, fact.LabelRef{Name: name}, "d"+name)
			if want := (fact.Label{ID: ids[0], Name: name}); err != nil || !known || got != want {
				t.Errorf("Delete(%q, %q, name %q) = %+v, %t, %v; want %+v", p, ch, name, got, known, err, want)
			}
		}
	}
}

// TestInvalidEventID refuses event ids that JSON would not keep exactly (so
// that two of them are never taken for one) or that are empty, and labels
// without id.
func TestInvalidEventID(t *testing.T) {
	_, s := newStore(t)
	ctx := testCtx(t)
	ev := "e\xff"
	if _, err := s.Chats().FirstSeen(ctx, prov, chan1, "1@s.whatsapp.net", ev); err == nil {
		t.Errorf("FirstSeen(event %q) = nil error, want one", ev)
	}
	if _, _, err := s.Labels().Upsert(ctx, prov, chan1, vip, ev); err == nil {
		t.Errorf("Upsert(event %q) = nil error, want one", ev)
	}
	if _, _, err := s.Labels().Delete(ctx, prov, chan1, fact.LabelRef{ID: "1"}, ev); err == nil {
		t.Errorf("Delete(event %q) = nil error, want one", ev)
	}
	if _, err := s.Chats().FirstSeen(ctx, prov, chan1, "1@s.whatsapp.net", ""); err == nil {
		t.Errorf("FirstSeen(empty event) = nil error, want one")
	}
	if _, _, err := s.Labels().Upsert(ctx, prov, chan1, fact.Label{Name: "no id"}, "e1"); !errors.Is(err, natsstate.ErrNoLabelID) {
		t.Errorf("Upsert(label without id) = %v, want ErrNoLabelID", err)
	}
}

// TestStoredValues pins the documented keys and values, which operators
// read with "nats kv get".
func TestStoredValues(t *testing.T) {
	b, s := newStore(t)
	ctx := testCtx(t)
	before := time.Now().UTC().Add(-time.Second)
	if _, err := s.Chats().FirstSeen(ctx, prov, chan1, "4915112345678@s.whatsapp.net", "ev-1"); err != nil {
		t.Fatalf("FirstSeen: %v", err)
	}
	runSteps(t, s.Labels(), []step{
		upsertStep("create", vip, "ev-2", result{Created: true}),
		upsertStep("change", top, "ev-3", result{Label: vip}),
		deleteStep("delete", fact.LabelRef{ID: "1"}, "ev-4", result{Known: true, Label: top}),
	})

	get := func(bucket, key string) map[string]any {
		t.Helper()
		kv, err := b.JetStream().KeyValue(ctx, bucket)
		if err != nil {
			t.Fatalf("KeyValue(%s): %v", bucket, err)
		}
		e, err := kv.Get(ctx, key)
		if err != nil {
			t.Fatalf("Get(%s, %s): %v", bucket, key, err)
		}
		var v map[string]any
		if err := json.Unmarshal(e.Value(), &v); err != nil {
			t.Fatalf("value of %s: %v", key, err)
		}
		return v
	}

	chat := get(natsstate.DefaultChatsBucket, "whapi.MANTIS-M72HC.4915112345678_40s_2Ewhatsapp_2Enet")
	at, err := time.Parse(time.RFC3339Nano, chat["first_seen_at"].(string))
	if err != nil || at.Before(before) || at.After(time.Now().Add(time.Second)) {
		t.Errorf("first_seen_at = %v (%v), want about now", chat["first_seen_at"], err)
	}
	delete(chat, "first_seen_at")
	if diff := cmp.Diff(map[string]any{"first_event": "ev-1"}, chat); diff != "" {
		t.Errorf("chat value mismatch (-want +got):\n%s", diff)
	}

	want := map[string]any{
		"id": "1", "name": "Top", "color": "red",
		"created_by": "ev-2", "updated_by": "ev-3", "deleted_by": "ev-4",
		"previous": map[string]any{"name": "VIP", "color": "gold", "color_hex": "#FFD700"},
		"events": []any{
			map[string]any{"id": "ev-2", "outcome": "created"},
			map[string]any{"id": "ev-3", "outcome": "updated", "label": map[string]any{"name": "VIP", "color": "gold", "color_hex": "#FFD700"}},
			map[string]any{"id": "ev-4", "outcome": "deleted", "label": map[string]any{"name": "Top", "color": "red"}},
		},
	}
	if diff := cmp.Diff(want, get(natsstate.DefaultLabelsBucket, "whapi.MANTIS-M72HC.1")); diff != "" {
		t.Errorf("label value mismatch (-want +got):\n%s", diff)
	}
}

// TestUnavailable stops the server under a store: calls fail with an error
// within their ctx instead of hanging or retrying forever.
func TestUnavailable(t *testing.T) {
	e := startServer(t, t.TempDir())
	b := connect(t, natsbroker.Config{URL: e.ClientURL(), Auth: e.ServiceAuth()})
	s := open(t, b.JetStream(), natsstate.Config{})
	stopServer(t, e)

	calls := map[string]func(ctx context.Context) error{
		"FirstSeen": func(ctx context.Context) error {
			_, err := s.Chats().FirstSeen(ctx, prov, chan1, "1@s.whatsapp.net", "e1")
			return err
		},
		"Upsert": func(ctx context.Context) error {
			_, _, err := s.Labels().Upsert(ctx, prov, chan1, vip, "e1")
			return err
		},
		"Delete by name": func(ctx context.Context) error {
			_, _, err := s.Labels().Delete(ctx, prov, chan1, fact.LabelRef{Name: "VIP"}, "e1")
			return err
		},
		"Lookup": func(ctx context.Context) error {
			_, _, err := s.Labels().Lookup(ctx, prov, chan1, "1")
			return err
		},
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			start := time.Now()
			err := call(ctx)
			if err == nil || !strings.Contains(err.Error(), "natsstate:") {
				t.Errorf("%s with the server down = %v, want a natsstate error", name, err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("%s took %s with a 1s ctx", name, d)
			}
		})
	}
}
