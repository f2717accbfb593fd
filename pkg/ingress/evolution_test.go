package ingress_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wahook/wahook/pkg/auth"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/ingress"
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/evolution"
)

// apiKey is the instance token in the Evolution fixtures' apikey.
const apiKey = "B6D711FCDE4D4FD5936544120E713976"

// withoutAPIKey is body as decoded JSON less its top-level apikey.
func withoutAPIKey(t *testing.T, body []byte) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "apikey")
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// logged returns everything the handler logged, as text.
func logged(logs *observer.ObservedLogs) string {
	var b strings.Builder
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	for _, e := range logs.All() {
		buf, err := enc.EncodeEntry(e.Entry, e.Context)
		if err != nil {
			fmt.Fprintf(&b, "%v %v\n", e.Entry, e.Context)
			continue
		}
		b.Write(buf.Bytes())
		buf.Free()
	}
	return b.String()
}

// TestEvolutionAPIKeyNeverStored: Evolution's apikey (a live instance token)
// is in no raw event, no dead letter and no log line, whatever becomes of
// the delivery; the rest of the body is stored as sent.
func TestEvolutionAPIKeyNeverStored(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	e := startEnv(t, func(c *ingress.Config) {
		c.Providers = append(c.Providers, evolution.New())
		c.Logger = zap.New(core)
	})
	files, err := filepath.Glob(filepath.Join("..", "provider", "evolution", "testdata", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Evolution fixtures: %v", err)
	}
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(body, []byte(apiKey)) {
			t.Fatalf("%s has no apikey to remove", f)
		}
		a := e.post("/v1/webhooks/evolution", body)
		if a.status != http.StatusOK {
			t.Fatalf("POST %s = %d %s", filepath.Base(f), a.status, a.body)
		}
		_, ids := a.accepted(t)
		m := byID(e.stream(natsbroker.IngressStream))[ids[0]]
		if m == nil {
			t.Fatalf("%s: id %s not stored", filepath.Base(f), ids[0])
		}
		if bytes.Contains(m.Data, []byte(apiKey)) || bytes.Contains(m.Data, []byte(`"apikey"`)) {
			t.Errorf("%s: stored raw event keeps the apikey:\n%s", filepath.Base(f), m.Data)
		}
		if !jsonEqual(m.Data, withoutAPIKey(t, body)) {
			t.Errorf("%s: stored data is not the body less its apikey:\n%s", filepath.Base(f), m.Data)
		}
		checkRawEvent(t, "evolution", m)
	}

	// "Webhook by events": the event in the URL.
	a := e.post("/v1/webhooks/evolution/messages-upsert",
		[]byte(`{"instance":"evo-sales","data":{"key":{"remoteJid":"5511988887777@s.whatsapp.net","id":"BY-EVENTS"}},"apikey":"`+apiKey+`"}`))
	if a.status != http.StatusOK {
		t.Fatalf("POST by events = %d %s", a.status, a.body)
	}
	_, ids := a.accepted(t)
	if m := byID(e.stream(natsbroker.IngressStream))[ids[0]]; m == nil || m.Header.Get("ce-type") != "io.wahook.ingress.evolution.messages.upsert" {
		t.Errorf("by-events delivery stored as %v", m)
	}

	for _, tc := range []struct {
		name, path, body, code string
	}{
		{"not an Evolution webhook", "/v1/webhooks/evolution", `{"instance":"evo-sales","apikey":"` + apiKey + `"}`, "invalid_payload"},
		{"broken JSON", "/v1/webhooks/evolution", `{"apikey": "` + apiKey + `", "event": "call", "data": {`, "invalid_payload"},
		{"channel the ingress refuses", "/v1/webhooks/evolution", `{"event":"call","instance":"evo sales","data":{},"apikey":"` + apiKey + `"}`, "invalid_channel"},
		{"pin the ingress refuses", "/v1/webhooks/evolution?channel=a%20b", `{"event":"call","instance":"evo-sales","apikey":"` + apiKey + `"}`, "invalid_channel"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(deadLetters(t, e))
			a := e.post(tc.path, []byte(tc.body))
			if a.status != http.StatusBadRequest || a.errorCode(t) != tc.code {
				t.Fatalf("POST = %d %s; want 400 %s", a.status, a.body, tc.code)
			}
			dls := deadLetters(t, e)
			if len(dls) != before+1 {
				t.Fatalf("dead letters %d -> %d; want one more", before, len(dls))
			}
			dl := dls[len(dls)-1]
			var got []byte
			if dl.Body != nil {
				got = []byte(*dl.Body)
			} else {
				got = decodeBase64(t, dl.BodyBase64)
			}
			if bytes.Contains(got, []byte(apiKey)) || strings.Contains(dl.Reason, apiKey) {
				t.Errorf("dead letter keeps the apikey: %+v", dl)
			}
			if bytes.Contains(a.body, []byte(apiKey)) {
				t.Errorf("answer carries the apikey: %s", a.body)
			}
		})
	}
	if l := logged(logs); strings.Contains(l, apiKey) {
		t.Errorf("the apikey was logged:\n%s", l)
	} else if !strings.Contains(l, "invalid_payload") {
		t.Errorf("the deliveries were not logged at all (the check above proves nothing):\n%s", l)
	}
	if n := len(e.stream(natsbroker.IngressStream)); n == 0 {
		t.Error("nothing stored")
	}
}

func evolutionJWT(t *testing.T, key string, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestEvolutionAuthentication: a static token or Evolution's jwt_key JWT,
// on the same route.
func TestEvolutionAuthentication(t *testing.T) {
	jv, err := auth.NewJWTVerifier([]string{"jwt-key"})
	if err != nil {
		t.Fatal(err)
	}
	tv, err := auth.NewTokenVerifier([]string{"evo-token"})
	if err != nil {
		t.Fatal(err)
	}
	e := startEnv(t, func(c *ingress.Config) {
		c.Providers = []provider.Provider{evolution.New()}
		c.AuthDisabled = false
		c.Verifiers = map[string]auth.Verifier{"evolution": auth.AnyVerifier{jv, tv}}
	})
	body, err := os.ReadFile(filepath.Join("..", "provider", "evolution", "testdata", "labels.edit.json"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Unix()
	good := evolutionJWT(t, "jwt-key", jwt.MapClaims{"iat": now, "exp": now + 600, "app": "evolution", "action": "webhook"})
	expired := evolutionJWT(t, "jwt-key", jwt.MapClaims{"iat": now - 1200, "exp": now - 600, "app": "evolution", "action": "webhook"})
	for _, tc := range []struct {
		name   string
		path   string
		header map[string]string
		want   int
	}{
		{"jwt", "/v1/webhooks/evolution", map[string]string{"Authorization": "Bearer " + good}, 200},
		{"static bearer", "/v1/webhooks/evolution", map[string]string{"Authorization": "Bearer evo-token"}, 200},
		{"static query", "/v1/webhooks/evolution/labels-edit?token=evo-token", nil, 200},
		{"static header", "/v1/webhooks/evolution", map[string]string{"X-Wahook-Token": "evo-token"}, 200},
		{"expired jwt", "/v1/webhooks/evolution", map[string]string{"Authorization": "Bearer " + expired}, 403},
		{"wrong static", "/v1/webhooks/evolution", map[string]string{"Authorization": "Bearer jwt-key"}, 403},
		{"none", "/v1/webhooks/evolution", nil, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if a := e.do("POST", tc.path, body, tc.header); a.status != tc.want {
				t.Fatalf("= %d %s; want %d", a.status, a.body, tc.want)
			}
		})
	}
}
