package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/admin"
)

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

// TestAdminListener: metrics and profiles are served on the admin listener
// only; the webhook port keeps health and readiness for load balancers.
func TestAdminListener(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub, adm, done := startBoth(t, ctx, "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0", "-pprof",
		"-nats-embedded-addr", "127.0.0.1:-1", "-data-dir", t.TempDir(), "-auth-disabled", "-log-level", "warn",
		"-auth-whapi-tokens", "cmdline-secret")

	for _, tt := range []struct {
		url  string
		want int
	}{
		{pub + "/metrics", http.StatusNotFound},
		{pub + "/debug/pprof/", http.StatusNotFound},
		{pub + "/healthz", http.StatusOK},
		{pub + "/readyz", http.StatusOK},
		{adm + "/metrics", http.StatusOK},
		{adm + "/healthz", http.StatusOK},
		{adm + "/readyz", http.StatusOK},
		{adm + "/debug/pprof/", http.StatusOK},
		{adm + "/debug/pprof/heap?debug=1", http.StatusOK},
		{adm + "/debug/pprof/goroutine?debug=1", http.StatusOK},
		// Flags may hold secrets.
		{adm + "/debug/pprof/cmdline", http.StatusNotFound},
		{adm + "/v1/webhooks/whapi", http.StatusNotFound},
	} {
		if got, body := get(t, tt.url); got != tt.want {
			t.Errorf("GET %s = %d; want %d", tt.url, got, tt.want)
		} else if strings.Contains(body, "cmdline-secret") {
			t.Errorf("GET %s shows a secret given on the command line", tt.url)
		}
	}
	if _, body := get(t, adm+"/metrics"); !strings.Contains(body, "go_goroutines") || !strings.Contains(body, "wahook_ingress_in_flight_deliveries") {
		t.Errorf("admin /metrics lacks the process and ingress metrics")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}

	// Without -pprof there are no profiles.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	_, adm2, done2 := startBoth(t, ctx2, "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0",
		"-nats-embedded-addr", "127.0.0.1:-1", "-data-dir", t.TempDir(), "-auth-disabled", "-log-level", "warn")
	if got, _ := get(t, adm2+"/debug/pprof/"); got != http.StatusNotFound {
		t.Errorf("pprof without -pprof = %d; want 404", got)
	}
	cancel2()
	select {
	case err := <-done2:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(40 * time.Second):
		t.Fatal("ingress did not stop")
	}
}

// TestServerTimeouts: both servers bound every phase of a request.
func TestServerTimeouts(t *testing.T) {
	for name, to := range map[string]admin.Timeouts{"webhook": admin.WebhookTimeouts, "admin": admin.AdminTimeouts} {
		srv := admin.NewServer(http.NotFoundHandler(), to, nil)
		if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 {
			t.Errorf("%s server timeouts %+v: want all four set", name, to)
		}
	}
}
