package redrive_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/kafkabroker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/broker/natsbroker/natstest"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/eventlog"
	"github.com/wahook/wahook/pkg/eventlog/eventlogtest"
	"github.com/wahook/wahook/pkg/redrive"
)

func natsPipeline(t *testing.T) (broker.Publisher, *eventlog.Log) {
	b := natstest.Broker(t, natsbroker.Config{})
	l, err := eventlog.NewNATS(b.Conn())
	if err != nil {
		t.Fatal(err)
	}
	return b, l
}

func kafkaPipeline(t *testing.T) (broker.Publisher, *eventlog.Log) {
	cluster, kb := eventlogtest.Kafka(t)
	l, err := eventlog.NewKafka(cluster.ListenAddrs(), kafkabroker.Security{})
	if err != nil {
		t.Fatal(err)
	}
	return kb, l
}

// TestRedriveOne: a delivery dead-lettered for having more items than the
// ingress took is redriven by its id once the limit is raised, with the
// ids the ingress gives the same body; a second call says it was redriven
// already, and publishes nothing; forced, it publishes the same events
// again, which NATS stores once. Another dead letter of the same run is
// left alone; one the provider still refuses is refused; an unknown id is
// not found.
func TestRedriveOne(t *testing.T) {
	for name, start := range map[string]func(*testing.T) (broker.Publisher, *eventlog.Log){"nats": natsPipeline, "kafka": kafkaPipeline} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			pub, l := start(t)
			b := l.Binding()
			since := time.Now().Add(-time.Minute)
			if code, _ := eventlogtest.Deliver(t, pub, b, 1, "/v1/webhooks/whapi", eventlogtest.TwoPatches); code != http.StatusBadRequest {
				t.Fatalf("delivery of 2 items to an ingress taking 1: %d, want 400", code)
			}
			if code, _ := eventlogtest.Deliver(t, pub, b, 1, "/v1/webhooks/zapi", "{not json"); code != http.StatusBadRequest {
				t.Fatalf("delivery of no JSON: %d, want 400", code)
			}
			dead := func(provider string) string {
				t.Helper()
				p, err := l.Query(ctx, eventlog.Query{Streams: []eventlog.Stream{eventlog.DeadLetter}, Provider: provider, Types: []string{envelope.DeadLetterType}})
				if err != nil || len(p.Records) != 1 {
					t.Fatalf("%s dead letters: %v, %v; want 1", provider, p.Records, err)
				}
				return p.Records[0].Event.ID()
			}
			rawIDs := func() []string {
				t.Helper()
				p, err := l.Query(ctx, eventlog.Query{Streams: []eventlog.Stream{eventlog.Raw}})
				if err != nil {
					t.Fatal(err)
				}
				var ids []string
				for _, r := range p.Records {
					ids = append(ids, r.Event.ID())
				}
				return slices.Sorted(slices.Values(ids))
			}
			r, err := redrive.New(redrive.Config{Log: l, Publisher: pub})
			if err != nil {
				t.Fatal(err)
			}
			id := dead("whapi")

			first, err := r.RedriveOne(ctx, id, since, false)
			if err != nil || first.Action != redrive.Redriven || len(first.IDs) != 2 || first.DeadLetterID != id || first.Provider != "whapi" {
				t.Fatalf("RedriveOne: %+v, %v; want 2 raw events redriven", first, err)
			}
			want := slices.Sorted(slices.Values(first.IDs))
			if got := rawIDs(); !slices.Equal(got, want) {
				t.Fatalf("raw events %v, want %v", got, want)
			}
			// The ingress gives the same body the same ids.
			if code, ids := eventlogtest.Deliver(t, pub, b, 1000, "/v1/webhooks/whapi", eventlogtest.TwoPatches); code != http.StatusOK ||
				!slices.Equal(slices.Sorted(slices.Values(ids)), want) {
				t.Errorf("the same delivery to the ingress: %d %v, want 200 %v", code, ids, want)
			}
			if name == "kafka" {
				// Kafka keeps the retry's records too: count from here.
				want = rawIDs()
			}

			again, err := r.RedriveOne(ctx, id, since, false)
			if err != nil || again.Action != redrive.AlreadyRedriven || len(again.IDs) != 0 {
				t.Errorf("second RedriveOne: %+v, %v; want already redriven", again, err)
			}
			if got := rawIDs(); !slices.Equal(got, want) {
				t.Errorf("raw events after the second call %v, want %v", got, want)
			}
			if name == "nats" {
				forced, err := r.RedriveOne(ctx, id, since, true)
				if err != nil || forced.Action != redrive.Redriven || !slices.Equal(slices.Sorted(slices.Values(forced.IDs)), want) {
					t.Errorf("forced RedriveOne: %+v, %v; want the same ids redriven", forced, err)
				}
				if got := rawIDs(); !slices.Equal(got, want) {
					t.Errorf("raw events after forcing %v, want %v once", got, want)
				}
			}

			refused, err := r.RedriveOne(ctx, dead("zapi"), since, false)
			if err != nil || refused.Action != redrive.Refused || !strings.Contains(refused.Why, "invalid_payload") {
				t.Errorf("RedriveOne of a body still refused: %+v, %v", refused, err)
			}
			if _, err := r.RedriveOne(ctx, "no-such-id", since, false); !errors.Is(err, redrive.ErrNotFound) {
				t.Errorf("RedriveOne of an unknown id: %v, want ErrNotFound", err)
			}
			// A range that starts after it was stored does not hold it.
			if _, err := r.RedriveOne(ctx, id, time.Now().Add(time.Minute), false); !errors.Is(err, redrive.ErrNotFound) {
				t.Errorf("RedriveOne since a later time: %v, want ErrNotFound", err)
			}
		})
	}
}

