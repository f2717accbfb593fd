package derivetest

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/schemas"
)

// CheckSchema checks derived events against the contract: each event's data
// is valid against its stream's schema (the one its dataschema names), its
// stream is a derived stream, its type starts with io.wahook., its id is set
// and unique among events, and an event about a chat has that chat as
// subject and partition chat.
func CheckSchema(t testing.TB, events []derive.Event) {
	t.Helper()
	ids := make(map[string]bool, len(events))
	for i, ev := range events {
		name := ev.Type + " " + ev.ID
		if !slices.Contains(derive.Streams, ev.Stream) {
			t.Errorf("event %d (%s): stream %q is not a derived stream", i, name, ev.Stream)
			continue
		}
		if !strings.HasPrefix(ev.Type, derive.TypePrefix) {
			t.Errorf("event %d (%s): type does not start with %s", i, name, derive.TypePrefix)
		}
		if ev.ID == "" || ids[ev.ID] {
			t.Errorf("event %d (%s): id is empty or repeated", i, name)
		}
		ids[ev.ID] = true
		data, err := json.Marshal(ev.Data)
		if err != nil {
			t.Errorf("event %d (%s): marshal data: %v", i, name, err)
			continue
		}
		if err := schemas.Validate(envelope.SchemaURI(ev.Stream), data); err != nil {
			t.Errorf("event %d (%s): data %s: %v", i, name, data, err)
		}
		var chat struct {
			ChatID string `json:"chat_id"`
		}
		if err := json.Unmarshal(data, &chat); err != nil {
			t.Errorf("event %d (%s): data is not an object: %v", i, name, err)
			continue
		}
		if chat.ChatID != "" && (ev.Subject != chat.ChatID || ev.Chat != chat.ChatID) {
			t.Errorf("event %d (%s): subject %q and chat %q, want data.chat_id %q", i, name, ev.Subject, ev.Chat, chat.ChatID)
		}
	}
}
