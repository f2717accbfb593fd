package consumer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/fact"
)

// backlogEvery is the least time between two reads of the consumers'
// backlogs from the broker, however many scrapers ask: each read is a
// request per consumer (Kafka: two per group).
const backlogEvery = 2 * time.Second

// backlogTimeout bounds one read of all the backlogs.
const backlogTimeout = 2 * time.Second

var (
	lagDesc = prometheus.NewDesc("wahook_consumer_lag_events",
		"Raw events stored after the consumer's position: not delivered yet (NATS NumPending), or between the group's commit and the high watermark (Kafka, summed over partitions). Read from the broker at most every 2s; the same for every instance of a group.",
		[]string{"stream", "group"}, nil)
	ackPendingDesc = prometheus.NewDesc("wahook_consumer_ack_pending_events",
		"Raw events delivered to the consumer and not acknowledged (NATS NumAckPending; absent on Kafka, whose lag counts them).",
		[]string{"stream", "group"}, nil)
	lagUpDesc = prometheus.NewDesc("wahook_consumer_lag_up",
		"1 when the consumer's lag was read from the broker at the last collection, 0 when that failed.",
		[]string{"stream"}, nil)
)

// backlogs are the consumers' backlogs as last read.
type backlogs struct {
	mu   sync.Mutex
	at   time.Time
	last []streamBacklog
}

type streamBacklog struct {
	stream  string
	backlog broker.Backlog
	err     error
}

// backlogs returns the watched consumers' backlogs, reading them again when
// the last read is older than backlogEvery.
func (m *Metrics) backlogs() []streamBacklog {
	m.lag.mu.Lock()
	defer m.lag.mu.Unlock()
	now := m.now()
	if !m.lag.at.IsZero() && now.Sub(m.lag.at) < backlogEvery {
		return m.lag.last
	}
	m.mu.Lock()
	ws := append([]watched(nil), m.watched...)
	m.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), backlogTimeout)
	defer cancel()
	out := make([]streamBacklog, 0, len(ws))
	for _, w := range ws {
		if w.backlog == nil {
			continue
		}
		b, err := w.backlog(ctx)
		out = append(out, streamBacklog{stream: w.stream, backlog: b, err: err})
	}
	m.lag.at, m.lag.last = m.now(), out
	return out
}

func (m *Metrics) collectBacklogs(ch chan<- prometheus.Metric) {
	up := map[string]bool{}
	// Two consumers of one group in a process read the same backlog: a
	// series is exported once.
	exported := map[[2]string]bool{}
	for _, b := range m.backlogs() {
		if _, seen := up[b.stream]; !seen {
			up[b.stream] = true
		}
		if b.err != nil {
			up[b.stream] = false
			continue
		}
		key := [2]string{b.stream, b.backlog.Group}
		if exported[key] {
			continue
		}
		exported[key] = true
		ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(b.backlog.Pending), b.stream, b.backlog.Group)
		if b.backlog.Unacked >= 0 {
			ch <- prometheus.MustNewConstMetric(ackPendingDesc, prometheus.GaugeValue, float64(b.backlog.Unacked), b.stream, b.backlog.Group)
		}
	}
	for stream, ok := range up {
		v := 0.0
		if ok {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(lagUpDesc, prometheus.GaugeValue, v, stream)
	}
}

// Running returns an error naming the streams among names whose consumer
// has not started consuming in this process (a standby waiting for its
// lease consumes, as far as this is concerned), nil when all have: a
// readiness check.
func (m *Metrics) Running(names []string) error {
	m.mu.Lock()
	ws := append([]watched(nil), m.watched...)
	m.mu.Unlock()
	var missing []string
	for _, name := range names {
		ok := false
		for _, w := range ws {
			ok = ok || (w.stream == name && !w.progress.Stats().LastProgress.IsZero())
		}
		if !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("consumer not started: %s", strings.Join(missing, ", "))
}

// stateMetrics count the operations on the derived streams' state.
type stateMetrics struct {
	ops      *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newStateMetrics() stateMetrics {
	return stateMetrics{
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "wahook", Subsystem: "state", Name: "operations_total",
			Help: "Operations on the derived streams' state, by store (labels, chats, aliases, times, dedup), op and result (ok, error, canceled: the caller stopped waiting).",
		}, []string{"store", "op", "result"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "wahook", Subsystem: "state", Name: "operation_duration_seconds",
			Help:    "Time of one operation on the derived streams' state, by store and op.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 12),
		}, []string{"store", "op"}),
	}
}

// stateOp is one kind of operation on one store, its collectors resolved
// once.
type stateOp struct {
	ok, failed, canceled prometheus.Counter
	duration             prometheus.Observer
	now                  func() time.Time
}

func (m *Metrics) stateOp(store, op string) *stateOp {
	return &stateOp{
		ok:       m.state.ops.WithLabelValues(store, op, "ok"),
		failed:   m.state.ops.WithLabelValues(store, op, "error"),
		canceled: m.state.ops.WithLabelValues(store, op, "canceled"),
		duration: m.state.duration.WithLabelValues(store, op),
		now:      m.now,
	}
}

