package natsbroker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wahook/wahook/pkg/broker"
)

type stored struct {
	Subject string
	Header  map[string][]string
	Data    string
}

func TestPublishReadBack(t *testing.T) {
	_, b := newEmbeddedBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	var msgs []broker.Message
	for i := range 20 {
		msgs = append(msgs, ingressMsg(fmt.Sprintf("CH%d", i%3), i, jsonBody(i)))
	}
	// A header that already carries Nats-Msg-Id takes the no-copy path.
	msgs[1].Header[jetstream.MsgIDHeader] = []string{msgs[1].ID}
	if err := b.Publish(ctx, msgs...); err != nil {
		t.Fatalf("Publish(%d msgs): %v", len(msgs), err)
	}

	var want []stored
	for _, m := range msgs {
		h := map[string][]string{jetstream.MsgIDHeader: {m.ID}}
		for k, v := range m.Header {
			h[k] = v
		}
		want = append(want, stored{Subject: m.Subject, Header: h, Data: string(m.Data)})
	}
	var got []stored
	for _, m := range streamMsgs(t, b.JetStream(), IngressStream) {
		got = append(got, stored{Subject: m.Subject(), Header: m.Headers(), Data: string(m.Data())})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("stream %s after Publish mismatch (-want +got):\n%s", IngressStream, diff)
	}
	// Publish must not write into the caller's header map.
	if v, ok := msgs[2].Header[jetstream.MsgIDHeader]; ok {
		t.Errorf("Publish set %s=%v in the caller's header", jetstream.MsgIDHeader, v)
	}
}

func TestPublishEveryStream(t *testing.T) {
	_, b := newEmbeddedBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	subjects := map[string]string{
		"wahook.ingress.zapi.I1.received":            IngressStream,
		"wahook.deadletter.waha":                     DeadLetterStream,
		"wahook.label-changed.whapi.CH":              DerivedStream,
		"wahook.chat-created.whapi.CH":               DerivedStream,
		"wahook.call.zapi.I1":                        DerivedStream,
		"wahook.group-notification.waha.default.x.y": DerivedStream,
	}
	for subject, stream := range subjects {
		if got, ok := StreamFor(subject); !ok || got != stream {
			t.Errorf("StreamFor(%s) = %q, %v; want %q, true", subject, got, ok, stream)
		}
		// No ID: the message is stored without Nats-Msg-Id.
		if err := b.Publish(ctx, broker.Message{Subject: subject, Data: []byte(`{}`)}); err != nil {
			t.Errorf("Publish(%s): %v", subject, err)
		}
	}
	want := map[string]uint64{IngressStream: 1, DeadLetterStream: 1, DerivedStream: 4}
	got := map[string]uint64{}
	for _, s := range streamNames {
		got[s] = streamCount(t, b.JetStream(), s)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("message counts per stream mismatch (-want +got):\n%s", diff)
	}
}

func TestPublishDeduplicates(t *testing.T) {
	_, b := newEmbeddedBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	m := ingressMsg("CH", 1, jsonBody(1))
	for i := range 2 {
		if err := b.Publish(ctx, m); err != nil {
			t.Fatalf("Publish #%d of %s: %v", i+1, m.ID, err)
		}
	}
	// The same message twice in one call, and once more from two goroutines
	// sharing its header map (the race detector checks nobody writes it).
	if err := b.Publish(ctx, m, m); err != nil {
		t.Fatalf("Publish(m, m): %v", err)
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if err := b.Publish(ctx, m); err != nil {
				t.Errorf("concurrent Publish of %s: %v", m.ID, err)
			}
		})
	}
	wg.Wait()
	if got := streamCount(t, b.JetStream(), IngressStream); got != 1 {
		t.Errorf("stream %s holds %d messages after publishing one ID 6 times, want 1", IngressStream, got)
	}
}

