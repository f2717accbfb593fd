package console

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestChannelsBoundAndRates: a tally keeps its bound of channels a
// provider and counts the others together; refusals before the sender or
// the channel is known have rows of their own; rates come from the
// sampler's samples, and the page says when the bound was reached.
func TestChannelsBoundAndRates(t *testing.T) {
	ch := NewChannels(2)
	s := newSampler(nil, ch, time.Second, 4*time.Second)
	at := time.Unix(1000, 0)
	s.sample(at)
	ch.Delivery("whapi", "A", true, 200, 3)
	ch.Delivery("whapi", "A", true, 503, 0)
	ch.Delivery("whapi", "B", true, 200, 1)
	ch.Delivery("whapi", "C", true, 200, 1)                      // past the bound
	ch.Delivery("whapi", strings.Repeat("x", 300), true, 200, 1) // too long to keep
	ch.Delivery("whapi", "", false, 401, 0)
	ch.Delivery("whapi", "", true, 400, 0)
	ch.Delivery("zapi", "Z", true, 200, 2)
	s.sample(at.Add(2 * time.Second))

	groups := ch.rows(s.sampleTimes())
	type row struct {
		Channel, Kind string
		Deliveries    uint64
		Items         uint64
		Rate          float64
		Codes         string
	}
	got := map[string][]row{}
	bounded := map[string]bool{}
	for _, g := range groups {
		bounded[g.Provider] = g.Bounded
		for _, r := range g.Rows {
			codes := ""
			for _, c := range r.Codes {
				codes += fmt.Sprintf("%s=%v,", c.Code, c.Total)
			}
			got[g.Provider] = append(got[g.Provider], row{r.Channel, r.Kind, r.Deliveries, r.Items, r.Rate, codes})
		}
	}
	want := map[string][]row{
		"whapi": {
			{"A", "channel", 2, 3, 1, "200=1,503=1,"},
			{"B", "channel", 1, 1, 0.5, "200=1,"},
			{OtherChannels, "other", 2, 2, 1, "200=2,"},
			{NoChannel, "none", 1, 0, 0.5, "400=1,"},
			{Unauthenticated, "unauthenticated", 1, 0, 0.5, "401=1,"},
		},
		"zapi": {{"Z", "channel", 1, 2, 0.5, "200=1,"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("rows mismatch (-want +got):\n%s", diff)
	}
	if !bounded["whapi"] || bounded["zapi"] {
		t.Errorf("bounded = %v; want whapi only", bounded)
	}

	// Samples past the window are dropped, the newest kept.
	for i := range 10 {
		s.sample(at.Add(time.Duration(4+2*i) * time.Second))
	}
	if n := len(ch.providers["whapi"].channels["A"].hist); n != s.keep || len(s.sampleTimes()) != s.keep {
		t.Errorf("kept %d samples of A and %d times; want %d", n, len(s.sampleTimes()), s.keep)
	}

	c := &Console{cfg: Config{Channels: ch}, sampler: s}
	pages, err := parsePages()
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := pages["overview"].ExecuteTemplate(&buf, "overview-body", c.overview(t.Context())); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`data-channel="A"`, `data-kind="unauthenticated"`, `More than 2 channels sent to whapi`, `data-channels="zapi"`} {
		if !strings.Contains(buf.String(), w) {
			t.Errorf("overview lacks %q:\n%s", w, buf.String())
		}
	}
}
