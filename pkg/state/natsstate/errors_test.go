package natsstate_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/state/natsstate"
)

// A store whose server is gone fails with errors wrapping
// broker.ErrUnavailable (consumers retry them in place); a bad input or a
// record that cannot be read fails with errors that do not (consumers give
// up on the raw event after a few attempts).
func TestErrorsClassified(t *testing.T) {
	e := startServer(t, t.TempDir())
	b := connect(t, natsbroker.Config{URL: e.ClientURL(), Auth: e.ServiceAuth(), ReconnectWait: 50 * time.Millisecond})
	s := open(t, b.JetStream(), natsstate.Config{ChatCacheSize: -1})
	ctx := testCtx(t)

	for name, err := range map[string]error{
		"empty event id": func() error {
			_, err := s.Chats().FirstSeen(ctx, "whapi", "CH", "1@s.whatsapp.net", "")
			return err
		}(),
		"invalid event id": func() error {
			_, _, err := s.Labels().Upsert(ctx, "whapi", "CH", fact.Label{ID: "1"}, "\xff")
			return err
		}(),
		"label without id": func() error {
			_, _, err := s.Labels().Upsert(ctx, "whapi", "CH", fact.Label{Name: "x"}, "ev")
			return err
		}(),
	} {
		if err == nil || errors.Is(err, broker.ErrUnavailable) {
			t.Errorf("%s: error %v, want one not wrapping broker.ErrUnavailable", name, err)
		}
	}

	// A record that is not a label: reading it fails the same way every time.
	kv, err := b.JetStream().KeyValue(ctx, natsstate.DefaultLabelsBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Labels().Upsert(ctx, "whapi", "CH", fact.Label{ID: "7", Name: "x"}, "ev1"); err != nil {
		t.Fatal(err)
	}
	keys, err := kv.Keys(ctx)
	if err != nil || len(keys) != 1 {
		t.Fatalf("Keys = %v, %v", keys, err)
	}
	if _, err := kv.Put(ctx, keys[0], []byte("not json")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Labels().Lookup(ctx, "whapi", "CH", "7"); err == nil || errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Lookup of a corrupt record: error %v, want one not wrapping broker.ErrUnavailable", err)
	}

	stopServer(t, e)
	down, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := s.Chats().FirstSeen(down, "whapi", "CH", "2@s.whatsapp.net", "ev2"); !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("FirstSeen with the server down: error %v, want one wrapping broker.ErrUnavailable", err)
	}
	if _, _, err := s.Labels().Upsert(down, "whapi", "CH", fact.Label{ID: "8"}, "ev3"); !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Upsert with the server down: error %v, want one wrapping broker.ErrUnavailable", err)
	}
	if _, _, err := s.Labels().Delete(down, "whapi", "CH", fact.LabelRef{Name: "x"}, "ev4"); !errors.Is(err, broker.ErrUnavailable) {
		t.Errorf("Delete by name with the server down: error %v, want one wrapping broker.ErrUnavailable", err)
	}
	if !errors.Is(natsstate.ErrContended, broker.ErrUnavailable) {
		t.Errorf("ErrContended does not wrap broker.ErrUnavailable")
	}
}
