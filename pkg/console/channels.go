package console

import (
	"html/template"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Channels tallies deliveries per provider and channel for the overview,
// in memory: channels come from payloads, so they are no metric label, and
// the tally keeps at most MaxChannels a provider, counting the others
// together. It is an ingress.Observer.
//
// Delivery runs on every request's goroutine, so it takes no lock for a
// channel already tallied: it reads maps that are copied, never changed,
// when a provider or a channel is added (at most maxProviders and
// maxChannels times), and adds to the channel's counters atomically.
type Channels struct {
	maxChannels int

	providers atomic.Pointer[map[string]*providerTally]

	// mu orders additions to the maps (so the bounds hold) and guards
	// every channelTally's hist.
	mu sync.Mutex
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

// maxCodes bounds the statuses a row keeps apart; the ingress answers a
// handful, and a row counts any more together.
const maxCodes = 16

type providerTally struct {
	channels atomic.Pointer[map[string]*channelTally]
	other    channelTally // past maxChannels
	unauth   channelTally
	none     channelTally
}

type channelTally struct {
	deliveries atomic.Uint64
	items      atomic.Uint64
	// codes are claimed in turn by the statuses seen; moreCodes counts
	// the statuses past them.
	codes     [maxCodes]codeCount
	moreCodes atomic.Uint64
	// hist is the deliveries at each of the sampler's last samples,
	// aligned on its times from the newest.
	hist []float64
}

// codeCount is a status and its count; key is 0 while the slot is free.
type codeCount struct {
	key atomic.Int64
	n   atomic.Uint64
}

// codeKey is never 0, so that 0 marks a free slot.
func codeKey(status int) int64 { return int64(status)<<1 | 1 }

// NewChannels returns a tally keeping at most maxChannels channels a
// provider; 256 when zero.
func NewChannels(maxChannels int) *Channels {
	if maxChannels <= 0 {
		maxChannels = 256
	}
	c := &Channels{maxChannels: maxChannels}
	c.providers.Store(&map[string]*providerTally{})
	return c
}

// Delivery counts one answered delivery (ingress.Observer).
func (c *Channels) Delivery(provider, channel string, authenticated bool, status, items int) {
	p := (*c.providers.Load())[provider]
	if p == nil {
		if p = c.addProvider(provider); p == nil {
			return
		}
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
		if t = (*p.channels.Load())[channel]; t == nil {
			t = c.addChannel(p, channel)
		}
	}
	t.deliveries.Add(1)
	t.items.Add(uint64(max(items, 0)))
	t.count(status)
}

// addProvider adds a provider's tally while under the bound; nil past it.
func (c *Channels) addProvider(name string) *providerTally {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.providers.Load()
	if p := old[name]; p != nil {
		return p
	}
	if len(old) >= maxProviders {
		return nil
	}
	p := &providerTally{}
	p.channels.Store(&map[string]*channelTally{})
	next := maps.Clone(old)
	next[name] = p
	c.providers.Store(&next)
	return p
}

// addChannel adds a channel's tally while under the bound; past it, the
// tally of the others.
func (c *Channels) addChannel(p *providerTally, name string) *channelTally {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *p.channels.Load()
	if t := old[name]; t != nil {
		return t
	}
	if len(old) >= c.maxChannels {
		return &p.other
	}
	t := &channelTally{}
	next := maps.Clone(old)
	next[name] = t
	p.channels.Store(&next)
	return t
}

// count counts a status in its slot, claiming a free one on its first use.
func (t *channelTally) count(status int) {
	key := codeKey(status)
	for i := range t.codes {
		slot := &t.codes[i]
		k := slot.key.Load()
		if k == 0 && (slot.key.CompareAndSwap(0, key) || slot.key.Load() == key) {
			k = key
		}
		if k == key {
			slot.n.Add(1)
			return
		}
	}
	t.moreCodes.Add(1)
}

// sample records every tally's deliveries now, keeping keep samples.
func (c *Channels) sample(keep int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range *c.providers.Load() {
		for _, t := range p.all() {
			if len(t.hist) == keep {
				copy(t.hist, t.hist[1:])
				t.hist = t.hist[:keep-1]
			}
			t.hist = append(t.hist, float64(t.deliveries.Load()))
		}
	}
}

func (p *providerTally) all() []*channelTally {
	channels := *p.channels.Load()
	out := make([]*channelTally, 0, len(channels)+3)
	for _, t := range channels {
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
	providers := *c.providers.Load()
	for _, name := range slices.Sorted(maps.Keys(providers)) {
		p := providers[name]
		g := channelGroup{Provider: name, Bounded: p.other.deliveries.Load() > 0, Max: c.maxChannels}
		channels := *p.channels.Load()
		for _, ch := range slices.Sorted(maps.Keys(channels)) {
			g.Rows = append(g.Rows, channels[ch].row(ch, "channel", times))
		}
		for _, extra := range []struct {
			t          *channelTally
			name, kind string
		}{{&p.other, OtherChannels, "other"}, {&p.none, NoChannel, "none"}, {&p.unauth, Unauthenticated, "unauthenticated"}} {
			if extra.t.deliveries.Load() > 0 {
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
	r := channelRow{Channel: name, Kind: kind, Rate: lastRate(pts), Spark: sparkline(rates(pts)), Deliveries: t.deliveries.Load(), Items: t.items.Load()}
	counts := map[int]uint64{}
	for i := range t.codes {
		if k := t.codes[i].key.Load(); k != 0 {
			counts[int(k>>1)] = t.codes[i].n.Load()
		}
	}
	for _, code := range slices.Sorted(maps.Keys(counts)) {
		r.Codes = append(r.Codes, codeRow{Code: strconv.Itoa(code), Total: float64(counts[code]), Error: code != 200})
	}
	if n := t.moreCodes.Load(); n > 0 {
		r.Codes = append(r.Codes, codeRow{Code: "other", Total: float64(n), Error: true})
	}
	return r
}
