package kafkabroker

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// TestJoinFailureWarningsSpaced: a run of failed joins warns at its first
// failure and then once a minute, with the count and the last error; a
// new run after a join warns at once again.
func TestJoinFailureWarningsSpaced(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	g := newGroupState(zap.New(core), "g", "t", t0)
	for i := range 150 {
		g.joinFailed(errors.New("i/o timeout"), t0.Add(time.Duration(i)*time.Second))
	}
	var got []int64
	for _, e := range logs.FilterLevelExact(zap.WarnLevel).All() {
		n, _ := e.ContextMap()["failures"].(int64)
		got = append(got, n)
		if e.ContextMap()["error"] != "i/o timeout" {
			t.Errorf("warning %q without the error: %v", e.Message, e.ContextMap())
		}
	}
	if want := []int64{0, 61, 121}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("warnings at failures %v, want %v (the first without a count)", got, want)
	}
	if st := g.snapshot(); st.JoinFailures != 150 || st.LastErrorAt != t0.Add(149*time.Second) {
		t.Errorf("status = %+v", st)
	}

	g.joinFailed(fmt.Errorf("sync: %w", kafka.RebalanceInProgress), t0.Add(30*time.Minute))
	if st := g.snapshot(); st.JoinFailures != 150 || st.LastError.Error() != "i/o timeout" {
		t.Errorf("status after a rebalance began = %+v, want it not counted as a failure", st)
	}

	g.joined(7, "m", []int{1, 2}, t0.Add(time.Hour))
	if st := g.snapshot(); !st.Joined || st.JoinFailures != 0 || st.Since != t0.Add(time.Hour) {
		t.Errorf("status once joined = %+v", st)
	}
	g.left(t0.Add(2 * time.Hour))
	g.joinFailed(errors.New("refused"), t0.Add(2*time.Hour))
	if n := logs.FilterLevelExact(zap.WarnLevel).Len(); n != 4 {
		t.Errorf("%d warnings, want a fourth for the new run of failures", n)
	}
	if st := g.snapshot(); st.Joined || st.Since != t0.Add(2*time.Hour) || st.LastJoined != t0.Add(time.Hour) {
		t.Errorf("status after the generation = %+v", st)
	}
}
