package eventlog

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/envelope"
)

// staticLog is a backend over entries held in memory, one source per
// stream named by it, so that the merge across sources is tested on exact
// times. An entry's sequence is its place in its source, from 1.
type staticLog struct{ bySource [][]entry }

func (s staticLog) cursors(_ context.Context, q Query, newest bool) ([]cursor, error) {
	var out []cursor
	for _, es := range s.bySource {
		es := slices.Clone(es)
		src := string(es[0].stream)
		for i := range es {
			es[i].seq = int64(i + 1)
			es[i].position = src + "/" + strconv.Itoa(i+1)
		}
		c := &bufCursor{source: src}
		after, paged := q.After[src]
		if newest {
			c.passed = int64(len(es)) + 1
			if paged {
				es, c.passed = es[:min(max(after-1, 0), int64(len(es)))], after
			}
			slices.Reverse(es)
		} else if paged {
			es, c.passed = es[min(max(after, 0), int64(len(es))):], after
		}
		c.fill = func(context.Context) ([]entry, bool, error) { return es, true, nil }
		out = append(out, c)
	}
	return out, nil
}

func (staticLog) follow(context.Context, Query, *budget, func(entry) error, func(int64)) error {
	return nil
}
func (staticLog) binding() envelope.Binding { return envelope.NATS }
func (staticLog) close() error              { return nil }

func staticEntry(t *testing.T, s Stream, id string, at time.Time) entry {
	t.Helper()
	m := envelope.Ingress(envelope.Raw{ID: id, Provider: "whapi", Channel: "CH", Kind: "messages.post", Time: at, Data: []byte(`{}`)}, envelope.NATS)
	return entry{stream: s, subject: m.Subject, stored: at, msg: m, binding: envelope.NATS}
}

// TestQueryOrder: events of different streams stored at the same time
// come in Streams order, with Newest too, and a Newest page is oldest
// first like any other.
func TestQueryOrder(t *testing.T) {
	t0 := time.Unix(1747391325, 0)
	l := &Log{b: staticLog{bySource: [][]entry{
		{staticEntry(t, Raw, "raw-1", t0), staticEntry(t, Raw, "raw-2", t0.Add(time.Millisecond))},
		{staticEntry(t, Derived, "derived-1", t0), staticEntry(t, Derived, "derived-2", t0.Add(time.Millisecond))},
		{staticEntry(t, DeadLetter, "dl-1", t0)},
	}}}
	all := []string{"raw-1", "derived-1", "dl-1", "raw-2", "derived-2"}
	for name, tc := range map[string]struct {
		give Query
		want []string
	}{
		"oldest":        {Query{}, all},
		"newest":        {Query{Newest: true}, all},
		"newest 3":      {Query{Newest: true, Limit: 3}, all[2:]},
		"oldest 2":      {Query{Limit: 2}, all[:2]},
		"newest 1, tie": {Query{Newest: true, Limit: 1}, all[4:]},
	} {
		p, err := l.Query(context.Background(), tc.give)
		if err != nil || !slices.Equal(ids(p.Records), tc.want) {
			t.Errorf("%s: Query(%+v) = %v, %v; want %v", name, tc.give, ids(p.Records), err, tc.want)
		}
	}
}

// TestQueryPagesAcrossSources: the match a page reads past its Limit may
// be in another source than its last record; the next page starts with
// it, each record comes once, and the page whose last match is the
// range's last has no Next, in either direction, whatever it reads after
// that match.
func TestQueryPagesAcrossSources(t *testing.T) {
	t0 := time.Unix(1747391325, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	l := &Log{b: staticLog{bySource: [][]entry{
		{staticEntry(t, Raw, "raw-0", at(0)), staticEntry(t, Raw, "raw-2", at(2)), staticEntry(t, Raw, "other-3", at(3)), staticEntry(t, Raw, "raw-5", at(5))},
		{staticEntry(t, Derived, "other-0", at(-1)), staticEntry(t, Derived, "derived-1", at(1)), staticEntry(t, Derived, "derived-3", at(3)), staticEntry(t, Derived, "derived-4", at(4))},
		{staticEntry(t, DeadLetter, "dl-6", at(6)), staticEntry(t, DeadLetter, "other-7", at(7))},
	}}}
	all := []string{"raw-0", "derived-1", "raw-2", "derived-3", "derived-4", "raw-5", "dl-6"}
	for _, newest := range []bool{false, true} {
		for limit := 1; limit <= len(all)+1; limit++ {
			// The others, before, between and after the matches, are
			// read and left out.
			q := Query{IDs: all, Limit: limit, Newest: newest}
			var pages [][]string
			for range len(all) + 1 {
				p, err := l.Query(context.Background(), q)
				if err != nil {
					t.Fatalf("Query(%+v): %v", q, err)
				}
				if len(p.Records) == 0 {
					t.Errorf("Query(%+v): a page of nothing", q)
				}
				pages = append(pages, ids(p.Records))
				if p.Next == nil {
					break
				}
				q.After = p.Next
			}
			if newest {
				slices.Reverse(pages)
			}
			if got := slices.Concat(pages...); !slices.Equal(got, all) || len(pages) != (len(all)+limit-1)/limit {
				t.Errorf("pages of %d, newest %v: %v; want %v in %d pages", limit, newest, pages, all, (len(all)+limit-1)/limit)
			}
		}
	}
}
