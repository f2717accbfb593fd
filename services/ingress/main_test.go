package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/auth"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
)

const delivery = `{"messages":[{"id":"graceful-1","type":"text","chat_id":"919984351847@s.whatsapp.net","timestamp":1712995245,"text":{"body":"hi"}}],"event":{"type":"messages","event":"post"},"channel_id":"MANTIS-M72HC"}`

func start(t *testing.T, ctx context.Context, args ...string) (string, chan error) {
	t.Helper()
	url, _, done := startBoth(t, ctx, append([]string{"-admin-addr", "127.0.0.1:0"}, args...)...)
	return url, done
}

// startBoth runs the ingress and returns the webhook and admin URLs.
func startBoth(t *testing.T, ctx context.Context, args ...string) (string, string, chan error) {
	t.Helper()
	bound := make(chan listening, 1)
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, bound) }()
	select {
	case l := <-bound:
		return "http://" + l.http, "http://" + l.admin, done
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("ingress did not start")
	}
	return "", "", nil
}

// TestGracefulShutdown sends SIGTERM (a cancelled context) while a delivery
// is still being received: the delivery must be finished, answered 200 and
// stored before the process lets the broker go.
func TestGracefulShutdown(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url, done := start(t, ctx, "-http-addr", "127.0.0.1:0", "-nats-embedded-addr", "127.0.0.1:-1",
		"-data-dir", dir, "-auth-disabled", "-log-level", "warn")

	if res, err := http.Get(url + "/readyz"); err != nil || res.StatusCode != 200 {
		t.Fatalf("/readyz = %v, %v", res, err)
	}
	pr, pw := io.Pipe()
	answered := make(chan *http.Response, 1)
	go func() {
		res, err := http.Post(url+"/v1/webhooks/whapi", "application/json", pr)
		if err != nil {
			t.Errorf("in-flight delivery: %v", err)
			answered <- nil
			return
		}
		answered <- res
	}()
	half := len(delivery) / 2
	if _, err := pw.Write([]byte(delivery[:half])); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the handler is now reading the body
	cancel()
	time.Sleep(200 * time.Millisecond)
	if _, err := http.Post(url+"/v1/webhooks/whapi", "application/json", strings.NewReader(delivery)); err == nil {
		t.Error("a new delivery was accepted after shutdown began")
	}
	if _, err := pw.Write([]byte(delivery[half:])); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	res := <-answered
	if res == nil || res.StatusCode != 200 {
		t.Fatalf("in-flight delivery answered %v; want 200", res)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ingress did not stop")
	}

	// The acknowledged event is on disk for the next start, which reuses
	// the service user generated at the first.
	sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer scancel()
	emb, err := natsbroker.StartEmbedded(sctx, natsbroker.EmbeddedConfig{Addr: "127.0.0.1:-1", StoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Shutdown(sctx)
	b, err := natsbroker.Connect(sctx, natsbroker.Config{Embedded: emb})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(sctx)
	s, err := b.JetStream().Stream(sctx, natsbroker.IngressStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(sctx, "wahook.ingress.whapi.MANTIS-M72HC.messages.post")
	if err != nil {
		t.Fatalf("event not stored: %v", err)
	}
	if !strings.Contains(string(m.Data), "graceful-1") {
		t.Errorf("stored %s", m.Data)
	}
}

// TestHostileChannelDoesNotStopTheProcess posts, to the whole process as
// `make run` runs it (embedded server, consumers in process), a channel of
// 4 KB: it once made nats-server close the connection for good, and the
// process exit.
func TestHostileChannelDoesNotStopTheProcess(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url, done := start(t, ctx, "-http-addr", "127.0.0.1:0", "-nats-embedded-addr", "127.0.0.1:-1",
		"-data-dir", t.TempDir(), "-auth-disabled", "-derive", "all", "-log-level", "error")
	hostile := `{"type":"ReceivedCallback","instanceId":"` + strings.Repeat("A", 4096) + `","messageId":"m1","phone":"5544999999999","text":{"message":"hi"}}`
	res, err := http.Post(url+"/v1/webhooks/zapi", "application/json", strings.NewReader(hostile))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("4 KB channel = %d; want 400", res.StatusCode)
	}
	res, err = http.Post(url+"/v1/webhooks/whapi", "application/json", strings.NewReader(delivery))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("a delivery afterwards = %d; want 200", res.StatusCode)
	}
	if res, err := http.Get(url + "/readyz"); err != nil || res.StatusCode != http.StatusOK {
		t.Errorf("/readyz afterwards = %v, %v", res, err)
	}
	select {
	case err := <-done:
		t.Fatalf("the process stopped: %v", err)
	default:
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}

func TestRefusesToStartWithoutSecrets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := run(ctx, []string{"-http-addr", "127.0.0.1:0", "-nats-embedded-addr", "127.0.0.1:-1", "-data-dir", t.TempDir(),
		"-auth-whapi-tokens", "s1", "-log-level", "error"}, nil)
	if err == nil || !strings.Contains(err.Error(), "no secrets") {
		t.Errorf("run without zapi and waha secrets = %v; want a refusal naming the missing secrets", err)
	}
}

// TestServesTheSelectedProviders: with WAHOOK_PROVIDERS only the named
// providers need secrets and are served; the others' paths answer 404; an
// unknown name stops the start.
func TestServesTheSelectedProviders(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	base := []string{"-http-addr", "127.0.0.1:0", "-nats-embedded-addr", "127.0.0.1:-1", "-data-dir", t.TempDir(), "-log-level", "error"}
	if err := run(ctx, append(base, "-providers", "whapi,nope", "-auth-whapi-tokens", "s1"), nil); err == nil ||
		!strings.Contains(err.Error(), "nope") {
		t.Fatalf("run with an unknown provider = %v; want a refusal naming it", err)
	}
	runCtx, stop := context.WithCancel(ctx)
	url, done := start(t, runCtx, append(base, "-providers", "whapi", "-auth-whapi-tokens", "s1")...)
	post := func(path string) int {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+path, strings.NewReader(delivery))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer s1")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("/v1/webhooks/whapi"); code != http.StatusOK {
		t.Errorf("whapi delivery = %d; want 200", code)
	}
	if code := post("/v1/webhooks/zapi"); code != http.StatusNotFound {
		t.Errorf("zapi delivery to an ingress serving whapi only = %d; want 404", code)
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("run: %v", err)
	}
}

