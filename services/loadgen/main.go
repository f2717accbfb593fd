// Command loadgen measures a running ingress: it posts webhook deliveries
// over loopback HTTP from a number of concurrent connections and reports
// deliveries per second and latency percentiles. It can also serve the
// reference the ingress is compared with: a bare net/http handler that only
// publishes the body to JetStream and waits for the acknowledgement.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wahook/wahook/pkg/admin"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadgen hit|reference [flags]")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "hit":
		err = hit(ctx, os.Args[2:], os.Stdout)
	case "reference":
		err = reference(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: want hit or reference", os.Args[1])
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

// defaultBody is a one-message Whapi delivery; {{seq}} makes every
// delivery a distinct event so that no duplicate is dropped cheaply.
const defaultBody = `{"messages":[{"id":"load-{{seq}}","from_me":false,"type":"text","chat_id":"919984351847@s.whatsapp.net","timestamp":1712995245,"source":"mobile","text":{"body":"Hello world"},"from":"919984351847","from_name":"Gerald"}],"event":{"type":"messages","event":"post"},"channel_id":"LOAD-TEST"}`

type result struct {
	ok, failed int64
	elapsed    time.Duration
	latencies  []time.Duration
	statuses   map[int]int64
}

func (r result) percentile(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(float64(len(r.latencies)-1) * p)
	return r.latencies[i]
}

func hit(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("hit", flag.ContinueOnError)
	url := fs.String("url", "http://127.0.0.1:8080/v1/webhooks/whapi", "where to post")
	conns := fs.Int("c", 64, "concurrent connections")
	duration := fs.Duration("d", 10*time.Second, "how long to post")
	warmup := fs.Duration("warmup", 2*time.Second, "posting before measuring")
	bodyFile := fs.String("body", "", "file with the delivery to post ({{seq}} is replaced by a sequence number); a Whapi message by default")
	label := fs.String("label", "", "name printed with the result")
	header := fs.String("header", "", "extra request header, 'Name: value'")
	if err := fs.Parse(args); err != nil {
		return err
	}
	body := []byte(defaultBody)
	if *bodyFile != "" {
		b, err := os.ReadFile(*bodyFile)
		if err != nil {
			return err
		}
		body = b
	}
	if *warmup > 0 {
		if _, err := drive(ctx, *url, *conns, *warmup, body, *header); err != nil {
			return err
		}
	}
	r, err := drive(ctx, *url, *conns, *duration, body, *header)
	if err != nil {
		return err
	}
	rate := float64(r.ok) / r.elapsed.Seconds()
	fmt.Fprintf(out, "%-12s conns=%-3d ok=%-7d failed=%-5d rate=%8.0f/s p50=%-8s p99=%-8s max=%-8s statuses=%v\n",
		*label, *conns, r.ok, r.failed, rate, r.percentile(.50).Round(10*time.Microsecond),
		r.percentile(.99).Round(10*time.Microsecond), r.percentile(1).Round(10*time.Microsecond), r.statuses)
	if r.ok == 0 {
		return errors.New("no delivery succeeded")
	}
	return nil
}

// seq numbers deliveries across warm-up and measured runs.
var seq atomic.Int64

func drive(ctx context.Context, url string, conns int, d time.Duration, body []byte, header string) (result, error) {
	tr := &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	hname, hvalue, _ := bytes.Cut([]byte(header), []byte(":"))

	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		mu  sync.Mutex
		res = result{statuses: map[int]int64{}}
		wg  sync.WaitGroup
	)
	start := time.Now()
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			statuses := map[int]int64{}
			var ok, failed int64
			for ctx.Err() == nil {
				b := bytes.ReplaceAll(body, []byte("{{seq}}"), strconv.AppendInt(nil, seq.Add(1), 10))
				req, err := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(b))
				if err != nil {
					failed++
					continue
				}
				req.Header.Set("Content-Type", "application/json")
				if len(hname) > 0 {
					req.Header.Set(string(hname), string(bytes.TrimSpace(hvalue)))
				}
				t := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						failed++
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				statuses[resp.StatusCode]++
				if resp.StatusCode == http.StatusOK {
					ok++
					lat = append(lat, time.Since(t))
				} else {
					failed++
				}
			}
			mu.Lock()
			defer mu.Unlock()
			res.ok += ok
			res.failed += failed
			res.latencies = append(res.latencies, lat...)
			for k, v := range statuses {
				res.statuses[k] += v
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	sort.Slice(res.latencies, func(i, j int) bool { return res.latencies[i] < res.latencies[j] })
	return res, nil
}

// reference serves the baseline: read the body, publish it to JetStream,
// wait for the PubAck, answer 200. Nothing else.
func reference(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("reference", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8081", "listen address")
	url := fs.String("nats-url", "", "NATS server (default: the context file's)")
	ctxFile := fs.String("nats-context", "", "nats CLI context file that logs in, e.g. <data-dir>/"+natsbroker.ContextFile+" of the embedded server")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var auth natsbroker.Auth
	if *ctxFile != "" {
		u, a, err := natsbroker.LoadContext(*ctxFile)
		if err != nil {
			return err
		}
		auth = a
		if *url == "" {
			*url = u
		}
	}
	if *url == "" {
		*url = "nats://127.0.0.1:4222"
	}
	opts, err := auth.Options()
	if err != nil {
		return err
	}
	nc, err := nats.Connect(*url, append(opts, nats.Name("wahook-loadgen-reference"))...)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: "LOADGEN_REFERENCE", Subjects: []string{"loadgen.reference"}, Storage: jetstream.FileStorage, MaxAge: time.Hour,
	}); err != nil {
		return fmt.Errorf("reference stream: %w", err)
	}
	// The ingress's own timeouts, so that both sides are measured alike.
	srv := admin.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if _, err := js.Publish(r.Context(), "loadgen.reference", body); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}), admin.WebhookTimeouts, nil)
	srv.Addr = *addr
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
