package console

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/wahook/wahook/pkg/console"
)

// liveCounter serves a console and counts the answers to its live views.
type liveCounter struct {
	h  http.Handler
	mu sync.Mutex
	n  map[int]int // by status
}

func (c *liveCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "/live") {
		c.h.ServeHTTP(w, r)
		return
	}
	// Counted when answered: a live view's handler returns only at its end.
	c.h.ServeHTTP(&answerWriter{ResponseWriter: w, answered: c.count}, r)
}

// answerWriter calls answered with the status once, when it is written.
type answerWriter struct {
	http.ResponseWriter
	once     sync.Once
	answered func(code int)
}

func (w *answerWriter) WriteHeader(code int) {
	w.once.Do(func() { w.answered(code) })
	w.ResponseWriter.WriteHeader(code)
}

func (w *answerWriter) Write(b []byte) (int, error) {
	w.once.Do(func() { w.answered(http.StatusOK) })
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController flush the live view.
func (w *answerWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (c *liveCounter) count(code int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[code]++
}

func (c *liveCounter) get(code int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[code]
}

func serveConsole(t *testing.T, cfg console.Config) (*liveCounter, string) {
	t.Helper()
	con, err := console.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &liveCounter{h: con, n: map[int]int{}}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	// Stopped first (cleanups run last in, first out): its live views end,
	// and the server's Close does not wait for them.
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- con.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("console Run: %v", err)
		}
	})
	return c, srv.URL
}

// awaitCount waits until the live views answered code number want times.
func awaitCount(t *testing.T, c *liveCounter, code, want int) {
	t.Helper()
	end := time.Now().Add(40 * time.Second)
	for c.get(code) < want {
		if time.Now().After(end) {
			t.Fatalf("live views answered %d %d times in 40s; want %d", code, c.get(code), want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLiveViewsInBrowser: the page opens a live view the server ended at
// its age again and keeps showing the overview; a page refused for want of
// a slot (503) gets one once it is free.
func TestLiveViewsInBrowser(t *testing.T) {
	ctx := browser(t)

	t.Run("opened again after its age", func(t *testing.T) {
		c, url := serveConsole(t, console.Config{MaxStreamAge: time.Second, SampleEvery: time.Hour})
		if err := chromedp.Do(step(t, ctx), chromedp.Navigate(url+"/console/"), until(`document.body.dataset.live === "on"`)); err != nil {
			t.Fatal(err)
		}
		awaitCount(t, c, http.StatusOK, 2)
		// Emptied, the overview is shown again by the next view (no
		// sample comes within one).
		if _, err := chromedp.Run(step(t, ctx), chromedp.Evaluate[string](`document.getElementById("live").innerHTML = ""`)); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(step(t, ctx), until(`document.getElementById("live").innerHTML.includes("Deliveries by provider")`),
			chromedp.Navigate("about:blank")); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("refused, then served once a slot is free", func(t *testing.T) {
		c, url := serveConsole(t, console.Config{MaxStreams: 1, MaxStreamAge: time.Minute, SampleEvery: time.Hour})
		hold, release := context.WithCancel(context.Background())
		defer release()
		req, _ := http.NewRequestWithContext(hold, http.MethodGet, url+"/console/overview/live", nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("hold the only live view: %v, %v", res, err)
		}
		defer res.Body.Close()
		if err := chromedp.Do(step(t, ctx), chromedp.Navigate(url+"/console/")); err != nil {
			t.Fatal(err)
		}
		awaitCount(t, c, http.StatusServiceUnavailable, 1)
		release()
		if err := chromedp.Do(step(t, ctx), until(`document.body.dataset.live === "on"`)); err != nil {
			t.Fatal(err)
		}
		if got := c.get(http.StatusOK); got != 2 {
			t.Errorf("live views served %d; want 2 (the held one, then the page's)", got)
		}
	})
}
