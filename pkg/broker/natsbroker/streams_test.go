package natsbroker

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// apiSpy counts the JetStream API requests a server receives, by kind
// ("STREAM.UPDATE", "STREAM.CREATE", "INFO", ...).
type apiSpy struct {
	nc   *nats.Conn
	msgs chan *nats.Msg

	mu     sync.Mutex
	counts map[string]int
}

const spySyncPrefix = "wahook-test.spy-sync."

func spyAPI(t *testing.T, e *Embedded) *apiSpy {
	t.Helper()
	login, err := e.ServiceAuth().Options()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(e.ClientURL(), login...)
	if err != nil {
		t.Fatalf("spy connect: %v", err)
	}
	t.Cleanup(nc.Close)
	s := &apiSpy{nc: nc, msgs: make(chan *nats.Msg, 4096), counts: map[string]int{}}
	// Both subscriptions feed one channel, in the order the connection
	// receives them, so a sync marker comes after the requests sent before
	// it.
	for _, subj := range []string{"$JS.API.>", spySyncPrefix + ">"} {
		if _, err := nc.ChanSubscribe(subj, s.msgs); err != nil {
			t.Fatalf("spy subscribe %s: %v", subj, err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("spy flush: %v", err)
	}
	return s
}

// sync waits until the spy has seen every request from sent before.
func (s *apiSpy) sync(t *testing.T, from *nats.Conn) {
	t.Helper()
	marker := spySyncPrefix + nuid.Next()
	if err := from.Publish(marker, nil); err != nil {
		t.Fatalf("publish sync marker: %v", err)
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-s.msgs:
			if m.Subject == marker {
				return
			}
			if strings.HasPrefix(m.Subject, spySyncPrefix) {
				continue
			}
			s.mu.Lock()
			s.counts[apiKind(m.Subject)]++
			s.mu.Unlock()
		case <-timeout:
			t.Fatal("spy: sync marker not received")
		}
	}
}

// take returns the counts so far and starts over.
func (s *apiSpy) take() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.counts
	s.counts = map[string]int{}
	return c
}

// apiKind is an API subject without the prefix and the stream or consumer
// name: $JS.API.STREAM.UPDATE.X is STREAM.UPDATE.
func apiKind(subject string) string {
	toks := strings.Split(strings.TrimPrefix(subject, "$JS.API."), ".")
	if len(toks) >= 2 && (toks[0] == "STREAM" || toks[0] == "CONSUMER") {
		return toks[0] + "." + toks[1]
	}
	return toks[0]
}

func TestEnsureStreamsSendsNoUpdateWhenUnchanged(t *testing.T) {
	e := startServer(t, t.TempDir())
	spy := spyAPI(t, e)

	first := connect(t, Config{Embedded: e})
	spy.sync(t, first.Conn())
	if got := spy.take(); got["STREAM.CREATE"] != len(streamNames) || got["STREAM.UPDATE"] != 0 {
		t.Errorf("first start: API requests %v, want %d STREAM.CREATE and no STREAM.UPDATE", got, len(streamNames))
	}

	// Another instance starts, and every service runs EnsureStreams again.
	second := connect(t, Config{URL: e.ClientURL(), Auth: e.ServiceAuth()})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := second.EnsureStreams(ctx); err != nil {
		t.Fatalf("EnsureStreams: %v", err)
	}
	spy.sync(t, second.Conn())
	got := spy.take()
	if got["STREAM.UPDATE"] != 0 || got["STREAM.CREATE"] != 0 {
		t.Errorf("restart with an unchanged configuration: API requests %v, want no STREAM.UPDATE nor STREAM.CREATE", got)
	}
	if got["STREAM.INFO"] != 2*len(streamNames) {
		t.Errorf("restart: %d STREAM.INFO, want %d (one per stream and EnsureStreams)", got["STREAM.INFO"], 2*len(streamNames))
	}
}

