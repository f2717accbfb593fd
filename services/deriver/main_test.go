package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/broker/natsbroker/natstest"
	"github.com/wahook/wahook/pkg/consumer"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/label"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/provider/all"
	"github.com/wahook/wahook/pkg/state/natsstate"
)

// start runs the deriver on an embedded server with args added until ctx
// ends, and returns its admin address and run's result.
func start(t *testing.T, ctx context.Context, args ...string) (addr string, done <-chan error) {
	t.Helper()
	ready := make(chan string, 1)
	errc := make(chan error, 1)
	args = append([]string{"-admin-addr", "127.0.0.1:0", "-nats-embedded-addr", "127.0.0.1:-1",
		"-data-dir", t.TempDir(), "-log-level", "warn"}, args...)
	go func() { errc <- run(ctx, args, ready) }()
	select {
	case addr = <-ready:
	case err := <-errc:
		t.Fatalf("run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("deriver did not start")
	}
	return addr, errc
}

func TestRunServesHealthAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, done := start(t, ctx)
	// Ready once the state is open and the consumers run.
	deadline := time.Now().Add(30 * time.Second)
	for run(ctx, []string{"-healthcheck", "-admin-addr", addr}, nil) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("-healthcheck still failing after 30s: %v", run(ctx, []string{"-healthcheck", "-admin-addr", addr}, nil))
		}
		time.Sleep(20 * time.Millisecond)
	}
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200,
		"/debug/pprof/": 404, "/debug/pprof/cmdline": 404,
		// The console, its label registry opened with the state.
		"/console/": 200, "/console/labels": 200, "/console/tail": 200, "/console/deadletters": 200} {
		res, err := http.Get("http://" + addr + path)
		if err != nil || res.StatusCode != want {
			t.Fatalf("GET %s = %v, %v; want %d", path, res, err, want)
		}
		res.Body.Close()
	}
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	metrics := string(body)
	res, err = http.Get("http://" + addr + "/console/labels")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), "No channel has labels yet") {
		t.Errorf("deriver console has no label registry:\n%s", body)
	}
	// The chat page reads the chat registry opened with the state.
	if code, page := get(t, "http://"+addr+"/console/chat?chat=5511999999999&provider=whapi&channel=CH"); code != http.StatusOK ||
		!strings.Contains(page, "The chat registry does not know this chat in the 1 channel read.") {
		t.Errorf("deriver chat page = %d without the chat registry's answer:\n%s", code, page)
	}
	for _, name := range []string{"wahook_build_info{", "wahook_broker_reconnects_total{", `wahook_consumer_retries_total{stream="call"}`,
		`wahook_consumer_stalled_seconds{stream="group-notification"}`} {
		if !strings.Contains(metrics, name) {
			t.Errorf("/metrics has no %s", name)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel: %v", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("deriver did not stop")
	}
}

// TestCPUProfile: -cpuprofile writes a profile of the whole run, complete
// once run has returned.
func TestCPUProfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "deriver.cpu.pprof")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, done := start(t, ctx, "-cpuprofile", path)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("profile: %v", err)
	}
	// A pprof profile is gzip-compressed protobuf.
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		t.Errorf("profile is %d bytes, not gzip: % x", len(b), b[:min(len(b), 8)])
	}
}

func TestRejectsBadStreamFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-derive", "labels"},
		{"-derive-partitions", "2", "-derive-partition", "2"},
		{"-derive-start-time", "yesterday"},
		{"-derive-max-attempts", "0"},
		{"-derive-stuck-after", "0s"},
	} {
		err := run(context.Background(), append(args, "-admin-addr", "127.0.0.1:0", "-nats-embedded-addr", "127.0.0.1:-1", "-data-dir", t.TempDir()), nil)
		if err == nil || !strings.Contains(err.Error(), "derive") {
			t.Errorf("run %v = %v; want a derive flag error", args, err)
		}
	}
}

// hanging is a label registry whose first Upsert waits until release is
// closed, as a hanging store would.
type hanging struct {
	derive.LabelRegistry
	release chan struct{}
}

