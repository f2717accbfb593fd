package natsstate_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"

	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/state/natsstate"
)

// updates counts the stream create and update requests the server receives
// from conn while do runs.
func updates(t *testing.T, e *natsbroker.Embedded, conn *nats.Conn, do func()) map[string]int {
	t.Helper()
	login, err := e.ServiceAuth().Options()
	if err != nil {
		t.Fatal(err)
	}
	spy, err := nats.Connect(e.ClientURL(), login...)
	if err != nil {
		t.Fatalf("spy connect: %v", err)
	}
	defer spy.Close()
	// One channel for both subscriptions keeps the order the connection
	// receives them in: the marker comes after the requests sent before it.
	msgs := make(chan *nats.Msg, 4096)
	marker := "wahook-test.marker." + nuid.Next()
	for _, subj := range []string{"$JS.API.STREAM.>", marker} {
		if _, err := spy.ChanSubscribe(subj, msgs); err != nil {
			t.Fatalf("spy subscribe: %v", err)
		}
	}
	if err := spy.Flush(); err != nil {
		t.Fatalf("spy flush: %v", err)
	}
	do()
	if err := conn.Publish(marker, nil); err != nil {
		t.Fatalf("publish marker: %v", err)
	}
	counts := map[string]int{}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-msgs:
			if m.Subject == marker {
				return counts
			}
			// $JS.API.STREAM.UPDATE.KV_X -> UPDATE
			if toks := strings.Split(m.Subject, "."); len(toks) > 3 && (toks[3] == "CREATE" || toks[3] == "UPDATE") {
				counts[toks[3]]++
			}
		case <-timeout:
			t.Fatal("spy: marker not received")
		}
	}
}

func TestOpenSendsNoUpdateWhenUnchanged(t *testing.T) {
	e := startServer(t, t.TempDir())
	b := connect(t, natsbroker.Config{Embedded: e})
	cfg := freshConfig()
	got := updates(t, e, b.Conn(), func() { open(t, b.JetStream(), cfg) })
	if diff := cmp.Diff(map[string]int{"CREATE": 3}, got); diff != "" {
		t.Errorf("first Open: stream requests (-want +got):\n%s", diff)
	}
	got = updates(t, e, b.Conn(), func() { open(t, b.JetStream(), cfg) })
	if len(got) != 0 {
		t.Errorf("second Open with the same configuration: stream requests %v, want none", got)
	}
}

func TestOpenKeepsOperatorChanges(t *testing.T) {
	dir := t.TempDir()
	e := startServer(t, dir)
	b := connect(t, natsbroker.Config{Embedded: e})
	s := open(t, b.JetStream(), natsstate.Config{})
	ctx := testCtx(t)
	if first, err := s.Chats().FirstSeen(ctx, prov, chan1, "1@s.whatsapp.net", "e1"); err != nil || !first {
		t.Fatalf("FirstSeen = %t, %v; want true", first, err)
	}

	// The operator gives the chats more room and a TTL, and, wrongly, keeps
	// five values per key.
	st, err := b.JetStream().Stream(ctx, "KV_"+natsstate.DefaultChatsBucket)
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	cfg := st.CachedInfo().Config
	cfg.MaxBytes, cfg.MaxAge, cfg.MaxMsgsPerSubject = 1<<30, 400*24*time.Hour, 5
	if _, err := b.JetStream().UpdateStream(ctx, cfg); err != nil {
		t.Fatalf("UpdateStream: %v", err)
	}

	closeBroker(t, b)
	stopServer(t, e)
	e = startServer(t, dir)
	b = connect(t, natsbroker.Config{Embedded: e})
	s = open(t, b.JetStream(), natsstate.Config{})
	if first, err := s.Chats().FirstSeen(ctx, prov, chan1, "1@s.whatsapp.net", "e2"); err != nil || first {
		t.Errorf("FirstSeen after restart = %t, %v; want false", first, err)
	}
	st, err = b.JetStream().Stream(ctx, "KV_"+natsstate.DefaultChatsBucket)
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	got := st.CachedInfo().Config
	if got.MaxBytes != 1<<30 || got.MaxAge != 400*24*time.Hour || got.MaxMsgsPerSubject != 1 {
		t.Errorf("chats bucket after restart: max bytes %d, TTL %s, history %d; want the operator's 1 GiB and 400 days, and history 1",
			got.MaxBytes, got.MaxAge, got.MaxMsgsPerSubject)
	}
}

