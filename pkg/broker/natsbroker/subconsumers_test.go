package natsbroker

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestParseSubscriberConsumers(t *testing.T) {
	got, err := ParseSubscriberConsumers(" reader:labels:wahook.label-changed.> , audit.svc:raw_all:wahook.ingress.*.CH~2E1.>:new,reader:calls:wahook.call.waha.*.*:all,")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ durable, stream, filter string }{
		{"sub-reader-labels", DerivedStream, "wahook.label-changed.>"},
		{"sub-audit_svc-raw_all", IngressStream, "wahook.ingress.*.CH~2E1.>"},
		{"sub-reader-calls", DerivedStream, "wahook.call.waha.*.*"},
	}
	if len(got) != len(want) {
		t.Fatalf("ParseSubscriberConsumers = %+v", got)
	}
	for i, w := range want {
		if got[i].Durable() != w.durable || got[i].Stream() != w.stream || got[i].Filter != w.filter {
			t.Errorf("entry %d = %s on %s filter %s; want %+v", i, got[i].Durable(), got[i].Stream(), got[i].Filter, w)
		}
	}
	if got[0].DeliverNew || !got[1].DeliverNew || got[2].DeliverNew {
		t.Errorf("starts %v %v %v, want all, new, all", got[0].DeliverNew, got[1].DeliverNew, got[2].DeliverNew)
	}
	for _, bad := range []string{
		"reader:labels",                                    // no filter
		"reader:labels:wahook.label-changed.>:x",           // start
		"reader:labels:wahook.label-changed.>:new:x",       // too many parts
		"reader:my-labels:wahook.label-changed.>",          // '-' in the name
		"reader::wahook.label-changed.>",                   // empty name
		"a b:labels:wahook.label-changed.>",                // user
		"reader:labels:wahook.>",                           // spans streams
		"reader:labels:wahook.*.whapi",                     // spans streams
		"reader:labels:wahook.state.>",                     // no stream
		"reader:labels:wahook.label-changed.>.x",           // '>' not last
		"reader:labels:wahook.label-changed..x",            // empty token
		"reader:labels:wahook.label-changed.a b",           // space
		"reader:labels:wahook.label-changed.ab*",           // partial wildcard
		"reader:x:wahook.call.>,reader:x:wahook.ingress.>", // twice
		"a.b:x:wahook.call.>,a_b:y:wahook.call.>",          // users sharing a token
		"reader:x:wahook.call." + strings.Repeat("a", 300),
	} {
		if _, err := ParseSubscriberConsumers(bad); err == nil {
			t.Errorf("ParseSubscriberConsumers(%q) = nil error", bad)
		}
	}
}

// TestSubscriberConsumerNames: a name never belongs to two entries, and
// never to one of wahook's own consumers.
func TestSubscriberConsumerNames(t *testing.T) {
	a := SubscriberConsumer{User: "a-b", Name: "c"}
	b := SubscriberConsumer{User: "a", Name: "b_c"}
	if a.Durable() == b.Durable() {
		t.Errorf("%+v and %+v share %s", a, b, a.Durable())
	}
	if got := (SubscriberConsumer{User: "audit.svc", Name: "x"}).Durable(); got != "sub-audit_svc-x" {
		t.Errorf("Durable = %s", got)
	}
	for _, own := range []string{"wahook-label-changed", "wahook-call-p0of2"} {
		if strings.HasPrefix(own, SubscriberConsumerPrefix) {
			t.Errorf("wahook's %s starts with %s", own, SubscriberConsumerPrefix)
		}
	}
}

