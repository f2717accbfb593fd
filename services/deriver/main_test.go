package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestRunServesHealthAndStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-admin-addr", "127.0.0.1:0", "-nats-embedded-addr", "127.0.0.1:-1",
			"-data-dir", t.TempDir(), "-log-level", "warn"}, ready)
	}()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("deriver did not start")
	}
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/metrics": 200,
		"/debug/pprof/": 404, "/debug/pprof/cmdline": 404} {
		res, err := http.Get("http://" + addr + path)
		if err != nil || res.StatusCode != want {
			t.Fatalf("GET %s = %v, %v; want %d", path, res, err, want)
		}
		res.Body.Close()
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

func TestRejectsBadStreamFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-derive", "labels"},
		{"-derive-partitions", "2", "-derive-partition", "2"},
		{"-derive-start-time", "yesterday"},
	} {
		err := run(context.Background(), append(args, "-admin-addr", "127.0.0.1:0", "-nats-embedded-addr", "127.0.0.1:-1", "-data-dir", t.TempDir()), nil)
		if err == nil || !strings.Contains(err.Error(), "derive") {
			t.Errorf("run %v = %v; want a derive flag error", args, err)
		}
	}
}