func TestEnsureStreamsKeepsOperatorChanges(t *testing.T) {
	dir := t.TempDir()
	e := startServer(t, dir)
	b := connect(t, Config{Embedded: e})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := b.Publish(ctx, ingressMsg("CH", 1, jsonBody(1))); err != nil {
		t.Fatalf("Publish: %v", err)
	}

	// The operator raises the raw stream's limit, shortens the derived
	// stream's age, makes the derived stream refuse rather than drop, and,
	// wrongly, lets the raw stream drop its oldest events.
	edit := func(name string, change func(*jetstream.StreamConfig)) {
		s, err := b.JetStream().Stream(ctx, name)
		if err != nil {
			t.Fatalf("Stream(%s): %v", name, err)
		}
		cfg := s.CachedInfo().Config
		change(&cfg)
		if _, err := b.JetStream().UpdateStream(ctx, cfg); err != nil {
			t.Fatalf("UpdateStream(%s): %v", name, err)
		}
	}
	raised := int64(DefaultIngressMaxBytes + 1<<30)
	edit(IngressStream, func(c *jetstream.StreamConfig) {
		c.MaxBytes = raised
		c.Discard = jetstream.DiscardOld
	})
	edit(DerivedStream, func(c *jetstream.StreamConfig) {
		c.MaxAge = 48 * time.Hour
		c.Discard = jetstream.DiscardNew
	})

	// Restart, with another duplicates window: an ingress and a deriver
	// started with different settings must not flip it.
	if err := e.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	e = startServer(t, dir)
	b = connect(t, Config{Embedded: e, Streams: StreamsConfig{Duplicates: 2 * time.Minute}})

	got := map[string]jetstream.StreamConfig{}
	for _, name := range streamNames {
		s, err := b.JetStream().Stream(ctx, name)
		if err != nil {
			t.Fatalf("Stream(%s): %v", name, err)
		}
		got[name] = s.CachedInfo().Config
	}
	type settings struct {
		MaxBytes   int64
		MaxAge     time.Duration
		Discard    jetstream.DiscardPolicy
		Duplicates time.Duration
	}
	want := map[string]settings{
		// The raised limit stays; discarding raw events does not.
		IngressStream:    {raised, DefaultIngressMaxAge, jetstream.DiscardNew, DefaultDuplicates},
		DeadLetterStream: {DefaultDeadLetterMaxBytes, DefaultDeadLetterMaxAge, jetstream.DiscardNew, DefaultDuplicates},
		// The shorter age and refusing when full are the operator's choice.
		DerivedStream: {DefaultDerivedMaxBytes, 48 * time.Hour, jetstream.DiscardNew, DefaultDuplicates},
	}
	have := map[string]settings{}
	for name, c := range got {
		have[name] = settings{c.MaxBytes, c.MaxAge, c.Discard, c.Duplicates}
	}
	if diff := cmp.Diff(want, have); diff != "" {
		t.Errorf("streams after restart (-want +got):\n%s", diff)
	}
	if n := streamCount(t, b.JetStream(), IngressStream); n != 1 {
		t.Errorf("stream %s holds %d messages after restart, want 1", IngressStream, n)
	}
}