// TestEnsureSubscriberConsumers: wahook creates the configured consumers,
// follows a changed filter, keeps the start of an existing one, refuses a
// name it did not create, keeps and reports consumers no longer
// configured, and re-creates one that was deleted.
func TestEnsureSubscriberConsumers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e := startServer(t, t.TempDir())
	core, logs := observer.New(zap.InfoLevel)
	b := connect(t, Config{Embedded: e, Logger: zap.New(core)})
	js := b.JetStream()
	feed := SubscriberConsumer{User: "reader", Name: "feed", Filter: "wahook.label-changed.>"}

	info := func() *jetstream.ConsumerInfo {
		t.Helper()
		c, err := js.Consumer(ctx, DerivedStream, feed.Durable())
		if err != nil {
			t.Fatalf("consumer %s: %v", feed.Durable(), err)
		}
		return c.CachedInfo()
	}
	if err := b.EnsureSubscriberConsumers(ctx, []SubscriberConsumer{feed}); err != nil {
		t.Fatal(err)
	}
	first := info()
	c := first.Config
	if c.FilterSubject != feed.Filter || c.AckPolicy != jetstream.AckExplicitPolicy || c.DeliverPolicy != jetstream.DeliverAllPolicy ||
		c.DeliverSubject != "" || c.AckWait != DefaultSubscriberAckWait || c.Metadata[subscriberMetaKey] != "reader" {
		t.Errorf("created %+v", c)
	}
	if logs.FilterMessage("subscriber consumer created").Len() != 1 {
		t.Errorf("logs %v", logs.All())
	}

	// Unchanged: nothing to do.
	logged := logs.Len()
	if err := b.EnsureSubscriberConsumers(ctx, []SubscriberConsumer{feed}); err != nil {
		t.Fatal(err)
	}
	if again := info(); !again.Created.Equal(first.Created) || logs.Len() != logged {
		t.Errorf("second ensure recreated or logged: %v", logs.All())
	}

	// A new filter applies; a new start does not.
	changed := feed
	changed.Filter, changed.DeliverNew = "wahook.label-changed.whapi.>", true
	if err := b.EnsureSubscriberConsumers(ctx, []SubscriberConsumer{changed}); err != nil {
		t.Fatal(err)
	}
	if c := info().Config; c.FilterSubject != changed.Filter || c.DeliverPolicy != jetstream.DeliverAllPolicy {
		t.Errorf("after the change: filter %s, start %s", c.FilterSubject, c.DeliverPolicy)
	}
	if logs.FilterMessageSnippet("filter changed").Len() != 1 || logs.FilterMessageSnippet("start differs").Len() != 1 {
		t.Errorf("logs %v", logs.All())
	}

	// A consumer of that name wahook did not create is left alone.
	taken := SubscriberConsumer{User: "reader", Name: "taken", Filter: IngressSubjects}
	if _, err := js.CreateConsumer(ctx, IngressStream, jetstream.ConsumerConfig{Durable: taken.Durable(), AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	if err := b.EnsureSubscriberConsumers(ctx, []SubscriberConsumer{taken}); err == nil || !strings.Contains(err.Error(), "did not create") {
		t.Errorf("ensure over a consumer of another = %v", err)
	}

	// No longer configured: kept and reported.
	if err := b.EnsureSubscriberConsumers(ctx, nil); err != nil {
		t.Fatal(err)
	}
	info()
	if l := logs.FilterMessageSnippet("no longer configured").All(); len(l) != 1 || l[0].ContextMap()["consumer"] != feed.Durable() {
		t.Errorf("logs %v", logs.All())
	}

	// Deleted: re-created.
	if err := js.DeleteConsumer(ctx, DerivedStream, feed.Durable()); err != nil {
		t.Fatal(err)
	}
	keepCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.KeepSubscriberConsumers(keepCtx, []SubscriberConsumer{changed}, 10*time.Millisecond)
	}()
	for logs.FilterMessageSnippet("had disappeared").Len() == 0 {
		select {
		case <-ctx.Done():
			t.Fatalf("not re-created: %v", logs.All())
		case <-time.After(10 * time.Millisecond):
		}
	}
	stop()
	<-done
	if c := info().Config; c.FilterSubject != changed.Filter || c.DeliverPolicy != jetstream.DeliverNewPolicy {
		t.Errorf("re-created %+v", c)
	}
}

// TestEmbeddedMovesGlobalStore: streams an embedded server kept before it
// had accounts (nats-server's global account) are wahook's after an
// upgrade.
func TestEmbeddedMovesGlobalStore(t *testing.T) {
	dir := t.TempDir()
	opts := &server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(20 * time.Second) {
		t.Fatal("server not ready")
	}
	old := connect(t, Config{URL: srv.ClientURL()})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := old.Publish(ctx, ingressMsg("CH", 1, jsonBody(1))); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(ctx); err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	srv.WaitForShutdown()
	if _, err := os.Stat(filepath.Join(dir, "jetstream", "$G", "streams", IngressStream)); err != nil {
		t.Fatalf("the old layout: %v", err)
	}

	e := startServer(t, dir)
	b := connect(t, Config{Embedded: e})
	if n := streamCount(t, b.JetStream(), IngressStream); n != 1 {
		t.Errorf("%s holds %d messages after the move, want 1", IngressStream, n)
	}
	if _, err := os.Stat(filepath.Join(dir, "jetstream", "$G")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("global account store still there: %v", err)
	}
}
