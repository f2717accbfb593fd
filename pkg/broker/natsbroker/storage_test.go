package natsbroker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wahook/wahook/pkg/broker"
)

// startServerWith runs an embedded server configured by cfg (Addr and
// StoreDir filled in), shut down when the test ends.
func startServerWith(t *testing.T, cfg EmbeddedConfig) *Embedded {
	t.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:-1"
	}
	if cfg.StoreDir == "" {
		cfg.StoreDir = t.TempDir()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := StartEmbedded(ctx, cfg)
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return e
}

// fill publishes messages of size bytes on channel until Publish fails, and
// returns how many were stored and the error.
func fill(t *testing.T, b *Broker, channel string, size int) (int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	data := make([]byte, size)
	for i := range 10000 {
		if err := b.Publish(ctx, ingressMsg(channel, i, data)); err != nil {
			return i, err
		}
	}
	t.Fatalf("fill: 10000 messages of %d bytes stored, the store never filled up", size)
	return 0, nil
}

func apiError(err error) *jetstream.APIError {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr
	}
	return nil
}

func TestFullRawStreamIsUnavailableUntilThereIsRoom(t *testing.T) {
	e := startServer(t, t.TempDir())
	b := connect(t, Config{Embedded: e, Streams: StreamsConfig{IngressMaxBytes: minStreamBytes}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Ready(ctx); err != nil {
		t.Fatalf("Ready on an empty stream: %v", err)
	}

	stored, err := fill(t, b, "A", 64<<10)
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("Publish to a full raw stream = %v, want ErrUnavailable", err)
	}
	if ae := apiError(err); ae == nil || ae.ErrorCode != errCodeStreamStoreFailed || ae.Description != "maximum bytes exceeded" {
		t.Errorf("Publish to a full raw stream = %v, want JetStream's %d maximum bytes exceeded", err, errCodeStreamStoreFailed)
	}
	if err := b.Ready(ctx); !errors.Is(err, broker.ErrUnavailable) || !strings.Contains(err.Error(), IngressStream) {
		t.Errorf("Ready with a full raw stream = %v, want ErrUnavailable naming %s", err, IngressStream)
	}
	// Nothing was dropped to make room.
	s, err := b.JetStream().Stream(ctx, IngressStream)
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	if st := s.CachedInfo().State; st.FirstSeq != 1 || st.Msgs != uint64(stored) {
		t.Errorf("full raw stream: first seq %d, %d messages; want 1 and the %d stored", st.FirstSeq, st.Msgs, stored)
	}

	// An operator purges it: publishes succeed again.
	if err := s.Purge(ctx); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	if err := b.Publish(ctx, ingressMsg("B", 0, jsonBody(0))); err != nil {
		t.Errorf("Publish after purge: %v", err)
	}
	if err := b.Ready(ctx); err != nil {
		t.Errorf("Ready after purge: %v", err)
	}

	// Full again; an operator raises the limit.
	if _, err := fill(t, b, "C", 64<<10); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("Publish to a full raw stream = %v, want ErrUnavailable", err)
	}
	cfg := s.CachedInfo().Config
	cfg.MaxBytes *= 2
	if _, err := b.JetStream().UpdateStream(ctx, cfg); err != nil {
		t.Fatalf("UpdateStream: %v", err)
	}
	if err := b.Publish(ctx, ingressMsg("D", 0, jsonBody(0))); err != nil {
		t.Errorf("Publish after raising the limit: %v", err)
	}
	if err := b.Ready(ctx); err != nil {
		t.Errorf("Ready after raising the limit: %v", err)
	}
}

