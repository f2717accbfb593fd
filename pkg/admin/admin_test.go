package admin

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

func TestHandler(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "wahook_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Inc()
	var notReady error
	srv := httptest.NewServer(Handler(Config{Registry: reg, Pprof: true,
		Ready: func(context.Context) error { return notReady }}))
	defer srv.Close()
	get := func(path string) (int, string) {
		res, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "wahook_test_total 1") {
		t.Errorf("/metrics = %d %s", code, body)
	}
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200, "/debug/pprof/": 200,
		"/debug/pprof/allocs?debug=1": 200, "/debug/pprof/cmdline": 404, "/debug/pprof/symbol": 200} {
		if code, _ := get(path); code != want {
			t.Errorf("GET %s = %d; want %d", path, code, want)
		}
	}
	notReady = errors.New("stream WAHOOK_INGRESS missing")
	if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "WAHOOK_INGRESS") {
		t.Errorf("/readyz when not ready = %d %s", code, body)
	}
}

func TestNewServerSetsEveryTimeout(t *testing.T) {
	to := Timeouts{ReadHeader: time.Second, Read: 2 * time.Second, Write: 3 * time.Second, Idle: 4 * time.Second}
	srv := NewServer(http.NotFoundHandler(), to, zap.NewNop())
	if srv.ReadHeaderTimeout != to.ReadHeader || srv.ReadTimeout != to.Read || srv.WriteTimeout != to.Write || srv.IdleTimeout != to.Idle {
		t.Errorf("server timeouts %v %v %v %v; want %+v", srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout, to)
	}
	if a := AdminTimeouts; a.ReadHeader <= 0 || a.Read <= 0 || a.Write <= 60*time.Second || a.Idle <= 0 {
		t.Errorf("AdminTimeouts %+v: want all set, and Write above a 60s profile", a)
	}
	if w := WebhookTimeouts; w.ReadHeader <= 0 || w.Read <= 0 || w.Write <= 0 || w.Idle <= 0 {
		t.Errorf("WebhookTimeouts %+v: want all set", w)
	}
}

func TestServe(t *testing.T) {
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, NewServer(Handler(Config{}), AdminTimeouts, nil), ln, time.Second) }()
	res, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("GET /healthz = %v, %v", res, err)
	}
	res.Body.Close()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve after cancel = %v", err)
	}
	if _, err := Listen(ln.Addr().String() + "x"); err == nil {
		t.Error("Listen on a bad address = nil error")
	}
}

// TestCachedReady checks that probes share one check: concurrent callers
// wait for the same run, an answer is reused within the TTL, and a caller
// that gives up does not cut the run short for the others.
func TestCachedReady(t *testing.T) {
	var runs atomic.Int32
	release := make(chan struct{})
	down := errors.New("broker down")
	check := func(ctx context.Context) error {
		runs.Add(1)
		select {
		case <-release:
		case <-ctx.Done():
			return ctx.Err()
		}
		return down
	}
	ready := CachedReady(check, time.Hour)

	impatient, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ready(impatient); !errors.Is(err, context.Canceled) {
		t.Errorf("a caller whose ctx ended = %v, want context.Canceled", err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = ready(context.Background())
		}()
	}
	close(release)
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, down) {
			t.Errorf("caller %d = %v, want %v", i, err, down)
		}
	}
	if err := ready(context.Background()); !errors.Is(err, down) {
		t.Errorf("within the TTL = %v, want the cached %v", err, down)
	}
	if n := runs.Load(); n != 1 {
		t.Errorf("the check ran %d times, want once", n)
	}

	short := CachedReady(func(context.Context) error { runs.Add(1); return nil }, time.Nanosecond)
	runs.Store(0)
	for range 3 {
		if err := short(context.Background()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	if n := runs.Load(); n != 3 {
		t.Errorf("past the TTL the check ran %d times for 3 callers, want 3", n)
	}
}
