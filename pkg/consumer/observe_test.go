package consumer_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wahook/wahook/pkg/consumer"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/whapi"
)

// TestLagRetriesAndStateOperations runs the label-changed stream through
// Streams.Run, as the services do, over a label registry that holds its
// calls and is unavailable once: the consumer's lag on the broker (not
// delivered plus not acknowledged) counts the raw events held, the
// unavailable call is one retry and one state error, and once everything
// is derived the lag is 0 and the registry's operations are counted.
func TestLagRetriesAndStateOperations(t *testing.T) {
	e := newNATS(t)
	reg := prometheus.NewRegistry()
	metrics := consumer.NewMetrics(reg)
	release := make(chan struct{})
	labels := &flaky{LabelRegistry: blocking{LabelRegistry: e.st.Labels(), release: release}, id: "2", fails: 1}
	streams := consumer.Streams{Names: []string{derive.LabelChanged}, GroupPrefix: "wahook-", Concurrency: 4, Partitions: 1}
	deps := consumer.Deps{Subscriber: e.b, Publisher: e.b, Binding: envelope.NATS, Labels: labels, Chats: e.st.Chats(),
		Providers: []provider.Provider{whapi.New()}, Metrics: metrics}
	if err := metrics.Running(streams.Names); err == nil || !strings.Contains(err.Error(), "label-changed") {
		t.Errorf("Running before the consumer runs = %v, want label-changed not started", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- streams.Run(ctx, deps) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitFor(t, "the consumer running", func() bool { return metrics.Running(streams.Names) == nil })
	e.publish(t, labelsPost("a", "CH", "1"), labelsPost("b", "CH", "2"), labelsPost("c", "CH", "3"))

	// -1 until the lag has been read from the broker since the consumer
	// was created (at most every 2s).
	backlog := func() float64 {
		lag, ok1 := gauge(t, reg, "wahook_consumer_lag_events")
		unacked, ok2 := gauge(t, reg, "wahook_consumer_ack_pending_events")
		if !ok1 || !ok2 {
			return -1
		}
		return lag + unacked
	}
	waitFor(t, "a backlog of the 3 raw events held", func() bool { return backlog() == 3 })
	if got, _ := gauge(t, reg, "wahook_consumer_lag_up"); got != 1 {
		t.Errorf("wahook_consumer_lag_up = %v, want 1", got)
	}
	close(release)
	waitFor(t, "all derived", func() bool { return len(e.derivedTypes(t, derive.LabelChanged, "CH")) == 3 })
	waitFor(t, "no backlog", func() bool { return backlog() == 0 })

	if got := counter(t, reg, "wahook_consumer_retries_total", nil); got != 1 {
		t.Errorf("retries = %v, want 1", got)
	}
	ops := map[string]string{"store": "labels", "op": "upsert"}
	for result, want := range map[string]float64{"ok": 3, "error": 1} {
		ops["result"] = result
		if got := counter(t, reg, "wahook_state_operations_total", ops); got != want {
			t.Errorf("state operations %v = %v, want %v", ops, got, want)
		}
	}
}

// gauge is the value of the label-changed series of a gauge, and whether
// there is one.
func gauge(t *testing.T, reg *prometheus.Registry, name string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "stream" && lp.GetValue() == derive.LabelChanged {
					return m.GetGauge().GetValue(), true
				}
			}
		}
	}
	return 0, false
}

// counter is the value of the series of name with labels (and the stream
// label-changed when it has one).
func counter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			if s, ok := got["stream"]; ok && s != derive.LabelChanged {
				continue
			}
			for k, v := range labels {
				if got[k] != v {
					continue series
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no %s%v", name, labels)
	return 0
}
