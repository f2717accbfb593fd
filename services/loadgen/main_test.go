package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/broker/natsbroker/natstest"
	"github.com/wahook/wahook/pkg/chatid"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/whapi"
)

// TestBodies: each body is one Whapi item of its kind, a distinct event
// about a chat of its own for every sequence number (the message keeps one
// chat), identified by the provider's id or, for chats.patch, by content.
func TestBodies(t *testing.T) {
	for _, tt := range []struct {
		kind, itemKind string
		withKey        bool
		ownChat        bool
		minSize        int
	}{
		{"message", "messages.post", true, true, 200},
		{"chats.patch", "chats.patch", false, true, 1800},
	} {
		t.Run(tt.kind, func(t *testing.T) {
			body, err := loadBody(tt.kind, "")
			if err != nil {
				t.Fatal(err)
			}
			ids, chats := map[string]bool{}, map[string]bool{}
			for _, n := range []int64{1, 2, time.Now().UnixMicro()} {
				b := bytes.ReplaceAll(body, []byte("{{seq}}"), []byte(strconv.FormatInt(n, 10)))
				if len(b) < tt.minSize {
					t.Errorf("body %d is %d bytes; want at least %d", n, len(b), tt.minSize)
				}
				items, err := whapi.New().Split(b, provider.Delivery{Method: "POST"})
				if err != nil || len(items) != 1 {
					t.Fatalf("Split(%s) = %d items, %v; want one", b, len(items), err)
				}
				it := items[0]
				if it.Kind != tt.itemKind || (it.Key != "") != tt.withKey {
					t.Errorf("item kind %q, key %q; want kind %q, key: %t", it.Kind, it.Key, tt.itemKind, tt.withKey)
				}
				id, err := provider.EventID("whapi", it)
				if err != nil {
					t.Fatal(err)
				}
				ids[id], chats[chatid.ID(it.Chat)] = true, true
			}
			if len(ids) != 3 {
				t.Errorf("three sequence numbers gave %d distinct event ids", len(ids))
			}
			if tt.ownChat != (len(chats) == 3) {
				t.Errorf("three sequence numbers gave %d chats; a chat of its own each: %t", len(chats), tt.ownChat)
			}
		})
	}
	if _, err := loadBody("chats.post", ""); err == nil {
		t.Error("loadBody(chats.post) = nil error; want an unknown kind")
	}
}

