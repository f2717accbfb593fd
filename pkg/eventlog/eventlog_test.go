package eventlog

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/kafkabroker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/broker/natsbroker/natstest"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/eventlog/eventlogtest"
)

// fixture is a broker holding events and a Log reading it.
type fixture struct {
	pub     broker.Publisher
	binding envelope.Binding
	log     func(opts ...Option) *Log
}

// natsFixture: the embedded server, the Log logged in as a read-only
// subscriber, which may not create consumers.
func natsFixture(t *testing.T) fixture {
	t.Helper()
	emb := natstest.Start(t, natsbroker.EmbeddedConfig{Subscribers: []natsbroker.Subscriber{{User: "reader", Password: "r-secret"}}})
	b := natstest.Connect(t, emb, natsbroker.Config{})
	nc, err := nats.Connect(emb.ClientURL(), nats.UserInfo("reader", "r-secret"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return fixture{pub: b, binding: envelope.NATS, log: func(opts ...Option) *Log {
		l, err := NewNATS(nc, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}}
}

func kafkaFixture(t *testing.T) fixture {
	t.Helper()
	cluster, kb := eventlogtest.Kafka(t)
	return fixture{pub: kb, binding: envelope.Kafka, log: func(opts ...Option) *Log {
		l, err := NewKafka(cluster.ListenAddrs(), kafkabroker.Security{}, opts...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		return l
	}}
}

var fixtures = map[string]func(*testing.T) fixture{"nats": natsFixture, "kafka": kafkaFixture}

// eachBroker runs test on each broker, given a fixture and a ctx that
// ends after a minute.
func eachBroker(t *testing.T, test func(t *testing.T, ctx context.Context, f fixture, name string)) {
	t.Helper()
	for name, start := range fixtures {
		t.Run(name, func(t *testing.T) {
			test(t, testContext(t), start(t), name)
		})
	}
}

// testContext ends after a minute, or with the test.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// publish stores msgs, failing the test when the broker refuses them.
func (f fixture) publish(t *testing.T, ctx context.Context, msgs ...broker.Message) {
	t.Helper()
	if err := f.pub.Publish(ctx, msgs...); err != nil {
		t.Fatalf("publish %d messages: %v", len(msgs), err)
	}
}

// bulk is n raw events of channel BULK about chat A, ids bulk-{from}...:
// one partition key, so one Kafka partition, in order.
func bulk(b envelope.Binding, from, n int) []broker.Message {
	var out []broker.Message
	for i := from; i < from+n; i++ {
		out = append(out, envelope.Ingress(envelope.Raw{ID: fmt.Sprintf("bulk-%d", i), Provider: "whapi", Channel: "BULK", Kind: "messages.post",
			Chat: eventlogtest.ChatA, Time: time.Now(), Data: []byte(`{"id":"x"}`)}, b))
	}
	return out
}

func ids(recs []Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Event.ID())
	}
	return out
}

func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }

// TestQuery reads the same events on both brokers with each filter, the
// bounds, Newest and a time range.
func TestQuery(t *testing.T) {
	eachBroker(t, func(t *testing.T, ctx context.Context, f fixture, name string) {
		f.publish(t, ctx, eventlogtest.Sample(t, f.binding)...)
		f.publish(t, ctx, bulk(f.binding, 0, 5)...)
		// Broker times are in milliseconds on Kafka: the mark falls
		// between the two groups.
		time.Sleep(3 * time.Millisecond)
		mark := time.Now()
		time.Sleep(3 * time.Millisecond)
		f.publish(t, ctx, bulk(f.binding, 5, 5)...)
		l := f.log()
		query := func(q Query) Page {
			t.Helper()
			p, err := l.Query(ctx, q)
			if err != nil {
				t.Fatalf("Query(%+v): %v", q, err)
			}
			return p
		}
		bulkIDs := func(from, to int) []string {
			var out []string
			for i := from; i < to; i++ {
				out = append(out, fmt.Sprintf("bulk-%d", i))
			}
			return out
		}

		for name, tc := range map[string]struct {
			give Query
			want []string
		}{
			"streams":             {Query{Streams: []Stream{Derived, DeadLetter}}, []string{"derived-a", "dl"}},
			"provider":            {Query{Provider: "zapi"}, []string{"dl"}},
			"provider and chan":   {Query{Provider: "whapi", Channel: "CH"}, []string{"derived-a", "raw-a", "raw-b"}},
			"channel":             {Query{Channel: "CH", Streams: []Stream{Raw}}, []string{"raw-a", "raw-b"}},
			"type glob":           {Query{Types: []string{"io.wahook.label.*", envelope.DeadLetterType}}, []string{"derived-a", "dl"}},
			"chat, phone form":    {Query{Chats: []string{"+5511999990000"}, Channel: "CH"}, []string{"derived-a", "raw-a"}},
			"chat, group":         {Query{Chats: []string{"120363398750933550-group"}}, []string{"raw-b"}},
			"ids":                 {Query{IDs: []string{"raw-b", "bulk-3"}}, []string{"bulk-3", "raw-b"}},
			"causation id":        {Query{CausationID: "raw-a"}, []string{"derived-a"}},
			"request id":          {Query{RequestID: "req-a"}, []string{"raw-a"}},
			"no match":            {Query{Types: []string{"io.wahook.call.*"}}, nil},
			"since":               {Query{Since: mark, Channel: "BULK"}, bulkIDs(5, 10)},
			"until":               {Query{Until: mark, Channel: "BULK"}, bulkIDs(0, 5)},
			"since and until":     {Query{Since: mark, Until: time.Now(), Channel: "BULK", Limit: 2}, bulkIDs(5, 7)},
			"limit":               {Query{Channel: "BULK", Limit: 3}, bulkIDs(0, 3)},
			"newest":              {Query{Channel: "BULK", Limit: 3, Newest: true}, bulkIDs(7, 10)},
			"newest until":        {Query{Channel: "BULK", Limit: 2, Newest: true, Until: mark}, bulkIDs(3, 5)},
			"newest, all of them": {Query{Channel: "BULK", Newest: true}, bulkIDs(0, 10)},
		} {
			t.Run(name, func(t *testing.T) {
				p := query(tc.give)
				got := ids(p.Records)
				for i, r := range p.Records {
					if r.Event.Type() == envelope.DeadLetterType {
						got[i] = "dl" // its id is a hash
					}
				}
				if !strings.Contains(tc.give.Channel, "BULK") {
					got = sorted(got) // equal times across sources
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("Query(%+v) = %v, want %v", tc.give, got, tc.want)
				}
				if p.Truncated {
					t.Errorf("Query(%+v) truncated", tc.give)
				}
			})
		}

		t.Run("records", func(t *testing.T) {
			p := query(Query{IDs: []string{"derived-a"}})
			if len(p.Records) != 1 {
				t.Fatalf("records %v, want derived-a", ids(p.Records))
			}
			r := p.Records[0]
			if r.Stream != Derived || !strings.HasPrefix(r.Subject, "wahook.label-changed") || r.Stored.IsZero() ||
				r.Position == "" || r.Event.Extensions()[envelope.ExtCausationID] != "raw-a" {
				t.Errorf("record %+v", r)
			}
			if m, b := r.Message(); b != f.binding || m.ID == "" {
				t.Errorf("Message() = %+v, %v", m, b)
			}
		})
		t.Run("max scan", func(t *testing.T) {
			p := query(Query{MaxScan: 6, Channel: "BULK"})
			if p.Scanned != 6 || !p.Truncated {
				t.Errorf("scanned %d, truncated %v; want 6, true", p.Scanned, p.Truncated)
			}
			p = query(Query{MaxScan: 1000})
			if p.Scanned != 14 || p.Truncated || len(p.Records) != 14 {
				t.Errorf("scanned %d, %d records, truncated %v; want 14, 14, false", p.Scanned, len(p.Records), p.Truncated)
			}
		})
		t.Run("scan", func(t *testing.T) {
			var got []string
			collect := func(r Record) error {
				got = append(got, r.Event.ID())
				return nil
			}
			p, err := l.Scan(ctx, Query{Channel: "BULK", Limit: 1}, collect)
			if err != nil || !slices.Equal(got, bulkIDs(0, 10)) || p.Truncated {
				t.Errorf("Scan: %v, %+v, %v; want every bulk event in order", got, p, err)
			}
			got = nil
			p, err = l.Scan(ctx, Query{Channel: "BULK", MaxScan: 3}, collect)
			if err != nil || len(got) > 3 || !slices.Equal(got, bulkIDs(0, len(got))) || p.Scanned != 3 || !p.Truncated {
				t.Errorf("Scan with MaxScan 3: %v, %+v, %v; want 3 read, truncated", got, p, err)
			}
		})
		t.Run("binding", func(t *testing.T) {
			if l.Binding() != f.binding {
				t.Errorf("Binding() = %v, want %v", l.Binding(), f.binding)
			}
		})
		t.Run("small batches", func(t *testing.T) {
			// Reads of 2 messages, backward windows that widen over
			// the messages the filter skips: the same records.
			small := f.log(WithBatch(2))
			for _, q := range []Query{{Channel: "BULK"}, {Channel: "BULK", Newest: true, Limit: 4}, {Types: []string{"io.wahook.label.*"}, Newest: true}} {
				p, err := small.Query(ctx, q)
				if want := query(q); err != nil || !slices.Equal(ids(p.Records), ids(want.Records)) || p.Scanned != want.Scanned {
					t.Errorf("Query(%+v) in batches of 2: %v (%d read), %v; want %v (%d read)", q, ids(p.Records), p.Scanned, err, ids(want.Records), want.Scanned)
				}
			}
		})
		t.Run("bytes held", func(t *testing.T) {
			// A cursor that may hold one byte holds one message at
			// a time backward, and a query reads the same records.
			tiny := f.log(WithBatch(4))
			tiny.opts.maxBytes = 1
			switch b := tiny.b.(type) {
			case *natsLog:
				b.opts.maxBytes = 1
			case *kafkaLog:
				b.opts.maxBytes = 1
			}
			curs, err := tiny.b.cursors(ctx, Query{Streams: Streams, Limit: DefaultLimit, MaxScan: DefaultMaxScan}, true)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range curs {
				bc := c.(*bufCursor)
				for !bc.done {
					es, done, err := bc.fill(ctx)
					if err != nil {
						t.Fatal(err)
					}
					if len(es) > 1 {
						t.Fatalf("a backward read held %d messages, want 1", len(es))
					}
					bc.done = done
				}
			}
			for _, q := range []Query{{Channel: "BULK"}, {Channel: "BULK", Newest: true, Limit: 4}, {Newest: true}} {
				p, err := tiny.Query(ctx, q)
				if want := query(q); err != nil || !slices.Equal(ids(p.Records), ids(want.Records)) || p.Scanned != want.Scanned {
					t.Errorf("Query(%+v) holding 1 byte: %v (%d read), %v; want %v (%d read)", q, ids(p.Records), p.Scanned, err, ids(want.Records), want.Scanned)
				}
			}
		})
		t.Run("subject or topics", func(t *testing.T) {
			opt := WithNATSSubject("wahook.label-changed.>")
			if name == "kafka" {
				opt = WithKafkaTopics(envelope.DerivedTopic("label-changed"))
			}
			p, err := f.log(opt).Query(ctx, Query{Streams: []Stream{Raw}})
			if err != nil || !slices.Equal(ids(p.Records), []string{"derived-a"}) || p.Records[0].Stream != Derived {
				t.Errorf("Query of the label-changed stream: %v, %v; want derived-a", ids(p.Records), err)
			}
		})
		if name != "kafka" {
			return
		}
		t.Run("kafka offset", func(t *testing.T) {
			// The bulk events share a partition, where sample events
			// may come before them: from offset 7 of it, the last of
			// them.
			p, err := f.log(WithKafkaOffset(7)).Query(ctx, Query{Channel: "BULK"})
			if n := len(p.Records); err != nil || n == 0 || n > 3+len(eventlogtest.Sample(t, f.binding)) || !slices.Equal(ids(p.Records), bulkIDs(10-n, 10)) {
				t.Errorf("Query from offset 7: %v, %v; want the last bulk events", ids(p.Records), err)
			}
		})
	})
}

// TestQueryPages: a query continued from each page's Next pages through
// its whole range, forward, newest first, and past MaxScan, passing every
// event once; the last page has no Next.
func TestQueryPages(t *testing.T) {
	eachBroker(t, func(t *testing.T, ctx context.Context, f fixture, name string) {
		f.publish(t, ctx, eventlogtest.Sample(t, f.binding)...)
		f.publish(t, ctx, bulk(f.binding, 0, 13)...)
		l := f.log(WithBatch(3))
		all, err := l.Query(ctx, Query{Limit: MaxLimit})
		if err != nil || all.Next != nil || len(all.Records) != 17 {
			t.Fatalf("Query of all: %d records, next %v, %v; want 17, no next", len(all.Records), all.Next, err)
		}
		bulkIDs := func() []string {
			var out []string
			for _, id := range ids(all.Records) {
				if strings.HasPrefix(id, "bulk-") {
					out = append(out, id)
				}
			}
			return out
		}
		for name, tc := range map[string]struct {
			give      Query
			want      []string
			truncated bool
		}{
			"forward":  {Query{Limit: 4}, ids(all.Records), false},
			"newest":   {Query{Limit: 4, Newest: true}, ids(all.Records), false},
			"max scan": {Query{Channel: "BULK", MaxScan: 3}, bulkIDs(), true},
			"filtered": {Query{Channel: "BULK", Limit: 5, Newest: true}, bulkIDs(), false},
		} {
			t.Run(name, func(t *testing.T) {
				q := tc.give
				var pages [][]string
				for range 50 {
					p, err := l.Query(ctx, q)
					if err != nil {
						t.Fatalf("Query(%+v): %v", q, err)
					}
					if p.Next != nil && p.Truncated != tc.truncated {
						t.Errorf("page %d truncated %v, want %v", len(pages), p.Truncated, tc.truncated)
					}
					pages = append(pages, ids(p.Records))
					if p.Next == nil {
						break
					}
					q.After = p.Next
				}
				if tc.give.Newest {
					slices.Reverse(pages) // newest page first, each oldest first
				}
				got := slices.Concat(pages...)
				if !strings.Contains(tc.give.Channel, "BULK") {
					// Equal times across sources: compared sorted.
					got, tc.want = sorted(got), sorted(tc.want)
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("pages of %+v: %v, want %v", tc.give, pages, tc.want)
				}
				if len(pages) < 2 {
					t.Errorf("pages of %+v: %d, want several", tc.give, len(pages))
				}
			})
		}
	})
}

// TestQueryNextOnlyWithMatches: a page has a Next only when matches of
// its range are left, and the next page starts at the first of them,
// forward and newest first: a page whose Limit-th match is the range's
// last has none, whatever non-matching messages follow it, but a page
// stopped at MaxScan keeps its Next, not knowing.
func TestQueryNextOnlyWithMatches(t *testing.T) {
	eachBroker(t, func(t *testing.T, ctx context.Context, f fixture, name string) {
		f.publish(t, ctx, bulk(f.binding, 0, 7)...)
		l := f.log(WithBatch(2))
		raw := []Stream{Raw}
		type page struct {
			ids     []string
			scanned int
			next    bool
		}
		for name, tc := range map[string]struct {
			give Query
			want []page
		}{
			// The matches' every other message is left out: each page
			// reads from the match after the last page's.
			"forward, matches left": {Query{IDs: []string{"bulk-1", "bulk-3", "bulk-5"}, Limit: 1},
				[]page{{[]string{"bulk-1"}, 4, true}, {[]string{"bulk-3"}, 3, true}, {[]string{"bulk-5"}, 2, false}}},
			"newest, matches left": {Query{IDs: []string{"bulk-1", "bulk-3", "bulk-5"}, Limit: 1, Newest: true},
				[]page{{[]string{"bulk-5"}, 4, true}, {[]string{"bulk-3"}, 3, true}, {[]string{"bulk-1"}, 2, false}}},
			"forward, the last match at limit": {Query{Limit: 7},
				[]page{{bulkIDs(0, 7), 7, false}}},
			"newest, the last match at limit": {Query{Limit: 7, Newest: true},
				[]page{{bulkIDs(0, 7), 7, false}}},
			"forward, the last match at limit, more read": {Query{IDs: []string{"bulk-1", "bulk-2"}, Limit: 2},
				[]page{{[]string{"bulk-1", "bulk-2"}, 7, false}}},
			"newest, the last match at limit, more read": {Query{IDs: []string{"bulk-4", "bulk-5"}, Limit: 2, Newest: true},
				[]page{{[]string{"bulk-4", "bulk-5"}, 7, false}}},
			"forward, last pages of 3": {Query{Limit: 3},
				[]page{{bulkIDs(0, 3), 4, true}, {bulkIDs(3, 6), 4, true}, {bulkIDs(6, 7), 1, false}}},
			// A lookup reads no further than its Limit-th match and the
			// message after it.
			"forward, no next": {Query{IDs: []string{"bulk-1", "bulk-3", "bulk-5"}, Limit: 1, NoNext: true},
				[]page{{[]string{"bulk-1"}, 3, false}}},
			"newest, no next": {Query{IDs: []string{"bulk-1", "bulk-3", "bulk-5"}, Limit: 1, Newest: true, NoNext: true},
				[]page{{[]string{"bulk-5"}, 3, false}}},
			"forward, no next, truncated": {Query{IDs: []string{"bulk-5"}, Limit: 1, MaxScan: 3, NoNext: true},
				[]page{{nil, 3, true}, {[]string{"bulk-5"}, 3, true}, {nil, 1, false}}},
			"forward, truncated": {Query{IDs: []string{"bulk-1", "bulk-2"}, Limit: 2, MaxScan: 3},
				[]page{{[]string{"bulk-1", "bulk-2"}, 3, true}, {nil, 3, true}, {nil, 1, false}}},
			"newest, truncated": {Query{IDs: []string{"bulk-4", "bulk-5"}, Limit: 2, MaxScan: 3, Newest: true},
				[]page{{[]string{"bulk-4", "bulk-5"}, 3, true}, {nil, 3, true}, {nil, 1, false}}},
		} {
			t.Run(name, func(t *testing.T) {
				q := tc.give
				q.Streams = raw
				var got []page
				for range 10 {
					p, err := l.Query(ctx, q)
					if err != nil {
						t.Fatalf("Query(%+v): %v", q, err)
					}
					got = append(got, page{ids(p.Records), p.Scanned, p.Next != nil})
					if p.Truncated != (q.MaxScan > 0 && p.Next != nil) {
						t.Errorf("page %d of %+v: truncated %v, next %v", len(got), tc.give, p.Truncated, p.Next)
					}
					if p.Next == nil {
						break
					}
					q.After = p.Next
				}
				if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(page{})); diff != "" {
					t.Errorf("pages of %+v (-want +got):\n%s", tc.give, diff)
				}
			})
		}
	})
}

