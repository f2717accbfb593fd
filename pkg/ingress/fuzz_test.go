package ingress_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/auth"
	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/ingress"
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/all"
)

// answers are the contract's answers (the status table in docs/contract.md): each
// status with the error codes it may carry. 500 "internal" is left out on
// purpose: no input may make the handler panic or a parser fail other than
// with ErrInvalid.
var answers = map[int][]string{
	http.StatusOK:                    nil,
	http.StatusBadRequest:            {"invalid_payload", "no_channel", "invalid_channel", "too_many_items", "unreadable_body"},
	http.StatusUnauthorized:          {"unauthenticated"},
	http.StatusForbidden:             {"forbidden", "channel_mismatch", "invalid_handshake"},
	http.StatusNotFound:              {"unknown_provider", "no_route"},
	http.StatusMethodNotAllowed:      {"method_not_allowed"},
	http.StatusRequestTimeout:        {"body_timeout"},
	http.StatusRequestEntityTooLarge: {"body_too_large", "too_large_for_broker"},
	http.StatusTooManyRequests:       {"saturated"},
	http.StatusInternalServerError:   {"broker_rejected"},
	http.StatusServiceUnavailable:    {"broker_unavailable", "not_ready"},
}

// Publisher behaviours the fuzzer picks from.
const (
	pubOK = iota
	pubUnavailable
	pubTooLarge // raw events refused as too large
	pubRejected // raw events refused
	pubNothing  // raw events and dead letters refused
	pubLimited  // a broker whose largest message is small
	pubModes
)

// recorder is a broker that stores in memory what it acknowledges.
type recorder struct {
	mu   sync.Mutex
	mode int
	msgs []broker.Message
}

func (r *recorder) Publish(_ context.Context, msgs ...broker.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	raw := strings.HasPrefix(msgs[0].Subject, envelope.IngressTopic+".")
	switch {
	case r.mode == pubUnavailable:
		return fmt.Errorf("recorder: %w", broker.ErrUnavailable)
	case r.mode == pubTooLarge && raw:
		return fmt.Errorf("recorder: %w", broker.TooLarge(6<<20, 5<<20))
	case r.mode == pubRejected && raw:
		return fmt.Errorf("recorder: %w", broker.Rejected(errors.New("no stream")))
	case r.mode == pubNothing:
		return fmt.Errorf("recorder: %w", broker.Rejected(errors.New("no stream")))
	}
	r.msgs = append(r.msgs, msgs...)
	return nil
}

// limitedRecorder is a recorder that says how large a message may be.
type limitedRecorder struct{ *recorder }

func (limitedRecorder) MaxMessageBytes() int { return 2048 }

