package ingress_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wahook/wahook/pkg/broker/natsbroker/natstest"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/ingress"
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/whapi"
)

// TestRejectedBodyOverBrokerLimit: a bad delivery far larger than the
// broker's max_payload is dead-lettered in parts and answered 400, not 503
// for ever.
func TestRejectedBodyOverBrokerLimit(t *testing.T) {
	b := natstest.Small(t, 16<<10)
	h, err := ingress.New(ingress.Config{
		Providers:    []provider.Provider{whapi.New()},
		AuthDisabled: true,
		Publisher:    b,
		Binding:      envelope.NATS,
		Ready:        b.Ready,
		Metrics:      ingress.NewMetrics(prometheus.NewRegistry()),
	}, nil)
	if err != nil {
		t.Fatalf("ingress.New: %v", err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)

	body := bytes.Repeat([]byte("<not json> & "), 8000)
	resp, err := http.Post(hs.URL+"/v1/webhooks/whapi?channel=CH", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("POST: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("POST of a bad %d-byte body = %d, want 400 with the body dead-lettered", len(body), resp.StatusCode)
	}

	d, raw := natstest.FirstDeadLetter(t, b)
	if d.BodyParts == nil || !bytes.Equal(raw, body) {
		t.Errorf("dead letter body_parts %+v, body of %d bytes; want parts holding the %d bytes sent", d.BodyParts, len(raw), len(body))
	}
}
