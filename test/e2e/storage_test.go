package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/broker/natsbroker/natstest"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/ingress"
)

// smallStreams is a pipeline whose raw and dead-letter streams hold 8 MiB.
func smallStreams(t *testing.T) (*natsbroker.Broker, string) {
	t.Helper()
	b := natstest.Broker(t, natsbroker.Config{Name: "e2e-storage",
		Streams: natsbroker.StreamsConfig{IngressMaxBytes: 8 << 20, DeadLetterMaxBytes: 8 << 20}})
	h, err := ingress.New(ingress.Config{
		Providers: providers, AuthDisabled: true, Publisher: b, Binding: envelope.NATS, Ready: b.Ready,
		RetryAfter: 7 * time.Second, Metrics: ingress.NewMetrics(prometheus.NewRegistry()),
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return b, srv.URL
}

type reply struct {
	code       int
	body       string
	retryAfter string
}

func send(t *testing.T, method, url string, body []byte) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return reply{res.StatusCode, string(b), res.Header.Get("Retry-After")}
}

// bigMessage is a Whapi delivery of one 64 KiB text message.
func bigMessage(channel string, i int) []byte {
	return fmt.Appendf(nil, `{"messages":[{"id":"big-%d","from_me":false,"type":"text","chat_id":"4915112345678@s.whatsapp.net",`+
		`"timestamp":1747391325,"text":{"body":"%s"}}],"event":{"type":"messages","event":"post"},"channel_id":"%s"}`,
		i, strings.Repeat("x", 64<<10), channel)
}

// TestFullRawStreamAnswers503 fills the raw stream through the ingress: a
// full stream refuses events (it never drops stored ones), the ingress
// answers 503 with Retry-After and is not ready, and once an operator makes
// room the provider's retry is accepted.
func TestFullRawStreamAnswers503(t *testing.T) {
	b, url := smallStreams(t)
	if r := send(t, "GET", url+"/readyz", nil); r.code != 200 {
		t.Fatalf("GET /readyz = %d %s, want 200", r.code, r.body)
	}
	var full reply
	i := 0
	for ; i < 1000; i++ {
		if full = send(t, "POST", url+"/v1/webhooks/whapi", bigMessage("FULL", i)); full.code != 200 {
			break
		}
	}
	if full.code != 503 || !strings.Contains(full.body, "broker_unavailable") || full.retryAfter != "7" {
		t.Fatalf("delivery %d to a full raw stream = %d %q Retry-After %q, want 503 broker_unavailable with Retry-After 7",
			i, full.code, full.body, full.retryAfter)
	}
	if r := send(t, "GET", url+"/readyz", nil); r.code != 503 {
		t.Errorf("GET /readyz with a full raw stream = %d %s, want 503", r.code, r.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// The reason, which the admin listener's /readyz tells.
	if err := b.Ready(ctx); err == nil || !strings.Contains(err.Error(), natsbroker.IngressStream) {
		t.Errorf("Ready with a full raw stream = %v, want an error naming %s", err, natsbroker.IngressStream)
	}

	s, err := b.JetStream().Stream(ctx, natsbroker.IngressStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Purge(ctx); err != nil {
		t.Fatalf("Purge: %v", err)
	}
	// The provider retries the refused delivery.
	if r := send(t, "POST", url+"/v1/webhooks/whapi", bigMessage("FULL", i)); r.code != 200 {
		t.Errorf("retried delivery after purge = %d %s, want 200", r.code, r.body)
	}
	if r := send(t, "GET", url+"/readyz", nil); r.code != 200 {
		t.Errorf("GET /readyz after purge = %d %s, want 200", r.code, r.body)
	}
}

// TestFullDeadLetterStreamAnswers503: a bad delivery whose body cannot be
// dead-lettered is refused with 503 rather than acknowledged and lost,
// while good deliveries go on.
func TestFullDeadLetterStreamAnswers503(t *testing.T) {
	_, url := smallStreams(t)
	bad := func(i int) []byte {
		return fmt.Appendf(nil, `{"channel_id":"X","junk":"%s", "n": %d`, strings.Repeat("y", 64<<10), i)
	}
	var r reply
	i := 0
	for ; i < 1000; i++ {
		if r = send(t, "POST", url+"/v1/webhooks/whapi", bad(i)); r.code != 400 {
			break
		}
	}
	if r.code != 503 {
		t.Fatalf("bad delivery %d with a full dead-letter stream = %d %s, want 503", i, r.code, r.body)
	}
	if r := send(t, "POST", url+"/v1/webhooks/whapi", bigMessage("GOOD", 0)); r.code != 200 {
		t.Errorf("good delivery with a full dead-letter stream = %d %s, want 200", r.code, r.body)
	}
}