// TestRun: a dry run says what it would publish and publishes nothing;
// Count bounds what is redriven, refusals apart.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pub, l := natsPipeline(t)
	b := l.Binding()
	for _, body := range []string{eventlogtest.TwoPatches, strings.ReplaceAll(eventlogtest.TwoPatches, "MANTIS-M72HC", "OTHER")} {
		if code, _ := eventlogtest.Deliver(t, pub, b, 1, "/v1/webhooks/whapi", body); code != http.StatusBadRequest {
			t.Fatalf("delivery of 2 items to an ingress taking 1: %d, want 400", code)
		}
	}
	if code, _ := eventlogtest.Deliver(t, pub, b, 1, "/v1/webhooks/zapi", "{not json"); code != http.StatusBadRequest {
		t.Fatalf("delivery of no JSON: %d, want 400", code)
	}
	dry, err := redrive.New(redrive.Config{Log: l})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	collect := func(res redrive.Result) error {
		actions = append(actions, res.Action)
		return nil
	}
	sum, err := dry.Run(ctx, redrive.Selection{DryRun: true}, collect)
	if err != nil || sum.Redriven != 2 || sum.Refused != 1 || !slices.Equal(actions, []string{redrive.WouldRedrive, redrive.WouldRedrive, redrive.Refused}) {
		t.Fatalf("dry run: %v, %+v, %v", actions, sum, err)
	}
	if p, err := l.Query(ctx, eventlog.Query{Streams: []eventlog.Stream{eventlog.Raw}}); err != nil || len(p.Records) != 0 {
		t.Fatalf("a dry run stored %d raw events (%v)", len(p.Records), err)
	}
	if _, err := dry.Run(ctx, redrive.Selection{}, collect); err == nil {
		t.Error("Run without a publisher, not dry, did not fail")
	}

	r, err := redrive.New(redrive.Config{Log: l, Publisher: pub})
	if err != nil {
		t.Fatal(err)
	}
	actions = nil
	if sum, err := r.Run(ctx, redrive.Selection{Provider: "whapi", Count: 1}, collect); err != nil || sum.Redriven != 1 || !slices.Equal(actions, []string{redrive.Redriven}) {
		t.Errorf("Run of 1: %v, %+v, %v", actions, sum, err)
	}
	actions = nil
	if sum, err := r.Run(ctx, redrive.Selection{Provider: "whapi"}, collect); err != nil || sum.Redriven != 1 ||
		!slices.Equal(actions, []string{redrive.AlreadyRedriven, redrive.Redriven}) {
		t.Errorf("Run of the rest: %v, %+v, %v", actions, sum, err)
	}
}