func TestFullServerStoreIsUnavailableUntilThereIsRoom(t *testing.T) {
	e := startServerWith(t, EmbeddedConfig{Storage: EmbeddedStorageConfig{MaxStore: 16 << 20}})
	// Streams without limits: the server's store limit is what fills up.
	b := connect(t, Config{Embedded: e, Streams: StreamsConfig{IngressMaxBytes: -1, DeadLetterMaxBytes: -1, DerivedMaxBytes: -1}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if _, err := fill(t, b, "A", 64<<10); !errors.Is(err, broker.ErrUnavailable) {
		t.Fatalf("Publish to a full server store = %v, want ErrUnavailable", err)
	} else if ae := apiError(err); ae == nil || ae.ErrorCode != errCodeInsufficientResources {
		t.Errorf("Publish to a full server store = %v, want JetStream's %d insufficient resources", err, errCodeInsufficientResources)
	}
	if err := b.Ready(ctx); !errors.Is(err, broker.ErrUnavailable) || !strings.Contains(err.Error(), "store") {
		t.Errorf("Ready with a full server store = %v, want ErrUnavailable about the store", err)
	}
	st, err := e.Storage()
	if err != nil || st.MaxStore != 16<<20 || st.Store < st.MaxStore*95/100 {
		t.Errorf("Storage() = %+v, %v; want the 16 MiB limit nearly used", st, err)
	}

	s, err := b.JetStream().Stream(ctx, IngressStream)
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	if err := s.Purge(ctx); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	if err := b.Publish(ctx, ingressMsg("B", 0, jsonBody(0))); err != nil {
		t.Errorf("Publish after purge: %v", err)
	}
	if err := b.Ready(ctx); err != nil {
		t.Errorf("Ready after purge: %v", err)
	}
}

func TestClassifyStoreFull(t *testing.T) {
	for _, tc := range []struct {
		err  jetstream.APIError
		want bool
	}{
		{jetstream.APIError{Code: 503, ErrorCode: errCodeStreamStoreFailed, Description: "maximum bytes exceeded"}, true},
		{jetstream.APIError{Code: 503, ErrorCode: errCodeStreamStoreFailed, Description: "maximum messages exceeded"}, true},
		{jetstream.APIError{Code: 400, ErrorCode: errCodeAccountResourcesExceeded, Description: "resource limits exceeded for account"}, true},
		{jetstream.APIError{Code: 503, ErrorCode: errCodeInsufficientResources, Description: "insufficient resources"}, true},
		{jetstream.APIError{Code: 500, ErrorCode: errCodeStorageResourcesExceeded, Description: "insufficient storage resources available"}, true},
		{jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamMessageExceedsMaximum, Description: "message size exceeds maximum allowed"}, false},
		{jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeBadRequest, Description: "bad request"}, false},
	} {
		err := fmt.Errorf("publish: %w", &tc.err)
		if got := errors.Is(classify(err), broker.ErrUnavailable); got != tc.want {
			t.Errorf("classify(%d %q) unavailable = %t, want %t", tc.err.ErrorCode, tc.err.Description, got, tc.want)
		}
	}
}

// gather collects reg's metrics as "name{label=value,...}" -> value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			if len(m.GetLabel()) > 0 {
				var ls []string
				for _, l := range m.GetLabel() {
					ls = append(ls, l.GetName()+"="+l.GetValue())
				}
				key += "{" + strings.Join(ls, ",") + "}"
			}
			v := m.GetCounter().GetValue()
			if g := m.GetGauge(); g != nil {
				v = g.GetValue()
			}
			out[key] = v
		}
	}
	return out
}

func TestStorageCollector(t *testing.T) {
	e := startServerWith(t, EmbeddedConfig{Storage: EmbeddedStorageConfig{CheckInterval: -1}})
	spy := spyAPI(t, e)
	b := connect(t, Config{Embedded: e})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 3 {
		if err := b.Publish(ctx, ingressMsg("CH", i, jsonBody(i))); err != nil {
			t.Fatalf("Publish: %v", err)
		}
	}
	c := b.StorageCollector("KV_NONE").(*storageCollector)
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)

	spy.sync(t, b.Conn())
	spy.take()
	got := gather(t, reg)
	for key, want := range map[string]float64{
		"wahook_nats_jetstream_up":                               1,
		"wahook_nats_stream_messages{stream=WAHOOK_INGRESS}":     3,
		"wahook_nats_stream_messages{stream=WAHOOK_DERIVED}":     0,
		"wahook_nats_stream_max_bytes{stream=WAHOOK_INGRESS}":    DefaultIngressMaxBytes,
		"wahook_nats_stream_max_bytes{stream=WAHOOK_DEADLETTER}": DefaultDeadLetterMaxBytes,
		"wahook_nats_stream_max_bytes{stream=WAHOOK_DERIVED}":    DefaultDerivedMaxBytes,
		"wahook_nats_account_store_reserved_bytes":               DefaultIngressMaxBytes + DefaultDeadLetterMaxBytes + DefaultDerivedMaxBytes,
		"wahook_nats_server_store_limit_bytes":                   DefaultMaxStore,
		"wahook_nats_server_store_reserved_bytes":                DefaultIngressMaxBytes + DefaultDeadLetterMaxBytes + DefaultDerivedMaxBytes,
		"wahook_nats_server_memory_limit_bytes":                  DefaultMaxMemory,
		"wahook_nats_server_jetstream_healthy":                   1,
		"wahook_nats_server_jetstream_restarts_total":            0,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %t), want %v", key, v, ok, want)
		}
	}
	for _, key := range []string{"wahook_nats_stream_bytes{stream=WAHOOK_INGRESS}", "wahook_nats_account_store_bytes", "wahook_nats_server_store_bytes"} {
		if got[key] <= 0 {
			t.Errorf("%s = %v, want more than 0", key, got[key])
		}
	}
	if _, ok := got["wahook_nats_server_disk_free_bytes"]; !ok {
		t.Error("wahook_nats_server_disk_free_bytes missing")
	}
	if _, ok := got["wahook_nats_stream_bytes{stream=KV_NONE}"]; ok {
		t.Error("a stream that does not exist is reported")
	}

	// A second scrape right after costs no JetStream request.
	gather(t, reg)
	spy.sync(t, b.Conn())
	if n := spy.take(); n["INFO"] != 1 || n["STREAM.INFO"] != 4 {
		t.Errorf("two scrapes sent %v, want one INFO and one STREAM.INFO per stream", n)
	}

	// JetStream switched off: reported as such.
	c.mu.Lock()
	c.at = time.Time{}
	c.mu.Unlock()
	if err := e.Server().ShutdownJetStream(); err != nil {
		t.Fatalf("ShutdownJetStream: %v", err)
	}
	got = gather(t, reg)
	if got["wahook_nats_jetstream_up"] != 0 || got["wahook_nats_server_jetstream_healthy"] != 0 {
		t.Errorf("JetStream off: up %v, healthy %v; want 0, 0", got["wahook_nats_jetstream_up"], got["wahook_nats_server_jetstream_healthy"])
	}
}

