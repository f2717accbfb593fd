package console

import (
	"html/template"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Channels tallies deliveries per provider and channel for the overview,
// in memory: channels come from payloads, so they are no metric label, and
// the tally keeps at most MaxChannels a provider, counting the others
// together. It is an ingress.Observer.
type Channels struct {
	maxChannels int

	mu        sync.Mutex
	providers map[string]*providerTally
}

// Rows of the tally that are not one channel.
const (
	// Unauthenticated counts what was refused before its sender was known.
	Unauthenticated = "unauthenticated"
	// OtherChannels counts the channels past the bound.
	OtherChannels = "other channels"
	// NoChannel counts what was refused before its channel was known.
	NoChannel = "no channel"
)

// maxProviders bounds the providers tallied: a process serves a few.
const maxProviders = 64

type providerTally struct {
	channels map[string]*channelTally
	other    channelTally // past maxChannels
	unauth   channelTally
	none     channelTally
}

type channelTally struct {
	deliveries uint64
	items      uint64
	codes      map[int]uint64
	// hist is the deliveries at each of the sampler's last samples,
	// aligned on its times from the newest.
	hist []float64
}

// NewChannels returns a tally keeping at most maxChannels channels a
// provider; 256 when zero.
func NewChannels(maxChannels int) *Channels {
	if maxChannels <= 0 {
		maxChannels = 256
	}
	return &Channels{maxChannels: maxChannels, providers: map[string]*providerTally{}}
}

// Delivery counts one answered delivery (ingress.Observer).
func (c *Channels) Delivery(provider, channel string, authenticated bool, status, items int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.providers[provider]
	if p == nil {
		if len(c.providers) >= maxProviders {
			return
		}
		p = &providerTally{channels: map[string]*channelTally{}}
		c.providers[provider] = p
	}
	var t *channelTally
	switch {
	case !authenticated:
		t = &p.unauth
	case channel == "":
		t = &p.none
	case len(channel) > maxFilter:
		t = &p.other
	default:
		if t = p.channels[channel]; t == nil {
			if len(p.channels) >= c.maxChannels {
				t = &p.other
			} else {
				t = &channelTally{}
				p.channels[channel] = t
			}
		}
	}
	t.deliveries++
	t.items += uint64(max(items, 0))
	if t.codes == nil {
		t.codes = map[int]uint64{}
	}
	t.codes[status]++
}

// sample records every tally's deliveries now, keeping keep samples.
func (c *Channels) sample(keep int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.providers {
		for _, t := range p.all() {
			if len(t.hist) == keep {
				copy(t.hist, t.hist[1:])
				t.hist = t.hist[:keep-1]
			}
			t.hist = append(t.hist, float64(t.deliveries))
		}
	}
}

func (p *providerTally) all() []*channelTally {
	out := make([]*channelTally, 0, len(p.channels)+3)
	for _, t := range p.channels {
		out = append(out, t)
	}
	return append(out, &p.other, &p.unauth, &p.none)
}

// channelRow is one line of a provider's channels on the overview.
type channelRow struct {
	Channel    string
	Kind       string // "channel", or the row's kind: "other", "unauthenticated", "none"
	Rate       float64
	Spark      template.HTML
	Deliveries uint64
	Items      uint64
	Codes      []codeRow
}

// channelGroup is a provider's channels on the overview.
type channelGroup struct {
	Provider string
	Rows     []channelRow
	// Bounded says that channels past the bound are counted together.
	Bounded bool
	Max     int
}

// rows is the tally's view, with rates from the sample times given.
func (c *Channels) rows(times []time.Time) []channelGroup {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []channelGroup
	for _, name := range slices.Sorted(maps.Keys(c.providers)) {
		p := c.providers[name]
		g := channelGroup{Provider: name, Bounded: p.other.deliveries > 0, Max: c.maxChannels}
		for _, ch := range slices.Sorted(maps.Keys(p.channels)) {
			g.Rows = append(g.Rows, p.channels[ch].row(ch, "channel", times))
		}
		for _, extra := range []struct {
			t          *channelTally
			name, kind string
		}{{&p.other, OtherChannels, "other"}, {&p.none, NoChannel, "none"}, {&p.unauth, Unauthenticated, "unauthenticated"}} {
			if extra.t.deliveries > 0 {
				g.Rows = append(g.Rows, extra.t.row(extra.name, extra.kind, times))
			}
		}
		out = append(out, g)
	}
	return out
}

func (t *channelTally) row(name, kind string, times []time.Time) channelRow {
	hist := t.hist
	if len(hist) < len(times) {
		// Counted first after the sample before: none then.
		hist = append([]float64{0}, hist...)
	}
	var pts []point
	if n := min(len(hist), len(times)); n > 0 {
		pts = make([]point, n)
		for i := range n {
			pts[i] = point{at: times[len(times)-n+i], v: hist[len(hist)-n+i]}
		}
	}
	r := channelRow{Channel: name, Kind: kind, Rate: lastRate(pts), Spark: sparkline(rates(pts)), Deliveries: t.deliveries, Items: t.items}
	for _, code := range slices.Sorted(maps.Keys(t.codes)) {
		r.Codes = append(r.Codes, codeRow{Code: strconv.Itoa(code), Total: float64(t.codes[code]), Error: code != 200})
	}
	return r
}