// TestLetters lists dead letters with their bodies, one in parts put
// together, and tells those a note says were redriven; Limit, Newest, IDs
// and Channel select records, not the parts and notes they need.
func TestLetters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pub, l := natsPipeline(t)
	b := l.Binding()
	if code, _ := eventlogtest.Deliver(t, pub, b, 1, "/v1/webhooks/whapi", eventlogtest.TwoPatches); code != http.StatusBadRequest {
		t.Fatalf("delivery of 2 items to an ingress taking 1: %d, want 400", code)
	}
	body := strings.Repeat(`{"text":"<ok>"}`, 1000)
	msgs := publishParted(ctx, t, pub, b, "bad", body, 3)
	r, err := redrive.New(redrive.Config{Log: l, Publisher: pub})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(ctx, redrive.Selection{Provider: "whapi"}, func(redrive.Result) error { return nil }); err != nil {
		t.Fatal(err)
	}

	all, page, err := r.Letters(ctx, eventlog.Query{})
	if err != nil || len(all) != 2 || page.Truncated {
		t.Fatalf("Letters: %d, %+v, %v; want 2", len(all), page, err)
	}
	if all[0].DeadLetter.Provider != "whapi" || !all[0].Redriven || string(all[0].Body) != eventlogtest.TwoPatches {
		t.Errorf("first letter %+v, want whapi's, redriven, with its body", all[0])
	}
	if all[1].ID != msgs[len(msgs)-1].ID || all[1].Redriven || all[1].BodyErr != nil || string(all[1].Body) != body {
		t.Errorf("second letter %s redriven %v, body of %d bytes (%v); want the one in parts put together", all[1].ID, all[1].Redriven, len(all[1].Body), all[1].BodyErr)
	}
	for name, tc := range map[string]struct {
		give eventlog.Query
		want string
	}{
		"limit":   {eventlog.Query{Limit: 1}, all[0].ID},
		"newest":  {eventlog.Query{Limit: 1, Newest: true}, all[1].ID},
		"id":      {eventlog.Query{IDs: []string{all[1].ID}}, all[1].ID},
		"channel": {eventlog.Query{Channel: "S1"}, all[1].ID},
	} {
		got, _, err := r.Letters(ctx, tc.give)
		if err != nil || len(got) != 1 || got[0].ID != tc.want || string(got[0].Body) == "" {
			t.Errorf("%s: Letters = %d letters, %v; want %s with its body", name, len(got), err, tc.want)
		}
	}
	if _, _, err := r.Letters(ctx, eventlog.Query{Channel: strings.Repeat("x", eventlog.MaxFilterLen+1)}); !errors.Is(err, eventlog.ErrQuery) {
		t.Errorf("Letters with an over-long channel: %v, want ErrQuery", err)
	}
}

// gatedPublisher holds its first Publish until release is closed, and
// closes publishing when it starts.
type gatedPublisher struct {
	broker.Publisher
	once       sync.Once
	publishing chan struct{}
	release    chan struct{}
}

func (g *gatedPublisher) Publish(ctx context.Context, msgs ...broker.Message) error {
	first := false
	g.once.Do(func() { first = true })
	if first {
		close(g.publishing)
		<-g.release
	}
	return g.Publisher.Publish(ctx, msgs...)
}