func TestWatchdogRestartsJetStreamSwitchedOff(t *testing.T) {
	e := startServerWith(t, EmbeddedConfig{Storage: EmbeddedStorageConfig{CheckInterval: -1}})
	b := connect(t, Config{Embedded: e, PublishTimeout: 2 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Publish(ctx, ingressMsg("CH", 0, jsonBody(0))); err != nil {
		t.Fatalf("Publish: %v", err)
	}

	// What nats-server does on a write it is not permitted, or clustered
	// on a full disk: it switches JetStream off, for good.
	if err := e.Server().ShutdownJetStream(); err != nil {
		t.Fatalf("ShutdownJetStream: %v", err)
	}
	if err := b.Ready(ctx); !errors.Is(err, broker.ErrUnavailable) || !strings.Contains(err.Error(), "switched off") {
		t.Errorf("Ready with JetStream off = %v, want ErrUnavailable saying so", err)
	}
	if err := b.Publish(ctx, ingressMsg("CH", 1, jsonBody(1))); !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Publish with JetStream off = %v, want ErrUnavailable", err)
	}

	// The disk is still full: no restart.
	var free atomic.Uint64
	e.watch.diskFree = func(string) (uint64, bool) { return free.Load(), true }
	if got := e.watch.check(); got != checkWaiting || e.Server().JetStreamEnabled() {
		t.Fatalf("check with a full disk = %v, JetStream enabled %t; want waiting, off", got, e.Server().JetStreamEnabled())
	}
	if err := b.Ready(ctx); !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Ready with a full disk = %v, want ErrUnavailable", err)
	}

	// Space comes back.
	free.Store(1 << 40)
	if got := e.watch.check(); got != checkRestarted {
		t.Fatalf("check with room = %v, want a restart", got)
	}
	if err := b.Ready(ctx); err != nil {
		t.Errorf("Ready after the restart: %v", err)
	}
	if err := b.Publish(ctx, ingressMsg("CH", 2, jsonBody(2))); err != nil {
		t.Errorf("Publish after the restart: %v", err)
	}
	if n := streamCount(t, b.JetStream(), IngressStream); n != 2 {
		t.Errorf("raw stream holds %d messages after the restart, want 2", n)
	}
	if got := e.watch.check(); got != checkHealthy {
		t.Errorf("check after the restart = %v, want healthy", got)
	}
	if st, _ := e.Storage(); st.Restarts != 1 {
		t.Errorf("Restarts = %d, want 1", st.Restarts)
	}
}