// bulkIDs are the ids of bulk events from to to (excluded).
func bulkIDs(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("bulk-%d", i))
	}
	return out
}

// TestQueryAfterLast: a position at the largest sequence, which no page
// writes, continues past everything in either direction on both brokers:
// a forward page starts after it, not back at the range's start.
func TestQueryAfterLast(t *testing.T) {
	eachBroker(t, func(t *testing.T, ctx context.Context, f fixture, name string) {
		f.publish(t, ctx, bulk(f.binding, 0, 5)...)
		l := f.log(WithBatch(2))
		first, err := l.Query(ctx, Query{Limit: 1})
		if err != nil || len(first.Next) == 0 {
			t.Fatalf("first page: next %v, %v; want a next page", first.Next, err)
		}
		last := Position{}
		for src := range first.Next {
			last[src] = math.MaxInt64
		}
		p, err := l.Query(ctx, Query{Limit: MaxLimit, After: last})
		if err != nil || len(p.Records) != 0 || p.Next != nil {
			t.Errorf("forward after %v: %v, next %v, %v; want nothing", last, ids(p.Records), p.Next, err)
		}
		p, err = l.Query(ctx, Query{Limit: MaxLimit, After: last, Newest: true})
		if err != nil || len(p.Records) != 5 {
			t.Errorf("newest after %v: %v, %v; want the 5 events", last, ids(p.Records), err)
		}
	})
}

