package console

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
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
	if n := len(tally(t, ch, "whapi", "A").hist); n != s.keep || len(s.sampleTimes()) != s.keep {
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

// tally returns a channel's tally; the test fails when there is none.
func tally(t *testing.T, ch *Channels, provider, channel string) *channelTally {
	t.Helper()
	p := (*ch.providers.Load())[provider]
	if p == nil {
		t.Fatalf("no tally of provider %q", provider)
	}
	c := (*p.channels.Load())[channel]
	if c == nil {
		t.Fatalf("no tally of channel %q of %q", channel, provider)
	}
	return c
}

// TestChannelsConcurrent: observers on many goroutines, a sampler and a
// page reading at the same time lose no delivery (run with -race), and
// the bounds on channels and statuses hold meanwhile.
func TestChannelsConcurrent(t *testing.T) {
	const (
		observers = 8
		each      = 2000
		bound     = 4
	)
	ch := NewChannels(bound)
	s := newSampler(nil, ch, time.Second, 4*time.Second)
	stop := make(chan struct{})
	sampled := make(chan int)
	go func() {
		n := 0
		at := time.Unix(1000, 0)
		for {
			select {
			case <-stop:
				sampled <- n
				return
			default:
			}
			at = at.Add(time.Second)
			s.sample(at)
			_ = ch.rows(s.sampleTimes())
			n++
		}
	}()
	var wg sync.WaitGroup
	for g := range observers {
		wg.Go(func() {
			for i := range each {
				// One hot channel, a few more than the bound, and many statuses.
				name := "hot"
				if i%2 == 1 {
					name = fmt.Sprintf("c%d", (g+i)%(2*bound))
				}
				ch.Delivery("whapi", name, true, 200+(g*each+i)%(2*maxCodes), 1)
			}
		})
	}
	wg.Wait()
	close(stop)
	if n := <-sampled; n == 0 {
		t.Error("the sampler never ran while observers did")
	}

	var deliveries, items, codes uint64
	groups := ch.rows(s.sampleTimes())
	if len(groups) != 1 {
		t.Fatalf("rows: %d providers; want 1", len(groups))
	}
	channels := 0
	for _, r := range groups[0].Rows {
		if r.Kind == "channel" {
			channels++
		}
		deliveries += r.Deliveries
		items += r.Items
		if len(r.Codes) > maxCodes+1 {
			t.Errorf("row %s: %d statuses; want at most %d and other", r.Channel, len(r.Codes), maxCodes)
		}
		for _, c := range r.Codes {
			codes += uint64(c.Total)
		}
	}
	const want = observers * each
	if deliveries != want || items != want || codes != want {
		t.Errorf("counted %d deliveries, %d items, %d statuses; want %d each", deliveries, items, codes, want)
	}
	if channels != bound || !groups[0].Bounded {
		t.Errorf("kept %d channels (bounded %v); want %d, bounded", channels, groups[0].Bounded, bound)
	}
	if got := tally(t, ch, "whapi", "hot").deliveries.Load(); got != want/2 {
		t.Errorf("hot channel: %d deliveries; want %d", got, want/2)
	}
}

// BenchmarkChannelsDelivery: the ingress tells the tally of every delivery
// from many request goroutines at once; half go to one hot channel, the
// rest spread over fifteen others.
func BenchmarkChannelsDelivery(b *testing.B) {
	ch := NewChannels(0)
	names := make([]string, 16)
	for i := range names {
		names[i] = fmt.Sprintf("channel-%d", i)
	}
	b.SetParallelism(4)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			name := names[0] // the hot channel, every other delivery
			if i%2 == 1 {
				name = names[i%len(names)]
			}
			ch.Delivery("whapi", name, true, 200, 1)
			i++
		}
	})
}
