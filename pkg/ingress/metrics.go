package ingress

import (
	"maps"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the ingress's Prometheus collectors.
type Metrics struct {
	deliveries  *prometheus.CounterVec
	items       *prometheus.CounterVec
	deadLetters *prometheus.CounterVec
	inFlight    prometheus.Gauge
	duration    *prometheus.HistogramVec
	publish     *prometheus.HistogramVec
	// buffered reads the handler's budget when scraped, costing the hot
	// path nothing.
	buffered atomic.Pointer[budget]

	kinds kindLabels
	// The series every delivery touches, kept once made: the label sets
	// are few (served providers and "unknown", the answers' codes, two
	// outcomes).
	deliverySeries series[providerStatus, prometheus.Counter]
	durationSeries series[string, prometheus.Observer]
	publishSeries  series[string, prometheus.Observer]
}

type providerStatus struct {
	provider string
	status   int
}

// series keeps a vector's series by their labels, read without a lock;
// the map is replaced on each new one.
type series[K comparable, V any] struct {
	m  atomic.Pointer[map[K]V]
	mu sync.Mutex
}

func (s *series[K, V]) get(key K, newSeries func() V) V {
	if m := s.m.Load(); m != nil {
		if v, ok := (*m)[key]; ok {
			return v
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[K]V{}
	if old := s.m.Load(); old != nil {
		if v, ok := (*old)[key]; ok {
			return v
		}
		m = maps.Clone(*old)
	}
	v := newSeries()
	m[key] = v
	s.m.Store(&m)
	return v
}

// delivery counts an answered delivery and its time.
func (m *Metrics) delivery(provider string, status int, seconds float64) {
	m.deliverySeries.get(providerStatus{provider, status}, func() prometheus.Counter {
		return m.deliveries.WithLabelValues(provider, strconv.Itoa(status))
	}).Inc()
	m.durationSeries.get(provider, func() prometheus.Observer {
		return m.duration.WithLabelValues(provider)
	}).Observe(seconds)
}

// published records how long the broker took to acknowledge, by outcome.
func (m *Metrics) published(outcome string, seconds float64) {
	m.publishSeries.get(outcome, func() prometheus.Observer {
		return m.publish.WithLabelValues(outcome)
	}).Observe(seconds)
}

// maxKindLabels bounds the kind label values of items_total per provider.
// The provider packages return kinds of closed sets (a few dozen each),
// so the cap only keeps a provider with open kinds, or a bug, from growing
// the registry with every new kind an attacker sends.
const maxKindLabels = 64

// kindOther is the label of the kinds past the cap.
const kindOther = "other"

// kindLabels keeps the items_total series of each provider's kinds, so
// that counting an item is one map read: no key to build, no label values
// to check and hash.
type kindLabels struct {
	// series is replaced, never changed: readers take no lock.
	series atomic.Pointer[map[providerKind]prometheus.Counter]
	mu     sync.Mutex
	count  map[string]int // kinds with a series, by provider
}

type providerKind struct{ provider, kind string }

// counter is the series of kind, or of kindOther once provider has
// maxKindLabels others.
func (k *kindLabels) counter(items *prometheus.CounterVec, provider, kind string) prometheus.Counter {
	key := providerKind{provider, kind}
	if m := k.series.Load(); m != nil {
		if c, ok := (*m)[key]; ok {
			return c
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	old := k.series.Load()
	if old != nil {
		if c, ok := (*old)[key]; ok {
			return c
		}
	}
	if k.count == nil {
		k.count = map[string]int{}
	}
	if k.count[provider] >= maxKindLabels {
		return items.WithLabelValues(provider, kindOther)
	}
	k.count[provider]++
	c := items.WithLabelValues(provider, kind)
	m := map[providerKind]prometheus.Counter{}
	if old != nil {
		m = maps.Clone(*old)
	}
	m[key] = c
	k.series.Store(&m)
	return c
}

// item counts an item published.
func (m *Metrics) item(provider, kind string) {
	m.kinds.counter(m.items, provider, kind).Inc()
}

// NewMetrics registers the ingress collectors with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "wahook", Subsystem: "ingress", Name: "deliveries_total",
			Help: "Webhook deliveries received, by provider and HTTP status code.",
		}, []string{"provider", "code"}),
		items: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "wahook", Subsystem: "ingress", Name: "items_total",
			Help: "Items published to the raw stream, by provider and kind.",
		}, []string{"provider", "kind"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "wahook", Subsystem: "ingress", Name: "dead_letters_total",
			Help: "Deliveries stored on the dead-letter stream, by provider.",
		}, []string{"provider"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "wahook", Subsystem: "ingress", Name: "in_flight_deliveries",
			Help: "Deliveries being handled now.",
		}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "wahook", Subsystem: "ingress", Name: "delivery_duration_seconds",
			Help:    "Time from request to answer, by provider.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"provider"}),
		publish: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "wahook", Subsystem: "ingress", Name: "publish_duration_seconds",
			Help:    "Time until the broker acknowledged every item of a delivery, by outcome.",
			Buckets: []float64{.0002, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"outcome"}),
	}
	buffered := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "wahook", Subsystem: "ingress", Name: "buffered_body_bytes",
		Help: "Bytes reserved for the bodies of the deliveries being handled.",
	}, func() float64 {
		if b := m.buffered.Load(); b != nil {
			return float64(b.bytes.Load())
		}
		return 0
	})
	reg.MustRegister(m.deliveries, m.items, m.deadLetters, m.inFlight, m.duration, m.publish, buffered)
	return m
}