func (h hanging) Upsert(ctx context.Context, provider, channel string, l fact.Label, eventID string) (bool, fact.Label, error) {
	<-h.release
	return h.LabelRegistry.Upsert(ctx, provider, channel, l, eventID)
}

// /readyz's check fails while a consumer holds a raw event without
// finishing it for longer than -derive-stuck-after, and when the broker is
// not ready; it passes again once the consumer moves.
func TestReadinessReportsStuckConsumers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := natstest.Broker(t, natsbroker.Config{})
	st, err := natsstate.Open(ctx, b.JetStream(), natsstate.Config{})
	if err != nil {
		t.Fatal(err)
	}
	metrics := consumer.NewMetrics(prometheus.NewRegistry())
	streams := []string{derive.LabelChanged}
	ready := readiness(stateOpen, b.Ready, noGroupErr, metrics, streams, time.Millisecond)
	if err := readiness(stateOpen, b.Ready, noGroupErr, metrics, nil, time.Millisecond)(ctx); err != nil {
		t.Fatalf("ready without consumers to run = %v", err)
	}
	if err := ready(ctx); err == nil || !strings.Contains(err.Error(), "consumer not started: label-changed") {
		t.Errorf("ready before the consumer started = %v, want it not started", err)
	}
	if err := readiness(func() bool { return false }, b.Ready, noGroupErr, metrics, nil, time.Hour)(ctx); err == nil ||
		!strings.Contains(err.Error(), "state store") {
		t.Errorf("ready with the state store opening = %v, want an error saying so", err)
	}
	if err := readiness(stateOpen, func(context.Context) error { return errors.New("broker down") }, noGroupErr, metrics, nil, time.Hour)(ctx); err == nil {
		t.Errorf("ready with the broker down = nil, want an error")
	}
	if err := readiness(stateOpen, b.Ready, func() error { return errors.New("group stalled") }, metrics, nil, time.Hour)(ctx); err == nil {
		t.Errorf("ready with a consumer group out of its group = nil, want an error")
	}

	release := make(chan struct{})
	c, err := consumer.New(consumer.Config{
		Deriver:   label.Deriver{Registry: hanging{LabelRegistry: st.Labels(), release: release}},
		Providers: all.Providers(), Subscriber: b, Publisher: b, Binding: envelope.NATS, Metrics: metrics,
	})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	defer func() {
		stop()
		<-done
	}()
	if err := b.Publish(ctx, envelope.Ingress(envelope.Raw{ID: "r1", Provider: "whapi", Channel: "CH", Kind: "labels.post",
		Time: time.Now(), Data: []byte(`{"id":"1","name":"New","color":"gold"}`)}, envelope.NATS)); err != nil {
		t.Fatal(err)
	}
	poll := func(what string, cond func(error) bool) {
		t.Helper()
		for err := ready(ctx); !cond(err); err = ready(ctx) {
			if ctx.Err() != nil {
				t.Fatalf("timed out waiting for %s; last: %v", what, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	poll("stuck", func(err error) bool {
		return err != nil && strings.Contains(err.Error(), "consumer stuck: label-changed")
	})
	close(release)
	poll("ready again", func(err error) bool { return err == nil })
}

func noGroupErr() error { return nil }

func stateOpen() bool { return true }

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestConsoleHosts: the deriver's console answers to its configured name
// (-console-hosts) and refuses another Host with 421; a name with a port
// stops the start.
func TestConsoleHosts(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, done := start(t, ctx, "-console-hosts", "deriver-console.internal")
	port := addr[strings.LastIndexByte(addr, ':'):]
	for host, want := range map[string]int{"deriver-console.internal" + port: http.StatusOK, "127.0.0.1" + port: http.StatusOK,
		"evil.example" + port: http.StatusMisdirectedRequest} {
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/console/", nil)
		req.Host = host
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("GET /console/ for %s = %d %s; want %d", host, res.StatusCode, body, want)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run after cancel: %v", err)
	}

	err := run(context.Background(), []string{"-admin-addr", "127.0.0.1:0", "-console-hosts", "deriver-console.internal:9090"}, nil)
	if err == nil || !strings.Contains(err.Error(), "console-hosts") {
		t.Errorf("run with a host name with a port = %v; want a -console-hosts error", err)
	}
}
