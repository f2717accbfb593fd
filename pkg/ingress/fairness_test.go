package ingress_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/auth"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/ingress"
)

// slowClient is a request sent over its own TCP connection whose body
// arrives only in part: the headers and first, then nothing until closed.
type slowClient struct {
	conn net.Conn
	br   *bufio.Reader
}

// startSlow sends the request line, the headers and first. length is the
// declared Content-Length; a negative one sends the body chunked.
func (e *env) startSlow(path string, header map[string]string, length int, first []byte) *slowClient {
	e.t.Helper()
	u, err := url.Parse(e.srv.URL)
	if err != nil {
		e.t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	var req bytes.Buffer
	fmt.Fprintf(&req, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n", path, u.Host)
	if length >= 0 {
		fmt.Fprintf(&req, "Content-Length: %d\r\n", length)
	} else {
		req.WriteString("Transfer-Encoding: chunked\r\n")
	}
	for k, v := range header {
		fmt.Fprintf(&req, "%s: %s\r\n", k, v)
	}
	req.WriteString("\r\n")
	if length >= 0 {
		req.Write(first)
	} else if len(first) > 0 {
		fmt.Fprintf(&req, "%x\r\n%s\r\n", len(first), first)
	}
	if _, err := conn.Write(req.Bytes()); err != nil {
		e.t.Fatal(err)
	}
	return &slowClient{conn: conn, br: bufio.NewReader(conn)}
}

// answer waits for the answer (bounded, so that a bug fails rather than
// hangs the test).
func (c *slowClient) answer(t *testing.T) answer {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	res, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("slow client: no answer: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return answer{status: res.StatusCode, header: res.Header, body: b}
}

// awaitInFlight waits until the ingress reports n deliveries in flight.
func (e *env) awaitInFlight(n int) { e.awaitMetric("wahook_ingress_in_flight_deliveries", n) }

// awaitBuffered waits until the ingress reports n body bytes reserved.
func (e *env) awaitBuffered(n int) { e.awaitMetric("wahook_ingress_buffered_body_bytes", n) }

func (e *env) awaitMetric(name string, n int) {
	e.t.Helper()
	line := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`)
	deadline := time.Now().Add(20 * time.Second)
	last := -1.0
	for time.Now().Before(deadline) {
		a := e.do("GET", "/metrics", nil, nil)
		if m := line.FindSubmatch(a.body); m != nil {
			if last, _ = strconv.ParseFloat(string(m[1]), 64); last == float64(n) {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.t.Fatalf("%s = %v; want %d", name, last, n)
}

func TestBodyReadTimeout(t *testing.T) {
	e := startEnv(t, func(c *ingress.Config) { c.BodyReadTimeout = 200 * time.Millisecond })
	body := readFixture(t, "zapi", "ReceivedCallback_text.json")
	for _, length := range []int{len(body), -1} {
		c := e.startSlow("/v1/webhooks/zapi", nil, length, body[:10])
		a := c.answer(t)
		if a.status != http.StatusRequestTimeout || a.errorCode(t) != "body_timeout" {
			t.Errorf("trickled body (length %d) = %d %s; want 408 body_timeout", length, a.status, a.body)
		}
	}
	e.awaitInFlight(0)
	if n := len(deadLetters(t, e)) + len(e.stream(natsbroker.IngressStream)); n != 0 {
		t.Errorf("%d messages stored for bodies that never arrived", n)
	}
	if a := e.post("/v1/webhooks/zapi", body); a.status != http.StatusOK {
		t.Errorf("a whole body afterwards = %d %s", a.status, a.body)
	}
}

// fairEnv has a token for Whapi and Z-API (known before the body is read)
// and an HMAC key for WAHA (known only once the body is read).
func fairEnv(t *testing.T, opts ...option) *env {
	tokens, _ := auth.NewTokenVerifier([]string{"whapi-secret"})
	ztokens, _ := auth.NewTokenVerifier([]string{"zapi-secret"})
	keys, _ := auth.NewHMACVerifier([]string{"waha-key"})
	return startEnv(t, append([]option{func(c *ingress.Config) {
		c.AuthDisabled = false
		c.Verifiers = map[string]auth.Verifier{"whapi": tokens, "zapi": ztokens, "waha": keys}
		c.BodyReadTimeout = time.Minute // the slow clients below hold on
	}}, opts...)...)
}

// TestSlowUnauthenticatedClientsDoNotStarveOthers: clients trickling WAHA
// bodies (whose signature needs the whole body) take every slot they can,
// and Whapi and Z-API deliveries are still stored meanwhile.
func TestSlowUnauthenticatedClientsDoNotStarveOthers(t *testing.T) {
	e := fairEnv(t, func(c *ingress.Config) {
		c.MaxInFlight = 16
		c.MaxUnauthenticatedInFlight = 4
	})
	waha := readFixture(t, "waha", "label.upsert.json")
	for i := 0; i < 40; i++ {
		e.startSlow("/v1/webhooks/waha", map[string]string{"X-Webhook-Hmac": "00"}, len(waha), waha[:5])
	}
	e.awaitInFlight(4)
	signed := map[string]string{"X-Webhook-Hmac": hmacHex("waha-key", waha)}
	if a := e.do("POST", "/v1/webhooks/waha", waha, signed); a.status != http.StatusTooManyRequests || a.errorCode(t) != "saturated" {
		t.Errorf("WAHA while its budget is held = %d %s; want 429", a.status, a.body)
	}
	whapi := readFixture(t, "whapi", "messages.post_incoming-text.json")
	zapi := readFixture(t, "zapi", "ReceivedCallback_text.json")
	for i := 0; i < 20; i++ {
		if a := e.do("POST", "/v1/webhooks/whapi", whapi, map[string]string{"Authorization": "Bearer whapi-secret"}); a.status != http.StatusOK {
			t.Fatalf("Whapi while WAHA clients trickle = %d %s; want 200", a.status, a.body)
		}
		if a := e.post("/v1/webhooks/zapi?token=zapi-secret", zapi); a.status != http.StatusOK {
			t.Fatalf("Z-API while WAHA clients trickle = %d %s; want 200", a.status, a.body)
		}
	}
	// Unauthenticated Whapi requests never take a slot at all.
	for i := 0; i < 20; i++ {
		if a := e.post("/v1/webhooks/whapi", whapi); a.status != http.StatusUnauthorized {
			t.Fatalf("Whapi without a token = %d; want 401", a.status)
		}
	}
}

// TestBufferedBytesAreBounded: bodies held in memory are bounded in total,
// and unauthenticated ones to a quarter of that, whether their length is
// declared (reserved at once) or not (reserved as read).
func TestBufferedBytesAreBounded(t *testing.T) {
	const limit = 64 << 10
	e := fairEnv(t, func(c *ingress.Config) {
		c.MaxBodyBytes = limit
		c.MaxBufferedBytes = 4 * limit // a quarter, one body, for WAHA until signed
		c.MaxInFlight = 64
		c.MaxUnauthenticatedInFlight = 16
	})
	waha := readFixture(t, "waha", "label.upsert.json")
	signed := map[string]string{"X-Webhook-Hmac": hmacHex("waha-key", waha)}
	whapi := readFixture(t, "whapi", "messages.post_incoming-text.json")
	bearer := map[string]string{"Authorization": "Bearer whapi-secret"}

	for _, length := range []int{limit, -1} {
		// One slow WAHA body holds the unauthenticated quarter: declared
		// whole, or read past it in chunks.
		first := waha[:5]
		if length < 0 {
			first = bytes.Repeat([]byte(" "), limit-100)
		}
		slow := e.startSlow("/v1/webhooks/waha", map[string]string{"X-Webhook-Hmac": "00"}, length, first)
		e.awaitBuffered(limit)
		if a := e.do("POST", "/v1/webhooks/waha", waha, signed); a.status != http.StatusTooManyRequests {
			t.Errorf("WAHA while a slow WAHA body (length %d) holds its bytes = %d %s; want 429", length, a.status, a.body)
		}
		if a := e.do("POST", "/v1/webhooks/whapi", whapi, bearer); a.status != http.StatusOK {
			t.Errorf("Whapi meanwhile = %d %s; want 200", a.status, a.body)
		}
		slow.conn.Close()
		e.awaitInFlight(0)
		e.awaitBuffered(0)
	}

	// Slow authenticated bodies fill the rest: then everyone waits.
	for i := 0; i < 4; i++ {
		e.startSlow("/v1/webhooks/whapi", bearer, limit, []byte("{"))
	}
	e.awaitBuffered(4 * limit)
	a := e.do("POST", "/v1/webhooks/whapi", whapi, bearer)
	if a.status != http.StatusTooManyRequests || a.header.Get("Retry-After") == "" || a.errorCode(t) != "saturated" {
		t.Errorf("Whapi with every buffered byte held = %d %s; want 429 with Retry-After", a.status, a.body)
	}
}