func TestWatchdogRunsByItself(t *testing.T) {
	e := startServerWith(t, EmbeddedConfig{Storage: EmbeddedStorageConfig{CheckInterval: 20 * time.Millisecond}})
	b := connect(t, Config{Embedded: e})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.Server().ShutdownJetStream(); err != nil {
		t.Fatalf("ShutdownJetStream: %v", err)
	}
	for {
		if err := b.Ready(ctx); err == nil {
			break
		} else if ctx.Err() != nil {
			t.Fatalf("Ready never again after JetStream was switched off: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := b.Publish(ctx, ingressMsg("CH", 0, jsonBody(0))); err != nil {
		t.Errorf("Publish after the watchdog restarted JetStream: %v", err)
	}
	if st, _ := e.Storage(); st.Restarts < 1 {
		t.Errorf("Restarts = %d, want at least 1", st.Restarts)
	}
}

func TestFullDerivedStreamDropsItsOldest(t *testing.T) {
	e := startServer(t, t.TempDir())
	b := connect(t, Config{Embedded: e, Streams: StreamsConfig{DerivedMaxBytes: minStreamBytes}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	data := make([]byte, 64<<10)
	n := 2 * minStreamBytes / len(data)
	for i := range n {
		m := broker.Message{Subject: "wahook.label-changed.whapi.CH", Key: "whapi/CH/1", ID: fmt.Sprintf("derived-%d", i), Data: data}
		if err := b.Publish(ctx, m); err != nil {
			t.Fatalf("Publish %d of %d to the derived stream: %v", i, n, err)
		}
	}
	s, err := b.JetStream().Stream(ctx, DerivedStream)
	if err != nil {
		t.Fatalf("Stream: %v", err)
	}
	st := s.CachedInfo().State
	if st.FirstSeq == 1 || st.LastSeq != uint64(n) || st.Bytes > minStreamBytes {
		t.Errorf("derived stream: seqs %d to %d, %d bytes; want the oldest dropped, the last (%d) kept, at most %d bytes",
			st.FirstSeq, st.LastSeq, st.Bytes, n, minStreamBytes)
	}
	if err := b.Ready(ctx); err != nil {
		t.Errorf("Ready with a full derived stream: %v", err)
	}
}

// TestSubscriptionResumesAfterJetStreamRestart: a consumer running in the
// process through a watchdog restart goes on with what is published after.
func TestSubscriptionResumesAfterJetStreamRestart(t *testing.T) {
	e := startServerWith(t, EmbeddedConfig{Storage: EmbeddedStorageConfig{CheckInterval: -1}})
	b := connect(t, Config{Embedded: e})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 16)
	done := make(chan error, 1)
	go func() {
		done <- b.Subscribe(ctx, broker.Subscription{Topic: "wahook.ingress", Group: "restart"}, func(_ context.Context, m broker.Received) error {
			got <- m.ID
			return nil
		})
	}()
	wait := func(id string) {
		t.Helper()
		timeout := time.After(60 * time.Second)
		for {
			select {
			case g := <-got:
				if g == id {
					return
				}
			case <-timeout:
				t.Fatalf("%s not consumed", id)
			}
		}
	}
	pctx, pcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer pcancel()
	first, second := ingressMsg("R", 1, jsonBody(1)), ingressMsg("R", 2, jsonBody(2))
	if err := b.Publish(pctx, first); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	wait(first.ID)

	e.watch.restart("test")
	if err := b.Publish(pctx, second); err != nil {
		t.Fatalf("Publish after the restart: %v", err)
	}
	wait(second.ID)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Subscribe = %v, want context.Canceled", err)
	}
}

func TestAccountAndStreamHighWater(t *testing.T) {
	for name, tc := range map[string]struct {
		err  error
		want bool
	}{
		"account below":      {accountFull(&jetstream.AccountInfo{Tier: jetstream.Tier{Store: 94, Limits: jetstream.AccountLimits{MaxStore: 100}}}, 0.95), false},
		"account above":      {accountFull(&jetstream.AccountInfo{Tier: jetstream.Tier{Store: 95, Limits: jetstream.AccountLimits{MaxStore: 100}}}, 0.95), true},
		"account unlimited":  {accountFull(&jetstream.AccountInfo{Tier: jetstream.Tier{Store: 1 << 40, Limits: jetstream.AccountLimits{MaxStore: -1}}}, 0.95), false},
		"account tier above": {accountFull(&jetstream.AccountInfo{Tiers: map[string]jetstream.Tier{"R3": {Store: 99, Limits: jetstream.AccountLimits{MaxStore: 100}}}}, 0.95), true},
		"stream bytes above": {streamFull(&jetstream.StreamInfo{Config: jetstream.StreamConfig{Name: "S", MaxBytes: 100, MaxMsgs: -1}, State: jetstream.StreamState{Bytes: 96}}, 0.95), true},
		"stream msgs above":  {streamFull(&jetstream.StreamInfo{Config: jetstream.StreamConfig{Name: "S", MaxBytes: -1, MaxMsgs: 10}, State: jetstream.StreamState{Msgs: 10}}, 0.95), true},
		"stream below":       {streamFull(&jetstream.StreamInfo{Config: jetstream.StreamConfig{Name: "S", MaxBytes: 100, MaxMsgs: 10}, State: jetstream.StreamState{Bytes: 50, Msgs: 5}}, 0.95), false},
	} {
		if got := errors.Is(tc.err, broker.ErrUnavailable); got != tc.want {
			t.Errorf("%s: %v, want unavailable %t", name, tc.err, tc.want)
		}
	}
}

func TestStoreLimitAboveFreeDiskIsLogged(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	startServerWith(t, EmbeddedConfig{Logger: zap.New(core), Storage: EmbeddedStorageConfig{MaxStore: 1 << 60, CheckInterval: -1}})
	if logs.FilterMessageSnippet("above the disk's free space").Len() != 1 {
		t.Errorf("no warning about a store limit above the free disk space; logs: %v", logs.All())
	}
}
