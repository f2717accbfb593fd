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

// metricsUsed are the metrics the alert rules and the Grafana dashboard use
// (deployments/check keeps the list equal to them).
const metricsUsed = "../../deployments/prometheus/metrics-used.txt"

// labelChange is a Whapi chats.patch putting label 76 on a chat: one
// label-changed event.
const labelChange = `{"chats_updates":[{"before_update":{"id":"120363398750933550@g.us","type":"group","timestamp":1747391325,"labels":[]},
"after_update":{"id":"120363398750933550@g.us","type":"group","timestamp":1747391325,"labels":[{"id":"76","name":"New order","color":"gold"}]},
"changes":["labels"]}],"event":{"type":"chats","event":"patch"},"channel_id":"MANTIS-M72HC"}`

// scrape returns the sample names on url (histograms by their _bucket,
// _sum and _count series).
func scrape(t *testing.T, url string) map[string]bool {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	names := map[string]bool{}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return names
}

// TestDeploymentMetricsExist: every metric the alert rules and the
// dashboard use is on the admin /metrics of running services: an ingress
// running the four consumers on an embedded NATS, after a delivery that
// derives an event and one that is dead-lettered, and an ingress on Kafka
// (kfake) for the Kafka-only ones. The same ingress answers -healthcheck.
func TestDeploymentMetricsExist(t *testing.T) {
	b, err := os.ReadFile(metricsUsed)
	if err != nil {
		t.Fatal(err)
	}
	used := strings.Fields(string(b))
	if len(used) == 0 {
		t.Fatalf("%s lists no metric", metricsUsed)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub, adm, done := startBoth(t, ctx, "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0",
		"-nats-embedded-addr", "127.0.0.1:-1", "-data-dir", t.TempDir(), "-auth-disabled", "-log-level", "warn", "-derive", "all")
	for body, want := range map[string]int{labelChange: http.StatusOK, `{"not json`: http.StatusBadRequest} {
		res, err := http.Post(pub+"/v1/webhooks/whapi", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Fatalf("delivery answered %d, want %d", res.StatusCode, want)
		}
	}
	// Lag is read from the broker every 2s and derived events come after
	// the delivery's answer: wait for both.
	var names map[string]bool
	deadline := time.Now().Add(30 * time.Second)
	for names = scrape(t, adm+"/metrics"); !names["wahook_consumer_derived_events_total"] || !names["wahook_consumer_lag_events"]; names = scrape(t, adm+"/metrics") {
		if time.Now().After(deadline) {
			t.Fatal("no derived event and lag on /metrics after 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, admPort, _ := strings.Cut(strings.TrimPrefix(adm, "http://"), ":")
	t.Setenv("WAHOOK_ADMIN_ADDR", "0.0.0.0:"+admPort)
	if err := run(ctx, []string{"-healthcheck"}, nil); err != nil {
		t.Errorf("-healthcheck of a ready ingress = %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if err := run(context.Background(), []string{"-healthcheck"}, nil); err == nil {
		t.Errorf("-healthcheck of a stopped ingress = nil, want an error")
	}

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	kctx, kcancel := context.WithCancel(context.Background())
	defer kcancel()
	_, kadm, kdone := startBoth(t, kctx, "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0", "-broker", "kafka",
		"-kafka-brokers", strings.Join(cluster.ListenAddrs(), ","), "-auth-disabled", "-log-level", "warn")
	for n := range scrape(t, kadm+"/metrics") {
		names[n] = true
	}
	kcancel()
	if err := <-kdone; err != nil {
		t.Fatalf("run on Kafka: %v", err)
	}

	for _, n := range used {
		if !names[n] {
			t.Errorf("%s is used by the alert rules or the dashboard but not on the services' /metrics", n)
		}
	}
}