// TestQueryBounds: over-long or too many filter values and bad values are
// refused before anything is read; Limit and MaxScan are capped.
func TestQueryBounds(t *testing.T) {
	long := strings.Repeat("x", MaxFilterLen+1)
	many := make([]string, MaxFilterValues+1)
	for name, q := range map[string]Query{
		"provider":    {Provider: long},
		"channel":     {Channel: long},
		"causation":   {CausationID: long},
		"request id":  {RequestID: long},
		"type":        {Types: []string{long}},
		"chat":        {Chats: []string{long}},
		"id":          {IDs: []string{long}},
		"many ids":    {IDs: many},
		"bad glob":    {Types: []string{"io.[wahook"}},
		"stream":      {Streams: []Stream{"ingress"}},
		"limit":       {Limit: -1},
		"max scan":    {MaxScan: -1},
		"until first": {Since: time.Now(), Until: time.Now().Add(-time.Hour)},
		"after key":   {After: Position{long: 1}},
		"after seq":   {After: Position{"WAHOOK_RAW": -2}},
	} {
		if err := q.Check(); !errors.Is(err, ErrQuery) {
			t.Errorf("%s: Check = %v, want ErrQuery", name, err)
		}
	}
	q, err := Query{Limit: 5000, MaxScan: 1 << 30}.normalize()
	if err != nil || q.Limit != MaxLimit || q.MaxScan != MaxMaxScan || len(q.Streams) != 3 {
		t.Errorf("normalize = %+v, %v; want capped", q, err)
	}
	q, err = Query{}.normalize()
	if err != nil || q.Limit != DefaultLimit || q.MaxScan != DefaultMaxScan {
		t.Errorf("normalize = %+v, %v; want the defaults", q, err)
	}
}