// done records an operation started at start that returned err.
func (o *stateOp) done(ctx context.Context, start time.Time, err error) {
	o.duration.Observe(o.now().Sub(start).Seconds())
	switch {
	case err == nil:
		o.ok.Inc()
	case ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		o.canceled.Inc()
	default:
		o.failed.Inc()
	}
}

// observedLabels counts a LabelRegistry's operations.
type observedLabels struct {
	r                      derive.LabelRegistry
	upsert, delete, lookup *stateOp
}

func (o *observedLabels) Upsert(ctx context.Context, p, c string, l fact.Label, eventID string) (bool, fact.Label, error) {
	start := o.upsert.now()
	created, prev, err := o.r.Upsert(ctx, p, c, l, eventID)
	o.upsert.done(ctx, start, err)
	return created, prev, err
}

func (o *observedLabels) Delete(ctx context.Context, p, c string, ref fact.LabelRef, eventID string) (fact.Label, bool, error) {
	start := o.delete.now()
	l, known, err := o.r.Delete(ctx, p, c, ref, eventID)
	o.delete.done(ctx, start, err)
	return l, known, err
}

func (o *observedLabels) Lookup(ctx context.Context, p, c, id string) (fact.Label, bool, error) {
	start := o.lookup.now()
	l, known, err := o.r.Lookup(ctx, p, c, id)
	o.lookup.done(ctx, start, err)
	return l, known, err
}

// observedChats counts a ChatRegistry's operations.
type observedChats struct {
	r         derive.ChatRegistry
	firstSeen *stateOp
}

func (o *observedChats) FirstSeen(ctx context.Context, p, c, chat, eventID string) (bool, error) {
	start := o.firstSeen.now()
	first, err := o.r.FirstSeen(ctx, p, c, chat, eventID)
	o.firstSeen.done(ctx, start, err)
	return first, err
}

// observedAliases counts an AliasRegistry's operations.
type observedAliases struct {
	r             derive.AliasRegistry
	learn, lookup *stateOp
}

func (o *observedAliases) Learn(ctx context.Context, p, c, lid, phone, eventID string) error {
	start := o.learn.now()
	err := o.r.Learn(ctx, p, c, lid, phone, eventID)
	o.learn.done(ctx, start, err)
	return err
}

func (o *observedAliases) Lookup(ctx context.Context, p, c, id string) (string, bool, error) {
	start := o.lookup.now()
	other, ok, err := o.r.Lookup(ctx, p, c, id)
	o.lookup.done(ctx, start, err)
	return other, ok, err
}

// observedTimes counts a TimeRegistry's operations.
type observedTimes struct {
	r         derive.TimeRegistry
	firstTime *stateOp
}

func (o *observedTimes) FirstTime(ctx context.Context, id string, t time.Time) (time.Time, error) {
	start := o.firstTime.now()
	first, err := o.r.FirstTime(ctx, id, t)
	o.firstTime.done(ctx, start, err)
	return first, err
}

// observedDedup counts a Dedup's operations.
type observedDedup struct {
	d          Dedup
	seen, mark *stateOp
}

func (o *observedDedup) Seen(ctx context.Context, scope, id string) (bool, error) {
	start := o.seen.now()
	seen, err := o.d.Seen(ctx, scope, id)
	o.seen.done(ctx, start, err)
	return seen, err
}

func (o *observedDedup) Mark(ctx context.Context, scope, id string) error {
	start := o.mark.now()
	err := o.d.Mark(ctx, scope, id)
	o.mark.done(ctx, start, err)
	return err
}

// observe returns d with its state stores counted by d.Metrics; stores
// already counted, or absent, are left as they are.
func (d Deps) observe() Deps {
	m := d.Metrics
	if m == nil {
		return d
	}
	if _, ok := d.Labels.(*observedLabels); d.Labels != nil && !ok {
		d.Labels = &observedLabels{r: d.Labels, upsert: m.stateOp("labels", "upsert"),
			delete: m.stateOp("labels", "delete"), lookup: m.stateOp("labels", "lookup")}
	}
	if _, ok := d.Chats.(*observedChats); d.Chats != nil && !ok {
		d.Chats = &observedChats{r: d.Chats, firstSeen: m.stateOp("chats", "first_seen")}
	}
	if _, ok := d.Aliases.(*observedAliases); d.Aliases != nil && !ok {
		d.Aliases = &observedAliases{r: d.Aliases, learn: m.stateOp("aliases", "learn"), lookup: m.stateOp("aliases", "lookup")}
	}
	if _, ok := d.Times.(*observedTimes); d.Times != nil && !ok {
		d.Times = &observedTimes{r: d.Times, firstTime: m.stateOp("times", "first_time")}
	}
	if _, ok := d.Dedup.(*observedDedup); d.Dedup != nil && !ok {
		d.Dedup = &observedDedup{d: d.Dedup, seen: m.stateOp("dedup", "seen"), mark: m.stateOp("dedup", "mark")}
	}
	return d
}