func TestPublishConcurrent(t *testing.T) {
	_, b := newEmbeddedBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	const publishers, perPublisher = 64, 50
	run := func() {
		var wg sync.WaitGroup
		for p := range publishers {
			wg.Go(func() {
				batch := p%8 + 1 // 1..8 messages per call
				ch := fmt.Sprintf("P%02d", p)
				for i := 0; i < perPublisher; i += batch {
					var msgs []broker.Message
					for j := i; j < min(i+batch, perPublisher); j++ {
						msgs = append(msgs, ingressMsg(ch, j, jsonBody(j)))
					}
					if err := b.Publish(ctx, msgs...); err != nil {
						t.Errorf("publisher %d: Publish(%d msgs): %v", p, len(msgs), err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	run()
	run() // every ID again: all duplicates
	if t.Failed() {
		return
	}

	seen := make(map[string]int)
	for _, m := range streamMsgs(t, b.JetStream(), IngressStream) {
		seen[m.Headers().Get(jetstream.MsgIDHeader)]++
	}
	if len(seen) != publishers*perPublisher {
		t.Errorf("stream holds %d distinct IDs, want %d", len(seen), publishers*perPublisher)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("ID %s stored %d times, want once", id, n)
		}
	}
}

func TestOutageAndRestart(t *testing.T) {
	dir := t.TempDir()
	e := startServer(t, dir)
	core, logs := observer.New(zap.InfoLevel)
	b := connect(t, Config{URL: e.ClientURL(), Auth: e.ServiceAuth(), ReconnectWait: 50 * time.Millisecond, Logger: zap.New(core)})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	var before []broker.Message
	for i := range 5 {
		before = append(before, ingressMsg("CH", i, jsonBody(i)))
	}
	if err := b.Publish(ctx, before...); err != nil {
		t.Fatalf("Publish before outage: %v", err)
	}
	if err := b.Ready(ctx); err != nil {
		t.Fatalf("Ready before outage: %v", err)
	}

	if err := e.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
	start := time.Now()
	err := b.Publish(pctx, ingressMsg("CH", 100, jsonBody(100)))
	pcancel()
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Publish during outage = %v, want an error wrapping broker.ErrUnavailable", err)
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Errorf("Publish during outage took %s, want at most its 2s deadline", d)
	}
	rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
	if err := b.Ready(rctx); err == nil {
		t.Errorf("Ready during outage = nil, want an error")
	}
	rcancel()

	// Same port and store: the client reconnects and the stream is intact.
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(e.ClientURL(), "nats://"))
	e2 := startServerAt(t, dir, "127.0.0.1:"+port)
	if e2.ClientURL() != e.ClientURL() {
		t.Fatalf("restarted server at %s, want %s", e2.ClientURL(), e.ClientURL())
	}
	for {
		rctx, rcancel := context.WithTimeout(ctx, time.Second)
		err := b.Ready(rctx)
		rcancel()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("Ready after restart: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	after := ingressMsg("CH", 200, jsonBody(200))
	if err := b.Publish(ctx, after); err != nil {
		t.Fatalf("Publish after restart: %v", err)
	}
	// A retry of a message stored before the restart is still a duplicate:
	// the dedup window survives restarts.
	if err := b.Publish(ctx, before[0]); err != nil {
		t.Fatalf("Publish retry after restart: %v", err)
	}
	var gotIDs, wantIDs []string
	for _, m := range append(before, after) {
		wantIDs = append(wantIDs, m.ID)
	}
	for _, m := range streamMsgs(t, b.JetStream(), IngressStream) {
		gotIDs = append(gotIDs, m.Headers().Get(jetstream.MsgIDHeader))
	}
	if diff := cmp.Diff(wantIDs, gotIDs); diff != "" {
		t.Errorf("stream IDs after restart mismatch (-want +got):\n%s", diff)
	}
	for _, msg := range []string{"nats disconnected", "nats reconnected"} {
		if logs.FilterMessage(msg).Len() == 0 {
			t.Errorf("no %q log entry", msg)
		}
	}
}

// silence replaces the ingress stream by a subscriber that never answers, so
// publishes wait for acks that do not come.
func silence(t *testing.T, e *Embedded, b *Broker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.JetStream().DeleteStream(ctx, IngressStream); err != nil {
		t.Fatalf("DeleteStream: %v", err)
	}
	nc, err := nats.Connect(e.ClientURL(), serviceLogin(e))
	if err != nil {
		t.Fatalf("nats.Connect: %v", err)
	}
	t.Cleanup(nc.Close)
	if _, err := nc.Subscribe(IngressSubjects, func(*nats.Msg) {}); err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
}

// TestPublishContext checks that Publish ends with its ctx. The stream is
// gone and nothing acks, so a Publish that ignored its ctx would wait for
// PublishTimeout: a minute, far above the bound each case allows, which is
// loose so that a loaded machine's scheduling delays do not fail it.
func TestPublishContext(t *testing.T) {
	e := startServer(t, t.TempDir())
	b := connect(t, Config{Embedded: e, PublishTimeout: time.Minute, MaxPending: 2})
	// A Publish without deadline ends after PublishTimeout.
	short := connect(t, Config{Embedded: e, PublishTimeout: time.Second, MaxPending: 2})
	silence(t, e, b)
	const bound = 20 * time.Second

	for name, tc := range map[string]struct {
		ctx         func() (context.Context, context.CancelFunc)
		msgs        int
		wantErr     error
		unavailable bool
		maxTime     time.Duration
		short       bool
	}{
		"already cancelled": {
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx, cancel
			},
			msgs: 3, wantErr: context.Canceled, maxTime: bound,
		},
		"cancelled": {
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(100*time.Millisecond, cancel)
				return ctx, cancel
			},
			msgs: 1, wantErr: context.Canceled, maxTime: bound,
		},
		"deadline": {
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 200*time.Millisecond)
			},
			msgs: 1, wantErr: context.DeadlineExceeded, unavailable: true, maxTime: bound,
		},
		"no deadline uses PublishTimeout": {
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithCancel(context.Background())
			},
			msgs: 1, wantErr: context.DeadlineExceeded, unavailable: true, maxTime: bound, short: true,
		},
		"full window waits until the deadline": {
			ctx: func() (context.Context, context.CancelFunc) {
				return context.WithTimeout(context.Background(), 300*time.Millisecond)
			},
			msgs: 5, wantErr: context.DeadlineExceeded, unavailable: true, maxTime: bound,
		},
		"full window cancelled": {
			ctx: func() (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(context.Background())
				time.AfterFunc(100*time.Millisecond, cancel)
				return ctx, cancel
			},
			msgs: 5, wantErr: context.Canceled, maxTime: bound,
		},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := tc.ctx()
			defer cancel()
			var msgs []broker.Message
			for i := range tc.msgs {
				msgs = append(msgs, ingressMsg("CTX", i, jsonBody(i)))
			}
			pub := b
			if tc.short {
				pub = short
			}
			start := time.Now()
			err := pub.Publish(ctx, msgs...)
			d := time.Since(start)
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("Publish = %v, want an error wrapping %v", err, tc.wantErr)
			}
			if got := errors.Is(err, broker.ErrUnavailable); got != tc.unavailable {
				t.Errorf("errors.Is(%v, broker.ErrUnavailable) = %v, want %v", err, got, tc.unavailable)
			}
			if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
				t.Errorf("Publish = %v: a full window must wait, not fail", err)
			}
			if d > tc.maxTime {
				t.Errorf("Publish returned after %s, want within %s", d, tc.maxTime)
			}
		})
	}
}