// follower runs Follow in the background and collects what it passes.
type follower struct {
	mu   sync.Mutex
	got  []Record
	done chan error
	stop context.CancelFunc
}

func follow(t *testing.T, ctx context.Context, l *Log, q Query) *follower {
	t.Helper()
	ctx, stop := context.WithCancel(ctx)
	f := &follower{done: make(chan error, 1), stop: stop}
	go func() {
		f.done <- l.Follow(ctx, q, func(r Record) error {
			f.mu.Lock()
			f.got = append(f.got, r)
			f.mu.Unlock()
			return nil
		})
	}()
	t.Cleanup(func() {
		stop()
		if err := <-f.done; !errors.Is(err, context.Canceled) {
			t.Errorf("Follow = %v, want context.Canceled", err)
		}
	})
	return f
}

func (f *follower) ids() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return ids(f.got)
}

// TestFollow: from now, what was stored before is not passed, what comes
// after is, once; from a time, the stored events from then and the live
// ones; an error of fn ends Follow with it.
func TestFollow(t *testing.T) {
	eachBroker(t, func(t *testing.T, ctx context.Context, f fixture, name string) {
		l := f.log()
		f.publish(t, ctx, eventlogtest.Sample(t, f.binding)...)
		since := time.Now()
		f.publish(t, ctx, bulk(f.binding, 0, 2)...)

		live := follow(t, ctx, l, Query{Streams: []Stream{Raw}})
		// Follow starts from the end it finds: probes until one comes
		// through tell that it is there.
		probes := 0
		eventlogtest.WaitFor(t, "a probe followed", func() bool {
			if len(live.ids()) > 0 {
				return true
			}
			probes++
			f.publish(t, ctx, bulk(f.binding, 100+probes, 1)...)
			time.Sleep(50 * time.Millisecond)
			return false
		})
		f.publish(t, ctx, bulk(f.binding, 2, 2)...)
		eventlogtest.WaitFor(t, "bulk-3 followed", func() bool { return slices.Contains(live.ids(), "bulk-3") })
		got := live.ids()
		for _, id := range got {
			if id == "raw-a" || id == "bulk-0" || id == "bulk-1" {
				t.Errorf("Follow from now passed %s, stored before", id)
			}
		}
		if got[len(got)-2] != "bulk-2" || len(slices.Compact(sorted(got))) != len(got) {
			t.Errorf("Follow passed %v, want the probes then bulk-2 bulk-3, each once", got)
		}

		replay := follow(t, ctx, l, Query{Since: since, Channel: "BULK", IDs: []string{"bulk-0", "bulk-1", "bulk-2", "bulk-3", "bulk-4"}})
		eventlogtest.WaitFor(t, "the stored bulk events replayed", func() bool { return len(replay.ids()) == 4 })
		f.publish(t, ctx, bulk(f.binding, 4, 1)...)
		eventlogtest.WaitFor(t, "bulk-4 followed", func() bool { return len(replay.ids()) == 5 })
		if got := replay.ids(); !slices.Equal(got, []string{"bulk-0", "bulk-1", "bulk-2", "bulk-3", "bulk-4"}) {
			t.Errorf("Follow since %s passed %v", since, got)
		}

		boom := errors.New("boom")
		err := l.Follow(ctx, Query{Since: since}, func(Record) error { return boom })
		if !errors.Is(err, boom) {
			t.Errorf("Follow with a failing fn = %v, want its error", err)
		}
	})
}