// FuzzHandler sends arbitrary requests (method, target, headers, body,
// chunked or not) through the whole handler in front of a recording
// broker, and checks the contract: every answer is one of the status table's,
// errors are JSON {"error":{"code","message"}}, raw events are published
// only by a 200 and are exactly what it accepted, every subject and header
// is one the broker takes, and nothing panics.
func FuzzHandler(f *testing.F) {
	f.Add("POST", "/v1/webhooks/whapi?channel=MANTIS-M72HC", "Authorization: Bearer t0k", []byte(`{"messages":[{"id":"a","chat_id":"1@s.whatsapp.net"}],"event":{"type":"messages","event":"post"}}`), byte(0))
	f.Add("PUT", "/v1/webhooks/whapi/chats", "Authorization: Bearer t0k\nTraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", []byte(`{"chats":[{"id":"1@s.whatsapp.net"}],"channel_id":"CH"}`), byte(pubOK|8))
	f.Add("POST", "/v1/webhooks/zapi?channel=a.b", "", []byte(`{"type":"DeliveryCallback","zaapId":"z","phone":"1"}`), byte(pubTooLarge))
	f.Add("POST", "/v1/webhooks/waha", "X-Wawp-Signature: k3y", []byte(`{"event":"a*b","session":"`+strings.Repeat("s", 200)+`","payload":{}}`), byte(pubRejected))
	f.Add("POST", "/v1//webhooks/../zapi", "", []byte(`{}`), byte(pubOK))
	f.Add("GET", "/healthz", "", []byte(nil), byte(pubOK))
	f.Add("GET", "/v1/webhooks/meta?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=v3rify", "", []byte(nil), byte(pubOK))
	f.Add("GET", "/v1/webhooks/meta?hub.mode=subscribe&hub.challenge=%3Cb%3E&hub.verify_token=v3rify", "", []byte(nil), byte(pubOK))
	f.Add("POST", "/v1/webhooks/meta", "", []byte(`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"77"},"contacts":[{"wa_id":"5511"}],"messages":[{"from":"5511","id":"wamid.1","timestamp":"1700000000"},{"from":"5522","id":"wamid.2"}],"statuses":[{"id":"wamid.0","status":"read"}]}},{"field":"account_update","value":{"event":"VERIFIED_ACCOUNT"}}]}]}`), byte(pubOK))
	f.Add("POST", "/v1/webhooks/evolution/messages-upsert", "", []byte(`{"instance":"i","data":{"key":{"remoteJid":"1@s.whatsapp.net","id":"A"}},"apikey":"s3cr3t-apikey"}`), byte(pubOK))
	f.Add("POST", "/v1/webhooks/evolution", "", []byte(`{"apikey":"s3cr3t-apikey","event":"call","instance":"i","data":{`), byte(pubOK))

	rec := &recorder{}
	tokens, err := auth.NewTokenVerifier([]string{"t0k"})
	if err != nil {
		f.Fatal(err)
	}
	keys, err := auth.NewHMACVerifier([]string{"k3y"})
	if err != nil {
		f.Fatal(err)
	}
	verify, err := auth.NewVerifyTokens([]string{"v3rify"})
	if err != nil {
		f.Fatal(err)
	}
	handlers := make([]http.Handler, pubModes)
	for mode := range handlers {
		var pub broker.Publisher = rec
		if mode == pubLimited {
			pub = limitedRecorder{rec}
		}
		h, err := ingress.New(ingress.Config{
			Providers:    all.Providers(),
			Verifiers:    map[string]auth.Verifier{"whapi": tokens, "waha": keys},
			VerifyTokens: map[string]*auth.VerifyTokens{"meta": verify},
			// Z-API and Meta run open.
			AuthDisabled: true,
			Publisher:    pub,
			Binding:      envelope.NATS,
			MaxBodyBytes: 64 << 10,
			MaxItems:     20,
			Metrics:      ingress.NewMetrics(prometheus.NewRegistry()),
			Logger:       zap.NewNop(),
		}, nil)
		if err != nil {
			f.Fatal(err)
		}
		handlers[mode] = h
	}

	f.Fuzz(func(t *testing.T, method, target, header string, body []byte, mode byte) {
		req, ok := request(method, target, header, body, mode&8 != 0)
		if !ok {
			return // the HTTP server refuses it before any handler runs
		}
		rec.mu.Lock()
		rec.mode, rec.msgs = int(mode&7)%pubModes, nil
		rec.mu.Unlock()
		w := httptest.NewRecorder()
		handlers[int(mode&7)%pubModes].ServeHTTP(w, req)
		checkAnswer(t, req, w, rec.msgs)
	})
}

// request parses the request an HTTP/1.1 client would send, as the server
// does; false when the server would refuse it.
func request(method, target, header string, body []byte, chunked bool) (*http.Request, bool) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: ingress.test\r\n", method, target)
	for _, line := range strings.Split(header, "\n") {
		k, v, found := strings.Cut(line, ":")
		lk := strings.ToLower(strings.TrimSpace(k))
		if !found || lk == "content-length" || lk == "transfer-encoding" || lk == "host" || strings.ContainsAny(line, "\r\x00") {
			continue
		}
		fmt.Fprintf(&b, "%s:%s\r\n", k, v)
	}
	if chunked {
		b.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		if len(body) > 0 {
			fmt.Fprintf(&b, "%x\r\n%s\r\n", len(body), body)
		}
		b.WriteString("0\r\n\r\n")
	} else {
		fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	}
	req, err := http.ReadRequest(bufio.NewReader(&b))
	if err != nil || req.Method == "" || strings.ContainsAny(req.Method, " \t/") {
		return nil, false
	}
	req.RemoteAddr = "192.0.2.1:1234"
	return req, true
}

// plainAPIKey finds an apikey member with the fuzz seeds' value, plainly
// written, in a body that is not valid JSON.
var plainAPIKey = regexp.MustCompile(`(?i)"apikey"\s*:\s*"s3cr3t-apikey`)

// keepsAPIKey reports whether a raw event or a dead-letter record holds
// what the ingress removes from Evolution's bodies: a top-level apikey
// member of a JSON object, or, in a body that is not valid JSON, a
// plainly written apikey string.
func keepsAPIKey(m broker.Message) bool {
	body := m.Data
	if m.Topic != envelope.IngressTopic {
		var dl struct {
			Body       *string `json:"body"`
			BodyBase64 string  `json:"body_base64"`
		}
		if json.Unmarshal(m.Data, &dl) != nil {
			return false // a part of a body stored in parts; its record is checked
		}
		switch {
		case dl.Body != nil:
			body = []byte(*dl.Body)
		default:
			b, err := base64.StdEncoding.DecodeString(dl.BodyBase64)
			if err != nil {
				return false
			}
			body = b
		}
	}
	var top map[string]json.RawMessage
	if !json.Valid(body) {
		return plainAPIKey.Match(body)
	}
	if json.Unmarshal(body, &top) != nil {
		return false // valid JSON but no object: nothing to remove
	}
	for k := range top {
		if strings.EqualFold(k, "apikey") {
			return true
		}
	}
	return false
}

