package ingress

import (
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// A provider with open kinds cannot grow items_total without bound: past
// maxKindLabels kinds, new ones count as "other", and kinds that already
// have a series keep it.
func TestItemKindLabelsAreBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	const kinds = maxKindLabels + 36
	for i := range kinds {
		m.item("open", fmt.Sprintf("kind.%d", i))
	}
	m.item("open", "kind.0")
	m.item("whapi", "messages.post")

	if got, want := testutil.CollectAndCount(m.items), maxKindLabels+1+1; got != want {
		t.Errorf("items_total has %d series, want %d (the cap, other, whapi's)", got, want)
	}
	if got := testutil.ToFloat64(m.items.WithLabelValues("open", kindOther)); got != kinds-maxKindLabels {
		t.Errorf("other = %v, want %d", got, kinds-maxKindLabels)
	}
	if got := testutil.ToFloat64(m.items.WithLabelValues("open", "kind.0")); got != 2 {
		t.Errorf("kind.0 = %v, want 2: a kind with a series keeps it past the cap", got)
	}
	if got := testutil.ToFloat64(m.items.WithLabelValues("whapi", "messages.post")); got != 1 {
		t.Errorf("whapi messages.post = %v, want 1: the cap is per provider", got)
	}
}

// Items counted from several goroutines at once, kinds new and known, all
// land in their series.
func TestItemKindsConcurrently(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	const workers, each = 8, 200
	concurrently(workers, each, func(w, i int) { m.item("whapi", fmt.Sprintf("kind.%d", (i+w)%10)) })
	total := 0.0
	for i := range 10 {
		total += testutil.ToFloat64(m.items.WithLabelValues("whapi", fmt.Sprintf("kind.%d", i)))
	}
	if total != workers*each {
		t.Errorf("items counted %v, want %d", total, workers*each)
	}
}

// Deliveries and publishes counted from several goroutines at once land in
// the series of their labels.
func TestDeliverySeriesConcurrently(t *testing.T) {
	m := NewMetrics(prometheus.NewRegistry())
	const workers, each = 8, 100
	statuses := []int{200, 400, 503}
	concurrently(workers, each, func(w, i int) {
		m.delivery([]string{"whapi", "zapi"}[(i+w)%2], statuses[i%3], 0.001)
		m.published([]string{"ok", "error"}[i%2], 0.001)
	})
	total := 0.0
	for _, p := range []string{"whapi", "zapi"} {
		for _, s := range statuses {
			total += testutil.ToFloat64(m.deliveries.WithLabelValues(p, strconv.Itoa(s)))
		}
	}
	if total != workers*each {
		t.Errorf("deliveries counted %v, want %d", total, workers*each)
	}
	if n := testutil.CollectAndCount(m.duration); n != 2 {
		t.Errorf("duration has %d series, want 2", n)
	}
	if n := testutil.CollectAndCount(m.publish); n != 2 {
		t.Errorf("publish has %d series, want 2", n)
	}
}

// concurrently calls fn(w, i) for i below each in each of workers
// goroutines w, and returns when all are done.
func concurrently(workers, each int, fn func(w, i int)) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				fn(w, i)
			}
		}()
	}
	wg.Wait()
}