// TestFollowOnceInOrder: with filters, Follow passes every event they
// select once, in stored order, those stored before it started (from
// Since) and those stored while it runs, and none of the others.
func TestFollowOnceInOrder(t *testing.T) {
	eachBroker(t, func(t *testing.T, ctx context.Context, f fixture, name string) {
		other := func(from, n int) []broker.Message {
			var out []broker.Message
			for i := from; i < from+n; i++ {
				out = append(out, envelope.Ingress(envelope.Raw{ID: fmt.Sprintf("other-%d", i), Provider: "whapi", Channel: "OTHER", Kind: "messages.post",
					Chat: eventlogtest.ChatA, Time: time.Now(), Data: []byte(`{"id":"x"}`)}, f.binding))
			}
			return out
		}
		since := time.Now()
		f.publish(t, ctx, bulk(f.binding, 0, 5)...)
		f.publish(t, ctx, other(0, 5)...)
		fl := follow(t, ctx, f.log(), Query{Since: since, Channel: "BULK", Types: []string{"io.wahook.*"}})
		eventlogtest.WaitFor(t, "the stored events", func() bool { return len(fl.ids()) >= 5 })
		for i := range 3 {
			f.publish(t, ctx, other(5+i*5, 5)...)
			f.publish(t, ctx, bulk(f.binding, 5+i*5, 5)...)
		}
		eventlogtest.WaitFor(t, "the live events", func() bool { return len(fl.ids()) >= 20 })
		time.Sleep(200 * time.Millisecond) // time for one passed twice to come
		var want []string
		for i := range 20 {
			want = append(want, fmt.Sprintf("bulk-%d", i))
		}
		if got := fl.ids(); !slices.Equal(got, want) {
			t.Errorf("Follow on %s passed %v, want %v", name, got, want)
		}
	})
}

