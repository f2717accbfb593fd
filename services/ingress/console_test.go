package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// await polls url until its body contains every one of want, or fails the
// test at the deadline.
func await(t *testing.T, url string, deadline time.Duration, want ...string) string {
	t.Helper()
	end := time.Now().Add(deadline)
	var body string
	for {
		var code int
		code, body = get(t, url)
		missing := ""
		for _, w := range want {
			if !strings.Contains(body, w) {
				missing = w
				break
			}
		}
		if code == http.StatusOK && missing == "" {
			return body
		}
		if time.Now().After(end) {
			t.Fatalf("GET %s = %d without %q after %s:\n%s", url, code, missing, deadline, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestConsole: the console on the admin listener of an ingress deriving in
// process shows a delivery sent through the real handler on the overview,
// live over server-sent events, and the label it registered; it is kept to
// its origin and never shows its token.
func TestConsole(t *testing.T) {
	t.Run("nats", func(t *testing.T) {
		testConsole(t, "-nats-embedded-addr", "127.0.0.1:-1", "-data-dir", t.TempDir())
	})
	t.Run("kafka", func(t *testing.T) {
		cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
		if err != nil {
			t.Fatal(err)
		}
		defer cluster.Close()
		testConsole(t, "-broker", "kafka", "-kafka-brokers", strings.Join(cluster.ListenAddrs(), ","), "-kafka-partitions", "1")
	})
}

// twoItems is a delivery of two messages: a dead letter for an ingress
// taking one item a delivery, redriven by one taking more.
const twoItems = `{"messages":[{"id":"dl-1","type":"text","chat_id":"919984351847@s.whatsapp.net","timestamp":1712995245,"text":{"body":"one"}},` +
	`{"id":"dl-2","type":"text","chat_id":"919984351847@s.whatsapp.net","timestamp":1712995246,"text":{"body":"two"}}],` +
	`"event":{"type":"messages","event":"post"},"channel_id":"DL-CHANNEL"}`

func testConsole(t *testing.T, broker ...string) {
	args := append([]string{"-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0",
		"-auth-disabled", "-log-level", "warn", "-derive", "all", "-console-token", "console-secret"}, broker...)
	// An ingress taking one item a delivery dead-letters two.
	ctx1, cancel1 := context.WithCancel(context.Background())
	defer cancel1()
	pub1, _, done1 := startBoth(t, ctx1, append(args, "-max-items", "1")...)
	// An older one first, for the dead letters' second page.
	for _, body := range []string{strings.ReplaceAll(strings.ReplaceAll(twoItems, "DL-CHANNEL", "DL-OLDER"), `"dl-`, `"old-`), twoItems} {
		if res, err := http.Post(pub1+"/v1/webhooks/whapi", "application/json", strings.NewReader(body)); err != nil || res.StatusCode != http.StatusBadRequest {
			t.Fatalf("POST two items to an ingress taking one = %v, %v; want 400", res, err)
		} else {
			res.Body.Close()
		}
	}
	cancel1()
	if err := <-done1; err != nil {
		t.Fatalf("run: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pub, adm, done := startBoth(t, ctx, args...)

	post := func(name string) []string {
		t.Helper()
		body, err := os.ReadFile("../../pkg/provider/whapi/testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		req, _ := http.NewRequest(http.MethodPost, pub+"/v1/webhooks/whapi", strings.NewReader(string(body)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Request-Id", "req-"+name)
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("POST %s = %v, %v", name, res, err)
		}
		defer res.Body.Close()
		var a struct{ IDs []string }
		if err := json.NewDecoder(res.Body).Decode(&a); err != nil || len(a.IDs) != 1 {
			t.Fatalf("POST %s answer: %+v, %v", name, a, err)
		}
		return a.IDs
	}
	post("messages.post_incoming-text.json")
	newChat := post("chats.post_incoming-new-chat.json")[0]
	post("labels.post.json")
	added := post("chats.patch_label-assigned.json")[0]
	post("chats.patch_label-removed.json")

	page := await(t, adm+"/console/", 20*time.Second, `data-provider="whapi"`, `<td class="n deliveries">5</td>`, `data-stream="label-changed"`)
	if !strings.Contains(page, "<svg class=\"spark\"") {
		t.Errorf("overview has no sparkline:\n%s", page)
	}
	// The channel's row, its four deliveries answered 200.
	await(t, adm+"/console/", 20*time.Second, `data-channels="whapi"`, `<tr data-channel="MANTIS-M72HC" data-kind="channel">`, `<span class="code">200: 5</span>`)
	await(t, adm+"/console/labels", 20*time.Second, "MANTIS-M72HC", `data-label="76"`, "Order complete", `fill="lightsteelblue"`)

	// The chat in Z-API's group form: the timeline shows the label put on,
	// then taken off, and none on now.
	chat := await(t, adm+"/console/chat?chat=120363398750933550-group", 20*time.Second, "120363398750933550@g.us",
		`data-kind="added"`, `data-kind="removed"`)
	if a, r := strings.Index(chat, `data-kind="added"`), strings.Index(chat, `data-kind="removed"`); a > r {
		t.Errorf("timeline shows the removal before the addition:\n%s", chat)
	}
	if !strings.Contains(chat, `<p class="empty" id="labels-now">`) {
		t.Errorf("timeline shows labels on the chat after their removal:\n%s", chat)
	}
	// The chat registry tells when and by which raw event a chat was
	// first seen, linked to that event's page.
	await(t, adm+"/console/chat?chat=919984351847", 20*time.Second, `data-kind="created"`, `id="first-event"`,
		`href="/console/event?id=`+newChat+`&amp;range=15m"`, "of whapi / MANTIS-M72HC")
	// The raw event's page: its derived label.added in the causal chain.
	// Its delivery by request id, and the raw events of that delivery.
	rawPage := await(t, adm+"/console/event?id="+added, 20*time.Second, "io.wahook.ingress.whapi.chats.patch", `data-derived="io.wahook.label.added"`, "New order",
		`<code id="requestid">req-chats.patch_label-assigned.json</code>`, `data-delivery="`+added+`"`)
	// A derived event's page shows its raw event's delivery.
	i := strings.Index(rawPage, `data-derived="io.wahook.label.added"`)
	j := strings.Index(rawPage[i:], `/console/event?id=`) + i + len(`/console/event?id=`)
	derivedID := rawPage[j : j+strings.IndexByte(rawPage[j:], '"')]
	await(t, adm+"/console/event?id="+derivedID, 20*time.Second, "io.wahook.label.added",
		`<code id="requestid">req-chats.patch_label-assigned.json</code>`, `data-delivery="`+added+`"`)
	await(t, adm+"/console/tail?stream=derived&type=io.wahook.label.*", 20*time.Second, `data-type="io.wahook.label.added"`, `data-type="io.wahook.label.removed"`)
	// The dead letter, its body shown; redriven once.
	dl := await(t, adm+"/console/deadletters", 20*time.Second, `<article class="deadletter"`, "DL-CHANNEL", `&#34;body&#34;: &#34;two&#34;`, `data-redrive=`)
	if strings.Contains(dl, "console-secret") {
		t.Error("dead letters page shows the console token")
	}
	i = strings.Index(dl, `data-redrive="`) + len(`data-redrive="`)
	dlID := dl[i : i+strings.IndexByte(dl[i:], '"')]
	redrive := func(id string, header map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, adm+"/console/deadletters/redrive", strings.NewReader("id="+id))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		if strings.Contains(string(body), "console-secret") {
			t.Errorf("redrive answer shows the token: %s", body)
		}
		return res.StatusCode, string(body)
	}
	token := map[string]string{"X-Wahook-Console-Token": "console-secret"}
	if code, body := redrive(dlID, token); code != http.StatusOK || !strings.Contains(body, "redriven: 2 events") {
		t.Fatalf("redrive = %d %s; want 2 events redriven", code, body)
	}
	if code, body := redrive(dlID, token); code != http.StatusConflict || !strings.Contains(body, "redriven before") {
		t.Errorf("second redrive = %d %s; want 409, redriven before", code, body)
	}
	await(t, adm+"/console/deadletters", 20*time.Second, `class="ok redriven"`)
	await(t, adm+"/console/tail?stream=raw&channel=DL-CHANNEL&provider=whapi", 20*time.Second, "DL-CHANNEL", `data-type="io.wahook.ingress.whapi.messages.post"`)

	for name, tc := range map[string]struct {
		header map[string]string
		want   int
	}{
		"no token":          {nil, http.StatusUnauthorized},
		"wrong token":       {map[string]string{"X-Wahook-Console-Token": "console-secreT"}, http.StatusUnauthorized},
		"token as a cookie": {map[string]string{"Cookie": "X-Wahook-Console-Token=console-secret"}, http.StatusUnauthorized},
		"other origin":      {map[string]string{"X-Wahook-Console-Token": "console-secret", "Origin": "http://evil.example"}, http.StatusForbidden},
		"cross-site fetch":  {map[string]string{"X-Wahook-Console-Token": "console-secret", "Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		"unknown id":        {token, http.StatusNotFound},
	} {
		if code, body := redrive("no-such-dead-letter", tc.header); code != tc.want {
			t.Errorf("redrive with %s = %d %s; want %d", name, code, body, tc.want)
		}
	}
	if code, _ := get(t, adm+"/console/deadletters/redrive?id=x"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET redrive = %d; want 405", code)
	}

	// Each list page by pages of one or two: the pages together list what
	// one page lists, newest first, each once, the last with no link;
	// a forged or oversized position is refused.
	for _, list := range []string{"/console/tail?stream=raw&provider=whapi&channel=MANTIS-M72HC", "/console/deadletters?range=1h",
		"/console/chat?chat=120363398750933550-group"} {
		whole := listPages(t, adm, list)
		if len(whole) != 1 || len(whole[0]) < 2 {
			t.Fatalf("%s: %v; want one page of 2 or more", list, whole)
		}
		n := 2
		if strings.Contains(list, "chat?") || strings.Contains(list, "deadletters") {
			n = 1
		}
		pages := listPages(t, adm, fmt.Sprintf("%s&n=%d", list, n))
		var all []string
		for _, p := range pages {
			if len(p) > n {
				t.Errorf("%s: a page of %d; want at most %d", list, len(p), n)
			}
			all = append(all, p...)
		}
		if strings.Contains(list, "chat?") {
			// Each timeline page is in time order, the pages newest
			// first: one a page, that is the whole page reversed.
			slices.Reverse(all)
		}
		if !slices.Equal(all, whole[0]) || len(pages) != (len(all)+n-1)/n {
			t.Errorf("%s by %d: pages %v; want %v in %d pages", list, n, pages, whole[0], (len(all)+n-1)/n)
		}
		for name, after := range map[string]string{"oversized": strings.Repeat("A", 5000), "forged": "AAAA"} {
			if code, body := get(t, adm+list+"&after="+after); code != http.StatusBadRequest || !strings.Contains(body, "bad position") {
				t.Errorf("%s with an %s position = %d %q; want 400, bad position", list, name, code, body)
			}
		}
	}

	if code, _ := get(t, adm+"/console/tail?stream=nope"); code != http.StatusBadRequest {
		t.Errorf("tail with an unknown stream = %d; want 400", code)
	}
	if code, _ := get(t, adm+"/console/tail?chat="+strings.Repeat("1", 300)); code != http.StatusBadRequest {
		t.Errorf("tail with an over-long chat = %d; want 400", code)
	}

	res, err := http.Get(adm + "/console/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	for h, want := range map[string]string{"X-Frame-Options": "DENY", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"} {
		if got := res.Header.Get(h); got != want {
			t.Errorf("console header %s = %q; want %q", h, got, want)
		}
	}
	if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("console CSP = %q", csp)
	}
	for _, path := range []string{"/console/", "/console/labels", "/console/static/console.js"} {
		if _, body := get(t, adm+path); strings.Contains(body, "console-secret") {
			t.Errorf("GET %s shows the console token", path)
		}
	}
	if code, _ := get(t, pub+"/console/"); code != http.StatusNotFound {
		t.Errorf("webhook port /console/ = %d; want 404", code)
	}

	// The live overview: an event with the body right away.
	lctx, lcancel := context.WithTimeout(ctx, 20*time.Second)
	defer lcancel()
	req, _ := http.NewRequestWithContext(lctx, http.MethodGet, adm+"/console/overview/live", nil)
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("live overview: %v", err)
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("live overview Content-Type = %q", ct)
	}
	sc := bufio.NewScanner(res.Body)
	var event, data string
	for sc.Scan() && (event == "" || !strings.Contains(data, `data-provider="whapi"`)) {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "event: "); ok {
			event = v
		}
		if v, ok := strings.CutPrefix(line, "data: "); ok {
			data += v
		}
	}
	res.Body.Close()
	if event != "overview" || !strings.Contains(data, `data-provider="whapi"`) {
		t.Errorf("live overview event %q data %q", event, data)
	}

	// The live tail: a raw event stored after it opened comes as a row,
	// with its stored time as its id.
	type liveRow struct{ id, row string }
	liveTail := func(lastID string) chan liveRow {
		t.Helper()
		req, _ := http.NewRequestWithContext(lctx, http.MethodGet, adm+"/console/tail/live?stream=raw&provider=whapi", nil)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("live tail: %v, %v", res, err)
		}
		rows := make(chan liveRow, 1)
		go func() {
			defer close(rows)
			defer res.Body.Close()
			sc := bufio.NewScanner(res.Body)
			event, id := "", ""
			for sc.Scan() {
				if v, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
					event = v
				}
				if v, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
					id = v
				}
				if v, ok := strings.CutPrefix(sc.Text(), "data: "); ok && event == "event" {
					rows <- liveRow{id, v}
					return
				}
			}
		}()
		return rows
	}
	rows := liveTail("")
	// Until the tail follows, a post may come before it: post until a row
	// comes.
	var row liveRow
	for i := 0; row.row == ""; i++ {
		// Each its own event: a repeat would be dropped as a duplicate.
		status := fmt.Sprintf(`{"statuses":[{"id":"tail-%d","status":"read","recipient_id":"919984351847@s.whatsapp.net","timestamp":"1712995581"}],"event":{"type":"statuses","event":"post"},"channel_id":"MANTIS-M72HC"}`, i)
		if res, err := http.Post(pub+"/v1/webhooks/whapi", "application/json", strings.NewReader(status)); err != nil || res.StatusCode != http.StatusOK {
			t.Fatalf("POST status = %v, %v", res, err)
		} else {
			res.Body.Close()
		}
		select {
		case row = <-rows:
			if row.row == "" {
				t.Fatal("live tail ended without a row")
			}
		case <-time.After(500 * time.Millisecond):
		case <-lctx.Done():
			t.Fatal("live tail sent no row")
		}
	}
	if !strings.Contains(row.row, `data-type="io.wahook.ingress.whapi.statuses.post"`) {
		t.Errorf("live tail row = %s", row.row)
	}
	// Opened again with the last id the browser got, it resumes at that
	// event's millisecond: the row comes again (the page drops it).
	select {
	case again := <-liveTail(row.id):
		idOf := func(row string) string {
			_, v, _ := strings.Cut(row, `data-id="`)
			v, _, _ = strings.Cut(v, `"`)
			return v
		}
		if row.id == "" || idOf(row.row) == "" || idOf(again.row) != idOf(row.row) {
			t.Errorf("live tail resumed from %q: first row %s; want %s", row.id, again.row, row.row)
		}
	case <-lctx.Done():
		t.Fatal("live tail resumed with no row")
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}

// TestConsoleOff: -console=false leaves /console/ unserved.
func TestConsoleOff(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, adm, done := startBoth(t, ctx, "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0",
		"-nats-embedded-addr", "127.0.0.1:-1", "-data-dir", t.TempDir(), "-auth-disabled", "-log-level", "warn", "-console=false")
	if code, _ := get(t, adm+"/console/"); code != http.StatusNotFound {
		t.Errorf("/console/ with -console=false = %d; want 404", code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}

// TestConsoleHosts: the console answers to the names in
// WAHOOK_CONSOLE_HOSTS, IP addresses and localhost, and refuses any other
// Host (a DNS-rebound page) with 421 naming the setting; the health and
// metrics endpoints, reached by probes and scrapers under any name, still
// answer. A name that is not one stops the start.
func TestConsoleHosts(t *testing.T) {
	t.Setenv("WAHOOK_CONSOLE_HOSTS", "wahook-console.internal, Ops.Example.")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, adm, done := startBoth(t, ctx, "-http-addr", "127.0.0.1:0", "-admin-addr", "127.0.0.1:0",
		"-nats-embedded-addr", "127.0.0.1:-1", "-data-dir", t.TempDir(), "-auth-disabled", "-log-level", "warn")
	port := adm[strings.LastIndexByte(adm, ':'):]
	getHost := func(path, host string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, adm+path, nil)
		req.Host = host
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s for %s: %v", path, host, err)
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
		return res.StatusCode, string(body)
	}
	for _, host := range []string{"wahook-console.internal" + port, "OPS.example" + port, "localhost" + port, "[::1]" + port} {
		if code, body := getHost("/console/", host); code != http.StatusOK || !strings.Contains(body, "Overview") {
			t.Errorf("GET /console/ for %s = %d; want the overview", host, code)
		}
	}
	for _, path := range []string{"/console/", "/console/overview/live", "/console/tail"} {
		code, body := getHost(path, "evil.example"+port)
		if code != http.StatusMisdirectedRequest || !strings.Contains(body, "WAHOOK_CONSOLE_HOSTS") || strings.Contains(body, "<html") {
			t.Errorf("GET %s for evil.example = %d %q; want 421 naming WAHOOK_CONSOLE_HOSTS", path, code, body)
		}
	}
	for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
		if code, _ := getHost(path, "wahook-ingress.wahook.svc"+port); code != http.StatusOK {
			t.Errorf("GET %s for a service name = %d; want 200", path, code)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}

	t.Setenv("WAHOOK_CONSOLE_HOSTS", "ops.example:9090")
	err := run(context.Background(), []string{"-admin-addr", "127.0.0.1:0", "-nats-embedded-addr", "127.0.0.1:-1", "-data-dir", t.TempDir()}, nil)
	if err == nil || !strings.Contains(err.Error(), "WAHOOK_CONSOLE_HOSTS") || !strings.Contains(err.Error(), "port") {
		t.Errorf("run with a host name with a port = %v; want an error naming WAHOOK_CONSOLE_HOSTS and the port", err)
	}
}

var (
	listItem = regexp.MustCompile(`data-id="([^"]+)"`)
	moreLink = regexp.MustCompile(`<a id="more" rel="next" href="([^"]+)">`)
)

// listPages gets a list page of the console at adm, then each page its
// "More" link names, and returns the ids each lists.
func listPages(t *testing.T, adm, url string) [][]string {
	t.Helper()
	var pages [][]string
	for url != "" {
		if len(pages) > 20 {
			t.Fatalf("more than 20 pages, at %s", url)
		}
		code, body := get(t, adm+url)
		if code != http.StatusOK {
			t.Fatalf("GET %s = %d %s", url, code, body)
		}
		var ids []string
		for _, m := range listItem.FindAllStringSubmatch(body, -1) {
			ids = append(ids, m[1])
		}
		pages = append(pages, ids)
		url = ""
		if m := moreLink.FindStringSubmatch(body); m != nil {
			url = html.UnescapeString(m[1])
		}
	}
	return pages
}
