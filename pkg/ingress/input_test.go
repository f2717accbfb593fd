package ingress_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/ingress"
	"github.com/wahook/wahook/pkg/provider"
)

// quote is s as a JSON string.
func quote(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// channelBodies are deliveries of every provider naming channel (n keeps
// the bodies of one case apart, so that their dead letters do too).
func channelBodies(channel string, n int) map[string]struct{ path, body string } {
	c := quote(channel)
	return map[string]struct{ path, body string }{
		"whapi channel_id": {"/v1/webhooks/whapi", fmt.Sprintf(`{"messages":[{"id":"m-%d","chat_id":"919984351847@s.whatsapp.net","timestamp":1712995245}],"event":{"type":"messages","event":"post"},"channel_id":%s}`, n, c)},
		"zapi instanceId":  {"/v1/webhooks/zapi", fmt.Sprintf(`{"type":"ReceivedCallback","instanceId":%s,"messageId":"m-%d","phone":"5544999999999","momment":1632228638000,"text":{"message":"hi"}}`, c, n)},
		"waha session":     {"/v1/webhooks/waha", fmt.Sprintf(`{"id":"evt_%d","event":"message","session":%s,"payload":{"id":"false_5544999999999@c.us_M%d","from":"5544999999999@c.us","timestamp":1700000000}}`, n, c, n)},
		"wawp instance_id": {"/v1/webhooks/waha", fmt.Sprintf(`{"instance_id":%s,"status":"WORKING","qr":null,"ts":%d}`, c, 1700000000+n)},
		"whapi pin": {"/v1/webhooks/whapi?channel=" + url.QueryEscape(channel),
			fmt.Sprintf(`{"labels":[{"id":"%d","name":"VIP"}],"event":{"type":"labels","event":"post"}}`, n)},
		"zapi pin": {"/v1/webhooks/zapi?channel=" + url.QueryEscape(channel),
			fmt.Sprintf(`{"type":"DeliveryCallback","zaapId":"z-%d","messageId":"m-%d","phone":"5544999999999"}`, n, n)},
	}
}

// TestInvalidChannelsAreRefusedAndTheBrokerConnectionSurvives posts, for
// every provider's channel field and for the ?channel= pin, channels the
// subjects cannot carry. A 4 KB one used to make the NATS control line
// exceed the server's limit, which closes the connection for good.
func TestInvalidChannelsAreRefusedAndTheBrokerConnectionSurvives(t *testing.T) {
	e := startEnv(t)
	bad := []string{strings.Repeat("A", 4096), strings.Repeat("b", 129), "a b", "a\tb", "a/b", "a*b", "a>b", "caf\u00e9", "a\x00b", "a%b"}
	n := 0
	for _, channel := range bad {
		for name, d := range channelBodies(channel, n) {
			n++
			t.Run(fmt.Sprintf("%s %.12q", name, channel), func(t *testing.T) {
				before := len(e.stream(natsbroker.DeadLetterStream))
				a := e.post(d.path, []byte(d.body))
				if a.status != http.StatusBadRequest || a.errorCode(t) != "invalid_channel" {
					t.Fatalf("= %d %s; want 400 invalid_channel", a.status, a.body)
				}
				dls := e.stream(natsbroker.DeadLetterStream)
				if len(dls) != before+1 {
					t.Fatalf("dead letters %d -> %d; want one more", before, len(dls))
				}
				m := dls[len(dls)-1]
				provider := strings.Split(strings.TrimPrefix(d.path, "/v1/webhooks/"), "?")[0]
				if m.Subject != "wahook.deadletter."+provider || m.Header.Get("ce-channel") != "" {
					t.Errorf("dead letter on %s with channel header %q; want no channel", m.Subject, m.Header.Get("ce-channel"))
				}
				dl := deadLetters(t, e)[before]
				if dl.Channel != "" || dl.Body == nil || *dl.Body != d.body {
					t.Errorf("dead letter = channel %q, body %v; want no channel and the raw body", dl.Channel, dl.Body)
				}
			})
		}
	}
	if got := len(e.stream(natsbroker.IngressStream)); got != 0 {
		t.Errorf("%d raw events stored for invalid channels", got)
	}
	// The connection is the same one, and it still publishes.
	if !e.broker.Conn().IsConnected() {
		t.Fatal("the broker connection was lost")
	}
	for name, d := range channelBodies("MANTIS-M72HC", 1000) {
		if a := e.post(d.path, []byte(d.body)); a.status != http.StatusOK {
			t.Errorf("%s afterwards = %d %s; want 200", name, a.status, a.body)
		}
	}
	if a := e.do("GET", "/readyz", nil, nil); a.status != http.StatusOK {
		t.Errorf("/readyz afterwards = %d %s", a.status, a.body)
	}
}

// TestChannelsKeepSubjectsOfTheirOwn: channels the old token folded together
// ("a.b" and "a_b") get subjects of their own, and the documented forms,
// the Z-API docs' "instance.id" included, are accepted.
func TestChannelsKeepSubjectsOfTheirOwn(t *testing.T) {
	e := startEnv(t)
	want := map[string]string{
		"a.b":                              "wahook.ingress.zapi.a~2Eb.delivery",
		"a_b":                              "wahook.ingress.zapi.a_b.delivery",
		"a~2Eb":                            "wahook.ingress.zapi.a~7E2Eb.delivery",
		"instance.id":                      "wahook.ingress.zapi.instance~2Eid.delivery",
		"A20DA9C0183A2D35A260F53F5D2B9244": "wahook.ingress.zapi.A20DA9C0183A2D35A260F53F5D2B9244.delivery",
		"tenant:one@x+y=z":                 "wahook.ingress.zapi.tenant~3Aone~40x~2By~3Dz.delivery",
	}
	ids := map[string]string{}
	for channel := range want {
		body := fmt.Sprintf(`{"type":"DeliveryCallback","instanceId":%s,"zaapId":"z","messageId":"m","phone":"5544999999999"}`, quote(channel))
		a := e.post("/v1/webhooks/zapi", []byte(body))
		if a.status != http.StatusOK {
			t.Fatalf("channel %q = %d %s", channel, a.status, a.body)
		}
		_, got := a.accepted(t)
		ids[got[0]] = channel
	}
	for _, m := range e.stream(natsbroker.IngressStream) {
		channel := ids[m.Header.Get("ce-id")]
		if m.Subject != want[channel] {
			t.Errorf("channel %q stored on %s; want %s", channel, m.Subject, want[channel])
		}
		if got := m.Header.Get("ce-channel"); got != channel {
			t.Errorf("ce-channel = %q; want %q", got, channel)
		}
	}
}

// kinds is a provider whose items take their kind from the body, as a
// provider passing on an event name "as sent" would.
type kinds struct{}

func (kinds) Name() string { return "kinds" }
func (kinds) Split(body []byte, d provider.Delivery) ([]provider.Item, error) {
	var v struct {
		Kinds []string `json:"kinds"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, provider.Invalid("%v", err)
	}
	var items []provider.Item
	for i, k := range v.Kinds {
		items = append(items, provider.Item{Kind: k, Channel: "CH", Key: fmt.Sprint(i), Data: body})
	}
	return items, nil
}
func (kinds) Interpret(string, []byte) (fact.Facts, error) { return fact.Facts{}, nil }

// TestUnboundedKindsBecomeUnknown: a kind that is not a bounded token is
// published as "unknown", its data kept, never refused and never a long
// or wildcard subject; WAHA's event name is one such field.
func TestUnboundedKindsBecomeUnknown(t *testing.T) {
	e := startEnv(t, func(c *ingress.Config) { c.Providers = append(c.Providers, kinds{}) })
	long := strings.Repeat("k", 4096)
	body := `{"kinds":["chats.patch",` + quote(long) + `,"a*b","chats.>","a..b","a b","é",""]}`
	a := e.post("/v1/webhooks/kinds", []byte(body))
	if a.status != http.StatusOK {
		t.Fatalf("= %d %s", a.status, a.body)
	}
	_, ids := a.accepted(t)
	stored := byID(e.stream(natsbroker.IngressStream))
	for i, id := range ids {
		m := stored[id]
		wantKind := provider.KindUnknown
		if i == 0 {
			wantKind = "chats.patch"
		}
		if m == nil || m.Subject != envelope.IngressSubject("kinds", "CH", wantKind) ||
			m.Header.Get("ce-type") != envelope.IngressTypePrefix+"kinds."+wantKind || string(m.Data) != body {
			t.Errorf("item %d stored as %v; want kind %s with the data kept", i, m, wantKind)
		}
	}
	for _, event := range []string{long, "label.*", "message.>", "a b"} {
		a := e.post("/v1/webhooks/waha", []byte(`{"id":"evt_k","event":`+quote(event)+`,"session":"default","payload":{}}`))
		if a.status != http.StatusOK {
			t.Fatalf("WAHA event %.20q = %d %s", event, a.status, a.body)
		}
		_, ids := a.accepted(t)
		if m := byID(e.stream(natsbroker.IngressStream))[ids[0]]; m == nil || m.Subject != "wahook.ingress.waha.default.unknown" {
			t.Errorf("WAHA event %.20q stored as %v; want kind unknown", event, m)
		}
	}
}

// many is a provider that splits a delivery into as many items as it says,
// bounding nothing itself.
type many struct{}

func (many) Name() string { return "many" }
func (many) Split(body []byte, _ provider.Delivery) ([]provider.Item, error) {
	var v struct{ N int }
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, provider.Invalid("%v", err)
	}
	items := make([]provider.Item, v.N)
	for i := range items {
		items[i] = provider.Item{Kind: "item", Channel: "CH", Key: fmt.Sprint(i), Data: body}
	}
	return items, nil
}
func (many) Interpret(string, []byte) (fact.Facts, error) { return fact.Facts{}, nil }

func TestTooManyItems(t *testing.T) {
	e := startEnv(t, func(c *ingress.Config) {
		c.MaxItems = 5
		c.Providers = append(c.Providers, many{})
	})
	batch := func(n int) string {
		return `{"messages":[` + strings.TrimSuffix(strings.Repeat(`{"id":"x"},`, n), ",") + `],"event":{"type":"messages","event":"post"},"channel_id":"CH"}`
	}
	for _, tc := range []struct {
		path, body string
		want       int
	}{
		{"/v1/webhooks/whapi", batch(5), http.StatusOK},
		{"/v1/webhooks/whapi", batch(6), http.StatusBadRequest},
		{"/v1/webhooks/many", `{"n":5}`, http.StatusOK},
		{"/v1/webhooks/many", `{"n":6}`, http.StatusBadRequest},
	} {
		before := len(deadLetters(t, e))
		a := e.post(tc.path, []byte(tc.body))
		if a.status != tc.want {
			t.Fatalf("%s with %.40s = %d %s; want %d", tc.path, tc.body, a.status, a.body, tc.want)
		}
		if tc.want == http.StatusOK {
			continue
		}
		if a.errorCode(t) != "too_many_items" {
			t.Errorf("code %s; want too_many_items", a.errorCode(t))
		}
		dls := deadLetters(t, e)
		if len(dls) != before+1 || dls[before].Body == nil || *dls[before].Body != tc.body || dls[before].Channel != "" {
			t.Errorf("dead letters %d -> %d; want the body kept", before, len(dls))
		}
	}
}

// TestAMillionEmptyItems is the body the cap is for: 4 MiB of "{}," would be
// over a million raw events.
func TestAMillionEmptyItems(t *testing.T) {
	e := startEnv(t)
	body := `{"messages":[` + strings.Repeat(`{},`, 1_398_000) + `{}],"event":{"type":"messages","event":"post"},"channel_id":"CH"}`
	if len(body) > 4<<20 {
		t.Fatalf("body of %d bytes is over the default limit", len(body))
	}
	a := e.post("/v1/webhooks/whapi", []byte(body))
	if a.status != http.StatusBadRequest || a.errorCode(t) != "too_many_items" {
		t.Fatalf("= %d %.200s; want 400 too_many_items", a.status, a.body)
	}
	if n := len(e.stream(natsbroker.IngressStream)); n != 0 {
		t.Errorf("%d raw events stored", n)
	}
	if dls := deadLetters(t, e); len(dls) != 1 || dls[0].Body == nil || len(*dls[0].Body) != len(body) {
		t.Errorf("%d dead letters; want the body kept once", len(dls))
	}
}

// TestRequestHeadersAreBounded: the request id is echoed, logged and kept
// in dead letters, so only a well-formed, bounded one is taken; with
// tracing off a request's traceparent reaches no raw event (pkg/tracing
// tests tracing on).
func TestRequestHeadersAreBounded(t *testing.T) {
	e := startEnv(t)
	for i, tp := range []string{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", strings.Repeat("0", 4096), "not a trace"} {
		body := fmt.Sprintf(`{"type":"DeliveryCallback","instanceId":"CH","zaapId":"tp-%d","phone":"5544999999999"}`, i)
		a := e.do("POST", "/v1/webhooks/zapi", []byte(body), map[string]string{"Traceparent": tp})
		if a.status != http.StatusOK {
			t.Fatalf("traceparent %.40q = %d %s", tp, a.status, a.body)
		}
		_, ids := a.accepted(t)
		if got := byID(e.stream(natsbroker.IngressStream))[ids[0]].Header.Get("ce-traceparent"); got != "" {
			t.Errorf("traceparent %.40q stored as %q with tracing off", tp, got)
		}
	}
	for give, kept := range map[string]bool{"req-42": true, strings.Repeat("r", 129): false, "with space": false} {
		a := e.do("GET", "/v1/webhooks/zapi", nil, map[string]string{"X-Request-Id": give})
		if got := a.header.Get("X-Request-Id"); (got == give) != kept || got == "" {
			t.Errorf("X-Request-Id %.20q answered as %.20q; kept %v", give, got, kept)
		}
	}
}

// TestRawEventsCarryRequestID: every raw event of a delivery carries its
// request id (the one sent when well-formed, else the one made up and
// answered), percent-encoded; a provider's retry under another request id
// leaves the stored copy's.
func TestRawEventsCarryRequestID(t *testing.T) {
	e := startEnv(t)
	body := func(i int) []byte {
		return fmt.Appendf(nil, `{"messages":[
		{"id":"r%d-1","from_me":false,"type":"text","chat_id":"919984351847@s.whatsapp.net","timestamp":1712995245,"text":{"body":"one"}},
		{"id":"r%d-2","from_me":false,"type":"text","chat_id":"919984351847@s.whatsapp.net","timestamp":1712995246,"text":{"body":"two"}}],
		"event":{"type":"messages","event":"post"},"channel_id":"MANTIS-M72HC"}`, i, i)
	}
	for i, give := range []string{`req-"42"%`, strings.Repeat("r", 129), "with space"} {
		a := e.do("POST", "/v1/webhooks/whapi", body(i), map[string]string{"X-Request-Id": give})
		if a.status != http.StatusOK {
			t.Fatalf("X-Request-Id %.20q: %d %s", give, a.status, a.body)
		}
		answered := a.header.Get("X-Request-Id")
		if len(answered) == 0 || len(answered) > 128 {
			t.Fatalf("X-Request-Id %.20q answered as %q", give, answered)
		}
		_, ids := a.accepted(t)
		stored := byID(e.stream(natsbroker.IngressStream))
		for _, id := range ids {
			got := broker.UnescapeHeader(stored[id].Header.Get("ce-requestid"))
			if got != answered {
				t.Errorf("X-Request-Id %.20q: raw event %s has requestid %q, want %q", give, id, got, answered)
			}
		}
	}
	a := e.do("POST", "/v1/webhooks/whapi", body(0), map[string]string{"X-Request-Id": "retry"})
	_, ids := a.accepted(t)
	if got := broker.UnescapeHeader(byID(e.stream(natsbroker.IngressStream))[ids[0]].Header.Get("ce-requestid")); got != `req-"42"%` {
		t.Errorf("after a retry the stored requestid is %q, want the first delivery's", got)
	}
}

// TestChunkedBodies: a body of unknown length is read in reserved steps and
// bounded the same as a declared one.
func TestChunkedBodies(t *testing.T) {
	e := startEnv(t, func(c *ingress.Config) { c.MaxBodyBytes = 1024 })
	post := func(body string) answer {
		req, err := http.NewRequest("POST", e.srv.URL+"/v1/webhooks/zapi", io.MultiReader(strings.NewReader(body)))
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = -1 // sent chunked
		res, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return answer{status: res.StatusCode, header: res.Header, body: b}
	}
	at := `{"type":"DeliveryCallback","instanceId":"CH","zaapId":"z","phone":"1","pad":"`
	at += strings.Repeat("p", 1024-len(at)-2) + `"}`
	if a := post(at); a.status != http.StatusOK {
		t.Errorf("chunked body of exactly the limit = %d %s", a.status, a.body)
	}
	if a := post(at + " "); a.status != http.StatusRequestEntityTooLarge || a.errorCode(t) != "body_too_large" {
		t.Errorf("chunked body one byte over = %d %s; want 413", a.status, a.body)
	}
	if a := post(strings.Repeat(" ", 100_000)); a.status != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked body far over = %d %s; want 413", a.status, a.body)
	}
}