// TestFollowReplayBounded: a replay longer than MaxScan passes at most
// MaxScan of it, tells OnSkip how many it passed over, then the live
// events, each once; a replay within MaxScan passes whole, skipping none.
func TestFollowReplayBounded(t *testing.T) {
	eachBroker(t, func(t *testing.T, ctx context.Context, f fixture, name string) {
		since := time.Now()
		f.publish(t, ctx, bulk(f.binding, 0, 10)...)
		var mu sync.Mutex
		skips := map[int][]int64{}
		onSkip := func(i int) func(int64) {
			return func(n int64) {
				mu.Lock()
				defer mu.Unlock()
				skips[i] = append(skips[i], n)
			}
		}
		l := f.log(WithBatch(3))
		bounded := follow(t, ctx, l, Query{Streams: []Stream{Raw}, Since: since, Channel: "BULK", MaxScan: 4, OnSkip: onSkip(0)})
		whole := follow(t, ctx, l, Query{Streams: []Stream{Raw}, Since: since, Channel: "BULK", MaxScan: 100, OnSkip: onSkip(1)})
		eventlogtest.WaitFor(t, "the bounded replay", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return len(bounded.ids()) >= 4 && len(skips[0]) > 0
		})
		eventlogtest.WaitFor(t, "the whole replay", func() bool { return len(whole.ids()) >= 10 })
		f.publish(t, ctx, bulk(f.binding, 10, 3)...)
		eventlogtest.WaitFor(t, "the live events", func() bool { return len(bounded.ids()) >= 7 && len(whole.ids()) >= 13 })
		time.Sleep(200 * time.Millisecond) // time for one passed twice to come
		want := []string{"bulk-0", "bulk-1", "bulk-2", "bulk-3", "bulk-10", "bulk-11", "bulk-12"}
		if got := bounded.ids(); !slices.Equal(got, want) {
			t.Errorf("Follow on %s with MaxScan 4 passed %v, want %v", name, got, want)
		}
		var all []string
		for i := range 13 {
			all = append(all, fmt.Sprintf("bulk-%d", i))
		}
		if got := whole.ids(); !slices.Equal(got, all) {
			t.Errorf("Follow on %s with MaxScan 100 passed %v, want %v", name, got, all)
		}
		mu.Lock()
		defer mu.Unlock()
		if diff := cmp.Diff(map[int][]int64{0: {6}}, skips); diff != "" {
			t.Errorf("OnSkip calls on %s by follow (-want +got):\n%s", name, diff)
		}
	})
}

// TestFollowReplayBoundedInTotal: MaxScan bounds the replay over all the
// sources read, and OnSkip's counts add up to the rest of it.
func TestFollowReplayBoundedInTotal(t *testing.T) {
	eachBroker(t, func(t *testing.T, ctx context.Context, f fixture, name string) {
		since := time.Now()
		f.publish(t, ctx, bulk(f.binding, 0, 10)...)
		for i := range 3 {
			m, err := envelope.DeadLetterMessage(envelope.DeadLetter{Reason: fmt.Sprintf("dl-%d", i), Provider: "whapi", Channel: "CH",
				ReceivedAt: time.Now().UTC()}, f.binding)
			if err != nil {
				t.Fatal(err)
			}
			f.publish(t, ctx, m)
		}
		var skipped atomic.Int64
		fl := follow(t, ctx, f.log(WithBatch(3)), Query{Streams: []Stream{Raw, DeadLetter}, Since: since, MaxScan: 4,
			OnSkip: func(n int64) { skipped.Add(n) }})
		eventlogtest.WaitFor(t, "the bounded replay", func() bool { return len(fl.ids()) >= 4 && skipped.Load() >= 9 })
		f.publish(t, ctx, bulk(f.binding, 10, 1)...)
		eventlogtest.WaitFor(t, "the live event", func() bool { return slices.Contains(fl.ids(), "bulk-10") })
		time.Sleep(200 * time.Millisecond) // time for one passed twice to come
		got := fl.ids()
		if len(got) != 5 || got[4] != "bulk-10" || len(slices.Compact(sorted(got))) != 5 {
			t.Errorf("Follow on %s of two streams with MaxScan 4 passed %v; want 4 replayed then bulk-10, each once", name, got)
		}
		if n := skipped.Load(); n != 9 {
			t.Errorf("Follow on %s of 13 stored with MaxScan 4: OnSkip counted %d; want 9", name, n)
		}
	})
}

// TestFollowWhileReplaying: events stored while Follow replays the
// history (one message a read) come once, in stored order, after it.
func TestFollowWhileReplaying(t *testing.T) {
	ctx := testContext(t)
	f := natsFixture(t)
	since := time.Now()
	f.publish(t, ctx, bulk(f.binding, 0, 3)...)
	l := f.log(WithBatch(1))
	reads := 0
	l.b.(*natsLog).opts.afterBatch = func() {
		if reads++; reads == 1 {
			if err := f.pub.Publish(ctx, bulk(f.binding, 3, 3)...); err != nil {
				t.Error(err)
			}
		}
	}
	fl := follow(t, ctx, l, Query{Since: since})
	eventlogtest.WaitFor(t, "6 events", func() bool { return len(fl.ids()) >= 6 })
	f.publish(t, ctx, bulk(f.binding, 6, 1)...)
	eventlogtest.WaitFor(t, "7 events", func() bool { return len(fl.ids()) >= 7 })
	want := []string{"bulk-0", "bulk-1", "bulk-2", "bulk-3", "bulk-4", "bulk-5", "bulk-6"}
	if got := fl.ids(); !slices.Equal(got, want) {
		t.Errorf("Follow passed %v, want %v", got, want)
	}
}

