package console

import (
	"context"
	"encoding/base64"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/kafkabroker"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/eventlog"
	"github.com/wahook/wahook/pkg/eventlog/eventlogtest"
	"github.com/wahook/wahook/pkg/redrive"
)

func TestPositionRoundTrip(t *testing.T) {
	for name, p := range map[string]eventlog.Position{
		"nats":   {"WAHOOK_RAW": 12, "WAHOOK_DERIVED": 1, "WAHOOK_DEADLETTER": 0},
		"kafka":  {"wahook.raw/0": -1, "wahook.raw/1": 1 << 40, "wahook.label-changed/7": 3},
		"one":    {"S": 9},
		"longer": {strings.Repeat("s", eventlog.MaxFilterLen): 5},
	} {
		s := encodePosition(p)
		got, err := decodePosition(s)
		if err != nil {
			t.Errorf("%s: decodePosition(encodePosition(%v)) = %v", name, p, err)
			continue
		}
		if diff := cmp.Diff(p, got); diff != "" {
			t.Errorf("%s: position mismatch (-want +got):\n%s", name, diff)
		}
		if strings.Trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			t.Errorf("%s: encoding %q is not base64url", name, s)
		}
	}
}

// TestPositionFitsEveryDefaultPartition: a newest-first page's next
// position names every partition read, those with nothing in range too;
// with wahook's topics at their default partitions and the largest
// offsets, it still fits a link.
func TestPositionFitsEveryDefaultPartition(t *testing.T) {
	topics := []string{envelope.IngressTopic, envelope.DeadLetterTopic}
	for _, s := range derive.Streams {
		topics = append(topics, envelope.DerivedTopic(s))
	}
	p := eventlog.Position{}
	for _, topic := range topics {
		for i := range kafkabroker.DefaultPartitions {
			p[fmt.Sprintf("%s/%d", topic, i)] = 1<<63 - 1
		}
	}
	s := encodePosition(p)
	if len(s) > maxPositionParam {
		t.Fatalf("position of %d partitions: %d characters, more than %d", len(p), len(s), maxPositionParam)
	}
	if got, err := decodePosition(s); err != nil || len(got) != len(p) {
		t.Errorf("decodePosition of %d partitions: %d sources, %v", len(p), len(got), err)
	}
}

func TestPositionRefused(t *testing.T) {
	valid := encodePosition(eventlog.Position{"WAHOOK_RAW": 12})
	// A source name longer than eventlog takes, a sequence below -1,
	// two sources out of order, a non-minimal varint.
	raw := func(b ...byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	for name, s := range map[string]string{
		"oversized":         strings.Repeat("A", maxPositionParam+1),
		"not base64":        "!!!!",
		"padded":            valid + "==",
		"line break":        valid[:2] + "\n" + valid[2:],
		"truncated":         valid[:len(valid)-1],
		"empty name":        raw(0, 2),
		"name too long":     encodePosition(eventlog.Position{strings.Repeat("s", eventlog.MaxFilterLen+1): 1}),
		"sequence below -1": encodePosition(eventlog.Position{"S": -2}),
		"out of order":      raw(1, 'b', 2, 1, 'a', 2),
		"duplicate":         raw(1, 'a', 2, 1, 'a', 4),
		"non-minimal":       raw(1, 'a', 0x82, 0x00),
	} {
		if p, err := decodePosition(s); err == nil {
			t.Errorf("%s: decodePosition(%.40q) = %v; want an error", name, s, p)
		}
	}
}

// pagesFixture is a console reading a kfake cluster of two partitions a
// topic, and its broker.
func pagesFixture(t *testing.T) (*Console, broker.Publisher, envelope.Binding) {
	t.Helper()
	cluster, kb := eventlogtest.Kafka(t)
	l, err := eventlog.NewKafka(cluster.ListenAddrs(), kafkabroker.Security{}, eventlog.WithBatch(2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	rd, err := redrive.New(redrive.Config{Log: l, Publisher: kb})
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Events: l, Redriver: rd})
	if err != nil {
		t.Fatal(err)
	}
	return c, kb, l.Binding()
}

var (
	itemID   = regexp.MustCompile(`data-id="([^"]+)"`)
	moreLink = regexp.MustCompile(`<a id="more" rel="next" href="([^"]+)">`)
)

// followPages gets url on c, then each page its "More" link names, and
// returns the ids each page lists.
func followPages(t *testing.T, c *Console, url string) [][]string {
	t.Helper()
	var pages [][]string
	for url != "" {
		if len(pages) > 20 {
			t.Fatalf("more than 20 pages from %s", url)
		}
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, httptest.NewRequest("GET", "http://localhost"+url, nil))
		if rec.Code != http.StatusOK {
			t.Fatalf("GET %s = %d %s", url, rec.Code, rec.Body)
		}
		body := rec.Body.String()
		var ids []string
		for _, m := range itemID.FindAllStringSubmatch(body, -1) {
			ids = append(ids, m[1])
		}
		pages = append(pages, ids)
		url = ""
		if m := moreLink.FindStringSubmatch(body); m != nil {
			url = html.UnescapeString(m[1])
			if len(pages) > 1 && !strings.Contains(body, `id="newest"`) {
				t.Errorf("page %d of %s has no link to the newest", len(pages), url)
			}
		}
	}
	return pages
}

