package ingress_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/broker/natsbroker/natstest"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/envelope/envelopetest"
	"github.com/wahook/wahook/pkg/ingress"
	"github.com/wahook/wahook/pkg/provider/all"
)

const benchBody = `{"messages":[{"id":"bench-%d","from_me":false,"type":"text","chat_id":"919984351847@s.whatsapp.net","timestamp":1712995245,"source":"mobile","text":{"body":"Hello world"},"from":"919984351847","from_name":"Gerald"}],"event":{"type":"messages","event":"post"},"channel_id":"BENCH"}`

// benchServer starts an embedded JetStream server (file storage, durable
// acks) and serves h over loopback TCP.
func benchBroker(b *testing.B) *natsbroker.Broker {
	b.Helper()
	return natstest.Broker(b, natsbroker.Config{})
}

func serve(b *testing.B, h http.Handler) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// drive posts b.N single-item deliveries from conns connections and reports
// deliveries/s and latency percentiles.
func drive(b *testing.B, url string, conns int) {
	b.Helper()
	tr := &http.Transport{MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var (
		next    atomic.Int64
		mu      sync.Mutex
		lat     []time.Duration
		wg      sync.WaitGroup
		failure atomic.Value
	)
	seq := time.Now().UnixNano()
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine := make([]time.Duration, 0, b.N/conns+1)
			for next.Add(1) <= int64(b.N) {
				body := fmt.Sprintf(benchBody, seq+next.Load())
				t := time.Now()
				res, err := client.Post(url, "application/json", bytes.NewReader([]byte(body)))
				if err != nil {
					failure.Store(err.Error())
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 {
					failure.Store("status " + strconv.Itoa(res.StatusCode))
					return
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	if f := failure.Load(); f != nil {
		b.Fatalf("delivery failed: %v", f)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// serveIngress serves the ingress (every provider, metrics, no logging) in
// front of pub over loopback TCP.
func serveIngress(b *testing.B, pub broker.Publisher, binding envelope.Binding) string {
	b.Helper()
	h, err := ingress.New(ingress.Config{
		Providers:    all.Providers(),
		AuthDisabled: true,
		Publisher:    pub,
		Binding:      binding,
		Metrics:      ingress.NewMetrics(prometheus.NewRegistry()),
		Logger:       zap.NewNop(),
	}, nil)
	if err != nil {
		b.Fatal(err)
	}
	return serve(b, h)
}

// BenchmarkIngressHTTP measures the ingress end to end over loopback HTTP:
// split, identify, CloudEvent, publish with a durable JetStream ack.
func BenchmarkIngressHTTP(b *testing.B) {
	for _, conns := range []int{16, 64} {
		b.Run("conns="+strconv.Itoa(conns), func(b *testing.B) {
			br := benchBroker(b)
			drive(b, serveIngress(b, br, envelope.NATS)+"/v1/webhooks/whapi", conns)
		})
	}
}

// BenchmarkReferenceHTTP is the yardstick: a bare handler that reads the
// body, publishes it to JetStream and waits for the ack. The "headers"
// variant also sends what the contract puts on every raw event (the ce-*
// headers and Nats-Msg-Id), to tell the broker's share of the difference
// from the ingress's own work.
func BenchmarkReferenceHTTP(b *testing.B) {
	for _, withHeaders := range []bool{false, true} {
		for _, conns := range []int{16, 64} {
			name := "conns=" + strconv.Itoa(conns)
			if withHeaders {
				name = "headers/" + name
			}
			b.Run(name, func(b *testing.B) {
				br := benchBroker(b)
				js := br.JetStream()
				if _, err := js.CreateOrUpdateStream(context.Background(), jetstream.StreamConfig{
					Name: "REFERENCE", Subjects: []string{"reference"}, Storage: jetstream.FileStorage,
				}); err != nil {
					b.Fatal(err)
				}
				var n atomic.Int64
				h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					body, err := io.ReadAll(r.Body)
					if err != nil {
						w.WriteHeader(400)
						return
					}
					msg := &nats.Msg{Subject: "reference", Data: body}
					var opts []jetstream.PublishOpt
					if withHeaders {
						id := envelopetest.ID(0, n.Add(1))
						msg.Header = nats.Header(envelopetest.Reference(id, body, envelope.NATS).Header)
						opts = append(opts, jetstream.WithMsgID(id))
					}
					if _, err := js.PublishMsg(r.Context(), msg, opts...); err != nil {
						w.WriteHeader(503)
						return
					}
					w.WriteHeader(200)
				})
				drive(b, serve(b, h), conns)
			})
		}
	}
}