func TestPublishSmallWindowSucceeds(t *testing.T) {
	e := startServer(t, t.TempDir())
	b := connect(t, Config{Embedded: e, MaxPending: 4})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	var msgs []broker.Message
	for i := range 500 {
		msgs = append(msgs, ingressMsg("WIN", i, jsonBody(i)))
	}
	if err := b.Publish(ctx, msgs...); err != nil {
		t.Fatalf("Publish(500 msgs) through a window of 4: %v", err)
	}
	if got := streamCount(t, b.JetStream(), IngressStream); got != 500 {
		t.Errorf("stream holds %d messages, want 500", got)
	}
}

func TestPublishPermanentErrors(t *testing.T) {
	_, b := newEmbeddedBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	for name, tc := range map[string]struct {
		msg     broker.Message
		wantErr error
	}{
		"no stream for subject": {
			msg:     broker.Message{Subject: "other.subject", ID: "x", Data: []byte("{}")},
			wantErr: ErrNoStream,
		},
		"topic without token": {
			msg:     broker.Message{Subject: "wahook.ingress", Data: []byte("{}")},
			wantErr: ErrNoStream,
		},
		"over max payload": {
			msg:     broker.Message{Subject: "wahook.ingress.a.b.c", ID: "big", Data: bytes.Repeat([]byte("x"), embeddedMaxPayload+1)},
			wantErr: broker.ErrTooLarge,
		},
	} {
		t.Run(name, func(t *testing.T) {
			err := b.Publish(ctx, tc.msg)
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("Publish = %v, want an error wrapping %v", err, tc.wantErr)
			}
			if errors.Is(err, broker.ErrUnavailable) || !errors.Is(err, broker.ErrRejected) {
				t.Errorf("Publish = %v: want broker.ErrRejected, not broker.ErrUnavailable", err)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	for name, tc := range map[string]struct {
		give error
		want bool
	}{
		"deadline":            {context.DeadlineExceeded, true},
		"cancelled":           {context.Canceled, false},
		"no responders":       {nats.ErrNoResponders, true},
		"no stream response":  {jetstream.ErrNoStreamResponse, true},
		"disconnected":        {nats.ErrDisconnected, true},
		"reconnect buffer":    {nats.ErrReconnectBufExceeded, true},
		"closed":              {nats.ErrConnectionClosed, true},
		"ack timeout":         {jetstream.ErrAsyncPublishTimeout, true},
		"wrapped timeout":     {fmt.Errorf("x: %w", nats.ErrTimeout), true},
		"no servers":          {nats.ErrNoServers, true},
		"cluster unavailable": {&jetstream.APIError{Code: 503, ErrorCode: 10008}, true},
		"insufficient":        {&jetstream.APIError{Code: 503, ErrorCode: 10023}, true},
		"storage exceeded":    {&jetstream.APIError{Code: 500, ErrorCode: 10047}, true},
		"too many requests":   {&jetstream.APIError{Code: 429, ErrorCode: 10167}, true},
		"not enabled":         {jetstream.ErrJetStreamNotEnabled, true},
		"message too large":   {&jetstream.APIError{Code: 400, ErrorCode: 10054}, false},
		"stream not found":    {jetstream.ErrStreamNotFound, false},
		"max payload":         {nats.ErrMaxPayload, false},
		"no stream":           {ErrNoStream, false},
	} {
		t.Run(name, func(t *testing.T) {
			got := classify(tc.give)
			if is := errors.Is(got, broker.ErrUnavailable); is != tc.want {
				t.Errorf("classify(%v) wraps ErrUnavailable = %v, want %v", tc.give, is, tc.want)
			}
			if !errors.Is(got, tc.give) {
				t.Errorf("classify(%v) = %v, lost the cause", tc.give, got)
			}
		})
	}
}

func TestCloseWaitsForInFlight(t *testing.T) {
	e := startServer(t, t.TempDir())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := Connect(ctx, Config{Embedded: e})
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}

	var msgs []broker.Message
	for i := range 3000 {
		msgs = append(msgs, ingressMsg("CLOSE", i, bytes.Repeat([]byte("y"), 1024)))
	}
	// Enter as Publish does, so Close certainly finds this call in flight.
	if !b.enter() {
		t.Fatal("enter() = false on an open broker")
	}
	var finished atomic.Bool
	published := make(chan error, 1)
	go func() {
		err := b.publish(ctx, msgs)
		finished.Store(true)
		b.inflight.Done()
		published <- err
	}()
	if err := b.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if !finished.Load() {
		t.Errorf("Close returned before the in-flight Publish finished")
	}
	if err := <-published; err != nil {
		t.Errorf("in-flight Publish = %v, want nil", err)
	}
	if err := b.Publish(ctx, ingressMsg("CLOSE", 9999, nil)); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Publish after Close = %v, want an error wrapping broker.ErrClosed", err)
	}
	if err := b.Ready(ctx); !errors.Is(err, broker.ErrClosed) {
		t.Errorf("Ready after Close = %v, want an error wrapping broker.ErrClosed", err)
	}
	if err := b.Close(ctx); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}

	// Everything the in-flight call published is stored.
	nc, err := nats.Connect(e.ClientURL(), serviceLogin(e))
	if err != nil {
		t.Fatalf("nats.Connect: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream.New: %v", err)
	}
	if got := streamCount(t, js, IngressStream); got != uint64(len(msgs)) {
		t.Errorf("stream holds %d messages, want %d", got, len(msgs))
	}
}