// checkPages fails unless pages list want (newest first) in pages of n,
// the last one ending the list.
func checkPages(t *testing.T, what string, pages [][]string, want []string, n int) {
	t.Helper()
	var all []string
	for i, p := range pages {
		if len(p) > n {
			t.Errorf("%s: page %d lists %d; want at most %d", what, i+1, len(p), n)
		}
		all = append(all, p...)
	}
	if len(pages) != (len(want)+n-1)/n {
		t.Errorf("%s: %d pages (%v); want %d, the last one with no link", what, len(pages), pages, (len(want)+n-1)/n)
	}
	if diff := cmp.Diff(want, all); diff != "" {
		t.Errorf("%s: the pages together mismatch (-want +got):\n%s", what, diff)
	}
}

// TestListPagesGoOn: the tail, the dead letters and the chat timeline
// list past one page through their "More" links, newest first, each item
// once, with no link on the last page; the link keeps the filters.
func TestListPagesGoOn(t *testing.T) {
	c, pub, b := pagesFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Another channel's events, older and newer, left out by the filters
	// on every page: the last page has no link to a page of none.
	other := func() {
		t.Helper()
		if code, _ := eventlogtest.Deliver(t, pub, b, 10, "/v1/webhooks/whapi", strings.Replace(eventlogtest.TwoPatches, "MANTIS-M72HC", "OTHER", 1)); code != http.StatusOK {
			t.Fatalf("Deliver other = %d", code)
		}
		publishDeadLetter(ctx, t, pub, b, envelope.DeadLetter{Reason: "other", Provider: "waha", ReceivedAt: time.Now().UTC()})
	}
	other()
	var raw []string
	for i := range 7 {
		body := fmt.Sprintf(`{"messages":[{"id":"m-%d","type":"text","chat_id":"5511999990000@s.whatsapp.net","timestamp":%d,"text":{"body":"hi"}}],`+
			`"event":{"type":"messages","event":"post"},"channel_id":"PAGES"}`, i, 1747391325+i)
		code, ids := eventlogtest.Deliver(t, pub, b, 10, "/v1/webhooks/whapi", body)
		if code != http.StatusOK || len(ids) != 1 {
			t.Fatalf("Deliver %d = %d %v", i, code, ids)
		}
		raw = append(raw, ids[0])
		time.Sleep(2 * time.Millisecond) // one stored millisecond each: one order
	}
	other()
	var letters []string
	for i := range 5 {
		letters = append(letters, publishDeadLetter(ctx, t, pub, b,
			envelope.DeadLetter{Reason: fmt.Sprintf("bad %d", i), Provider: "zapi", Channel: "PAGES", ReceivedAt: time.Now().UTC()}))
		time.Sleep(2 * time.Millisecond)
	}
	sample := eventlogtest.Sample(t, b)
	rawA, err := envelope.DecodeRaw(sample[0], b)
	if err != nil {
		t.Fatal(err)
	}
	// Another chat's derived event, older than those of the chat.
	publishLabelAdded(ctx, t, pub, b, rawA, "other-chat", eventlogtest.ChatB)
	var derived []string
	for i := range 5 {
		derived = append(derived, publishLabelAdded(ctx, t, pub, b, rawA, fmt.Sprintf("seen-%d", i), eventlogtest.ChatA))
		time.Sleep(2 * time.Millisecond)
	}
	slices.Reverse(raw)
	slices.Reverse(letters)

	eventlogtest.WaitFor(t, "the tail's first page", func() bool {
		p := followPages(t, c, "/console/tail?stream=raw&provider=whapi&channel=PAGES")
		return len(p) == 1 && len(p[0]) == 7
	})
	checkPages(t, "tail", followPages(t, c, "/console/tail?stream=raw&provider=whapi&channel=PAGES&n=3"), raw, 3)
	checkPages(t, "tail of 7 by 7", followPages(t, c, "/console/tail?stream=raw&provider=whapi&channel=PAGES&n=7"), raw, 7)
	checkPages(t, "dead letters", followPages(t, c, "/console/deadletters?provider=zapi&n=2"), letters, 2)
	checkPages(t, "dead letters of 5 by 5", followPages(t, c, "/console/deadletters?provider=zapi&n=5"), letters, 5)
	// The timeline is in time order on each page, its pages newest first.
	var want []string
	for i := len(derived); i > 0; i -= 2 {
		want = append(want, derived[max(i-2, 0):i]...)
	}
	checkPages(t, "chat", followPages(t, c, "/console/chat?chat=5511999990000&n=2"), want, 2)
	checkPages(t, "chat of 5 by 5", followPages(t, c, "/console/chat?chat=5511999990000&n=5"), derived, 5)
}