func TestOpenBucketLimits(t *testing.T) {
	e := startServer(t, t.TempDir())
	b := connect(t, natsbroker.Config{Embedded: e})
	ctx := testCtx(t)
	limits := func(bucket string) (int64, time.Duration) {
		t.Helper()
		st, err := b.JetStream().Stream(ctx, "KV_"+bucket)
		if err != nil {
			t.Fatalf("Stream(KV_%s): %v", bucket, err)
		}
		c := st.CachedInfo().Config
		return c.MaxBytes, c.MaxAge
	}

	open(t, b.JetStream(), natsstate.Config{})
	for bucket, want := range map[string]int64{
		natsstate.DefaultLabelsBucket: natsstate.DefaultLabelsMaxBytes,
		natsstate.DefaultChatsBucket:  natsstate.DefaultChatsMaxBytes,
	} {
		if got, ttl := limits(bucket); got != want || ttl != 0 {
			t.Errorf("bucket %s: max bytes %d, TTL %s; want %d and none", bucket, got, ttl, want)
		}
	}

	cfg := freshConfig()
	cfg.LabelsMaxBytes, cfg.ChatsMaxBytes, cfg.ChatsTTL = -1, 8<<20, 45*24*time.Hour
	open(t, b.JetStream(), cfg)
	if got, ttl := limits(cfg.LabelsBucket); got != -1 || ttl != 0 {
		t.Errorf("labels bucket: max bytes %d, TTL %s; want unlimited, none", got, ttl)
	}
	if got, ttl := limits(cfg.ChatsBucket); got != 8<<20 || ttl != 45*24*time.Hour {
		t.Errorf("chats bucket: max bytes %d, TTL %s; want 8 MiB, 45 days", got, ttl)
	}

	for name, tc := range map[string]struct {
		give    natsstate.Config
		wantErr string
	}{
		"tiny bucket":  {give: natsstate.Config{ChatsMaxBytes: 1000}, wantErr: "chats bucket max bytes"},
		"negative ttl": {give: natsstate.Config{ChatsTTL: -time.Hour}, wantErr: "TTL"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := natsstate.Open(ctx, b.JetStream(), tc.give); err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Open(%+v) = %v, want an error containing %q", tc.give, err, tc.wantErr)
			}
		})
	}
}

// TestOpenExisting: before any process derived, opening to read creates
// nothing and says there is no state yet; once the buckets exist, it reads
// what the deriving store wrote, still without a stream request, even when
// an operator changed a bucket.
func TestOpenExisting(t *testing.T) {
	e := startServer(t, t.TempDir())
	b := connect(t, natsbroker.Config{Embedded: e})
	cfg := freshConfig()
	got := updates(t, e, b.Conn(), func() {
		if _, err := natsstate.OpenExisting(testCtx(t), b.JetStream(), cfg); !errors.Is(err, natsstate.ErrNoState) {
			t.Errorf("OpenExisting without buckets: %v; want ErrNoState", err)
		}
	})
	if len(got) != 0 {
		t.Errorf("OpenExisting without buckets: stream requests %v, want none", got)
	}
	if _, err := b.JetStream().KeyValue(testCtx(t), cfg.ChatsBucket); !errors.Is(err, jetstream.ErrBucketNotFound) {
		t.Fatalf("chats bucket after OpenExisting: %v; want none", err)
	}

	w := open(t, b.JetStream(), cfg)
	const chat = "4915112345678@s.whatsapp.net"
	if _, err := w.Chats().FirstSeen(testCtx(t), prov, chan1, chat, "e1"); err != nil {
		t.Fatalf("FirstSeen: %v", err)
	}
	if _, _, err := w.Labels().Upsert(testCtx(t), prov, chan1, fact.Label{ID: "1", Name: "VIP"}, "e1"); err != nil {
		t.Fatalf("Upsert: %v", err)
	}
	if err := w.Aliases().Learn(testCtx(t), prov, chan1, "123456789012345@lid", chat, "e1"); err != nil {
		t.Fatalf("Learn: %v", err)
	}
	// An operator's TTL on the chats bucket, which Open would only log.
	kv, err := b.JetStream().KeyValue(testCtx(t), cfg.ChatsBucket)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	scfg := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config
	scfg.MaxAge = time.Hour
	if _, err := b.JetStream().UpdateStream(testCtx(t), scfg); err != nil {
		t.Fatalf("operator's update: %v", err)
	}

	var r *natsstate.Store
	got = updates(t, e, b.Conn(), func() {
		if r, err = natsstate.OpenExisting(testCtx(t), b.JetStream(), cfg); err != nil {
			t.Fatalf("OpenExisting: %v", err)
		}
	})
	if len(got) != 0 {
		t.Errorf("OpenExisting: stream requests %v, want none", got)
	}
	if c, known, err := r.Chats().Lookup(testCtx(t), prov, chan1, chat); err != nil || !known || c.FirstEvent != "e1" {
		t.Errorf("Lookup = %+v, %t, %v; want e1", c, known, err)
	}
	if ls, err := r.Labels().List(testCtx(t), prov, chan1); err != nil || len(ls) != 1 || ls[0].Name != "VIP" {
		t.Errorf("List = %+v, %v; want VIP", ls, err)
	}
	if other, ok, err := r.Aliases().Lookup(testCtx(t), prov, chan1, chat); err != nil || !ok || other != "123456789012345@lid" {
		t.Errorf("alias Lookup = %q, %t, %v; want the LID", other, ok, err)
	}
}
