package ingress_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wahook/wahook/pkg/auth"
	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/ingress"
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/waha"
	"github.com/wahook/wahook/pkg/provider/whapi"
	"github.com/wahook/wahook/pkg/provider/zapi"
)

// env is an ingress handler in front of a real embedded JetStream server.
type env struct {
	t      *testing.T
	dir    string
	addr   string
	emb    *natsbroker.Embedded
	broker *natsbroker.Broker
	srv    *httptest.Server
	pub    broker.Publisher
}

type option func(*ingress.Config)

func startEnv(t *testing.T, opts ...option) *env {
	t.Helper()
	e := &env{t: t, dir: t.TempDir(), addr: "127.0.0.1:-1"}
	e.startBroker()
	t.Cleanup(e.stopBroker)
	cfg := ingress.Config{
		Providers:    []provider.Provider{whapi.New(), zapi.New(), waha.New()},
		AuthDisabled: true,
		Publisher:    publisherFunc(func(ctx context.Context, msgs ...broker.Message) error { return e.pub.Publish(ctx, msgs...) }),
		Binding:      envelope.NATS,
		Ready:        func(ctx context.Context) error { return e.broker.Ready(ctx) },
		Metrics:      ingress.NewMetrics(prometheus.NewRegistry()),
		// Long, so that a loaded machine (the race detector, other test
		// processes) never turns a slow ack into a 503; the broker-down
		// test shortens it.
		PublishTimeout: 30 * time.Second,
	}
	for _, o := range opts {
		o(&cfg)
	}
	reg := prometheus.NewRegistry()
	cfg.Metrics = ingress.NewMetrics(reg)
	h, err := ingress.New(cfg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if err != nil {
		t.Fatalf("ingress.New: %v", err)
	}
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e
}

type publisherFunc func(ctx context.Context, msgs ...broker.Message) error

func (f publisherFunc) Publish(ctx context.Context, msgs ...broker.Message) error {
	return f(ctx, msgs...)
}

func (e *env) startBroker() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	emb, err := natsbroker.StartEmbedded(ctx, natsbroker.EmbeddedConfig{Addr: e.addr, StoreDir: e.dir})
	if err != nil {
		e.t.Fatalf("StartEmbedded: %v", err)
	}
	e.emb = emb
	// Keep the port, so that a restart is the same server to clients.
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(emb.ClientURL(), "nats://"))
	e.addr = "127.0.0.1:" + port
	if e.broker == nil {
		b, err := natsbroker.Connect(ctx, natsbroker.Config{URL: emb.ClientURL(), Auth: emb.ServiceAuth(), Name: "ingress-test"})
		if err != nil {
			e.t.Fatalf("Connect: %v", err)
		}
		e.broker = b
		e.pub = b
	}
}

func (e *env) stopBroker() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if e.broker != nil {
		_ = e.broker.Close(ctx)
		e.broker = nil
	}
	if e.emb != nil {
		_ = e.emb.Shutdown(ctx)
		e.emb = nil
	}
}

func (e *env) killServer() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.emb.Shutdown(ctx); err != nil {
		e.t.Fatalf("Shutdown: %v", err)
	}
	e.emb = nil
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) accepted(t *testing.T) (int, []string) {
	t.Helper()
	var v struct {
		Accepted int      `json:"accepted"`
		IDs      []string `json:"ids"`
	}
	if err := json.Unmarshal(a.body, &v); err != nil {
		t.Fatalf("answer %s is not JSON: %v", a.body, err)
	}
	return v.Accepted, v.IDs
}

func (a answer) errorCode(t *testing.T) string {
	t.Helper()
	var v struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(a.body, &v); err != nil || v.Error.Code == "" || v.Error.Message == "" {
		t.Fatalf("error answer %s lacks {error:{code,message}}: %v", a.body, err)
	}
	return v.Error.Code
}

func (e *env) do(method, path string, body []byte, header map[string]string) answer {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return answer{status: res.StatusCode, header: res.Header, body: b}
}