func TestEnvironmentConfiguresAndFlagsWin(t *testing.T) {
	t.Setenv("WAHOOK_HTTP_ADDR", "127.0.0.1:9999")
	t.Setenv("WAHOOK_AUTH_ZAPI_TOKENS", "a,b")
	t.Setenv("WAHOOK_MAX_BODY_BYTES", "1024")
	t.Setenv("WAHOOK_MAX_ITEMS", "50")
	t.Setenv("WAHOOK_BODY_READ_TIMEOUT", "3s")
	t.Setenv("WAHOOK_MAX_BUFFERED_BYTES", "8192")
	t.Setenv("WAHOOK_MAX_UNAUTHENTICATED_IN_FLIGHT", "7")
	t.Setenv("WAHOOK_AUTH_META_APP_SECRETS", "m1,123:m2")
	t.Setenv("WAHOOK_META_VERIFY_TOKENS", "v1, v2")
	t.Setenv("WAHOOK_PROVIDERS", "whapi,zapi")
	c, err := parseConfig([]string{"-http-addr", "127.0.0.1:7777"})
	if err != nil {
		t.Fatal(err)
	}
	if c.httpAddr != "127.0.0.1:7777" || c.maxBodyBytes != 1024 || c.maxItems != 50 ||
		c.bodyReadTimeout != 3*time.Second || c.maxBuffered != 8192 || c.maxUnauth != 7 || c.providers != "whapi,zapi" {
		t.Errorf("config = %+v", c)
	}
	// The providers' own settings, read by their schemes.
	vs, err := verifiers(c)
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := verifyTokens(c)
	if err != nil {
		t.Fatal(err)
	}
	if vs["zapi"] == nil || vs["meta"] == nil || tokens["meta"] == nil || vs["whapi"] != nil || len(vs) != 2 || len(tokens) != 1 {
		t.Errorf("verifiers %v, verify tokens %v; want zapi's and meta's", vs, tokens)
	}
	if c.backbone.NATSEmbeddedAddr != "127.0.0.1:4222" || c.backbone.DataDir != "./data" || c.backbone.Broker != "nats" {
		t.Errorf("defaults = %+v", c.backbone)
	}
}

func TestMetaSecrets(t *testing.T) {
	c, err := parseConfig([]string{"-auth-meta-app-secrets", "s1, 123:s2", "-meta-verify-tokens", "v1,v2"})
	if err != nil {
		t.Fatal(err)
	}
	vs, err := verifiers(c)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := vs["meta"].(*auth.HubSignatureVerifier); !ok {
		t.Errorf("meta verifier = %T, want *auth.HubSignatureVerifier", vs["meta"])
	}
	tokens, err := verifyTokens(c)
	if err != nil || tokens["meta"] == nil {
		t.Errorf("verifyTokens = %v, %v; want meta's", tokens, err)
	}
	if c, _ = parseConfig([]string{"-meta-verify-tokens", " , "}); true {
		if tokens, err := verifyTokens(c); err != nil || len(tokens) != 0 {
			t.Errorf("verifyTokens(blank) = %v, %v; want none", tokens, err)
		}
	}
	if c, _ = parseConfig([]string{"-auth-meta-app-secrets", "123:"}); true {
		if _, err := verifiers(c); err == nil {
			t.Error("verifiers(empty scoped secret) = nil error")
		}
	}
}

// TestCPUProfile: WAHOOK_CPUPROFILE writes a profile of the whole run,
// complete once run has returned.
func TestCPUProfile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ingress.cpu.pprof")
	t.Setenv("WAHOOK_CPUPROFILE", path)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	url, done := start(t, ctx, "-http-addr", "127.0.0.1:0", "-nats-embedded-addr", "127.0.0.1:-1",
		"-data-dir", t.TempDir(), "-auth-disabled", "-log-level", "warn")
	res, err := http.Post(url+"/v1/webhooks/whapi", "application/json", strings.NewReader(delivery))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
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
