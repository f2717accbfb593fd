// Package statetest checks what the state backends (natsstate, kafkastate)
// offer besides derive's registries, with one suite both run.
package statetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/state"
)

// LabelLister is a label registry that lists what it holds.
type LabelLister interface {
	derive.LabelRegistry
	Channels(ctx context.Context) ([]state.ProviderChannel, error)
	List(ctx context.Context, provider, channel string) ([]state.Label, error)
}

// TestLabelListing checks Channels and List of registries made by
// newRegistry, each subtest on a new, empty one.
func TestLabelListing(t *testing.T, newRegistry func(t *testing.T) LabelLister) {
	t.Helper()
	ctx := func(t *testing.T) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		t.Cleanup(cancel)
		return ctx
	}
	upsert := func(t *testing.T, r LabelLister, prov, ch string, l fact.Label, ev string) {
		t.Helper()
		if _, _, err := r.Upsert(ctx(t), prov, ch, l, ev); err != nil {
			t.Fatalf("Upsert(%s, %s, %+v, %s): %v", prov, ch, l, ev, err)
		}
	}
	ignoreExtra := cmpopts.IgnoreFields(state.Label{}, "Events")

	t.Run("labels of a channel, deleted ones and updates told", func(t *testing.T) {
		r := newRegistry(t)
		upsert(t, r, "whapi", "CH-1", fact.Label{ID: "2", Name: "Paid", Color: "salmon"}, "ev1")
		upsert(t, r, "whapi", "CH-1", fact.Label{ID: "10", Name: "New", Color: "gold", ColorHex: "#FFD700"}, "ev2")
		upsert(t, r, "whapi", "CH-1", fact.Label{ID: "2", Name: "Paid twice", Color: "salmon"}, "ev3")
		upsert(t, r, "whapi", "CH-1", fact.Label{ID: "3", Name: "Gone"}, "ev4")
		if _, _, err := r.Delete(ctx(t), "whapi", "CH-1", fact.LabelRef{Name: "Gone"}, "ev5"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		// A miss leaves a record of an unknown label: not listed.
		if _, _, err := r.Delete(ctx(t), "whapi", "CH-1", fact.LabelRef{ID: "99"}, "ev6"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		upsert(t, r, "whapi", "CH-2", fact.Label{ID: "2", Name: "Other"}, "ev7")

		got, err := r.List(ctx(t), "whapi", "CH-1")
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		want := []state.Label{
			{ID: "10", Name: "New", Color: "gold", ColorHex: "#FFD700", CreatedBy: "ev2", UpdatedBy: "ev2"},
			{ID: "2", Name: "Paid twice", Color: "salmon", CreatedBy: "ev1", UpdatedBy: "ev3", Previous: &state.LabelState{Name: "Paid", Color: "salmon"}},
			{ID: "3", Name: "Gone", CreatedBy: "ev4", UpdatedBy: "ev4", DeletedBy: "ev5"},
		}
		if diff := cmp.Diff(want, got, ignoreExtra); diff != "" {
			t.Errorf("List(whapi, CH-1) mismatch (-want +got):\n%s", diff)
		}
		for _, l := range got {
			if len(l.Events) != 0 {
				t.Errorf("List(whapi, CH-1) label %s carries its event memory", l.ID)
			}
		}
		if got, err := r.List(ctx(t), "zapi", "CH-1"); err != nil || len(got) != 0 {
			t.Errorf("List(zapi, CH-1) = %v, %v; want none", got, err)
		}
	})

	t.Run("channels in order, odd names decoded", func(t *testing.T) {
		r := newRegistry(t)
		odd := "a.b_c@d:1"
		for i, pc := range []state.ProviderChannel{{Provider: "zapi", Channel: "Z1"}, {Provider: "whapi", Channel: "W-2"}, {Provider: "whapi", Channel: odd}, {Provider: "whapi", Channel: "W-1"}} {
			upsert(t, r, pc.Provider, pc.Channel, fact.Label{ID: "1", Name: "x"}, fmt.Sprintf("ev%d", i))
		}
		upsert(t, r, "whapi", "W-1", fact.Label{ID: "2", Name: "y"}, "ev9")
		got, err := r.Channels(ctx(t))
		if err != nil {
			t.Fatalf("Channels: %v", err)
		}
		want := []state.ProviderChannel{{Provider: "whapi", Channel: "W-1"}, {Provider: "whapi", Channel: "W-2"}, {Provider: "whapi", Channel: odd}, {Provider: "zapi", Channel: "Z1"}}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Channels mismatch (-want +got):\n%s", diff)
		}
	})
}
