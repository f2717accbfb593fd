package ingress

import (
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
	reg.MustRegister(m.deliveries, m.items, m.deadLetters, m.inFlight, m.duration, m.publish)
	return m
}
