// Command loadgen measures a running ingress: it posts webhook deliveries
// over loopback HTTP from a number of concurrent connections and reports
// deliveries per second and latency percentiles. It also serves what the
// load test (compare.sh, make bench-load) needs around that: the reference
// the ingress is compared with (a bare net/http handler that only publishes
// the body to JetStream and waits for the acknowledgement), a Kafka broker
// (kfake), the wait until the derived streams' consumers have caught up,
// and the report of a run's rows.
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
)

const usage = "usage: loadgen hit|reference|kafka|drain|reset|report [flags]"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch args := os.Args[2:]; os.Args[1] {
	case "hit":
		err = hit(ctx, args, os.Stdout)
	case "reference":
		err = reference(ctx, args)
	case "kafka":
		err = serveKafka(ctx, args, os.Stdout)
	case "drain":
		err = drain(ctx, args, os.Stdout)
	case "reset":
		err = reset(ctx, args)
	case "report":
		err = report(args, os.Stdout)
	default:
		err = fmt.Errorf("unknown command %q; %s", os.Args[1], usage)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

type result struct {
	ok, failed int64
	start      time.Time
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
	kind := fs.String("body-kind", "message", "delivery to post: message or chats.patch")
	bodyFile := fs.String("body", "", "file with the delivery to post instead ({{seq}} is replaced by a sequence number)")
	label := fs.String("label", "", "name printed with the result (the row of the report)")
	brokerName := fs.String("broker", "", "broker behind the target, recorded for the report")
	results := fs.String("results", "", "append the result to this file, for drain and report")
	header := fs.String("header", "", "extra request header, 'Name: value'")
	pids := fs.String("pids", "", "processes whose CPU time over the measured load and peak memory to record, name=pid,..., with this one's as load (Linux)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	body, err := loadBody(*kind, *bodyFile)
	if err != nil {
		return err
	}
	if *bodyFile != "" {
		*kind = "file"
	}
	if *warmup > 0 {
		if _, err := drive(ctx, *url, *conns, *warmup, body, *header); err != nil {
			return err
		}
	}
	spec := *pids
	if spec != "" {
		// The load generator shares the cores too: its own CPU says how
		// much of them was left to the broker and the target.
		spec += ",load=" + strconv.Itoa(os.Getpid())
	}
	cpu, err := watchCPU(spec)
	if err != nil {
		return err
	}
	r, err := drive(ctx, *url, *conns, *duration, body, *header)
	if err != nil {
		return err
	}
	used, err := cpu.used()
	if err != nil {
		return err
	}
	rss, err := cpu.peakRSS()
	if err != nil {
		return err
	}
	delete(rss, "load") // the memory rows are the services'
	rate := float64(r.ok) / r.elapsed.Seconds()
	fmt.Fprintf(out, "%-18s %-12s %-5s conns=%-3d ok=%-7d failed=%-5d rate=%8.0f/s p50=%-8s p99=%-8s max=%-8s statuses=%v\n",
		*label, *kind, *brokerName, *conns, r.ok, r.failed, rate, r.percentile(.50).Round(10*time.Microsecond),
		r.percentile(.99).Round(10*time.Microsecond), r.percentile(1).Round(10*time.Microsecond), r.statuses)
	if r.ok == 0 {
		return errors.New("no delivery succeeded")
	}
	if *results == "" {
		return nil
	}
	return appendRecord(*results, record{
		Row: *label, Body: *kind, Broker: *brokerName, Conns: *conns, OK: r.ok, Failed: r.failed,
		Start: r.start, Elapsed: r.elapsed, P50: r.percentile(.50), P99: r.percentile(.99), Max: r.percentile(1),
		CPU: used, RSS: rss,
	})
}

// seq numbers deliveries. It starts at the time in microseconds, so that
// runs one after the other against one server never repeat a number (and
// an event) as long as they post fewer than a million deliveries a second.
var seq atomic.Int64

func init() { seq.Store(time.Now().UnixMicro()) }

func drive(ctx context.Context, url string, conns int, d time.Duration, body []byte, header string) (result, error) {
	tr := &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	hname, hvalue, _ := bytes.Cut([]byte(header), []byte(":"))

	var (
		mu  sync.Mutex
		res = result{statuses: map[int]int64{}}
		wg  sync.WaitGroup
	)
	res.start = time.Now()
	// At the deadline no new delivery starts, but those in flight finish:
	// every delivery the target accepted is counted, and none is cut off
	// halfway (the ingress would log it as a client gone).
	deadline := res.start.Add(d)
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			statuses := map[int]int64{}
			var ok, failed int64
			for ctx.Err() == nil && time.Now().Before(deadline) {
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
	res.elapsed = time.Since(res.start)
	sort.Slice(res.latencies, func(i, j int) bool { return res.latencies[i] < res.latencies[j] })
	return res, nil
}
