package console

import (
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// maxSeries bounds the series a sampler keeps: a metric with an unbounded
// label cannot grow the console's memory.
const maxSeries = 2000

// point is one sample of a series.
type point struct {
	at time.Time
	v  float64
}

// series is one labelled metric's recent samples, oldest first.
type series struct {
	name   string
	labels map[string]string
	pts    []point
}

// sampler reads a gatherer every few seconds and keeps each wahook_ series'
// samples over a window, so that the overview can show rates and their
// recent history. It keeps counters and gauges only.
type sampler struct {
	g      prometheus.Gatherer
	keep   int // samples kept per series
	window time.Duration

	// channels, when set, is sampled with the metrics.
	channels *Channels

	mu     sync.Mutex
	series map[string]*series
	last   time.Time
	// times are the last samples' times, oldest first, for channels.
	times []time.Time
	// changed is closed and replaced at every sample: listeners wait on it.
	changed chan struct{}
}

func newSampler(g prometheus.Gatherer, channels *Channels, every, window time.Duration) *sampler {
	return &sampler{g: g, channels: channels, keep: max(2, int(window/every)+1), window: window, series: map[string]*series{}, changed: make(chan struct{})}
}

// sample reads the gatherer once. A gather error still yields the families
// it could read (prometheus.Gatherer's contract).
func (s *sampler) sample(at time.Time) {
	if s.g == nil && s.channels == nil {
		return
	}
	var fams []*dto.MetricFamily
	if s.g != nil {
		fams, _ = s.g.Gather()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.channels != nil {
		s.channels.sample(s.keep)
		if len(s.times) == s.keep {
			copy(s.times, s.times[1:])
			s.times = s.times[:s.keep-1]
		}
		s.times = append(s.times, at)
	}
	for _, f := range fams {
		name := f.GetName()
		if !strings.HasPrefix(name, "wahook_") {
			continue
		}
		for _, m := range f.GetMetric() {
			var v float64
			switch {
			case m.GetCounter() != nil:
				v = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				v = m.GetGauge().GetValue()
			default:
				continue
			}
			key, labels := seriesKey(name, m.GetLabel())
			sr := s.series[key]
			if sr == nil {
				if len(s.series) >= maxSeries {
					continue
				}
				sr = &series{name: name, labels: labels}
				s.series[key] = sr
			}
			if len(sr.pts) == s.keep {
				copy(sr.pts, sr.pts[1:])
				sr.pts = sr.pts[:len(sr.pts)-1]
			}
			sr.pts = append(sr.pts, point{at: at, v: v})
		}
	}
	// A series absent for a whole window (a gauge whose labels changed) is
	// dropped.
	for k, sr := range s.series {
		if at.Sub(sr.pts[len(sr.pts)-1].at) > s.window {
			delete(s.series, k)
		}
	}
	s.last = at
	close(s.changed)
	s.changed = make(chan struct{})
}

// sampleTimes copies the times of the samples the channels keep.
func (s *sampler) sampleTimes() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.times)
}

// wait returns a channel closed at the next sample.
func (s *sampler) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

func seriesKey(name string, lp []*dto.LabelPair) (string, map[string]string) {
	labels := make(map[string]string, len(lp))
	var b strings.Builder
	b.WriteString(name)
	pairs := slices.Clone(lp)
	sort.Slice(pairs, func(i, j int) bool { return pairs[i].GetName() < pairs[j].GetName() })
	for _, p := range pairs {
		labels[p.GetName()] = p.GetValue()
		b.WriteString("\xff" + p.GetName() + "=" + p.GetValue())
	}
	return b.String(), labels
}

// view is a copy of the samples of some series, safe to read unlocked.
type view struct {
	series []series
	last   time.Time
}

// view copies the series named name.
func (s *sampler) view(names ...string) view {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := view{last: s.last}
	for _, k := range slices.Sorted(maps.Keys(s.series)) {
		sr := s.series[k]
		if slices.Contains(names, sr.name) {
			v.series = append(v.series, series{name: sr.name, labels: sr.labels, pts: slices.Clone(sr.pts)})
		}
	}
	return v
}

// group sums the series named name by the value of label by, sample time
// by sample time; a series missing at a time counts as its last value.
func (v view) group(name, by string, keep func(map[string]string) bool) map[string][]point {
	out := map[string][]point{}
	for _, sr := range v.series {
		if sr.name != name || (keep != nil && !keep(sr.labels)) {
			continue
		}
		k := sr.labels[by]
		out[k] = addPoints(out[k], sr.pts)
	}
	return out
}

// addPoints adds b to a, matching samples by time; a's times win.
func addPoints(a, b []point) []point {
	if a == nil {
		return slices.Clone(b)
	}
	byTime := make(map[time.Time]float64, len(b))
	for _, p := range b {
		byTime[p.at] = p.v
	}
	for i := range a {
		a[i].v += byTime[a[i].at]
	}
	return a
}

// rates turns a counter's samples into per-second rates between
// consecutive samples; a reset (a smaller value) counts from zero.
func rates(pts []point) []float64 {
	if len(pts) < 2 {
		return nil
	}
	out := make([]float64, 0, len(pts)-1)
	for i := 1; i < len(pts); i++ {
		d := pts[i].v - pts[i-1].v
		if d < 0 {
			d = pts[i].v
		}
		dt := pts[i].at.Sub(pts[i-1].at).Seconds()
		if dt <= 0 {
			continue
		}
		out = append(out, d/dt)
	}
	return out
}

// lastValue is the newest sample's value, 0 for none.
func lastValue(pts []point) float64 {
	if len(pts) == 0 {
		return 0
	}
	return pts[len(pts)-1].v
}

// lastRate is the rate between the last two samples.
func lastRate(pts []point) float64 {
	r := rates(pts)
	if len(r) == 0 {
		return 0
	}
	return r[len(r)-1]
}