func TestReconcile(t *testing.T) {
	want := StreamsConfig{}
	want.setDefaults()
	ingress := want.StreamConfigs()[0]
	derived := want.StreamConfigs()[2]

	for name, tc := range map[string]struct {
		want         jetstream.StreamConfig
		change       func(*jetstream.StreamConfig)
		wantRequired []string
		wantTuned    []string
		wantFixed    func(*jetstream.StreamConfig)
	}{
		"unchanged": {want: ingress, change: func(*jetstream.StreamConfig) {}},
		"operator limits": {want: ingress, change: func(c *jetstream.StreamConfig) {
			c.MaxBytes, c.MaxAge, c.MaxMsgs, c.Replicas = 1<<40, time.Hour, 1000, 3
			c.Description, c.Compression = "ours now", jetstream.S2Compression
		}, wantTuned: []string{"replicas", "max_bytes", "max_age", "max_msgs"}},
		"derived refusing when full": {want: derived, change: func(c *jetstream.StreamConfig) { c.Discard = jetstream.DiscardNew },
			wantTuned: []string{"discard"}},
		"raw discarding when full": {want: ingress, change: func(c *jetstream.StreamConfig) { c.Discard = jetstream.DiscardOld },
			wantRequired: []string{"discard"}, wantFixed: func(c *jetstream.StreamConfig) { c.Discard = jetstream.DiscardNew }},
		"stream of an earlier wahook, without direct gets": {want: derived, change: func(c *jetstream.StreamConfig) { c.AllowDirect = false },
			wantRequired: []string{"allow_direct"}, wantFixed: func(c *jetstream.StreamConfig) { c.AllowDirect = true }},
		"subject missing, extra kept": {want: derived, change: func(c *jetstream.StreamConfig) {
			c.Subjects = []string{LabelChangedSubjects, "ops.>"}
		}, wantRequired: []string{"subjects"}, wantFixed: func(c *jetstream.StreamConfig) {
			c.Subjects = []string{LabelChangedSubjects, "ops.>", ChatCreatedSubjects, CallSubjects, GroupNotificationSubjects}
		}},
		"acks, retention, fewer replicas; another window": {want: ingress, change: func(c *jetstream.StreamConfig) {
			c.Duplicates, c.NoAck, c.Retention, c.Replicas = time.Minute, true, jetstream.InterestPolicy, 0
			c.MaxBytes = 5
		}, wantRequired: []string{"retention", "no_ack", "replicas"}, wantTuned: []string{"duplicate_window", "max_bytes"},
			wantFixed: func(c *jetstream.StreamConfig) {
				c.Duplicates, c.NoAck, c.Retention, c.Replicas = time.Minute, false, jetstream.LimitsPolicy, 1
				c.MaxBytes = 5
			}},
	} {
		t.Run(name, func(t *testing.T) {
			have := tc.want
			have.Subjects = append([]string(nil), tc.want.Subjects...)
			tc.change(&have)
			fixed, diffs := Reconcile(have, tc.want)
			var required, tuned []string
			for _, d := range diffs {
				if d.Required {
					required = append(required, d.Setting)
				} else {
					tuned = append(tuned, d.Setting)
				}
			}
			if diff := cmp.Diff(tc.wantRequired, required); diff != "" {
				t.Errorf("required differences (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantTuned, tuned); diff != "" {
				t.Errorf("operator's differences (-want +got):\n%s", diff)
			}
			if tc.wantFixed == nil {
				if fixed != nil {
					t.Errorf("Reconcile wants an update to %+v, want none", *fixed)
				}
				return
			}
			wantCfg := tc.want
			wantCfg.Subjects = append([]string(nil), tc.want.Subjects...)
			tc.change(&wantCfg)
			tc.wantFixed(&wantCfg)
			if fixed == nil {
				t.Fatal("Reconcile wants no update, want one")
			}
			if diff := cmp.Diff(wantCfg, *fixed); diff != "" {
				t.Errorf("update (-want +got):\n%s", diff)
			}
		})
	}
}

func TestStreamsNeedReservableLimits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := StartEmbedded(ctx, EmbeddedConfig{Addr: "127.0.0.1:-1", StoreDir: t.TempDir(),
		Storage: EmbeddedStorageConfig{MaxStore: 64 << 20}})
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	defer e.Shutdown(ctx)
	b, err := Connect(ctx, Config{Embedded: e})
	if err == nil {
		_ = b.Close(ctx)
		t.Fatal("Connect with stream limits above the store limit: nil error")
	}
	if !strings.Contains(err.Error(), "cannot reserve") || !strings.Contains(err.Error(), IngressStream) {
		t.Errorf("Connect = %v, want an error naming %s and the reservation", err, IngressStream)
	}
}

// TestEnsureStreamsUpdateSettings: an operator's MaxBytes survives a restart,
// and a start with UpdateSettings resets it to wahook's.
func TestEnsureStreamsUpdateSettings(t *testing.T) {
	dir := t.TempDir()
	e := startServer(t, dir)
	b := connect(t, Config{Embedded: e})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	maxBytes := func() int64 {
		t.Helper()
		s, err := b.JetStream().Stream(ctx, IngressStream)
		if err != nil {
			t.Fatalf("Stream: %v", err)
		}
		return s.CachedInfo().Config.MaxBytes
	}
	s, err := b.JetStream().Stream(ctx, IngressStream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	raised := int64(DefaultIngressMaxBytes + 1<<30)
	cfg.MaxBytes = raised
	if _, err := b.JetStream().UpdateStream(ctx, cfg); err != nil {
		t.Fatalf("UpdateStream: %v", err)
	}

	restart := func(streams StreamsConfig) {
		t.Helper()
		if err := e.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		e = startServer(t, dir)
		b = connect(t, Config{Embedded: e, Streams: streams})
	}
	restart(StreamsConfig{})
	if got := maxBytes(); got != raised {
		t.Errorf("after a restart max bytes is %d, want the operator's %d", got, raised)
	}
	restart(StreamsConfig{UpdateSettings: true})
	if got := maxBytes(); got != DefaultIngressMaxBytes {
		t.Errorf("after a restart with UpdateSettings max bytes is %d, want wahook's %d", got, int64(DefaultIngressMaxBytes))
	}
	if n := streamCount(t, b.JetStream(), IngressStream); n != 0 {
		t.Errorf("stream %s holds %d messages, want none", IngressStream, n)
	}
}