// TestRedriveOneConcurrent: two operators redriving the same dead letter
// at once publish one set of raw events: the second waits for the first
// and finds its note. On Kafka, which keeps every copy, a second set
// would be stored.
func TestRedriveOneConcurrent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pub, l := kafkaPipeline(t)
	since := time.Now().Add(-time.Minute)
	if code, _ := eventlogtest.Deliver(t, pub, l.Binding(), 1, "/v1/webhooks/whapi", eventlogtest.TwoPatches); code != http.StatusBadRequest {
		t.Fatalf("delivery of 2 items to an ingress taking 1: %d, want 400", code)
	}
	p, err := l.Query(ctx, eventlog.Query{Streams: []eventlog.Stream{eventlog.DeadLetter}, Types: []string{envelope.DeadLetterType}})
	if err != nil || len(p.Records) != 1 {
		t.Fatalf("dead letters: %v, %v; want 1", p.Records, err)
	}
	id := p.Records[0].Event.ID()
	g := &gatedPublisher{Publisher: pub, publishing: make(chan struct{}), release: make(chan struct{})}
	r, err := redrive.New(redrive.Config{Log: l, Publisher: g})
	if err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		res redrive.Result
		err error
	}
	first, second := make(chan outcome, 1), make(chan outcome, 1)
	go func() {
		res, err := r.RedriveOne(ctx, id, since, false)
		first <- outcome{res, err}
	}()
	<-g.publishing // the first has read the dead letter, no note yet
	go func() {
		res, err := r.RedriveOne(ctx, id, since, false)
		second <- outcome{res, err}
	}()
	// The second either finishes on its own (it did not wait) or waits
	// for the first; the time only bounds how long the test looks.
	var b outcome
	select {
	case b = <-second:
		close(g.release)
	case <-time.After(time.Second):
		close(g.release)
		b = <-second
	}
	a := <-first
	actions := []string{a.res.Action, b.res.Action}
	if a.err != nil || b.err != nil || !slices.Equal(actions, []string{redrive.Redriven, redrive.AlreadyRedriven}) {
		t.Errorf("concurrent RedriveOne: %v (%v, %v); want redriven, then already redriven", actions, a.err, b.err)
	}
	raw, err := l.Query(ctx, eventlog.Query{Streams: []eventlog.Stream{eventlog.Raw}})
	if err != nil || len(raw.Records) != 2 {
		t.Errorf("raw events stored: %d (%v), want the 2 of one redrive", len(raw.Records), err)
	}
}

// TestLettersNewest: with Newest, the newest dead letters of a range
// holding more messages than MaxScan, not the newest of the first ones
// read; their bodies in parts are put together still.
func TestLettersNewest(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pub, l := natsPipeline(t)
	b := l.Binding()
	var last []broker.Message
	for i := range 6 {
		last = publishParted(ctx, t, pub, b, fmt.Sprintf("bad %d", i), strings.Repeat(`{"text":"<ok>"}`, 500), 2)
	}
	r, err := redrive.New(redrive.Config{Log: l, Publisher: pub})
	if err != nil {
		t.Fatal(err)
	}
	got, page, err := r.Letters(ctx, eventlog.Query{Newest: true, Limit: 1, MaxScan: 2 * len(last)})
	if err != nil || len(got) != 1 || got[0].ID != last[len(last)-1].ID || got[0].BodyErr != nil || got[0].DeadLetter.Reason != "bad 5" {
		var reasons []string
		for _, g := range got {
			reasons = append(reasons, g.DeadLetter.Reason)
		}
		t.Errorf("Letters(Newest, Limit 1, MaxScan %d) = %v (%+v), %v; want the last one, bad 5, with its body", 2*len(last), reasons, page, err)
	}
}