func TestTCPSubscriberReceives(t *testing.T) {
	e, b := newEmbeddedBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// What `nats sub 'wahook.ingress.>'` does, from another connection.
	nc, err := nats.Connect(e.ClientURL(), serviceLogin(e))
	if err != nil {
		t.Fatalf("nats.Connect(%s): %v", e.ClientURL(), err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync(IngressSubjects)
	if err != nil {
		t.Fatalf("SubscribeSync: %v", err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}

	m := ingressMsg("TCP", 1, jsonBody(1))
	if err := b.Publish(ctx, m); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	got, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("NextMsg: %v", err)
	}
	if got.Subject != m.Subject || string(got.Data) != string(m.Data) || got.Header.Get("ce-id") != m.ID {
		t.Errorf("subscriber got subject %q ce-id %q data %q; want %q %q %q",
			got.Subject, got.Header.Get("ce-id"), got.Data, m.Subject, m.ID, m.Data)
	}
}

func TestConnectUnreachable(t *testing.T) {
	// A port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "nats://" + l.Addr().String()
	l.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	b, err := Connect(ctx, Config{URL: url})
	if err == nil {
		b.Close(ctx)
		t.Fatalf("Connect(%s) = nil error, want one", url)
	}
	if !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Connect(%s) = %v, want an error wrapping broker.ErrUnavailable", url, err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Connect took %s, want to fail fast", d)
	}
}

func TestConfigValidate(t *testing.T) {
	for name, tc := range map[string]struct {
		give    Config
		wantErr string
	}{
		"defaults":             {give: Config{URL: "nats://x"}},
		"no url":               {give: Config{}, wantErr: "neither URL nor Embedded"},
		"window over max age":  {give: Config{URL: "nats://x", Streams: StreamsConfig{Duplicates: 48 * time.Hour, IngressMaxAge: 24 * time.Hour}}, wantErr: "shorter than duplicates window"},
		"replicas":             {give: Config{URL: "nats://x", Streams: StreamsConfig{Replicas: 7}}, wantErr: "replicas 7"},
		"negative max pending": {give: Config{URL: "nats://x", MaxPending: -1}, wantErr: "max pending"},
	} {
		t.Run(name, func(t *testing.T) {
			tc.give.setDefaults()
			err := tc.give.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Errorf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Validate() = %v, want an error containing %q", err, tc.wantErr)
			}
		})
	}
}
