package derivetest_test

import (
	"fmt"
	"testing"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/provider"
)

func TestLabelRegistry(t *testing.T) {
	derivetest.TestLabelRegistry(t, func(*testing.T) derive.LabelRegistry { return derivetest.NewLabelRegistry() })
}

func TestLabelRegistryZeroValue(t *testing.T) {
	derivetest.TestLabelRegistry(t, func(*testing.T) derive.LabelRegistry { return new(derivetest.LabelRegistry) })
}

func TestChatRegistry(t *testing.T) {
	derivetest.TestChatRegistry(t, func(*testing.T) derive.ChatRegistry { return derivetest.NewChatRegistry() })
}

func TestChatRegistryZeroValue(t *testing.T) {
	derivetest.TestChatRegistry(t, func(*testing.T) derive.ChatRegistry { return new(derivetest.ChatRegistry) })
}

// recorder keeps the errors a check reports instead of failing the test.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestCheckSchemaReports(t *testing.T) {
	common := map[string]any{
		"provider": "whapi", "channel": "C", "occurred_at": "2024-04-22T13:27:33Z", "source_event_id": "raw1",
	}
	with := func(extra map[string]any) map[string]any {
		m := map[string]any{}
		for k, v := range common {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	chat := map[string]any{"chat_id": "1@s.whatsapp.net", "chat_id_raw": "1", "chat_type": "contact"}
	for name, tc := range map[string]struct {
		events   []derive.Event
		wantErrs int
	}{
		"valid": {
			events: []derive.Event{{ID: "a", Stream: derive.LabelChanged, Type: "io.wahook.label.created",
				Data: with(map[string]any{"label": map[string]any{"id": "1"}})}},
		},
		"data against the schema": {
			events: []derive.Event{{ID: "a", Stream: derive.LabelChanged, Type: "io.wahook.label.created",
				Data: with(map[string]any{"label": map[string]any{"id": "1"}, "extra": true})}},
			wantErrs: 1,
		},
		"unknown stream": {
			events:   []derive.Event{{ID: "a", Stream: "other", Type: "io.wahook.x", Data: common}},
			wantErrs: 1,
		},
		"repeated id and bad type": {
			events: []derive.Event{
				{ID: "a", Stream: derive.LabelChanged, Type: "io.wahook.label.created", Data: with(map[string]any{"label": map[string]any{"id": "1"}})},
				{ID: "a", Stream: derive.LabelChanged, Type: "label.created", Data: with(map[string]any{"label": map[string]any{"id": "2"}})},
			},
			wantErrs: 2,
		},
		"subject is not the chat": {
			events: []derive.Event{{ID: "a", Stream: derive.ChatCreated, Type: "io.wahook.chat.created", Subject: "2@s.whatsapp.net",
				Chat: "1@s.whatsapp.net", Data: with(map[string]any{"inferred": true, "chat_id": chat["chat_id"], "chat_id_raw": chat["chat_id_raw"]})}},
			wantErrs: 1,
		},
	} {
		t.Run(name, func(t *testing.T) {
			r := &recorder{TB: t}
			derivetest.CheckSchema(r, tc.events)
			if len(r.errs) != tc.wantErrs {
				t.Errorf("CheckSchema reported %d errors, want %d: %q", len(r.errs), tc.wantErrs, r.errs)
			}
		})
	}
}

func TestTimeRegistry(t *testing.T) {
	derivetest.TestTimeRegistry(t, func(*testing.T) derive.TimeRegistry { return new(derivetest.TimeRegistry) })
}

func TestAliasRegistry(t *testing.T) {
	derivetest.TestAliasRegistry(t, func(*testing.T) derive.AliasRegistry { return derivetest.NewAliasRegistry() })
}

func TestAliasRegistryZeroValue(t *testing.T) {
	derivetest.TestAliasRegistry(t, func(*testing.T) derive.AliasRegistry { return new(derivetest.AliasRegistry) })
}

// feeder is a provider that reads kind "read" in the call stream only.
type feeder struct{ provider.Provider }

func (feeder) Name() string { return "acme" }

func (feeder) Feeds() provider.Feeds { return provider.Feeds{derive.Call: {"read"}} }

// TestCheckFactsAliases: aliases need some stream to read their kind.
func TestCheckFactsAliases(t *testing.T) {
	f := fact.Facts{Aliases: []fact.Alias{{LID: "1@lid", Phone: "5511@s.whatsapp.net"}}}
	r := &recorder{TB: t}
	derivetest.CheckFacts(r, feeder{}, "read", f)
	if len(r.errs) != 0 {
		t.Errorf("aliases of a kind the call stream reads: %v", r.errs)
	}
	derivetest.CheckFacts(r, feeder{}, "unread", f)
	if len(r.errs) != 1 {
		t.Errorf("aliases of a kind no stream reads: %d reports, want 1: %v", len(r.errs), r.errs)
	}
}