// TestReport: every row's rate is divided by reference+headers of its body,
// a pipeline row's rate is end to end, a Kafka row's is also divided by
// the same row on NATS.
func TestReport(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.jsonl")
	rec := func(row, body, broker string, ok int64) record {
		return record{Row: row, Body: body, Broker: broker, Conns: 64, OK: ok, Elapsed: 10 * time.Second, P99: 5 * time.Millisecond}
	}
	for _, r := range []record{
		rec(rowReference, "message", "nats", 120_000),
		{Row: rowReferenceHeaders, Body: "message", Broker: "nats", Conns: 64, OK: 100_000, Elapsed: 10 * time.Second, P99: 5 * time.Millisecond,
			CPU: map[string]time.Duration{"broker": 4 * time.Second, "target": 8 * time.Second, "load": 3 * time.Second}},
		{Row: rowIngress, Body: "message", Broker: "nats", Conns: 64, OK: 90_000, Failed: 3, Elapsed: 10 * time.Second, P99: 5 * time.Millisecond,
			CPU: map[string]time.Duration{"broker": 4 * time.Second, "target": 9 * time.Second, "load": 2700 * time.Millisecond}},
		{Row: rowPipeline, Body: "message", Broker: "nats", Conns: 64, OK: 60_000, Elapsed: 10 * time.Second, P99: 5 * time.Millisecond,
			CPU: map[string]time.Duration{"broker": 9 * time.Second, "target": 12 * time.Second, "load": 1800 * time.Millisecond}},
		rec(rowPipeline, "message", "kafka", 40_000),
	} {
		if err := appendRecord(path, r); err != nil {
			t.Fatal(err)
		}
	}
	// The Kafka pipeline took 20s from the start of its load to drain,
	// its target using 4s of CPU meanwhile.
	if _, err := updateLast(path, func(r *record) {
		r.EndToEnd, r.Lag, r.CPU = 20*time.Second, 7, map[string]time.Duration{"target": 4 * time.Second}
	}); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	if err := report([]string{"-results", path}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"message      reference          nats      64         12000    1.20        5ms",
		"message      reference+headers  nats      64         10000    1.00        5ms",
		"message      ingress            nats      64          9000    0.90        5ms            3 FAILED",
		"message      pipeline           nats      64          6000    0.60        5ms",
		"message      pipeline           kafka     64          2000    0.20        5ms      0.33  40000 in 20s (load 10s, lag 7 at its end)",
		"# CPU time per accepted delivery, µs, and its total",
		"message      reference+headers  nats    broker 40 + load 30 + target 80 = 150",
		"message      pipeline           nats    broker 150 + load 30 + target 200 = 380",
		"message      pipeline           kafka   target 100",
		// The pipeline's broker (150) with the ingress row's target (100)
		// and load (30), against the yardstick's 150 in all.
		"message      pipeline           nats    0.54 (150 / (broker 150 + ingress 100 + load 30))",
	} {
		if !strings.Contains(out.String(), want+"\n") {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}

// TestReportScale: a scale row's rate is its raw events over its time,
// compared with one instance on the same broker, its derivers' CPU added
// up; peak memory is listed per process.
func TestReportScale(t *testing.T) {
	path := filepath.Join(t.TempDir(), "results.jsonl")
	for _, r := range []record{
		{Row: rowScale, Body: "chats.patch", Broker: "nats", Instances: 1, OK: 50_000, EndToEnd: 10 * time.Second,
			CPU: map[string]time.Duration{"broker": 5 * time.Second, "deriver0": 5 * time.Second}, RSS: map[string]int64{"broker": 100 << 20, "deriver0": 50 << 20}},
		{Row: rowScale, Body: "chats.patch", Broker: "nats", Instances: 2, OK: 80_000, EndToEnd: 10 * time.Second,
			CPU: map[string]time.Duration{"broker": 4 * time.Second, "deriver0": 4 * time.Second, "deriver1": 4 * time.Second}},
		{Row: rowScale, Body: "chats.patch", Broker: "kafka", Instances: 2, OK: 10_000, EndToEnd: 10 * time.Second},
	} {
		if err := appendRecord(path, r); err != nil {
			t.Fatal(err)
		}
	}
	var out strings.Builder
	if err := report([]string{"-results", path}, &out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"chats.patch  nats           1      50000       10s         5000     1.00  broker 100 + derivers 100 = 200",
		"chats.patch  nats           2      80000       10s         8000     1.60  broker 50 + derivers 100 = 150",
		"chats.patch  kafka          2      10000       10s         1000        -",
		"chats.patch  scale x1           nats    broker 100, deriver0 50",
	} {
		if !strings.Contains(out.String(), want+"\n") {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "deliveries/s and ratios") {
		t.Errorf("report of scale rows only has the deliveries table:\n%s", out.String())
	}
}

// TestPeakRSS: a process's peak resident memory is read from /proc.
func TestPeakRSS(t *testing.T) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		t.Skip("no /proc")
	}
	w, err := watchCPU(fmt.Sprintf("self=%d", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	rss, err := w.peakRSS()
	// A Go test binary holds a few MiB at least.
	if err != nil || rss["self"] < 1<<20 {
		t.Errorf("peakRSS = %v, %v; want a MiB or more for self", rss, err)
	}
	if _, err := procPeakRSS(1 << 30); err == nil {
		t.Error("procPeakRSS of no process = nil error")
	}
}

// TestCPUWatch: the CPU time a process used over a window is read from
// /proc, and a malformed list of processes is refused.
func TestCPUWatch(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	w, err := watchCPU(fmt.Sprintf("self=%d", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	// Spin until the kernel has counted at least a tick of it.
	var used map[string]time.Duration
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if used, err = w.used(); err != nil {
			t.Fatal(err)
		}
		if used["self"] > 0 {
			break
		}
	}
	if used["self"] <= 0 {
		t.Errorf("used = %v after spinning; want some CPU time for self", used)
	}
	for _, bad := range []string{"self", "self=", "=1", "self=x", "self=-1"} {
		if _, err := watchCPU(bad); err == nil {
			t.Errorf("watchCPU(%q) = nil error", bad)
		}
	}
	if w, err := watchCPU(""); err != nil || w == nil {
		t.Errorf("watchCPU(\"\") = %v, %v; want a watch of nothing", w, err)
	} else if used, err := w.used(); used != nil || err != nil {
		t.Errorf("used of nothing = %v, %v", used, err)
	}
}

// TestNATSLag: a consumer's lag is what it has not delivered or not
// acknowledged; the lag is the most of a consumer, as every partition's
// consumer receives every raw event; a missing consumer is an error.
func TestNATSLag(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := natstest.Broker(t, natsbroker.Config{}).JetStream()
	name := func(group string, i, n int) string {
		t.Helper()
		s, err := natsbroker.ConsumerName(group, i, n)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	one := name("wahook-call", 0, 1)
	split := []string{name("wahook-label-changed", 0, 2), name("wahook-label-changed", 1, 2)}
	lag := natsLag(js, append([]string{one}, split...))
	if _, _, err := lag(ctx); err == nil {
		t.Fatal("lag without consumers = nil error")
	}
	cons := map[string]jetstream.Consumer{}
	for _, n := range append([]string{one}, split...) {
		c, err := js.CreateConsumer(ctx, natsbroker.IngressStream, jetstream.ConsumerConfig{Durable: n, AckPolicy: jetstream.AckExplicitPolicy})
		if err != nil {
			t.Fatal(err)
		}
		cons[n] = c
	}
	for i := range 3 {
		if _, err := js.Publish(ctx, "wahook.ingress.whapi.C.messages.post", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	// take fetches every message of a consumer and acknowledges the
	// first ack of them.
	take := func(c jetstream.Consumer, ack int) {
		t.Helper()
		batch, err := c.Fetch(3)
		if err != nil {
			t.Fatal(err)
		}
		i := 0
		for m := range batch.Messages() {
			if i < ack {
				if err := m.DoubleAck(ctx); err != nil {
					t.Fatal(err)
				}
			}
			i++
		}
		if i != 3 {
			t.Fatalf("fetched %d; want 3", i)
		}
	}
	if n, _, err := lag(ctx); err != nil || n != 3 {
		t.Fatalf("lag = %d, %v; want 3", n, err)
	}
	take(cons[split[0]], 3)
	take(cons[split[1]], 1)
	if n, where, err := lag(ctx); err != nil || n != 3 || !strings.Contains(where, split[1]+" 0 pending, 2 unacknowledged") {
		t.Fatalf("lag = %d (%s), %v; want 3 with 2 unacknowledged on %s", n, where, err, split[1])
	}
	take(cons[one], 3)
	if n, where, err := lag(ctx); err != nil || n != 2 {
		t.Fatalf("lag = %d (%s), %v; want 2", n, where, err)
	}
}

// TestWaitDrained: it polls until the lag is zero and returns the first
// lag it could read; past its deadline it says what lags.
func TestWaitDrained(t *testing.T) {
	seen := []int64{-1, 5, 3, 0}
	lag := func(context.Context) (int64, string, error) {
		n := seen[0]
		seen = seen[1:]
		if n < 0 {
			return 0, "", errors.New("no consumer yet")
		}
		return n, "", nil
	}
	if first, err := waitDrained(context.Background(), lag); err != nil || first != 5 {
		t.Errorf("waitDrained = %d, %v; want 5, nil", first, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*drainPoll)
	defer cancel()
	stuck := func(context.Context) (int64, string, error) { return 2, "wahook-call 2 pending", nil }
	if _, err := waitDrained(ctx, stuck); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "wahook-call 2 pending") {
		t.Errorf("waitDrained on a stuck consumer = %v; want the deadline and what lags", err)
	}
}

// TestKafkaLag: a group's lag is the raw topic's records after its
// committed offsets, all of them before its first commit; the lag is the
// most of a group.
func TestKafkaLag(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, envelope.IngressTopic))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := &kafka.Writer{Addr: kafka.TCP(c.ListenAddrs()...), Topic: envelope.IngressTopic, Balancer: &kafka.Hash{}, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	if err := w.WriteMessages(ctx, kafka.Message{Key: []byte("a"), Value: []byte("1")}, kafka.Message{Key: []byte("b"), Value: []byte("2")},
		kafka.Message{Key: []byte("c"), Value: []byte("3")}); err != nil {
		t.Fatal(err)
	}
	client := &kafka.Client{Addr: kafka.TCP(c.ListenAddrs()...)}
	lag := kafkaLag(client, []string{"g1", "g2"})
	if _, _, err := lag(ctx); err == nil {
		t.Fatal("lag before the groups exist = nil error")
	}
	lo, err := client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{
		envelope.IngressTopic: {kafka.LastOffsetOf(0), kafka.LastOffsetOf(1)}}})
	if err != nil {
		t.Fatal(err)
	}
	var all []kafka.OffsetCommit
	for _, p := range lo.Topics[envelope.IngressTopic] {
		all = append(all, kafka.OffsetCommit{Partition: p.Partition, Offset: p.LastOffset})
	}
	commit := func(group string, offsets []kafka.OffsetCommit) {
		t.Helper()
		res, err := client.OffsetCommit(ctx, &kafka.OffsetCommitRequest{GroupID: group, GenerationID: -1,
			Topics: map[string][]kafka.OffsetCommit{envelope.IngressTopic: offsets}})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range res.Topics[envelope.IngressTopic] {
			if p.Error != nil {
				t.Fatalf("commit %s partition %d: %v", group, p.Partition, p.Error)
			}
		}
	}
	// Both have committed the start of partition 0 and nothing of
	// partition 1, which counts from its start: each owes the 3 records,
	// and the lag is the most one owes.
	commit("g1", []kafka.OffsetCommit{{Partition: 0, Offset: 0}})
	commit("g2", []kafka.OffsetCommit{{Partition: 0, Offset: 0}})
	if n, where, err := lag(ctx); err != nil || n != 3 || where != "g1 3 behind; g2 3 behind" {
		t.Fatalf("lag = %d (%s), %v; want 3, both 3 behind", n, where, err)
	}
	// g1 has committed everything.
	commit("g1", all)
	if n, where, err := lag(ctx); err != nil || n != 3 || where != "g2 3 behind" {
		t.Fatalf("lag = %d (%s), %v; want 3, g2 3 behind", n, where, err)
	}
	commit("g2", all)
	if n, where, err := lag(ctx); err != nil || n != 0 {
		t.Fatalf("lag once both committed everything = %d (%s), %v; want 0", n, where, err)
	}
}

// TestReferenceProfile: the reference handler publishes a delivery with
// the contract's headers, answers 200, and leaves a CPU profile of its run
// when it stops.
func TestReferenceProfile(t *testing.T) {
	e := natstest.Start(t, natsbroker.EmbeddedConfig{})
	dir := t.TempDir()
	ctxFile := filepath.Join(dir, natsbroker.ContextFile)
	if _, err := e.WriteContext(ctxFile); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	profile := filepath.Join(dir, "reference.cpu.pprof")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- reference(runCtx, []string{"-addr", addr, "-nats-context", ctxFile, "-headers", "-cpuprofile", profile})
	}()
	body, err := loadBody("chats.patch", "")
	if err != nil {
		t.Fatal(err)
	}
	status := 0
	for ctx.Err() == nil && status == 0 {
		select {
		case err := <-done:
			t.Fatalf("reference ended before answering: %v", err)
		default:
		}
		resp, err := http.Post("http://"+addr+"/", "application/json", bytes.NewReader(body))
		if err != nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		resp.Body.Close()
		status = resp.StatusCode
	}
	if status != http.StatusOK {
		t.Fatalf("reference answered %d, want 200", status)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("reference: %v", err)
	}
	if fi, err := os.Stat(profile); err != nil || fi.Size() == 0 {
		t.Errorf("profile %s: %v, %v; want a profile", profile, fi, err)
	}
}
