package ingress_test

import (
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/auth"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/ingress"
)

// TestChannelScopedSecrets: a secret limited to one channel posts for that
// channel only; for any other (in the payload or pinned) the answer is 403
// and nothing is stored, not even a dead letter.
func TestChannelScopedSecrets(t *testing.T) {
	tokens, err := auth.NewTokenVerifier([]string{"MANTIS-M72HC:tok-mantis", "OTHER:tok-other", "tok-all"})
	if err != nil {
		t.Fatal(err)
	}
	e := startEnv(t, func(c *ingress.Config) {
		c.Verifiers = map[string]auth.Verifier{"whapi": tokens}
	})
	body := readFixture(t, "whapi", "labels.post.json") // channel_id MANTIS-M72HC
	noChannel := []byte(`{"labels":[{"id":"9","name":"VIP","color":"gold"}],"event":{"type":"labels","event":"post"}}`)
	for _, tt := range []struct {
		name string
		path string
		body []byte
		want int
	}{
		{"own channel", "/v1/webhooks/whapi?token=tok-mantis", body, 200},
		{"own channel pinned", "/v1/webhooks/whapi?token=tok-mantis&channel=MANTIS-M72HC", noChannel, 200},
		{"plain secret, any channel", "/v1/webhooks/whapi?token=tok-all&channel=ELSEWHERE", noChannel, 200},
		{"another channel's payload", "/v1/webhooks/whapi?token=tok-other", body, 403},
		{"pinned to another channel", "/v1/webhooks/whapi?token=tok-mantis&channel=OTHER", noChannel, 403},
		{"pin to another channel, garbage body", "/v1/webhooks/whapi?token=tok-mantis&channel=OTHER", []byte("garbage"), 403},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := e.post(tt.path, tt.body)
			if a.status != tt.want {
				t.Fatalf("= %d %s; want %d", a.status, a.body, tt.want)
			}
			if tt.want == http.StatusForbidden && a.errorCode(t) != "forbidden" {
				t.Errorf("code %s, want forbidden", a.errorCode(t))
			}
		})
	}
	if n := len(e.stream(natsbroker.IngressStream)); n != 3 {
		t.Errorf("%d raw events stored, want the 3 accepted deliveries' only", n)
	}
	for _, m := range e.stream(natsbroker.IngressStream) {
		if src := m.Header.Get("ce-source"); src == "/whapi/OTHER" {
			t.Errorf("stored an event for a channel the secret was not for: %s", src)
		}
	}
	if n := len(deadLetters(t, e)); n != 0 {
		t.Errorf("%d dead letters stored for refused deliveries", n)
	}
}

// TestWAHAAuthentication: WAHA's HMAC and Wawp's signature have separate
// secrets, and a stale signed delivery is refused when a skew is set.
func TestWAHAAuthentication(t *testing.T) {
	hm, err := auth.NewHMACVerifier([]string{"waha-key"})
	if err != nil {
		t.Fatal(err)
	}
	hm.MaxSkew = 5 * time.Minute
	wp, err := auth.NewWawpVerifier([]string{"wawp-token"})
	if err != nil {
		t.Fatal(err)
	}
	e := startEnv(t, func(c *ingress.Config) {
		c.Verifiers = map[string]auth.Verifier{"waha": auth.AnyVerifier{hm, wp}}
	})
	body := readFixture(t, "waha", "label.upsert.json") // envelope timestamp 1634567890123 (2021)
	fresh := []byte(`{"id":"evt_2","timestamp":` + strconv.FormatInt(time.Now().UnixMilli(), 10) +
		`,"session":"default","event":"label.upsert","payload":{"label":{"id":"2","name":"VIP"}}}`)
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	for _, tt := range []struct {
		name   string
		body   []byte
		header map[string]string
		want   int
	}{
		{"fresh signed delivery", fresh, map[string]string{"X-Webhook-Hmac": hmacHex("waha-key", fresh), "X-Webhook-Timestamp": now}, 200},
		{"old signed delivery", body, map[string]string{"X-Webhook-Hmac": hmacHex("waha-key", body), "X-Webhook-Timestamp": now}, 403},
		{"no timestamp", fresh, map[string]string{"X-Webhook-Hmac": hmacHex("waha-key", fresh)}, 403},
		{"wawp token", body, map[string]string{"X-Wawp-Signature": "wawp-token"}, 200},
		{"waha key as wawp signature", body, map[string]string{"X-Wawp-Signature": "waha-key"}, 403},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := e.do("POST", "/v1/webhooks/waha", tt.body, tt.header)
			if a.status != tt.want {
				t.Fatalf("= %d %s; want %d", a.status, a.body, tt.want)
			}
		})
	}
}
