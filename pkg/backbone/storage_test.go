package backbone

import (
	"context"
	"flag"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/wahook/wahook/pkg/broker/kafkabroker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/state/kafkastate"
	"github.com/wahook/wahook/pkg/state/natsstate"
)

func TestByteSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "1048576": 1 << 20, "-1": -1, "64MiB": 64 << 20, "8GiB": 8 << 30, "2 TiB": 2 << 40,
		"512K": 512 << 10, "3G": 3 << 30, "100B": 100,
	} {
		got, err := parseByteSize(in)
		if err != nil || got != want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "1.5GiB", "-2", "-1GiB", "8EiB", "9000000TiB", "lots"} {
		if got, err := parseByteSize(in); err == nil {
			t.Errorf("parseByteSize(%q) = %d, want an error", in, got)
		}
	}
	for n, want := range map[int64]string{-1: "-1", 0: "0", 100: "100", 8 << 30: "8GiB", 1536 << 20: "1536MiB"} {
		if got := formatByteSize(n); got != want {
			t.Errorf("formatByteSize(%d) = %q, want %q", n, got, want)
		}
	}
}

// parse reads args into a Config as a service does (without ff's
// environment, which maps WAHOOK_NATS_MAX_STORE to -nats-max-store).
func parse(t *testing.T, args ...string) Config {
	t.Helper()
	var c Config
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("Parse(%q): %v", args, err)
	}
	return c
}

func TestStorageFlags(t *testing.T) {
	defaults := parse(t)
	if err := defaults.Validate(); err != nil {
		t.Errorf("Validate with the defaults: %v", err)
	}
	c := parse(t, "-data-dir", t.TempDir(), "-nats-embedded-addr", "127.0.0.1:-1",
		"-nats-ingress-max-bytes", "64MiB", "-nats-ingress-max-age", "48h",
		"-nats-deadletter-max-bytes", "16MiB", "-nats-derived-max-bytes", "-1",
		"-nats-labels-max-bytes", "2MiB", "-nats-chats-max-bytes", "4MiB", "-nats-chats-ttl", "72h",
		"-nats-times-max-bytes", "8MiB", "-received-time-ttl", "36h",
		"-nats-max-store", "1GiB", "-nats-max-memory", "32MiB", "-nats-storage-high-water", "0.8")
	bb := open(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := bb.State(ctx); err != nil {
		t.Fatalf("State: %v", err)
	}
	js := bb.nats.JetStream()
	got := map[string][2]any{}
	for _, name := range []string{natsbroker.IngressStream, natsbroker.DeadLetterStream, natsbroker.DerivedStream,
		"KV_" + natsstate.DefaultLabelsBucket, "KV_" + natsstate.DefaultChatsBucket, "KV_" + natsstate.DefaultTimesBucket} {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("Stream(%s): %v", name, err)
		}
		got[name] = [2]any{s.CachedInfo().Config.MaxBytes, s.CachedInfo().Config.MaxAge}
	}
	want := map[string][2]any{
		natsbroker.IngressStream:              {int64(64 << 20), 48 * time.Hour},
		natsbroker.DeadLetterStream:           {int64(16 << 20), natsbroker.DefaultDeadLetterMaxAge},
		natsbroker.DerivedStream:              {int64(-1), natsbroker.DefaultDerivedMaxAge},
		"KV_" + natsstate.DefaultLabelsBucket: {int64(2 << 20), time.Duration(0)},
		"KV_" + natsstate.DefaultChatsBucket:  {int64(4 << 20), 72 * time.Hour},
		"KV_" + natsstate.DefaultTimesBucket:  {int64(8 << 20), 36 * time.Hour},
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s: max bytes, max age = %v, want %v", name, got[name], w)
		}
	}
	if hw := bb.nats.StorageHighWater(); hw != 0.8 {
		t.Errorf("broker storage high-water mark %g, want 0.8", hw)
	}
	st, err := bb.Embedded.Storage()
	if err != nil || st.MaxStore != 1<<30 || st.MaxMemory != 32<<20 {
		t.Errorf("embedded Storage() = %+v, %v; want limits 1 GiB and 32 MiB", st, err)
	}
}

func TestValidateStorage(t *testing.T) {
	for name, tc := range map[string]struct {
		args    []string
		wantErr string
	}{
		"limits over the store":             {[]string{"-nats-max-store", "4GiB"}, "exceed the embedded store limit 4GiB"},
		"chats forgotten before raw events": {[]string{"-nats-chats-ttl", "24h"}, "chats TTL"},
		"high water over 1":                 {[]string{"-nats-storage-high-water", "1.5"}, "high-water"},
		"min isr over replication": {[]string{"-broker", "kafka", "-kafka-brokers", "k:9092", "-kafka-replication", "2",
			"-kafka-min-insync-replicas", "3"}, "min in-sync replicas 3"},
		"kafka chats forgotten before raw events": {[]string{"-broker", "kafka", "-kafka-brokers", "k:9092", "-kafka-chats-ttl", "719h"},
			"kafka chats TTL 719h0m0s: want 0 (never) or at least the raw topic's retention 720h0m0s"},
		"negative kafka chats TTL": {[]string{"-broker", "kafka", "-kafka-brokers", "k:9092", "-kafka-chats-ttl", "-1h"}, "kafka chats TTL"},
	} {
		t.Run(name, func(t *testing.T) {
			err := parse(t, tc.args...).Validate()
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Validate(%q) = %v, want an error containing %q", tc.args, err, tc.wantErr)
			}
		})
	}
	// An external server sizes its own store: only it can check.
	if err := parse(t, "-nats-url", "nats://x:4222", "-nats-max-store", "4GiB").Validate(); err != nil {
		t.Errorf("Validate with an external server: %v", err)
	}
}

