package ingress

import (
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