func (e *env) post(path string, body []byte) answer { return e.do("POST", path, body, nil) }

// stream returns every message of a stream, in order.
func (e *env) stream(name string) []*jetstream.RawStreamMsg {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := e.broker.JetStream().Stream(ctx, name)
	if err != nil {
		e.t.Fatalf("stream %s: %v", name, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		e.t.Fatalf("stream %s info: %v", name, err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			e.t.Fatalf("stream %s seq %d: %v", name, seq, err)
		}
		out = append(out, m)
	}
	return out
}

func byID(msgs []*jetstream.RawStreamMsg) map[string]*jetstream.RawStreamMsg {
	m := map[string]*jetstream.RawStreamMsg{}
	for _, msg := range msgs {
		m[msg.Header.Get("ce-id")] = msg
	}
	return m
}

// fixtureDirs finds the providers' documented examples: ../shared/fixtures
// beside the repository, else the copies kept in each provider's testdata.
func fixtureDirs(t *testing.T) map[string]string {
	t.Helper()
	shared := filepath.Join("..", "..", "..", "shared", "fixtures")
	dirs := map[string]string{
		"whapi": filepath.Join(shared, "whapi"),
		"zapi":  filepath.Join(shared, "zapi"),
		"waha":  filepath.Join(shared, "wawp"),
	}
	for p, d := range dirs {
		if _, err := os.Stat(d); err != nil {
			dirs[p] = filepath.Join("..", "provider", p, "testdata")
		}
	}
	return dirs
}

func fixtures(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no fixtures in %s: %v", dir, err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

// expectedItems counts a fixture's items independently of the provider
// packages: Whapi batches one item per element of its collection arrays;
// the other providers send one event per request.
func expectedItems(t *testing.T, providerName string, body []byte) []json.RawMessage {
	t.Helper()
	if providerName != "whapi" {
		return []json.RawMessage{body}
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		t.Fatal(err)
	}
	var items []json.RawMessage
	for k, v := range top {
		if k == "event" || k == "channel_id" {
			continue
		}
		var arr []json.RawMessage
		if json.Unmarshal(v, &arr) == nil {
			items = append(items, arr...)
		} else {
			items = append(items, v)
		}
	}
	return items
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func TestEveryFixtureBecomesRawEvents(t *testing.T) {
	e := startEnv(t)
	total := 0
	seen := map[string]string{}
	for providerName, dir := range fixtureDirs(t) {
		for name, body := range fixtures(t, dir) {
			t.Run(providerName+"/"+name, func(t *testing.T) {
				a := e.post("/v1/webhooks/"+providerName, body)
				if a.status != http.StatusOK {
					t.Fatalf("POST = %d %s; want 200", a.status, a.body)
				}
				n, ids := a.accepted(t)
				want := expectedItems(t, providerName, body)
				if n != len(want) || len(ids) != len(want) {
					t.Fatalf("accepted %d items, ids %v; want %d", n, ids, len(want))
				}
				stored := byID(e.stream(natsbroker.IngressStream))
				for i, id := range ids {
					m, ok := stored[id]
					if !ok {
						t.Fatalf("id %s not in the stream", id)
					}
					checkRawEvent(t, providerName, m)
					if prev, dup := seen[id]; dup && prev != name {
						// Documented examples reuse placeholder message ids.
						t.Logf("%s shares event id %s with %s", name, id, prev)
						continue
					}
					seen[id] = name
					if !jsonEqual(m.Data, want[i]) && !containsJSON(want, m.Data) {
						t.Errorf("data of %s is not the provider's item:\n%s", id, m.Data)
					}
				}
				total += n
			})
		}
	}
	if total == 0 {
		t.Fatal("no fixture posted")
	}
}

func containsJSON(list []json.RawMessage, b []byte) bool {
	for _, x := range list {
		if jsonEqual(x, b) {
			return true
		}
	}
	return false
}

// checkRawEvent checks the contract's attributes of one stored raw event.
func checkRawEvent(t *testing.T, providerName string, m *jetstream.RawStreamMsg) {
	t.Helper()
	ev, err := envelope.Decode(broker.Message{Header: broker.Header(m.Header), Data: m.Data}, envelope.NATS)
	if err != nil {
		t.Fatalf("stored message is not a CloudEvent: %v", err)
	}
	channel, _ := ev.Extensions()[envelope.ExtChannel].(string)
	kind := strings.TrimPrefix(ev.Type(), envelope.IngressTypePrefix+providerName+".")
	switch {
	case m.Header.Get("Nats-Msg-Id") != ev.ID():
		t.Errorf("Nats-Msg-Id %q != ce-id %q", m.Header.Get("Nats-Msg-Id"), ev.ID())
	case !strings.HasPrefix(ev.Type(), envelope.IngressTypePrefix+providerName+".") || kind == "":
		t.Errorf("type = %q", ev.Type())
	case ev.Source() != envelope.Source(providerName, channel) || channel == "":
		t.Errorf("source = %q, channel = %q", ev.Source(), channel)
	case ev.Extensions()[envelope.ExtProvider] != providerName:
		t.Errorf("provider = %v", ev.Extensions()[envelope.ExtProvider])
	case ev.Extensions()[envelope.ExtPartitionKey] != envelope.PartitionKey(providerName, channel, ev.Subject()):
		t.Errorf("partitionkey = %v, subject %q", ev.Extensions()[envelope.ExtPartitionKey], ev.Subject())
	case ev.DataContentType() != "application/json" || !json.Valid(ev.Data()):
		t.Errorf("data content type %q, valid JSON %v", ev.DataContentType(), json.Valid(ev.Data()))
	case ev.Time().IsZero():
		t.Errorf("no time")
	case m.Subject != envelope.IngressSubject(providerName, channel, kind):
		t.Errorf("NATS subject = %q; want %q", m.Subject, envelope.IngressSubject(providerName, channel, kind))
	}
}

func readFixture(t *testing.T, providerName, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDirs(t)[providerName], name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSameDeliveryTwiceIsStoredOnce(t *testing.T) {
	e := startEnv(t)
	body := []byte(`{"messages":[
		{"id":"m1","from_me":false,"type":"text","chat_id":"919984351847@s.whatsapp.net","timestamp":1712995245,"text":{"body":"one"}},
		{"id":"m2","from_me":false,"type":"text","chat_id":"919984351847@s.whatsapp.net","timestamp":1712995246,"text":{"body":"two"}},
		{"id":"m3","from_me":false,"type":"text","chat_id":"120363271212442249@g.us","timestamp":1712995247,"text":{"body":"three"}}],
		"event":{"type":"messages","event":"post"},"channel_id":"MANTIS-M72HC"}`)
	first := e.post("/v1/webhooks/whapi", body)
	second := e.post("/v1/webhooks/whapi", body)
	if first.status != 200 || second.status != 200 {
		t.Fatalf("answers %d %s, %d %s", first.status, first.body, second.status, second.body)
	}
	_, ids1 := first.accepted(t)
	_, ids2 := second.accepted(t)
	if fmt.Sprint(ids1) != fmt.Sprint(ids2) || len(ids1) != 3 {
		t.Fatalf("ids differ or wrong count: %v vs %v", ids1, ids2)
	}
	if got := len(e.stream(natsbroker.IngressStream)); got != 3 {
		t.Errorf("stream holds %d messages; want 3 (duplicates dropped)", got)
	}
	// The same events laid out differently by a retrying provider are the same events.
	var v any
	_ = json.Unmarshal(body, &v)
	compact, _ := json.Marshal(v)
	third := e.post("/v1/webhooks/whapi", compact)
	if _, ids3 := third.accepted(t); fmt.Sprint(ids3) != fmt.Sprint(ids1) {
		t.Errorf("re-serialised delivery got ids %v; want %v", ids3, ids1)
	}
	if got := len(e.stream(natsbroker.IngressStream)); got != 3 {
		t.Errorf("stream holds %d messages after a re-serialised retry; want 3", got)
	}
	ordered := e.stream(natsbroker.IngressStream)
	for i, m := range ordered {
		if m.Header.Get("ce-id") != ids1[i] {
			t.Errorf("stream order: message %d is %s; want %s", i, m.Header.Get("ce-id"), ids1[i])
		}
	}
}

func TestWhapiDeliveryModes(t *testing.T) {
	e := startEnv(t)
	item := `{"id":"919984351847@s.whatsapp.net","type":"contact","timestamp":1747660332,"unread":1}`
	tests := []struct {
		name, method, path, body, wantType string
	}{
		{"body", "POST", "/v1/webhooks/whapi", `{"chats":[` + item + `],"event":{"type":"chats","event":"post"},"channel_id":"CH-1"}`, "io.wahook.ingress.whapi.chats.post"},
		{"path", "POST", "/v1/webhooks/whapi/chats/post", `{"chats":[` + item + `],"channel_id":"CH-2"}`, "io.wahook.ingress.whapi.chats.post"},
		{"method", "PUT", "/v1/webhooks/whapi/chats", `{"chats":[` + item + `],"channel_id":"CH-3"}`, "io.wahook.ingress.whapi.chats.put"},
		{"method delete", "DELETE", "/v1/webhooks/whapi/chats", `{"chats_removed":["919984351847@s.whatsapp.net"],"channel_id":"CH-4"}`, "io.wahook.ingress.whapi.chats.delete"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := e.do(tt.method, tt.path, []byte(tt.body), nil)
			if a.status != 200 {
				t.Fatalf("%s %s = %d %s", tt.method, tt.path, a.status, a.body)
			}
			_, ids := a.accepted(t)
			m := byID(e.stream(natsbroker.IngressStream))[ids[0]]
			if m == nil || m.Header.Get("ce-type") != tt.wantType {
				t.Fatalf("stored event type = %v; want %s", m, tt.wantType)
			}
		})
	}
}

func TestChannelPinning(t *testing.T) {
	e := startEnv(t)
	whapiBody := readFixture(t, "whapi", "labels.post.json")
	if a := e.post("/v1/webhooks/whapi?channel=MANTIS-M72HC", whapiBody); a.status != 200 {
		t.Errorf("pin equal to payload = %d %s; want 200", a.status, a.body)
	}
	a := e.post("/v1/webhooks/whapi?channel=OTHER", whapiBody)
	if a.status != http.StatusForbidden || a.errorCode(t) != "channel_mismatch" {
		t.Errorf("pin differing from payload = %d %s; want 403 channel_mismatch", a.status, a.body)
	}
	noChannel := []byte(`{"labels":[{"id":"9","name":"VIP","color":"gold"}],"event":{"type":"labels","event":"post"}}`)
	a = e.post("/v1/webhooks/whapi?channel=PINNED", noChannel)
	if a.status != 200 {
		t.Fatalf("pinned payload without channel = %d %s", a.status, a.body)
	}
	_, ids := a.accepted(t)
	if m := byID(e.stream(natsbroker.IngressStream))[ids[0]]; m == nil || m.Header.Get("ce-source") != "/whapi/PINNED" {
		t.Errorf("pinned channel not used: %v", m)
	}
	a = e.post("/v1/webhooks/whapi", noChannel)
	if a.status != http.StatusBadRequest || a.errorCode(t) != "no_channel" {
		t.Errorf("payload without channel, no pin = %d %s; want 400 no_channel", a.status, a.body)
	}
}

func deadLetters(t *testing.T, e *env) []envelope.DeadLetter {
	t.Helper()
	var out []envelope.DeadLetter
	for _, m := range e.stream(natsbroker.DeadLetterStream) {
		ev, err := envelope.Decode(broker.Message{Header: broker.Header(m.Header), Data: m.Data}, envelope.NATS)
		if err != nil {
			t.Fatalf("dead letter is not a CloudEvent: %v", err)
		}
		if ev.Type() != envelope.DeadLetterType {
			t.Errorf("dead letter type %q", ev.Type())
		}
		var dl envelope.DeadLetter
		if err := json.Unmarshal(ev.Data(), &dl); err != nil {
			t.Fatal(err)
		}
		out = append(out, dl)
	}
	return out
}

func TestBadInput(t *testing.T) {
	e := startEnv(t, func(c *ingress.Config) { c.MaxBodyBytes = 1024 })
	tests := []struct {
		name, method, path string
		body               string
		wantStatus         int
		wantCode           string
		deadLetter         bool
	}{
		{"not json", "POST", "/v1/webhooks/whapi", `{"messages": [`, 400, "invalid_payload", true},
		{"json but not whapi", "POST", "/v1/webhooks/whapi", `[1,2,3]`, 400, "invalid_payload", true},
		{"json but not zapi", "POST", "/v1/webhooks/zapi", `{"hello":"world"}`, 400, "invalid_payload", true},
		{"json but not waha", "POST", "/v1/webhooks/waha", `"just a string"`, 400, "invalid_payload", true},
		{"binary body", "POST", "/v1/webhooks/zapi", "\xff\xfe\x00", 400, "invalid_payload", true},
		{"unknown provider", "POST", "/v1/webhooks/acme", `{}`, 404, "unknown_provider", false},
		{"unknown route", "POST", "/v1/webhooks/zapi/extra", `{}`, 404, "no_route", false},
		{"wrong method", "GET", "/v1/webhooks/zapi", ``, 405, "method_not_allowed", false},
		{"wrong method on whapi path mode", "PUT", "/v1/webhooks/whapi/chats/post", `{}`, 405, "method_not_allowed", false},
		{"too large", "POST", "/v1/webhooks/zapi", `{"type":"ReceivedCallback","text":{"message":"` + strings.Repeat("x", 2000) + `"}}`, 413, "body_too_large", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(deadLetters(t, e))
			a := e.do(tt.method, tt.path, []byte(tt.body), nil)
			if a.status != tt.wantStatus || a.errorCode(t) != tt.wantCode {
				t.Fatalf("%s %s = %d %s; want %d %s", tt.method, tt.path, a.status, a.body, tt.wantStatus, tt.wantCode)
			}
			dls := deadLetters(t, e)
			if !tt.deadLetter {
				if len(dls) != before {
					t.Errorf("a dead letter was stored for a %d", tt.wantStatus)
				}
				return
			}
			if len(dls) != before+1 {
				t.Fatalf("dead letters %d -> %d; want one more", before, len(dls))
			}
			dl := dls[len(dls)-1]
			raw := []byte(tt.body)
			var got []byte
			if dl.Body != nil {
				got = []byte(*dl.Body)
			} else {
				got = decodeBase64(t, dl.BodyBase64)
			}
			if !bytes.Equal(got, raw) || dl.Reason == "" || dl.Provider == "" || dl.ReceivedAt.IsZero() {
				t.Errorf("dead letter = %+v; want the raw body and a reason", dl)
			}
		})
	}
	if n := len(e.stream(natsbroker.IngressStream)); n != 0 {
		t.Errorf("bad input stored %d raw events", n)
	}
}

func TestAuthentication(t *testing.T) {
	tokens, _ := auth.NewTokenVerifier([]string{"whapi-secret", "whapi-next"})
	ztokens, _ := auth.NewTokenVerifier([]string{"zapi-secret"})
	keys, _ := auth.NewHMACVerifier([]string{"waha-key"})
	e := startEnv(t, func(c *ingress.Config) {
		c.AuthDisabled = false
		c.Verifiers = map[string]auth.Verifier{"whapi": tokens, "zapi": ztokens, "waha": keys}
	})
	whapiBody := readFixture(t, "whapi", "labels.post.json")
	zapiBody := readFixture(t, "zapi", "ReceivedCallback_text.json")
	wahaBody := readFixture(t, "waha", "label.upsert.json")
	tests := []struct {
		name   string
		path   string
		body   []byte
		header map[string]string
		want   int
	}{
		{"whapi bearer", "/v1/webhooks/whapi", whapiBody, map[string]string{"Authorization": "Bearer whapi-secret"}, 200},
		{"whapi rotated", "/v1/webhooks/whapi?token=whapi-next", whapiBody, nil, 200},
		{"whapi none", "/v1/webhooks/whapi", whapiBody, nil, 401},
		{"whapi wrong", "/v1/webhooks/whapi", whapiBody, map[string]string{"Authorization": "Bearer zapi-secret"}, 403},
		{"zapi query", "/v1/webhooks/zapi?token=zapi-secret", zapiBody, nil, 200},
		{"zapi header", "/v1/webhooks/zapi", zapiBody, map[string]string{"X-Wahook-Token": "zapi-secret"}, 200},
		{"zapi wrong", "/v1/webhooks/zapi?token=whapi-secret", zapiBody, nil, 403},
		{"waha hmac", "/v1/webhooks/waha", wahaBody, map[string]string{"X-Webhook-Hmac": hmacHex("waha-key", wahaBody), "X-Webhook-Hmac-Algorithm": "sha512"}, 200},
		{"a WAHA key is no Wawp signature", "/v1/webhooks/waha", wahaBody, map[string]string{"X-Wawp-Signature": "waha-key"}, 401},
		{"waha hmac of another body", "/v1/webhooks/waha", wahaBody, map[string]string{"X-Webhook-Hmac": hmacHex("waha-key", []byte("{}"))}, 403},
		{"waha none", "/v1/webhooks/waha", wahaBody, nil, 401},
		{"unauthenticated garbage is not dead-lettered", "/v1/webhooks/zapi", []byte("garbage"), nil, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := e.do("POST", tt.path, tt.body, tt.header)
			if a.status != tt.want {
				t.Fatalf("= %d %s; want %d", a.status, a.body, tt.want)
			}
			if tt.want == 200 {
				return
			}
			a.errorCode(t)
			if bytes.Contains(a.body, []byte("secret")) || bytes.Contains(a.body, []byte("waha-key")) {
				t.Errorf("answer leaks a secret: %s", a.body)
			}
		})
	}
	if n := len(deadLetters(t, e)); n != 0 {
		t.Errorf("%d dead letters stored for unauthenticated requests", n)
	}
}

func TestBrokerDownAnswers503ThenRetrySucceedsWithoutDuplicates(t *testing.T) {
	// Short so that broker-down answers come quickly.
	e := startEnv(t, func(c *ingress.Config) { c.PublishTimeout = 2 * time.Second })
	body := readFixture(t, "whapi", "messages.post_incoming-text.json")
	a := e.post("/v1/webhooks/whapi", body)
	if a.status != 200 {
		t.Fatalf("first delivery = %d %s", a.status, a.body)
	}
	_, firstIDs := a.accepted(t)
	multi := []byte(`{"statuses":[
		{"id":"s1","code":3,"status":"delivered","recipient_id":"919984351847@s.whatsapp.net","timestamp":"1712995378"},
		{"id":"s2","code":4,"status":"read","recipient_id":"919984351847@s.whatsapp.net","timestamp":"1712995379"}],
		"event":{"type":"statuses","event":"post"},"channel_id":"MANTIS-M72HC"}`)

	e.killServer()
	start := time.Now()
	a = e.post("/v1/webhooks/whapi", multi)
	if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" || a.errorCode(t) != "broker_unavailable" {
		t.Fatalf("with the broker down = %d %v %s; want 503 with Retry-After", a.status, a.header, a.body)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("503 took %v", d)
	}
	if a := e.post("/v1/webhooks/whapi", []byte("not json")); a.status != http.StatusServiceUnavailable {
		t.Errorf("bad input with the broker down = %d; want 503 (its dead letter could not be stored)", a.status)
	}
	if a := e.do("GET", "/readyz", nil, nil); a.status != 503 || a.errorCode(t) != "not_ready" ||
		strings.Contains(string(a.body), "nats") || strings.Contains(string(a.body), "127.0.0.1") {
		// The public port says whether, never why: the reason is the admin listener's.
		t.Errorf("/readyz with the broker down = %d %s; want 503 not_ready without the reason", a.status, a.body)
	}

	e.startBroker()
	deadline := time.Now().Add(20 * time.Second)
	for {
		a = e.post("/v1/webhooks/whapi", multi)
		if a.status == 200 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if a.status != 200 {
		t.Fatalf("after restart = %d %s", a.status, a.body)
	}
	// The provider retries the whole delivery: nothing twice, nothing lost.
	if again := e.post("/v1/webhooks/whapi", multi); again.status != 200 {
		t.Fatalf("second retry = %d", again.status)
	}
	_, ids := a.accepted(t)
	stored := e.stream(natsbroker.IngressStream)
	want := append(append([]string{}, firstIDs...), ids...)
	var got []string
	for _, m := range stored {
		got = append(got, m.Header.Get("ce-id"))
	}
	sort.Strings(want)
	sort.Strings(got)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("stream after outage = %v; want %v", got, want)
	}
}