func TestCollector(t *testing.T) {
	bb := open(t, Config{Broker: "nats", NATSEmbeddedAddr: "127.0.0.1:-1", DataDir: t.TempDir(), NATSDuplicateWindow: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := bb.State(ctx); err != nil {
		t.Fatalf("State: %v", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(bb.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	streams := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() != "wahook_nats_stream_max_bytes" {
			continue
		}
		for _, m := range mf.GetMetric() {
			streams[m.GetLabel()[0].GetValue()] = true
		}
	}
	for _, name := range []string{natsbroker.IngressStream, "KV_" + natsstate.DefaultChatsBucket, "KV_" + natsstate.DefaultLabelsBucket} {
		if !streams[name] {
			t.Errorf("no wahook_nats_stream_max_bytes for %s; got %v", name, streams)
		}
	}
}

func TestKafkaMinInSyncReplicas(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	open(t, Config{Broker: "kafka", KafkaBrokers: strings.Join(c.ListenAddrs(), ","), KafkaPartitions: 2,
		KafkaReplication: 3, KafkaMinInSyncReplicas: 2, KafkaDedupWindow: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := (&kafka.Client{Addr: kafka.TCP(c.ListenAddrs()...)}).DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{
		Resources: []kafka.DescribeConfigRequestResource{{ResourceType: kafka.ResourceTypeTopic,
			ResourceName: kafkabroker.IngressTopic, ConfigNames: []string{"min.insync.replicas"}}},
	})
	if err != nil || len(resp.Resources) != 1 || len(resp.Resources[0].ConfigEntries) != 1 {
		t.Fatalf("DescribeConfigs = %+v, %v", resp, err)
	}
	if got := resp.Resources[0].ConfigEntries[0].ConfigValue; got != "2" {
		t.Errorf("%s min.insync.replicas = %s, want 2", kafkabroker.IngressTopic, got)
	}
}

func TestKafkaChatsTTLFlag(t *testing.T) {
	c := parse(t, "-broker", "kafka", "-kafka-brokers", "k:9092", "-kafka-chats-ttl", "720h")
	if err := c.Validate(); err != nil {
		t.Errorf("Validate with the chats TTL at the raw topic's retention: %v", err)
	}
	if c.KafkaChatsTTL != 720*time.Hour {
		t.Errorf("KafkaChatsTTL = %s, want 720h", c.KafkaChatsTTL)
	}
	if d := parse(t).KafkaChatsTTL; d != 0 {
		t.Errorf("default KafkaChatsTTL = %s, want 0", d)
	}
	for _, tt := range []struct {
		ttl, retention time.Duration
		ok             bool
	}{
		{0, 0, true},
		{0, -1, true},
		{time.Hour, -1, false},
		{kafkabroker.DefaultIngressRetention, 0, true},
		{kafkabroker.DefaultIngressRetention - time.Second, 0, false},
		{48 * time.Hour, 48 * time.Hour, true},
		{47 * time.Hour, 48 * time.Hour, false},
		{-time.Hour, 48 * time.Hour, false},
	} {
		if err := checkKafkaChatsTTL(tt.ttl, tt.retention); (err == nil) != tt.ok {
			t.Errorf("checkKafkaChatsTTL(%s, retention %s) = %v, want ok %v", tt.ttl, tt.retention, err, tt.ok)
		}
	}
}

// On Kafka the state is opened with the chats TTL, its chats topic deletes
// what expired, and the collector exports the chats held once it is open.
func TestKafkaChatsTTL(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	bb := open(t, Config{Broker: "kafka", KafkaBrokers: strings.Join(c.ListenAddrs(), ","), KafkaPartitions: 2,
		KafkaDedupWindow: time.Hour, ReceivedTimeTTL: time.Hour, KafkaChatsTTL: 720 * time.Hour})
	reg := prometheus.NewRegistry()
	reg.MustRegister(bb.Collector())
	held := func() (float64, bool) {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatalf("Gather: %v", err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "wahook_state_chats_held" {
				return mf.GetMetric()[0].GetGauge().GetValue(), true
			}
		}
		return 0, false
	}
	if v, ok := held(); ok {
		t.Errorf("wahook_state_chats_held = %g before the state is open, want none", v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := bb.State(ctx)
	if err != nil {
		t.Fatalf("State: %v", err)
	}
	if first, err := st.Chats.FirstSeen(ctx, "whapi", "C1", "1@s.whatsapp.net", "ev1"); err != nil || !first {
		t.Fatalf("FirstSeen = %v, %v; want true", first, err)
	}
	if v, ok := held(); !ok || v != 1 {
		t.Errorf("wahook_state_chats_held = %g (present %v), want 1", v, ok)
	}
	resp, err := (&kafka.Client{Addr: kafka.TCP(c.ListenAddrs()...)}).DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{
		Resources: []kafka.DescribeConfigRequestResource{{ResourceType: kafka.ResourceTypeTopic,
			ResourceName: kafkastate.DefaultChatsTopic, ConfigNames: []string{"cleanup.policy", "retention.ms"}}},
	})
	if err != nil || len(resp.Resources) != 1 {
		t.Fatalf("DescribeConfigs = %+v, %v", resp, err)
	}
	got := map[string]string{}
	for _, e := range resp.Resources[0].ConfigEntries {
		got[e.ConfigName] = e.ConfigValue
	}
	if want := map[string]string{"cleanup.policy": "compact,delete", "retention.ms": "2595600000"}; !maps.Equal(got, want) {
		t.Errorf("chats topic configs %v, want %v", got, want)
	}
}
