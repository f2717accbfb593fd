package console

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/eventlog/eventlogtest"
)

// openLive GETs a live view and returns its response once its headers came.
func openLive(t *testing.T, ctx context.Context, url string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/console/overview/live", nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET overview/live: %v", err)
	}
	return res
}

// TestLiveViewEndsAtItsAge: a live view ends cleanly (a whole response, as
// the browser opens it again) once it is MaxStreamAge old, and leaves its
// slot.
func TestLiveViewEndsAtItsAge(t *testing.T) {
	c, err := New(Config{MaxStreamAge: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	res := openLive(t, ctx, srv.URL)
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("live view did not end cleanly after its age: %v (read %q)", err, body)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("live view ended after %s; want its age, 300ms", took)
	}
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), "event: overview\n") || strings.Contains(string(body), "event: failed") {
		t.Errorf("live view = %d:\n%s\nwant 200 with the overview, not failed", res.StatusCode, body)
	}
	c.streams.mu.Lock()
	open := len(c.streams.ends)
	c.streams.mu.Unlock()
	if open != 0 {
		t.Errorf("%d slots taken after the view ended; want 0", open)
	}
}

// TestLiveViewsBounded: the 17th live view gets 503 with the seconds until
// the oldest view ends; once one ends, a new one is served.
func TestLiveViewsBounded(t *testing.T) {
	c, err := New(Config{MaxStreamAge: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var cancels []context.CancelFunc
	for i := range 16 {
		vctx, vcancel := context.WithCancel(ctx)
		defer vcancel()
		cancels = append(cancels, vcancel)
		res := openLive(t, vctx, srv.URL)
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("live view %d = %d; want 200", i+1, res.StatusCode)
		}
	}
	res := openLive(t, ctx, srv.URL)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("17th live view = %d %s; want 503", res.StatusCode, body)
	}
	if after, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || after < 1 || after > 60 {
		t.Errorf("17th live view Retry-After = %q; want 1 to 60 seconds (the oldest view's age left)", res.Header.Get("Retry-After"))
	}

	cancels[0]() // its client goes away: the server notices and frees the slot
	for {
		res := openLive(t, ctx, srv.URL)
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no live view served after one ended: last %d", res.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestResumeFrom(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000)
	for name, tc := range map[string]struct {
		give string
		want time.Time
	}{
		"new view":              {"", time.Time{}},
		"a second ago":          {"1799999999000", now.Add(-time.Second)},
		"before the window":     {"1700000000000", now.Add(-resumeWindow)},
		"in the future":         {"1800000001000", time.Time{}},
		"not a number":          {"12ab", time.Time{}},
		"negative":              {"-5", now.Add(-resumeWindow)},
		"overflowing":           {"99999999999999999999999", time.Time{}},
		"an id with a new line": {"1799999999000\nx", time.Time{}},
	} {
		if got := resumeFrom(tc.give, now); !got.Equal(tc.want) {
			t.Errorf("%s: resumeFrom(%q) = %v; want %v", name, tc.give, got, tc.want)
		}
	}
}

// TestLiveTailResumedPastItsCap: a live tail opened again from a time with
// more stored since than its read cap goes on live and says, once, how
// many older events it passed over.
func TestLiveTailResumedPastItsCap(t *testing.T) {
	defer func(n int) { tailMaxScan = n }(tailMaxScan)
	tailMaxScan = 1
	c, pub, b := pagesFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	since := time.Now().Add(-time.Second)
	var msgs []broker.Message
	for i := range 5 {
		// One chat, one partition key: the five in one partition.
		msgs = append(msgs, envelope.Ingress(envelope.Raw{ID: fmt.Sprintf("burst-%d", i), Provider: "whapi", Channel: "BURST", Kind: "messages.post",
			Chat: eventlogtest.ChatA, Time: time.Now(), Data: []byte(`{"id":"x"}`)}, b))
	}
	if err := pub.Publish(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	defer srv.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/console/tail/live?stream=raw&provider=whapi&channel=BURST", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Last-Event-ID", strconv.FormatInt(since.UnixMilli(), 10))
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET tail/live: %v, %v", res, err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	event, rows, notice := "", 0, ""
	for notice == "" && sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			if event = v; v == "event" {
				rows++
			}
		}
		if v, ok := strings.CutPrefix(sc.Text(), "data: "); ok && event == "notice" {
			notice = v
		}
	}
	if want := "resumed: 4 older events skipped"; notice != want {
		t.Errorf("live tail resumed with a cap of 1: notice %q; want %q", notice, want)
	}
	if rows > 1 {
		t.Errorf("live tail resumed with a cap of 1 sent %d rows before its notice; want at most 1", rows)
	}
}