// TestQueryCausation: a raw event's chain is its derived events and the
// dead letters of the consumers that gave up on it, both carrying its id
// as causationid.
func TestQueryCausation(t *testing.T) {
	eachBroker(t, func(t *testing.T, ctx context.Context, f fixture, name string) {
		consumerDL, err := envelope.DeadLetterMessage(envelope.DeadLetter{Reason: "uninterpretable", Provider: "whapi", Channel: "CH",
			ReceivedAt: time.Now().UTC(), SourceEventID: "raw-a"}, f.binding)
		if err != nil {
			t.Fatal(err)
		}
		f.publish(t, ctx, append(eventlogtest.Sample(t, f.binding), consumerDL)...)
		p, err := f.log().Query(ctx, Query{CausationID: "raw-a"})
		if err != nil {
			t.Fatal(err)
		}
		var streams []Stream
		for _, r := range p.Records {
			streams = append(streams, r.Stream)
		}
		if want := []Stream{Derived, DeadLetter}; !slices.Equal(sorted2(streams), want) || len(p.Records) != 2 || p.Records[0].Event.ID() != "derived-a" && p.Records[1].Event.ID() != "derived-a" {
			t.Errorf("Query(CausationID raw-a) = %v in %v, want derived-a and the consumer's dead letter", ids(p.Records), streams)
		}
		if p, err := f.log().Query(ctx, Query{CausationID: "raw-a", Streams: []Stream{Raw}}); err != nil || len(p.Records) != 0 {
			t.Errorf("Query(CausationID raw-a) of the raw stream = %v, %v; want none", ids(p.Records), err)
		}
		// The raw events come first: they cost no MaxScan.
		p, err = f.log().Query(ctx, Query{CausationID: "raw-a", MaxScan: 3})
		if err != nil || len(p.Records) != 2 || p.Truncated {
			t.Errorf("Query(CausationID raw-a, MaxScan 3) = %v (%d read, truncated %v), %v; want its 2 events", ids(p.Records), p.Scanned, p.Truncated, err)
		}
	})
}

func sorted2(s []Stream) []Stream {
	return slices.SortedFunc(slices.Values(s), func(a, b Stream) int { return slices.Index(Streams, a) - slices.Index(Streams, b) })
}

// TestFollowCancel: a Follow ended by its ctx, or by fn, leaves no
// goroutine behind (the Kafka readers, the NATS subscriptions' ones).
func TestFollowCancel(t *testing.T) {
	eachBroker(t, func(t *testing.T, ctx context.Context, f fixture, name string) {
		f.publish(t, ctx, eventlogtest.Sample(t, f.binding)...)
		l := f.log()
		// A first Query opens what the Log keeps (pooled connections).
		if _, err := l.Query(ctx, Query{}); err != nil {
			t.Fatal(err)
		}
		before := clientGoroutines()
		for range 10 {
			fctx, stop := context.WithCancel(ctx)
			done := make(chan error, 1)
			got := make(chan struct{}, 100)
			go func() {
				done <- l.Follow(fctx, Query{Since: time.Unix(0, 0)}, func(Record) error {
					got <- struct{}{}
					return nil
				})
			}()
			<-got // reading
			stop()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("Follow = %v, want context.Canceled", err)
			}
		}
		boom := errors.New("boom")
		if err := l.Follow(ctx, Query{Since: time.Unix(0, 0)}, func(Record) error { return boom }); !errors.Is(err, boom) {
			t.Fatalf("Follow = %v, want boom", err)
		}
		deadline := time.Now().Add(3 * time.Second)
		for len(clientGoroutines()) > len(before) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if after := clientGoroutines(); len(after) > len(before) {
			t.Errorf("%d goroutines of the clients after the follows, %d before:\n%s", len(after), len(before), strings.Join(after, "\n\n"))
		}
	})
}

// clientGoroutines are the stacks of the goroutines of the broker clients
// and of eventlog: not those of the servers the test runs, nor those of
// the Kafka connection pool a Log keeps for its queries, which grows to
// what concurrent requests need and closes idle connections on its own.
func clientGoroutines() []string {
	buf := make([]byte, 4<<20)
	var out []string
	for _, g := range strings.Split(string(buf[:runtime.Stack(buf, true)]), "\n\n") {
		if strings.Contains(g, "kfake") || strings.Contains(g, "nats-server") || strings.Contains(g, "TestFollowCancel") ||
			strings.Contains(g, "kafka-go.(*conn).run") || strings.Contains(g, "kafka-go.(*connPool)") {
			continue
		}
		if strings.Contains(g, "kafka-go") || strings.Contains(g, "nats.go") || strings.Contains(g, "wahook/pkg/eventlog") {
			out = append(out, g)
		}
	}
	return out
}

// TestQueryTimeEdges: Since and Until include a record stored at them and
// leave out one stored before Since or after Until by less than Kafka's
// millisecond.
func TestQueryTimeEdges(t *testing.T) {
	eachBroker(t, func(t *testing.T, ctx context.Context, f fixture, name string) {
		f.publish(t, ctx, bulk(f.binding, 0, 1)...)
		l := f.log()
		p, err := l.Query(ctx, Query{Channel: "BULK"})
		if err != nil || len(p.Records) != 1 {
			t.Fatalf("Query: %v, %v; want bulk-0", ids(p.Records), err)
		}
		at := p.Records[0].Stored
		for name, tc := range map[string]struct {
			give Query
			want int
		}{
			"since at":           {Query{Since: at}, 1},
			"until at":           {Query{Until: at}, 1},
			"since just after":   {Query{Since: at.Add(500 * time.Microsecond)}, 0},
			"until just before":  {Query{Until: at.Add(-500 * time.Microsecond)}, 0},
			"newest, just after": {Query{Since: at.Add(500 * time.Microsecond), Newest: true}, 0},
		} {
			tc.give.Channel = "BULK"
			p, err := l.Query(ctx, tc.give)
			if err != nil || len(p.Records) != tc.want {
				t.Errorf("%s: Query(since %v, until %v) = %v, %v; want %d records (stored %v)", name, tc.give.Since, tc.give.Until, ids(p.Records), err, tc.want, at)
			}
		}
	})
}

// TestKafkaMaxPartitions: a Query or Follow of more Kafka partitions than
// the Log allows is refused before any is read; fewer are read.
func TestKafkaMaxPartitions(t *testing.T) {
	ctx := testContext(t)
	f := kafkaFixture(t)
	f.publish(t, ctx, eventlogtest.Sample(t, f.binding)...)
	// 2 partitions a topic: the raw topic is 2, all the streams more.
	l := f.log(WithMaxPartitions(2))
	if _, err := l.Query(ctx, Query{}); !errors.Is(err, ErrQuery) {
		t.Errorf("Query of every stream = %v, want ErrQuery", err)
	}
	if err := l.Follow(ctx, Query{}, func(Record) error { return nil }); !errors.Is(err, ErrQuery) {
		t.Errorf("Follow of every stream = %v, want ErrQuery", err)
	}
	if p, err := l.Query(ctx, Query{Streams: []Stream{Raw}}); err != nil || len(p.Records) != 2 {
		t.Errorf("Query of the raw stream = %v, %v; want raw-a, raw-b", ids(p.Records), err)
	}
}

