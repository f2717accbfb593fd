package ingress_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/wahook/wahook/pkg/auth"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/ingress"
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/meta"
	"github.com/wahook/wahook/pkg/provider/waha"
	"github.com/wahook/wahook/pkg/provider/whapi"
	"github.com/wahook/wahook/pkg/provider/zapi"
)

func hubSign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func metaFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "provider", "meta", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func startMeta(t *testing.T, opts ...option) *env {
	t.Helper()
	secrets, err := auth.NewHubSignatureVerifier([]string{"app-secret", "106540352242922:number-secret"})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.NewVerifyTokens([]string{"verify-me", "verify-next"})
	if err != nil {
		t.Fatal(err)
	}
	return startEnv(t, append([]option{func(c *ingress.Config) {
		c.Providers = []provider.Provider{meta.New(), whapi.New(), zapi.New(), waha.New()}
		c.Verifiers = map[string]auth.Verifier{"meta": secrets}
		c.VerifyTokens = map[string]*auth.VerifyTokens{"meta": tokens}
	}}, opts...)...)
}

// TestMetaHandshake: Meta's verification request
// (https://developers.facebook.com/docs/graph-api/webhooks/getting-started#verification-requests)
// is answered with the challenge as text, and nothing is stored.
func TestMetaHandshake(t *testing.T) {
	e := startMeta(t)
	const ok = "/v1/webhooks/meta?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token="
	for _, tt := range []struct {
		name, method, path string
		want               int
		code               string
	}{
		{"accepted", "GET", ok + "verify-me", 200, ""},
		{"rotated", "GET", ok + "verify-next", 200, ""},
		{"wrong token", "GET", ok + "app-secret", 403, "forbidden"},
		{"no token", "GET", "/v1/webhooks/meta?hub.mode=subscribe&hub.challenge=1", 403, "invalid_handshake"},
		{"not subscribe", "GET", "/v1/webhooks/meta?hub.mode=unsubscribe&hub.challenge=1&hub.verify_token=verify-me", 403, "invalid_handshake"},
		{"markup challenge", "GET", "/v1/webhooks/meta?hub.mode=subscribe&hub.challenge=%3Cb%3E&hub.verify_token=verify-me", 403, "invalid_handshake"},
		{"long challenge", "GET", "/v1/webhooks/meta?hub.mode=subscribe&hub.verify_token=verify-me&hub.challenge=" +
			"12345678901234567890123456789012345678901234567890123456789012345", 403, "invalid_handshake"},
		{"no query", "GET", "/v1/webhooks/meta", 403, "invalid_handshake"},
		{"sub-path", "GET", "/v1/webhooks/meta/x" + ok[len("/v1/webhooks/meta"):] + "verify-me", 404, "no_route"},
		{"other provider", "GET", "/v1/webhooks/whapi?hub.mode=subscribe&hub.challenge=1&hub.verify_token=verify-me", 405, "method_not_allowed"},
		{"put", "PUT", ok + "verify-me", 405, "method_not_allowed"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := e.do(tt.method, tt.path, nil, nil)
			if a.status != tt.want {
				t.Fatalf("%s = %d %s; want %d", tt.method, a.status, a.body, tt.want)
			}
			if tt.want != 200 {
				if code := a.errorCode(t); code != tt.code {
					t.Errorf("code %q, want %q", code, tt.code)
				}
				return
			}
			if string(a.body) != "1158201444" || a.header.Get("Content-Type") != "text/plain; charset=utf-8" {
				t.Errorf("answer %q (%s), want the challenge as text/plain", a.body, a.header.Get("Content-Type"))
			}
		})
	}
	if n := len(e.stream(natsbroker.IngressStream)); n != 0 {
		t.Errorf("%d raw events stored by handshakes", n)
	}
	if n := len(deadLetters(t, e)); n != 0 {
		t.Errorf("%d dead letters stored by handshakes", n)
	}
}

func TestMetaHandshakeWithoutTokens(t *testing.T) {
	e := startMeta(t, func(c *ingress.Config) { c.VerifyTokens = nil })
	a := e.do("GET", "/v1/webhooks/meta?hub.mode=subscribe&hub.challenge=1&hub.verify_token=verify-me", nil, nil)
	if a.status != http.StatusForbidden || a.errorCode(t) != "forbidden" {
		t.Fatalf("GET without configured tokens = %d %s; want 403 forbidden", a.status, a.body)
	}
}

// TestMetaDeliveries: signed deliveries are split into one raw event per
// element, each holding its item; unsigned or badly signed ones are
// refused and not stored.
func TestMetaDeliveries(t *testing.T) {
	e := startMeta(t)
	batch := metaFixture(t, "messages_batch.json")
	text := metaFixture(t, "messages_text.json")
	for _, tt := range []struct {
		name   string
		body   []byte
		header map[string]string
		want   int
	}{
		{"unsigned", text, nil, 401},
		{"wrong secret", text, map[string]string{auth.HeaderHubSignature256: hubSign("nope", text)}, 403},
		{"sha1", text, map[string]string{auth.HeaderHubSignature256: "sha1=" + hubSign("app-secret", text)[7:47]}, 403},
		{"other body", text, map[string]string{auth.HeaderHubSignature256: hubSign("app-secret", batch)}, 403},
		// The number's own secret covers its items only: the batch has another number's.
		{"scoped secret, other number in batch", batch, map[string]string{auth.HeaderHubSignature256: hubSign("number-secret", batch)}, 403},
		{"scoped secret", text, map[string]string{auth.HeaderHubSignature256: hubSign("number-secret", text)}, 200},
		{"signed batch", batch, map[string]string{auth.HeaderHubSignature256: hubSign("app-secret", batch)}, 200},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := e.do("POST", "/v1/webhooks/meta", tt.body, tt.header)
			if a.status != tt.want {
				t.Fatalf("POST = %d %s; want %d", a.status, a.body, tt.want)
			}
		})
	}
	items, err := meta.New().Split(batch, provider.Delivery{Method: "POST"})
	if err != nil {
		t.Fatal(err)
	}
	stored := e.stream(natsbroker.IngressStream)
	if len(stored) != 1+len(items) {
		t.Fatalf("%d raw events stored, want %d", len(stored), 1+len(items))
	}
	for i, it := range items {
		m := stored[1+i]
		if got := m.Header.Get("ce-type"); got != "io.wahook.ingress.meta."+it.Kind {
			t.Errorf("raw event %d type %q, want kind %s", i, got, it.Kind)
		}
		if got := m.Header.Get("ce-source"); got != "/meta/"+it.Channel {
			t.Errorf("raw event %d source %q, want channel %s", i, got, it.Channel)
		}
		if !bytes.Equal(m.Data, it.Data) {
			t.Errorf("raw event %d data %s, want %s", i, m.Data, it.Data)
		}
	}
	if n := len(deadLetters(t, e)); n != 0 {
		t.Errorf("%d dead letters stored for refused deliveries", n)
	}
}
