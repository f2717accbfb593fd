package ingress_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/ingress"
	"github.com/wahook/wahook/pkg/provider/all"
)

// TestPermanentPublishErrors: a raw event the broker refuses for what it is
// is never answered "retry later": the delivery is dead-lettered and the
// answer says why; a broker that is only unavailable still gets 503.
func TestPermanentPublishErrors(t *testing.T) {
	e := startEnv(t)
	inner := e.pub
	var rawErr, dlErr error
	e.pub = publisherFunc(func(ctx context.Context, msgs ...broker.Message) error {
		switch {
		case strings.HasPrefix(msgs[0].Subject, "wahook.ingress.") && rawErr != nil:
			return fmt.Errorf("natsbroker: publish %s to %s: %w", msgs[0].ID, msgs[0].Subject, rawErr)
		case strings.HasPrefix(msgs[0].Subject, "wahook.deadletter.") && dlErr != nil:
			return fmt.Errorf("natsbroker: publish to %s: %w", msgs[0].Subject, dlErr)
		}
		return inner.Publish(ctx, msgs...)
	})
	unavailable := fmt.Errorf("%w: nats: timeout", broker.ErrUnavailable)
	for i, tc := range []struct {
		name        string
		raw, dl     error
		status      int
		code        string
		deadLetter  bool
		retryAfter  bool
		reasonHolds string
	}{
		{"too large", broker.TooLarge(6<<20, 5<<20), nil, http.StatusRequestEntityTooLarge, "too_large_for_broker", true, false, "6291456 bytes, limit 5242880"},
		{"rejected", broker.Rejected(errors.New("no stream captures the subject")), nil, http.StatusInternalServerError, "broker_rejected", true, false, "no stream captures"},
		{"unavailable", unavailable, nil, http.StatusServiceUnavailable, "broker_unavailable", false, true, ""},
		{"unclassified", errors.New("something else"), nil, http.StatusServiceUnavailable, "broker_unavailable", false, true, ""},
		{"too large, dead letter too", broker.TooLarge(6<<20, 5<<20), broker.TooLarge(7<<20, 5<<20), http.StatusServiceUnavailable, "broker_unavailable", false, true, ""},
		{"rejected, dead letter unavailable", broker.Rejected(errors.New("no stream")), unavailable, http.StatusServiceUnavailable, "broker_unavailable", false, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rawErr, dlErr = tc.raw, tc.dl
			defer func() { rawErr, dlErr = nil, nil }()
			body := fmt.Sprintf(`{"type":"DeliveryCallback","instanceId":"CH","zaapId":"z-%d","messageId":"m","phone":"5544999999999"}`, i)
			before := len(deadLetters(t, e))
			a := e.post("/v1/webhooks/zapi", []byte(body))
			if a.status != tc.status || a.errorCode(t) != tc.code || (a.header.Get("Retry-After") != "") != tc.retryAfter {
				t.Fatalf("= %d %v %s; want %d %s", a.status, a.header, a.body, tc.status, tc.code)
			}
			dls := deadLetters(t, e)
			switch {
			case !tc.deadLetter && len(dls) != before:
				t.Errorf("dead letters %d -> %d; want none", before, len(dls))
			case tc.deadLetter && len(dls) != before+1:
				t.Errorf("dead letters %d -> %d; want one", before, len(dls))
			case tc.deadLetter && (dls[before].Body == nil || *dls[before].Body != body || dls[before].Channel != "CH" ||
				!strings.Contains(dls[before].Reason, tc.reasonHolds)):
				t.Errorf("dead letter = %+v; want the body and the broker's reason", dls[before])
			}
		})
	}
	if n := len(e.stream(natsbroker.IngressStream)); n != 0 {
		t.Errorf("%d raw events stored", n)
	}
}

// limited tells the handler the largest message of a NATS server, as read
// by the client; a publisher that reports it itself is used as it is.
type limited struct {
	broker.Publisher
	max int
}

func (l limited) MaxMessageBytes() int { return l.max }

func withLimits(b *natsbroker.Broker) broker.Publisher {
	if _, ok := any(b).(broker.Limits); ok {
		return b
	}
	return limited{b, int(b.Conn().MaxPayload())}
}

// TestTooLargeForTheBroker runs a real item over a real server's
// max_payload: it is refused before anything is sent (the connection
// stays up), dead-lettered (the dead letter fits), and answered 413.
func TestTooLargeForTheBroker(t *testing.T) {
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		MaxPayload: 16 << 10, NoSigs: true, NoLog: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := natsbroker.Connect(ctx, natsbroker.Config{URL: srv.ClientURL(), Name: "ingress-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	reg := prometheus.NewRegistry()
	h, err := ingress.New(ingress.Config{
		Providers: all.Providers(), AuthDisabled: true, Publisher: withLimits(b), Binding: envelope.NATS,
		Metrics: ingress.NewMetrics(reg),
	}, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, broker: b}
	e.srv = httptestServer(t, h)

	// The chat id travels in the subject and partition key headers as well
	// as in the data, so this item is far larger on the broker than in the
	// dead letter, which holds the body once.
	phone := strings.Repeat("5", 6000)
	body := `{"type":"ReceivedCallback","instanceId":"CH","messageId":"m1","phone":"` + phone + `","text":{"message":"hi"}}`
	a := e.post("/v1/webhooks/zapi", []byte(body))
	if a.status != http.StatusRequestEntityTooLarge || a.errorCode(t) != "too_large_for_broker" {
		t.Fatalf("= %d %s; want 413 too_large_for_broker", a.status, a.body)
	}
	dls := deadLetters(t, e)
	if len(dls) != 1 || dls[0].Body == nil || *dls[0].Body != body || !strings.Contains(dls[0].Reason, "too large") {
		t.Fatalf("dead letters = %+v; want the body with the reason", dls)
	}
	if n := len(e.stream(natsbroker.IngressStream)); n != 0 {
		t.Errorf("%d raw events stored", n)
	}
	if !b.Conn().IsConnected() {
		t.Fatal("the broker connection was lost")
	}
	if a := e.post("/v1/webhooks/zapi", readFixture(t, "zapi", "ReceivedCallback_text.json")); a.status != http.StatusOK {
		t.Errorf("a delivery that fits afterwards = %d %s", a.status, a.body)
	}
}

func httptestServer(t *testing.T, h http.Handler) *httptest.Server {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}
