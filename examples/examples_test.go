//go:build examples

// The examples against a running wahook: `make examples-test` builds the
// ingress (which runs the derivers in-process, WAHOOK_DERIVE=all), starts
// it on an embedded NATS server, and on Kafka (kfake, in this process),
// sends the README's Whapi chats.patch delivery and runs each example until
// it prints the two label events derived from it.
package examples_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// delivery is the README's Whapi chats.patch: label 3 taken off a group
// chat, label 76 put on.
const delivery = `{"chats_updates":[{
 "before_update":{"id":"120363398750933550@g.us","type":"group","timestamp":1747391325,"labels":[{"id":"3","name":"Pending payment","color":"salmon"}]},
 "after_update":{"id":"120363398750933550@g.us","type":"group","timestamp":1747391325,"labels":[{"id":"76","name":"New order","color":"gold"}]},
 "changes":["labels"]}],
 "event":{"type":"chats","event":"patch"},"channel_id":"MANTIS-M72HC"}`

const password = "examples-s3cret"

// build compiles pkg into dir and returns the binary's path.
func build(t *testing.T, dir, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = ".."
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startIngress runs the ingress with env until the test ends, and waits
// for its /readyz.
func startIngress(t *testing.T, bin string, env ...string) (webhook string) {
	t.Helper()
	httpAddr := freeAddr(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), append([]string{
		"WAHOOK_AUTH_DISABLED=true", "WAHOOK_DERIVE=all", "WAHOOK_DATA_DIR=" + t.TempDir(),
		"WAHOOK_HTTP_ADDR=" + httpAddr, "WAHOOK_ADMIN_ADDR=" + freeAddr(t),
	}, env...)...)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("ingress logs:\n%s", logs.String())
		}
	})
	base := "http://" + httpAddr
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		select {
		case err := <-exited:
			t.Fatalf("ingress exited: %v\n%s", err, logs.String())
		case <-time.After(100 * time.Millisecond): // polling readiness
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingress not ready:\n%s", logs.String())
		}
	}
}

func send(t *testing.T, base string) {
	t.Helper()
	resp, err := http.Post(base+"/v1/webhooks/whapi", "application/json", strings.NewReader(delivery))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST delivery: %d", resp.StatusCode)
	}
}

// runExample runs cmd until it exits (after printing two events) and
// checks its lines: the label added and the label removed, with their data.
func runExample(t *testing.T, name string, cmd *exec.Cmd, typeOf, dataOf func(map[string]any) (string, map[string]any)) {
	t.Helper()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v\n%s", name, err, stderr.String())
	}
	got := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("%s printed %q: %v", name, line, err)
		}
		typ, data := typeOf(ev)
		label, _ := data["label"].(map[string]any)
		got[typ] = fmt.Sprint(label["id"], " ", data["chat_id"])
	}
	want := map[string]string{
		"io.wahook.label.added":   "76 120363398750933550@g.us",
		"io.wahook.label.removed": "3 120363398750933550@g.us",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s printed %v, want %v\n%s", name, got, want, out)
	}
	t.Logf("%s:\n%s", name, out)
}

func goLine(ev map[string]any) (string, map[string]any) {
	d, _ := ev["data"].(map[string]any)
	return fmt.Sprint(ev["type"]), d
}

func TestExamplesNATS(t *testing.T) {
	dir := t.TempDir()
	ingress := build(t, dir, "./services/ingress")
	goSub := build(t, dir, "./examples/go-subscriber")
	natsAddr := freeAddr(t)
	base := startIngress(t, ingress, "WAHOOK_NATS_URL=", "WAHOOK_NATS_EMBEDDED_ADDR="+natsAddr,
		"WAHOOK_NATS_SUBSCRIBERS=reader:"+password,
		"WAHOOK_NATS_SUBSCRIBER_CONSUMERS=reader:golabels:wahook.label-changed.>,reader:nodelabels:wahook.label-changed.>")
	send(t, base)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	runExample(t, "go-subscriber", exec.CommandContext(ctx, goSub, "-nats-url", "nats://"+natsAddr,
		"-nats-user", "reader", "-nats-password", password, "-consumer", "sub-reader-golabels", "-count", "2"), goLine, goLine)

	node := exec.CommandContext(ctx, "node", "index.js")
	node.Dir = "node-subscriber"
	node.Env = append(os.Environ(), "NATS_URL=nats://"+natsAddr, "NATS_USER=reader", "NATS_PASSWORD="+password,
		"CONSUMER=sub-reader-nodelabels", "COUNT=2")
	runExample(t, "node-subscriber", node, goLine, goLine)
}

func TestExamplesKafka(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DefaultNumPartitions(2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	dir := t.TempDir()
	ingress := build(t, dir, "./services/ingress")
	goSub := build(t, dir, "./examples/go-subscriber")
	brokers := strings.Join(c.ListenAddrs(), ",")
	base := startIngress(t, ingress, "WAHOOK_BROKER=kafka", "WAHOOK_KAFKA_BROKERS="+brokers, "WAHOOK_KAFKA_PARTITIONS=2")
	send(t, base)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	runExample(t, "go-subscriber (kafka)", exec.CommandContext(ctx, goSub, "-broker", "kafka", "-kafka-brokers", brokers,
		"-stream", "label-changed", "-group", "examples", "-count", "2"), goLine, goLine)
}