// TestRunHoldsOneBody: a Run over many dead letters holds about one body
// at a time (reading in batches of one message), not all of them until
// their notes are read: what it holds while it passes on results goes
// when it returns.
func TestRunHoldsOneBody(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// kfake holds every record in memory from the start: what changes
	// while Run runs is Run's.
	cluster, b := eventlogtest.Kafka(t)
	l, err := eventlog.NewKafka(cluster.ListenAddrs(), kafkabroker.Security{}, eventlog.WithBatch(1))
	if err != nil {
		t.Fatal(err)
	}
	const n, size = 20, 400 << 10
	for i := range n {
		d := envelope.DeadLetter{Reason: fmt.Sprintf("bad %d", i), Provider: "zapi", ReceivedAt: time.Now().UTC(), Method: "POST", Path: "/v1/webhooks/zapi"}
		d.SetBody([]byte("{not json" + strings.Repeat("x", size)))
		m, err := envelope.DeadLetterMessage(d, l.Binding())
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Publish(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	r, err := redrive.New(redrive.Config{Log: l, Publisher: b})
	if err != nil {
		t.Fatal(err)
	}
	heap := func() uint64 {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	var most uint64
	sum, err := r.Run(ctx, redrive.Selection{}, func(redrive.Result) error {
		most = max(most, heap())
		return nil
	})
	if err != nil || sum.Refused != n {
		t.Fatalf("Run: %+v, %v; want %d refused", sum, err, n)
	}
	after := heap()
	t.Logf("held %d KiB more while passing results than after", (int64(most)-int64(after))>>10)
	if most > after+n*size/3 {
		t.Errorf("Run held %d MiB more while passing results than after, want about one body of %d KiB", (most-after)>>20, size>>10)
	}
}

// TestLettersPages: newest first, page after page through Page.Next, each
// dead letter once with its body in parts put together, and no Next after
// the oldest.
func TestLettersPages(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pub, l := natsPipeline(t)
	b := l.Binding()
	for i := range 5 {
		publishParted(ctx, t, pub, b, fmt.Sprintf("bad %d", i), strings.Repeat(`{"text":"<ok>"}`, 500), 2)
	}
	r, err := redrive.New(redrive.Config{Log: l, Publisher: pub})
	if err != nil {
		t.Fatal(err)
	}
	var got [][]string
	q := eventlog.Query{Newest: true, Limit: 2}
	for range 5 {
		letters, page, err := r.Letters(ctx, q)
		if err != nil {
			t.Fatalf("Letters(after %v): %v", q.After, err)
		}
		var reasons []string
		for _, l := range letters {
			if l.BodyErr != nil {
				t.Errorf("%s: body not put together: %v", l.DeadLetter.Reason, l.BodyErr)
			}
			reasons = append(reasons, l.DeadLetter.Reason)
		}
		got = append(got, reasons)
		if page.Next == nil {
			break
		}
		q.After = page.Next
	}
	want := [][]string{{"bad 3", "bad 4"}, {"bad 1", "bad 2"}, {"bad 0"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Letters pages mismatch (-want +got):\n%s", diff)
	}
}

// publishParted dead-letters body from waha/S1 with reason, stored in
// parts of 4 KiB, at least minParts of them, and returns its messages.
func publishParted(ctx context.Context, t *testing.T, pub broker.Publisher, b envelope.Binding, reason, body string, minParts int) []broker.Message {
	t.Helper()
	d := envelope.DeadLetter{Reason: reason, Provider: "waha", Channel: "S1", ReceivedAt: time.Now().UTC()}
	d.SetBody([]byte(body))
	msgs, err := envelope.DeadLetterMessages(d, b, 4096)
	if err != nil || len(msgs) < minParts {
		t.Fatalf("DeadLetterMessages: %d messages, %v; want %d parts or more", len(msgs), err, minParts)
	}
	if err := envelope.PublishDeadLetter(ctx, pub.Publish, msgs); err != nil {
		t.Fatal(err)
	}
	return msgs
}
