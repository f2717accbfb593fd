package label_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/label"
)

const whapiChannel = "MANTIS-M72HC"

// whapiBody is a Whapi delivery of one collection.
func whapiBody(collection, typ, event string, items ...string) []byte {
	return fmt.Appendf(nil, `{%q:[%s],"event":{"type":%q,"event":%q},"channel_id":%q}`,
		collection, strings.Join(items, ","), typ, event, whapiChannel)
}

// wahaBody is a WAHA delivery with envelope id id.
func wahaBody(id, event, payload string) []byte {
	return fmt.Appendf(nil, `{"id":%q,"timestamp":1634567890123,"session":"default","engine":"WEBJS","event":%q,"payload":%s}`,
		id, event, payload)
}

func fixture(provider, name string) string {
	return filepath.Join("..", "..", "provider", provider, "testdata", name)
}

func common(raw derive.Raw) derive.Common {
	return derive.Common{
		Provider:      raw.Provider,
		Channel:       raw.Channel,
		OccurredAt:    raw.Time.UTC().Format(time.RFC3339Nano),
		SourceEventID: raw.ID,
	}
}

// chat is a canonical chat as an event names it.
type chat struct{ id, raw, typ string }

// onChat is the label.added or label.removed event of l on c.
func onChat(raw derive.Raw, added bool, c chat, l label.Label) derive.Event {
	typ, action := label.TypeAdded, "added"
	if !added {
		typ, action = label.TypeRemoved, "removed"
	}
	kind, key := "id", l.ID
	if key == "" {
		kind, key = "name", l.Name
	}
	return derive.Event{
		ID:      derive.ID(raw.ID, derive.LabelChanged, action, c.id, kind, key),
		Stream:  derive.LabelChanged,
		Type:    typ,
		Subject: c.id,
		Chat:    c.id,
		Data: label.Data{
			Common:  common(raw),
			ChatRef: derive.ChatRef{ChatID: c.id, ChatIDRaw: c.raw, ChatType: c.typ},
			Label:   l,
		},
	}
}

// upserted is the label.created event of l, or label.updated when prev is set.
func upserted(raw derive.Raw, l label.Label, prev *label.Previous) derive.Event {
	typ := label.TypeCreated
	if prev != nil {
		typ = label.TypeUpdated
	}
	return derive.Event{
		ID:      derive.ID(raw.ID, derive.LabelChanged, "upsert", "id", l.ID),
		Stream:  derive.LabelChanged,
		Type:    typ,
		Subject: raw.Subject,
		Data:    label.Data{Common: common(raw), Label: l, Previous: prev},
	}
}

// deleted is the label.deleted event of a deletion named by refKind
// ("id" or "name") and ref.
func deleted(raw derive.Raw, refKind, ref string, l label.Label) derive.Event {
	return derive.Event{
		ID:      derive.ID(raw.ID, derive.LabelChanged, "deleted", refKind, ref),
		Stream:  derive.LabelChanged,
		Type:    label.TypeDeleted,
		Subject: raw.Subject,
		Data:    label.Data{Common: common(raw), Label: l},
	}
}