func TestSaturationAnswers429(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	e := startEnv(t, func(c *ingress.Config) { c.MaxInFlight = 1 })
	inner := e.pub
	e.pub = publisherFunc(func(ctx context.Context, msgs ...broker.Message) error {
		entered <- struct{}{}
		<-release
		return inner.Publish(ctx, msgs...)
	})
	body := readFixture(t, "zapi", "ReceivedCallback_text.json")
	done := make(chan answer)
	go func() { done <- e.post("/v1/webhooks/zapi", body) }()
	<-entered
	a := e.post("/v1/webhooks/zapi", body)
	if a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") == "" {
		t.Errorf("second delivery while saturated = %d %v; want 429 with Retry-After", a.status, a.header)
	}
	close(release)
	if first := <-done; first.status != 200 {
		t.Errorf("first delivery = %d %s", first.status, first.body)
	}
}

// panicky is a provider whose parser has a bug.
type panicky struct{}

func (panicky) Name() string { return "panicky" }
func (panicky) Split([]byte, provider.Delivery) ([]provider.Item, error) {
	var m map[string]int
	m["boom"]++
	return nil, nil
}
func (panicky) Interpret(string, []byte) (fact.Facts, error) { return fact.Facts{}, nil }

// TestPanicAnswers500 also checks that the body a panicking parser was
// given is kept on the dead-letter stream, with the reason.
func TestPanicAnswers500(t *testing.T) {
	e := startEnv(t, func(c *ingress.Config) { c.Providers = append(c.Providers, panicky{}) })
	body := `{"a delivery":"the parser cannot read"}`
	a := e.do("POST", "/v1/webhooks/panicky?channel=CH-1", []byte(body), map[string]string{"X-Request-Id": "req-42"})
	if a.status != 500 || a.errorCode(t) != "internal" || a.header.Get("X-Request-Id") != "req-42" {
		t.Fatalf("= %d %v %s; want 500 with the request id", a.status, a.header, a.body)
	}
	dls := deadLetters(t, e)
	if len(dls) != 1 {
		t.Fatalf("%d dead letters; want the body kept", len(dls))
	}
	if dl := dls[0]; dl.Body == nil || *dl.Body != body || dl.Provider != "panicky" || dl.Channel != "CH-1" ||
		!strings.Contains(dl.Reason, "assignment to entry in nil map") || strings.Contains(dl.Reason, "goroutine") {
		t.Errorf("dead letter = %+v; want the body, the channel pinned and the panic without its stack", dl)
	}
	if a := e.post("/v1/webhooks/whapi", readFixture(t, "whapi", "labels.post.json")); a.status != 200 {
		t.Errorf("after a panic = %d; the server must keep serving", a.status)
	}
}

