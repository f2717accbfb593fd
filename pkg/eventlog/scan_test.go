package eventlog

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/envelope"
)

// staticLog is a backend over entries held in memory, one source per
// stream, so that the merge across sources is tested on exact times.
type staticLog struct{ bySource [][]entry }

func (s staticLog) cursors(_ context.Context, _ Query, newest bool) ([]cursor, error) {
	var out []cursor
	for _, es := range s.bySource {
		es := slices.Clone(es)
		if newest {
			slices.Reverse(es)
		}
		out = append(out, &bufCursor{fill: func(context.Context) ([]entry, bool, error) { return es, true, nil }})
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
