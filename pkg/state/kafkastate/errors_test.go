package kafkastate_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/state/kafkastate"
)

// A store whose cluster is gone, or that is closed, fails with errors
// wrapping broker.ErrUnavailable (consumers retry them in place); a bad
// input fails with errors that do not.
func TestErrorsClassified(t *testing.T) {
	c := newCluster(t)
	s := open(t, freshConfig(c))
	ctx := testCtx(t)
	if _, err := s.Chats().FirstSeen(ctx, prov, chan1, "1@s.whatsapp.net", ""); err == nil || errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("FirstSeen with an empty event id: error %v, want one not wrapping broker.ErrUnavailable", err)
	}
	if _, _, err := s.Labels().Upsert(ctx, prov, chan1, fact.Label{ID: "1"}, "\xff"); err == nil || errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Upsert with an invalid event id: error %v, want one not wrapping broker.ErrUnavailable", err)
	}

	c.Close()
	down, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := s.Chats().FirstSeen(down, prov, chan1, "2@s.whatsapp.net", "ev2"); !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("FirstSeen with the cluster down: error %v, want one wrapping broker.ErrUnavailable", err)
	}
	if _, _, err := s.Labels().Upsert(down, prov, chan1, fact.Label{ID: "8"}, "ev3"); !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Upsert with the cluster down: error %v, want one wrapping broker.ErrUnavailable", err)
	}
	closeStore(t, s)
	if err := s.Dedup().Mark(testCtx(t), "s", "id"); !errors.Is(err, broker.ErrUnavailable) || !errors.Is(err, kafkastate.ErrClosed) {
		t.Errorf("Mark after Close: error %v, want ErrClosed wrapping broker.ErrUnavailable", err)
	}
}