// TestNATSReadTimeout: a direct get whose answer never comes (lost to a
// reconnect; here a subscriber that answers nothing) ends in time even
// when ctx has no deadline, as a Follow's has not.
func TestNATSReadTimeout(t *testing.T) {
	b := natstest.Broker(t, natsbroker.Config{})
	nc := b.Conn()
	sub, err := nc.Subscribe("$JS.API.DIRECT.GET.SILENT", func(*nats.Msg) {})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	l, err := NewNATS(nc)
	if err != nil {
		t.Fatal(err)
	}
	n := l.b.(*natsLog)
	n.opts.readTimeout = 100 * time.Millisecond
	r := &natsRead{n: n, src: natsSource{Raw, "SILENT", "x.>"}, seq: 1}
	done := make(chan error, 1)
	go func() {
		_, _, err := r.fill(context.Background())
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("fill with no answer = %v, want context.DeadlineExceeded", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("fill with no answer still waiting after 10s")
	}
}

// derivedB is a label event derived from raw-b, about chat B (derived-b).
func derivedB(t *testing.T, b envelope.Binding) broker.Message {
	t.Helper()
	rawB := envelope.Raw{ID: "raw-b", Provider: "whapi", Channel: "CH", Kind: "messages.post", Chat: eventlogtest.ChatB, Time: time.Now(), Data: []byte(`{"id":"b"}`)}
	src, err := envelope.DecodeRaw(envelope.Ingress(rawB, b), b)
	if err != nil {
		t.Fatalf("DecodeRaw: %v", err)
	}
	m, err := envelope.Derived(derive.Event{ID: "derived-b", Stream: derive.LabelChanged, Type: "io.wahook.label.added", Subject: eventlogtest.ChatB,
		Data: derive.ChatRef{ChatID: eventlogtest.ChatB}}, src, b)
	if err != nil {
		t.Fatalf("Derived: %v", err)
	}
	return m
}

// TestQueryNewestPagesEndAtFirst: the pages after a newest-first page read
// nothing stored since it, in the sources it had nothing to read in
// (empty, or nothing in range) as in those it read without a match; a
// forward page's next still reads up to the present.
func TestQueryNewestPagesEndAtFirst(t *testing.T) {
	bulkIDs := []string{"bulk-0", "bulk-1", "bulk-2", "bulk-3", "bulk-4"}
	for name, tc := range map[string]struct {
		before func(t *testing.T, f fixture) []broker.Message
		give   Query
		after  func(t *testing.T, f fixture) []broker.Message
		// late tells whether the pages list the events stored after
		// the first.
		late bool
	}{
		"newest, source empty on the first page": {
			before: func(*testing.T, fixture) []broker.Message { return nil },
			give:   Query{Limit: 2, Newest: true},
			after:  func(t *testing.T, f fixture) []broker.Message { return eventlogtest.Sample(t, f.binding) },
		},
		"newest, source with no match on the first page": {
			before: func(t *testing.T, f fixture) []broker.Message { return eventlogtest.Sample(t, f.binding) },
			give:   Query{IDs: append(slices.Clone(bulkIDs), "derived-b"), Limit: 2, Newest: true},
			after:  func(t *testing.T, f fixture) []broker.Message { return []broker.Message{derivedB(t, f.binding)} },
		},
		"forward reads up to the present": {
			before: func(*testing.T, fixture) []broker.Message { return nil },
			give:   Query{Limit: 2},
			after:  func(t *testing.T, f fixture) []broker.Message { return eventlogtest.Sample(t, f.binding) },
			late:   true,
		},
	} {
		t.Run(name, func(t *testing.T) {
			eachBroker(t, func(t *testing.T, ctx context.Context, f fixture, _ string) {
				f.publish(t, ctx, tc.before(t, f)...)
				f.publish(t, ctx, bulk(f.binding, 0, 5)...)
				l := f.log(WithBatch(2))
				q := tc.give
				want := slices.Clone(bulkIDs)
				var pages [][]string
				for range 10 {
					p, err := l.Query(ctx, q)
					if err != nil {
						t.Fatalf("Query(%+v): %v", q, err)
					}
					pages = append(pages, ids(p.Records))
					if len(pages) == 1 {
						if p.Next == nil {
							t.Fatalf("first page of %+v: no next page", q)
						}
						late := tc.after(t, f)
						f.publish(t, ctx, late...)
						for _, m := range late {
							ev, err := envelope.Decode(m, f.binding)
							if err != nil {
								t.Fatalf("Decode: %v", err)
							}
							if tc.late {
								want = append(want, ev.ID())
							}
						}
					}
					if p.Next == nil {
						break
					}
					if tc.give.Newest && len(p.Next) < len(q.After) {
						t.Errorf("page %d of %+v: next %v, want every source of %v", len(pages), tc.give, p.Next, q.After)
					}
					q.After = p.Next
				}
				if tc.give.Newest {
					slices.Reverse(pages)
				}
				// Equal times across sources: compared sorted.
				if got := slices.Concat(pages...); !slices.Equal(sorted(got), sorted(want)) {
					t.Errorf("pages of %+v, events stored after the first: %v, want %v", tc.give, pages, want)
				}
			})
		})
	}
}