// TestListPagesRefuseBadPositions: a position too long, forged or beyond
// eventlog's bounds, and a page size past the page's count, get 400 with
// a line saying why, on every list page.
func TestListPagesRefuseBadPositions(t *testing.T) {
	c, _, _ := pagesFixture(t)
	many := eventlog.Position{}
	for i := range 400 {
		many[fmt.Sprintf("wahook.raw/%d", i)] = 1
	}
	for _, page := range []string{"/console/tail?", "/console/deadletters?", "/console/chat?chat=5511999990000&"} {
		for name, tc := range map[string]struct{ query, want string }{
			"oversized":      {"after=" + encodePosition(many), "at most 4096"},
			"forged":         {"after=AAAA", "bad position"},
			"sequence":       {"after=" + encodePosition(eventlog.Position{"WAHOOK_RAW": -5}), "bad position"},
			"page too large": {"n=5000", "want 1 to"},
			"page of none":   {"n=0", "want 1 to"},
		} {
			rec := httptest.NewRecorder()
			c.ServeHTTP(rec, httptest.NewRequest("GET", "http://localhost"+page+tc.query, nil))
			if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), tc.want) {
				t.Errorf("%s with %s = %d %q; want 400 saying %q", page, name, rec.Code, rec.Body, tc.want)
			}
		}
	}
	rec := httptest.NewRecorder()
	c.ServeHTTP(rec, httptest.NewRequest("GET", "http://localhost/console/chat?chat=5511999990000&after="+encodePosition(eventlog.Position{"S": 1})+
		strings.Repeat("&also=5511999990001", maxChatChannels+1), nil))
	if rec.Code != http.StatusBadRequest {
		t.Errorf("chat with %d other forms = %d %q; want 400", maxChatChannels+1, rec.Code, rec.Body)
	}
}

// publishDeadLetter stores d with a body that is not JSON and returns its
// id.
func publishDeadLetter(ctx context.Context, t *testing.T, pub broker.Publisher, b envelope.Binding, d envelope.DeadLetter) string {
	t.Helper()
	d.SetBody([]byte("not json"))
	m, err := envelope.DeadLetterMessage(d, b)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
	return m.ID
}

// publishLabelAdded publishes a label.added about chat derived from raw
// as event id, and returns its id.
func publishLabelAdded(ctx context.Context, t *testing.T, pub broker.Publisher, b envelope.Binding, raw derive.Raw, id, chat string) string {
	t.Helper()
	m, err := envelope.Derived(derive.Event{ID: id, Stream: derive.LabelChanged, Type: "io.wahook.label.added",
		Subject: chat, Data: derive.ChatRef{ChatID: chat}}, raw, b)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, m); err != nil {
		t.Fatal(err)
	}
	return m.ID
}

// TestListPagesLastOne: a page followed by one last match, read from
// several sources (the raw and derived streams), links to a page of that
// match alone: the other sources keep their place, and no item is listed
// twice.
func TestListPagesLastOne(t *testing.T) {
	c, pub, b := pagesFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	body := `{"messages":[{"id":"m-last","type":"text","chat_id":"5511999990000@s.whatsapp.net","timestamp":1747391325,"text":{"body":"hi"}}],` +
		`"event":{"type":"messages","event":"post"},"channel_id":"LAST"}`
	code, ids := eventlogtest.Deliver(t, pub, b, 10, "/v1/webhooks/whapi", body)
	if code != http.StatusOK || len(ids) != 1 {
		t.Fatalf("Deliver = %d %v", code, ids)
	}
	rawA, err := envelope.DecodeRaw(eventlogtest.Sample(t, b)[0], b)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{ids[0]}
	for i := range 2 {
		time.Sleep(2 * time.Millisecond) // one stored millisecond each: one order
		want = append(want, publishLabelAdded(ctx, t, pub, b, rawA, fmt.Sprintf("last-%d", i), eventlogtest.ChatA))
	}
	slices.Reverse(want)
	eventlogtest.WaitFor(t, "the tail's first page", func() bool {
		p := followPages(t, c, "/console/tail")
		return len(p) == 1 && len(p[0]) == 3
	})
	checkPages(t, "tail", followPages(t, c, "/console/tail?n=2"), want, 2)

	// Stored after the first page, in sources it had nothing of (the
	// dead letters, another chat's partition): not on the page after it.
	first := httptest.NewRecorder()
	c.ServeHTTP(first, httptest.NewRequest("GET", "http://localhost/console/tail?n=2", nil))
	link := moreLink.FindStringSubmatch(first.Body.String())
	if first.Code != http.StatusOK || link == nil {
		t.Fatalf("tail's first page = %d, link %v; want one to the last event", first.Code, link)
	}
	sample := eventlogtest.Sample(t, b)
	if err := pub.Publish(ctx, sample[1], sample[3]); err != nil {
		t.Fatal(err)
	}
	eventlogtest.WaitFor(t, "the events stored after the first page", func() bool {
		p := followPages(t, c, "/console/tail?n=10")
		return len(p) == 1 && len(p[0]) == 5
	})
	checkPages(t, "tail after events stored since its first page", followPages(t, c, html.UnescapeString(link[1])), want[2:], 2)
}