func TestConcurrentDeliveries(t *testing.T) {
	e := startEnv(t)
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan string, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			body := fmt.Sprintf(`{"messages":[{"id":"msg-%d","type":"text","chat_id":"%d@s.whatsapp.net","timestamp":1712995245}],"event":{"type":"messages","event":"post"},"channel_id":"CH"}`, i, 5544000000+i%7)
			if a := e.post("/v1/webhooks/whapi", []byte(body)); a.status != 200 {
				errs <- fmt.Sprintf("%d: %d %s", i, a.status, a.body)
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := len(e.stream(natsbroker.IngressStream)); got != n {
		t.Errorf("stream holds %d; want %d", got, n)
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	e := startEnv(t)
	e.post("/v1/webhooks/whapi", readFixture(t, "whapi", "labels.post.json"))
	for path, want := range map[string]string{
		"/healthz": `"ok"`,
		"/readyz":  `"ready"`,
		"/metrics": `wahook_ingress_deliveries_total{code="200",provider="whapi"} 1`,
	} {
		a := e.do("GET", path, nil, nil)
		if a.status != 200 || !bytes.Contains(a.body, []byte(want)) {
			t.Errorf("GET %s = %d, body lacks %s:\n%.2000s", path, a.status, want, a.body)
		}
	}
	a := e.do("GET", "/metrics", nil, nil)
	for _, metric := range []string{"wahook_ingress_items_total", "wahook_ingress_publish_duration_seconds_bucket", "wahook_ingress_delivery_duration_seconds"} {
		if !bytes.Contains(a.body, []byte(metric)) {
			t.Errorf("/metrics lacks %s", metric)
		}
	}
}

type observed struct {
	provider, channel string
	authenticated     bool
	status, items     int
}

type tally struct {
	mu  sync.Mutex
	got []observed
}

func (o *tally) Delivery(provider, channel string, authenticated bool, status, items int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.got = append(o.got, observed{provider, channel, authenticated, status, items})
}

// TestObserverSeesEveryDelivery: the Observer is told of each delivery
// once answered, with its channel once known and whether its sender was
// checked: a refusal before authentication has neither, a signed body
// refused is unauthenticated too, a bad payload has no channel yet.
func TestObserverSeesEveryDelivery(t *testing.T) {
	tokens, _ := auth.NewTokenVerifier([]string{"whapi-secret"})
	keys, _ := auth.NewHMACVerifier([]string{"waha-key"})
	obs := &tally{}
	e := startEnv(t, func(c *ingress.Config) {
		c.AuthDisabled = false
		c.Verifiers = map[string]auth.Verifier{"whapi": tokens, "zapi": tokens, "waha": keys}
		c.Observer = obs
	})
	bearer := map[string]string{"Authorization": "Bearer whapi-secret"}
	whapiBody := readFixture(t, "whapi", "labels.post.json")
	wahaBody := readFixture(t, "waha", "label.upsert.json")
	for _, r := range []struct {
		path   string
		body   []byte
		header map[string]string
	}{
		{"/v1/webhooks/whapi", whapiBody, bearer},
		{"/v1/webhooks/whapi", whapiBody, nil},
		{"/v1/webhooks/waha", wahaBody, map[string]string{"X-Webhook-Hmac": hmacHex("waha-key", []byte("{}"))}},
		{"/v1/webhooks/whapi", []byte(`{"event":{"type":"messages","event":"post"},"messages":[{"id":"x"}]}`), bearer},
		{"/v1/webhooks/nope", []byte(`{}`), nil},
	} {
		e.do("POST", r.path, r.body, r.header)
	}
	want := []observed{
		{"whapi", "MANTIS-M72HC", true, 200, 1},
		{"whapi", "", false, 401, 0},
		{"waha", "", false, 403, 0},
		{"whapi", "", true, 400, 0},
		{"unknown", "", false, 404, 0},
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if diff := cmp.Diff(want, obs.got, cmp.AllowUnexported(observed{})); diff != "" {
		t.Errorf("observed deliveries mismatch (-want +got):\n%s", diff)
	}
}