func checkAnswer(t *testing.T, req *http.Request, w *httptest.ResponseRecorder, published []broker.Message) {
	t.Helper()
	codes, known := answers[w.Code]
	if !known {
		t.Fatalf("%s %s answered %d, not a contract status: %s", req.Method, req.URL, w.Code, w.Body)
	}
	var raw, dead []broker.Message
	for _, m := range published {
		checkMessage(t, m)
		if strings.HasPrefix(req.URL.Path, "/v1/webhooks/evolution") && keepsAPIKey(m) {
			t.Fatalf("%s %s stored the apikey: %s", req.Method, req.URL, m.Data)
		}
		if m.Topic == envelope.IngressTopic {
			raw = append(raw, m)
		} else {
			dead = append(dead, m)
		}
	}
	if w.Code != http.StatusOK {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Message == "" || !contains(codes, e.Error.Code) {
			t.Fatalf("%s %s answered %d %q: not a JSON error of that status", req.Method, req.URL, w.Code, w.Body)
		}
		if len(raw) > 0 {
			t.Fatalf("%s %s answered %d %s but published %d raw events", req.Method, req.URL, w.Code, e.Error.Code, len(raw))
		}
		if len(dead) > 0 && w.Code < 400 {
			t.Fatalf("%d with dead letters", w.Code)
		}
		return
	}
	if len(dead) > 0 {
		t.Fatalf("200 with %d dead letters", len(dead))
	}
	if !strings.HasPrefix(req.URL.Path, "/v1/webhooks/") {
		return // health and readiness
	}
	if req.Method == http.MethodGet {
		// A webhook URL check: the challenge, digits only, and nothing stored.
		c := w.Body.String()
		if w.Header().Get("Content-Type") != "text/plain; charset=utf-8" || c == "" || len(c) > 64 ||
			strings.Trim(c, "0123456789") != "" || len(raw) > 0 {
			t.Fatalf("GET %s answered 200 %q (%s), published %d raw events", req.URL, c, w.Header().Get("Content-Type"), len(raw))
		}
		return
	}
	var acc struct {
		Accepted int      `json:"accepted"`
		IDs      []string `json:"ids"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &acc); err != nil || acc.Accepted != len(acc.IDs) || acc.Accepted == 0 {
		t.Fatalf("200 answer %q", w.Body)
	}
	if len(raw) != acc.Accepted {
		t.Fatalf("accepted %d, published %d raw events", acc.Accepted, len(raw))
	}
	for i, m := range raw {
		if m.ID != acc.IDs[i] {
			t.Fatalf("raw event %d is %s; the answer says %s", i, m.ID, acc.IDs[i])
		}
	}
}

// checkMessage checks that the broker could take m: a subject of valid
// tokens, of bounded length, no wildcard; headers of printable ASCII
// (NATS percent-encoding); and, for raw events, a valid channel and kind.
func checkMessage(t *testing.T, m broker.Message) {
	t.Helper()
	if len(m.Subject) > 512 || !strings.HasPrefix(m.Subject, m.Topic+".") {
		t.Fatalf("subject %.600q of topic %s", m.Subject, m.Topic)
	}
	for _, tok := range strings.Split(m.Subject, ".") {
		if tok == "" || tok == "*" || tok == ">" {
			t.Fatalf("subject %q has token %q", m.Subject, tok)
		}
		for i := 0; i < len(tok); i++ {
			if c := tok[i]; c <= ' ' || c >= 0x7f || c == '*' || c == '>' {
				t.Fatalf("subject %q has byte %#x", m.Subject, c)
			}
		}
	}
	for k, vs := range m.Header {
		for _, v := range vs {
			for i := 0; i < len(v); i++ {
				if v[i] < ' ' || v[i] >= 0x7f {
					t.Fatalf("header %s = %q has byte %#x", k, v, v[i])
				}
			}
		}
	}
	ev, err := envelope.Decode(m, envelope.NATS)
	if err != nil {
		t.Fatalf("message on %s is not a CloudEvent: %v", m.Subject, err)
	}
	if m.Topic != envelope.IngressTopic {
		return
	}
	channel, _ := ev.Extensions()[envelope.ExtChannel].(string)
	providerName, _ := ev.Extensions()[envelope.ExtProvider].(string)
	kind := strings.TrimPrefix(ev.Type(), envelope.IngressTypePrefix+providerName+".")
	if !provider.ValidChannel(channel) || !provider.ValidKind(kind) {
		t.Fatalf("raw event of channel %q, kind %q", channel, kind)
	}
	if want := envelope.IngressSubject(providerName, channel, kind); m.Subject != want {
		t.Fatalf("subject %s; want %s", m.Subject, want)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
