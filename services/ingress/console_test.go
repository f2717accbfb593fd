package main

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// await polls url until its body contains every one of want, or fails the
// test at the deadline.
func await(t *testing.T, url string, deadline time.Duration, want ...string) string {
	t.Helper()
	end := time.Now().Add(deadline)
	var body string
	for {
		var code int
		code, body = get(t, url)
		missing := ""
		for _, w := range want {
			if !strings.Contains(body, w) {
				missing = w
				break
			}
		}
		if code == http.StatusOK && missing == "" {
			return body
		}
		if time.Now().After(end) {
			t.Fatalf("GET %s = %d without %q after %s:\n%s", url, code, missing, deadline, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestConsole: the console on the admin listener of an ingress deriving in
// process shows a delivery sent through the real handler on the overview,
// live over server-sent events, and the label it registered; it is kept to
// its origin and never shows its token.
func TestConsole(t *testing.T) {
	t.Run("nats", func(t *testing.T) {
		testConsole(t, "-nats-embedded-addr", "127.0.0.1:-1", "-data-dir", t.TempDir())
	})
	t.Run("kafka", func(t *testing.T) {
		cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			t.Fatal(err)
		}
		defer cluster.Close()
		testConsole(t, "-broker", "kafka", "-kafka-brokers", strings.Join(cluster.ListenAddrs(), ","), "-kafka-partitions", "1")
	})
}

func testConsole(t *testing.T, broker ...string) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub, adm, done := startBoth(t, ctx, append([]string{"-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0",
		"-auth-disabled", "-log-level", "warn", "-derive", "all", "-console-token", "console-secret"}, broker...)...)

	labels, err := os.ReadFile("../../pkg/provider/whapi/testdata/labels.post.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{delivery, string(labels)} {
		res, err := http.Post(pub+"/v1/webhooks/whapi", "application/json", strings.NewReader(body))
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("POST delivery = %v, %v", res, err)
		}
		res.Body.Close()
	}

	page := await(t, adm+"/console/", 20*time.Second, `data-provider="whapi"`, `<td class="n deliveries">2</td>`, `data-stream="label-changed"`)
	if !strings.Contains(page, "<svg class=\"spark\"") {
		t.Errorf("overview has no sparkline:\n%s", page)
	}
	await(t, adm+"/console/labels", 20*time.Second, "MANTIS-M72HC", `data-label="76"`, "Order complete", `fill="lightsteelblue"`)

	res, err := http.Get(adm + "/console/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	for h, want := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"} {
		if got := res.Header.Get(h); got != want {
			t.Errorf("console header %s = %q; want %q", h, got, want)
		}
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("console CSP = %q", csp)
	}
	for _, path := range []string{"/console/", "/console/labels", "/console/static/console.js"} {
		if _, body := get(t, adm+path); strings.Contains(body, "console-secret") {
			t.Errorf("GET %s shows the console token", path)
		}
	}
	if code, _ := get(t, pub+"/console/"); code != http.StatusNotFound {
		t.Errorf("webhook port /console/ = %d; want 404", code)
	}

	// The live overview: an event with the body right away.
	lctx, lcancel := context.WithTimeout(ctx, 20*time.Second)
	defer lcancel()
	req, _ := http.NewRequestWithContext(lctx, http.MethodGet, adm+"/console/overview/live", nil)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("live overview: %v", err)
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("live overview Content-Type = %q", ct)
	}
	sc := bufio.NewScanner(res.Body)
	var event, data string
	for sc.Scan() && (event == "" || !strings.Contains(data, `data-provider="whapi"`)) {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			event = v
		}
		if v, ok := strings.CutPrefix(line, "data: "); ok {
			data += v
		}
	}
	res.Body.Close()
	if event != "overview" || !strings.Contains(data, `data-provider="whapi"`) {
		t.Errorf("live overview event %q data %q", event, data)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}

// TestConsoleOff: -console=false leaves /console/ unserved.
func TestConsoleOff(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, adm, done := startBoth(t, ctx, "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0",
		"-nats-embedded-addr", "127.0.0.1:-1", "-data-dir", t.TempDir(), "-auth-disabled", "-log-level", "warn", "-console=false")
	if code, _ := get(t, adm+"/console/"); code != http.StatusNotFound {
		t.Errorf("/console/ with -console=false = %d; want 404", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}
