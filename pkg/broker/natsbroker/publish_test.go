package natsbroker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wahook/wahook/pkg/broker"
)

// startPlainServer runs a nats-server with JetStream and the given
// max_payload on a random loopback port (StartEmbedded fixes max_payload).
func startPlainServer(t testing.TB, maxPayload int32) *server.Server {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(),
		MaxPayload: maxPayload, NoSigs: true, NoLog: true,
	})
	if err != nil {
		t.Fatalf("server.NewServer: %v", err)
	}
	srv.Start()
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return srv
}

// alive checks that b's connection survived what came before (never closed
// nor re-established) and that a publish still succeeds.
func alive(t *testing.T, b *Broker, i int) {
	t.Helper()
	if st := b.Conn().Status(); st != nats.CONNECTED {
		t.Fatalf("connection %s after a refused message, want CONNECTED", st)
	}
	if n := b.Conn().Stats().Reconnects; n != 0 {
		t.Fatalf("connection reconnected %d times after a refused message, want 0", n)
	}
	if err := b.Conn().LastError(); err != nil {
		t.Fatalf("connection's last error %v after a refused message, want none", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Publish(ctx, ingressMsg("ALIVE", i, jsonBody(i))); err != nil {
		t.Fatalf("Publish after a refused message: %v", err)
	}
}

// TestPublishLongSubjectKeepsConnection is the 4 KB channel of the issue:
// its HPUB line is over nats-server's max_control_line, which made the
// server close the connection for good. It is refused before sending, and
// the connection, its subscriptions and later publishes carry on.
func TestPublishLongSubjectKeepsConnection(t *testing.T) {
	e := startServer(t, t.TempDir())
	for name, cfg := range map[string]Config{"tcp": {URL: e.ClientURL(), Auth: e.ServiceAuth()}, "in-process": {Embedded: e}} {
		t.Run(name, func(t *testing.T) {
			b := connect(t, cfg)
			var c collector
			subscribed(t, b, broker.Subscription{Topic: "wahook.ingress", Group: "long-" + name}, c.handle)

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			long := ingressMsg(strings.Repeat("C", 4096), 0, jsonBody(0))
			err := b.Publish(ctx, long, ingressMsg("OK", 1, jsonBody(1)))
			if !errors.Is(err, broker.ErrRejected) || errors.Is(err, broker.ErrUnavailable) {
				t.Fatalf("Publish(4 KB subject) = %v, want ErrRejected and not ErrUnavailable", err)
			}
			alive(t, b, 2)
			var ids []string
			for i := range 50 {
				m := ingressMsg("AFTER"+name, i, jsonBody(i))
				ids = append(ids, m.ID)
				if err := b.Publish(ctx, m); err != nil {
					t.Fatalf("Publish %d after the refused subject: %v", i, err)
				}
			}
			c.waitIDs(t, 20*time.Second, ids...)
			for _, id := range c.ids() {
				if id == long.ID || id == "evt-OK-00001" {
					t.Errorf("message %s of the refused call was stored", id)
				}
			}
		})
	}
}

// TestPublishControlLineBoundary checks the arithmetic against the server:
// a subject whose HPUB line is exactly max_control_line long is stored,
// one byte more is refused and the connection survives.
func TestPublishControlLineBoundary(t *testing.T) {
	e := startServer(t, t.TempDir())
	b := connect(t, Config{URL: e.ClientURL(), Auth: e.ServiceAuth()})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	base := ingressMsg("X", 0, jsonBody(0))
	lim := limits{maxPayload: b.MaxMessageBytes(), replyLen: asyncReplyLen(b.Conn())}
	hdr := hdrFraming + len(jetstream.MsgIDHeader) + 4 + len(base.ID)
	for k, vs := range base.Header {
		hdr += len(k) + len(vs[0]) + 4
	}
	fill := maxControlLine - controlLineLen(len(base.Subject), lim.replyLen, hdr, hdr+len(base.Data))
	at := base
	at.Subject = "wahook.ingress.whapi.X" + strings.Repeat("y", fill) + ".messages.post"
	if n := controlLineLen(len(at.Subject), lim.replyLen, hdr, hdr+len(at.Data)); n != maxControlLine {
		t.Fatalf("test setup: control line of %d bytes, want %d", n, maxControlLine)
	}
	if err := b.Publish(ctx, at); err != nil {
		t.Fatalf("Publish(control line of exactly %d bytes) = %v, want stored", maxControlLine, err)
	}
	over := at
	over.Subject += "z"
	if err := b.Publish(ctx, over); !errors.Is(err, broker.ErrRejected) {
		t.Fatalf("Publish(control line of %d bytes) = %v, want ErrRejected", maxControlLine+1, err)
	}
	alive(t, b, 1)
}

func TestPublishRefusesWhatTheServerRefuses(t *testing.T) {
	e := startServer(t, t.TempDir())
	b := connect(t, Config{URL: e.ClientURL(), Auth: e.ServiceAuth()})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	withSubject := func(s string) broker.Message {
		m := ingressMsg("S", 0, jsonBody(0))
		m.Subject = s
		return m
	}
	withHeader := func(k, v string) broker.Message {
		m := ingressMsg("H", 0, jsonBody(0))
		m.Header[k] = []string{v}
		return m
	}
	for name, tc := range map[string]struct {
		msg      broker.Message
		tooLarge bool
	}{
		"no stream":                {msg: withSubject("other.subject")},
		"empty token":              {msg: withSubject("wahook.ingress.whapi..chats")},
		"trailing dot":             {msg: withSubject("wahook.ingress.whapi.CH.")},
		"leading dot":              {msg: withSubject(".wahook.ingress.whapi.CH")},
		"space":                    {msg: withSubject("wahook.ingress.whapi.C H.chats")},
		"tab":                      {msg: withSubject("wahook.ingress.whapi.C\tH.chats")},
		"CR":                       {msg: withSubject("wahook.ingress.whapi.C\rH.chats")},
		"LF":                       {msg: withSubject("wahook.ingress.whapi.C\nH.chats")},
		"NUL":                      {msg: withSubject("wahook.ingress.whapi.C\x00H.chats")},
		"DEL":                      {msg: withSubject("wahook.ingress.whapi.C\x7fH.chats")},
		"star":                     {msg: withSubject("wahook.ingress.whapi.*.chats")},
		"gt":                       {msg: withSubject("wahook.ingress.whapi.CH.>")},
		"key with colon":           {msg: withHeader("ce-a:b", "v")},
		"key with space":           {msg: withHeader("ce a", "v")},
		"key with CRLF":            {msg: withHeader("ce-a\r\nNats-Msg-Id", "v")},
		"empty key":                {msg: withHeader("", "v")},
		"non-ASCII key":            {msg: withHeader("ce-café", "v")},
		"value injecting":          {msg: withHeader("ce-note", "x\r\nNats-Msg-Id: forged")},
		"value with LF":            {msg: withHeader("ce-note", "a\nb")},
		"value with NUL":           {msg: withHeader("ce-note", "a\x00b")},
		"value padded":             {msg: withHeader("ce-note", " a")},
		"value trailing tab":       {msg: withHeader("ce-note", "a\t")},
		"id with CR":               {msg: func() broker.Message { m := withSubject("wahook.ingress.a.b.c"); m.ID = "a\rb"; return m }()},
		"header block over 64 KiB": {msg: withHeader("ce-big", strings.Repeat("v", 1<<16))},
		"over max_payload":         {msg: ingressMsg("BIG", 0, bytes.Repeat([]byte("x"), embeddedMaxPayload)), tooLarge: true},
	} {
		t.Run(name, func(t *testing.T) {
			// A valid message of the same call is not stored either.
			okMsg := ingressMsg("REFUSED", 0, jsonBody(0))
			okMsg.ID = "refused-" + strings.ReplaceAll(name, " ", "-")
			okMsg.Header[jetstream.MsgIDHeader] = []string{okMsg.ID}
			err := b.Publish(ctx, okMsg, tc.msg)
			if !errors.Is(err, broker.ErrRejected) || errors.Is(err, broker.ErrUnavailable) {
				t.Fatalf("Publish = %v, want ErrRejected and not ErrUnavailable", err)
			}
			if got := errors.Is(err, broker.ErrTooLarge); got != tc.tooLarge {
				t.Errorf("Publish = %v: errors.Is(ErrTooLarge) = %v, want %v", err, got, tc.tooLarge)
			}
			alive(t, b, 0)
		})
	}
	for _, m := range streamMsgs(t, b.JetStream(), IngressStream) {
		if id := m.Headers().Get(jetstream.MsgIDHeader); strings.HasPrefix(id, "refused-") {
			t.Errorf("message %s of a refused call was stored", id)
		}
	}
}

// TestPublishValuesStoredExactly: what passes the checks is stored byte
// for byte (nats.go would otherwise trim or rewrite some values).
func TestPublishValuesStoredExactly(t *testing.T) {
	_, b := newEmbeddedBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	m := ingressMsg("EXACT", 0, jsonBody(0))
	m.Header["ce-tab"] = []string{"a\tb"}
	m.Header["ce-utf8"] = []string{"café"}
	m.Header["ce-empty"] = []string{""}
	m.Header["ce-punct"] = []string{`a"b%c;d`}
	if err := b.Publish(ctx, m); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	got := streamMsgs(t, b.JetStream(), IngressStream)[0].Headers()
	for k, v := range m.Header {
		if g := got.Values(k); len(g) != 1 || g[0] != v[0] {
			t.Errorf("header %s stored as %q, want %q", k, g, v)
		}
	}
}

// TestMaxMessageBytes: the limit is the server's max_payload; a message of
// broker.Size up to it is stored, headers and data of exactly max_payload
// too, one byte more is refused as too large before it is sent.
func TestMaxMessageBytes(t *testing.T) {
	const maxPayload = 16 << 10
	srv := startPlainServer(t, maxPayload)
	b := connect(t, Config{URL: srv.ClientURL()})
	if got := b.MaxMessageBytes(); got != maxPayload {
		t.Fatalf("MaxMessageBytes() = %d, want max_payload %d", got, maxPayload)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	m := ingressMsg("LIM", 0, nil)
	m.Data = bytes.Repeat([]byte("s"), maxPayload-broker.Size(m))
	if got := broker.Size(m); got != maxPayload {
		t.Fatalf("test setup: Size %d, want %d", got, maxPayload)
	}
	if err := b.Publish(ctx, m); err != nil {
		t.Errorf("Publish(Size == MaxMessageBytes) = %v, want stored", err)
	}

	exact := ingressMsg("LIM", 1, nil)
	exact.Header[jetstream.MsgIDHeader] = []string{exact.ID}
	hdr := hdrFraming
	for k, vs := range exact.Header {
		hdr += len(k) + len(vs[0]) + 4
	}
	exact.Data = bytes.Repeat([]byte("e"), maxPayload-hdr)
	if err := b.Publish(ctx, exact); err != nil {
		t.Errorf("Publish(headers and data of exactly max_payload) = %v, want stored", err)
	}
	over := exact
	over.Data = append(bytes.Clone(exact.Data), 'x')
	err := b.Publish(ctx, over)
	if !errors.Is(err, broker.ErrTooLarge) || !errors.Is(err, broker.ErrRejected) {
		t.Errorf("Publish(max_payload + 1) = %v, want ErrTooLarge and ErrRejected", err)
	}
	alive(t, b, 2)
}

// TestPublishPerCallBound: one call with more messages than the window
// whose acks do not come (a stream that is slow to store) must leave room
// for other callers. Without a per-call bound it took the whole window and
// every other Publish waited until its deadline.
func TestPublishPerCallBound(t *testing.T) {
	const window = 64
	e := startServer(t, t.TempDir())
	b := connect(t, Config{Embedded: e, MaxPending: window})
	silence(t, e, b)

	// Far beyond the test, so that the huge call runs until stopped.
	hugeCtx, stopHuge := context.WithTimeout(context.Background(), time.Hour)
	defer stopHuge()
	hugeDone := make(chan error, 1)
	huge := make([]broker.Message, 10*window)
	for i := range huge {
		huge[i] = ingressMsg("HUGE", i, jsonBody(i))
	}
	go func() { hugeDone <- b.Publish(hugeCtx, huge...) }()
	// Wait until the huge call holds its share of the window.
	poll(t, 20*time.Second, "the huge publish in flight", func() bool {
		return b.JetStream().PublishAsyncPending() >= b.perCall()
	})

	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 4 {
				// A deadline no message queued behind the huge call's
				// unacknowledged ones could meet.
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := b.Publish(ctx, broker.Message{
					Topic: "wahook.deadletter", Subject: "wahook.deadletter.small",
					ID: fmt.Sprintf("small-%d-%d", g, i), Data: []byte(`{}`),
				})
				cancel()
				if err != nil {
					errs <- fmt.Errorf("small publish %d/%d: %w", g, i, err)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	select {
	case err := <-hugeDone:
		t.Fatalf("the huge publish returned %v while its acks never come", err)
	default:
	}
	if n := b.JetStream().PublishAsyncPending(); n > b.perCall() {
		t.Errorf("%d publishes pending with the huge call alone in flight, want at most %d", n, b.perCall())
	}
	stopHuge()
	if err := <-hugeDone; !errors.Is(err, context.Canceled) {
		t.Errorf("huge publish after its ctx was cancelled = %v, want context.Canceled", err)
	}
}

func TestClassifyPublish(t *testing.T) {
	for name, tc := range map[string]struct {
		give                            error
		unavailable, rejected, tooLarge bool
	}{
		"deadline":            {give: context.DeadlineExceeded, unavailable: true},
		"cancelled":           {give: context.Canceled},
		"disconnected":        {give: nats.ErrDisconnected, unavailable: true},
		"no stream response":  {give: jetstream.ErrNoStreamResponse, unavailable: true},
		"storage full":        {give: &jetstream.APIError{Code: 503, ErrorCode: 10077}, unavailable: true},
		"storage exceeded":    {give: &jetstream.APIError{Code: 500, ErrorCode: 10047}, unavailable: true},
		"max payload":         {give: nats.ErrMaxPayload, rejected: true, tooLarge: true},
		"message too large":   {give: &jetstream.APIError{Code: 400, ErrorCode: 10054}, rejected: true, tooLarge: true},
		"header too large":    {give: &jetstream.APIError{Code: 400, ErrorCode: 10097}, rejected: true},
		"wrong last seq":      {give: &jetstream.APIError{Code: 400, ErrorCode: 10071}, rejected: true},
		"no stream":           {give: ErrNoStream, rejected: true},
		"bad subject":         {give: nats.ErrBadSubject, rejected: true},
		"bad header":          {give: nats.ErrBadHeaderMsg, rejected: true},
		"headers unsupported": {give: nats.ErrHeadersNotSupported},
		"already rejected":    {give: broker.TooLarge(2, 1), rejected: true, tooLarge: true},
	} {
		t.Run(name, func(t *testing.T) {
			got := classifyPublish(tc.give)
			for what, c := range map[string]struct {
				target error
				want   bool
			}{
				"ErrUnavailable": {broker.ErrUnavailable, tc.unavailable},
				"ErrRejected":    {broker.ErrRejected, tc.rejected},
				"ErrTooLarge":    {broker.ErrTooLarge, tc.tooLarge},
			} {
				if is := errors.Is(got, c.target); is != c.want {
					t.Errorf("classifyPublish(%v) = %v: wraps %s = %v, want %v", tc.give, got, what, is, c.want)
				}
			}
			if !errors.Is(got, tc.give) {
				t.Errorf("classifyPublish(%v) = %v, lost the cause", tc.give, got)
			}
		})
	}
}

func TestCheckAllocs(t *testing.T) {
	m := ingressMsg("ALLOC", 0, jsonBody(0))
	m.Header[jetstream.MsgIDHeader] = []string{m.ID}
	lim := limits{maxPayload: embeddedMaxPayload, replyLen: len(nats.InboxPrefix) + asyncReplyTokens}
	if n := testing.AllocsPerRun(100, func() {
		if err := lim.check(&m, needsID(&m)); err != nil {
			t.Fatalf("check: %v", err)
		}
	}); n != 0 {
		t.Errorf("check of a valid message allocates %.0f times, want 0", n)
	}
}

func BenchmarkCheck(b *testing.B) {
	m := ingressMsg("BENCH", 0, jsonBody(0))
	lim := limits{maxPayload: embeddedMaxPayload, replyLen: len(nats.InboxPrefix) + asyncReplyTokens}
	b.ReportAllocs()
	for b.Loop() {
		if err := lim.check(&m, needsID(&m)); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCheckRereadsMaxPayload: a message over the max_payload last known is
// checked against the server's current one (a reconnect may have reached a
// server with a larger limit) before it is refused.
func TestCheckRereadsMaxPayload(t *testing.T) {
	_, b := newEmbeddedBroker(t)
	m := ingressMsg("STALE", 0, bytes.Repeat([]byte("d"), 4096))
	stale := limits{maxPayload: 1024, replyLen: asyncReplyLen(b.Conn()), nc: b.Conn()}
	if err := stale.check(&m, needsID(&m)); err != nil {
		t.Errorf("check with a stale max_payload of 1024 = %v, want the server's %d to apply", err, embeddedMaxPayload)
	}
	stale.nc = nil
	if err := stale.check(&m, needsID(&m)); !errors.Is(err, broker.ErrTooLarge) {
		t.Errorf("check over max_payload = %v, want ErrTooLarge", err)
	}
}
