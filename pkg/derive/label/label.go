// Package label derives the label-changed stream: labels put on and taken
// off chats (io.wahook.label.added, io.wahook.label.removed) and labels
// created, updated and deleted (io.wahook.label.created, .updated, .deleted).
//
// A chat's label lists before and after a change (Whapi chats.patch) give one
// event per label that is on one side only, compared by id, or by name when
// either side lacks the id; labels on both sides give none. Each side's
// events are sorted by label id, then name, additions first.
//
// Whether an upsert created or updated a label, and which label a deletion by
// name meant, are told by the LabelRegistry; the event ids never depend on
// it (an upsert's id is the same whether it turns out created or updated), so
// reprocessing a raw event yields the same ids. A deletion by a name the
// registry does not know has label.name and no label.id. The registry also
// fills in the name and colour of a label put on a chat by id alone; that is
// informative only.
//
// A label event about a chat has the chat fields, its subject and partition
// are that chat (a Z-API CHAT_LABEL_ASSOCIATION names chats other than its
// raw event's); created, updated and deleted have no chat and keep the raw
// event's subject. A chat id of a kind chatid does not recognise has no
// chat_type.
package label

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/chatid"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/fact"
)

// Event types of the label-changed stream.
const (
	TypeAdded   = derive.TypePrefix + "label.added"
	TypeRemoved = derive.TypePrefix + "label.removed"
	TypeCreated = derive.TypePrefix + "label.created"
	TypeUpdated = derive.TypePrefix + "label.updated"
	TypeDeleted = derive.TypePrefix + "label.deleted"
)

// Data is the data of every label-changed event.
type Data struct {
	derive.Common
	derive.ChatRef
	Label Label `json:"label"`
	// Previous is set on label.updated only.
	Previous *Previous `json:"previous,omitempty"`
}

// Label is a label as far as it is known; ID is empty only for a deletion by
// an unknown name, or a chat's label the provider listed by name alone.
type Label struct {
	ID       string `json:"id,omitempty"`
	Name     string `json:"name,omitempty"`
	Color    string `json:"color,omitempty"`
	ColorHex string `json:"color_hex,omitempty"`
}

// Previous is a label before an update.
type Previous struct {
	Name  string `json:"name,omitempty"`
	Color string `json:"color,omitempty"`
}

// Deriver derives the label-changed stream. Registry is required for label
// upserts and deletions; without it those fail and label assignments go
// without the names it would fill in.
//
// Aliases, when set, learns the LID↔phone pairs of each raw event before
// deriving, and gives a chat that is a …@lid the phone-number form learnt
// for it (chat_lid the LID; the event id still hashes the LID). Only such
// chats cost a lookup.
type Deriver struct {
	Registry derive.LabelRegistry
	Aliases  derive.AliasRegistry
}

var _ derive.Deriver = Deriver{}

// Stream is derive.LabelChanged.
func (Deriver) Stream() string { return derive.LabelChanged }

// errNoRegistry is not permanent: the event is fine, the deployment is not.
var errNoRegistry = errors.New("label: no label registry configured")

// Derive returns the label events of one raw event's facts.
func (d Deriver) Derive(ctx context.Context, raw derive.Raw, f fact.Facts) ([]derive.Event, error) {
	if err := derive.LearnAliases(ctx, d.Aliases, raw, f.Aliases); err != nil {
		return nil, fmt.Errorf("label: %w", err)
	}
	b := builder{raw: raw, common: derive.NewCommon(raw)}
	for _, s := range f.LabelSets {
		if err := b.diff(s); err != nil {
			return nil, err
		}
	}
	for _, a := range f.LabelAssocs {
		if err := d.assoc(ctx, &b, a); err != nil {
			return nil, err
		}
	}
	for _, l := range f.LabelUpserts {
		if err := d.upsert(ctx, &b, l); err != nil {
			return nil, err
		}
	}
	for _, ref := range f.LabelDeletes {
		if err := d.delete(ctx, &b, ref); err != nil {
			return nil, err
		}
	}
	if err := d.phoneForms(ctx, b.events, raw); err != nil {
		return nil, err
	}
	return b.events, nil
}

// phoneForms gives the events about a …@lid chat the phone-number form
// learnt for it.
func (d Deriver) phoneForms(ctx context.Context, events []derive.Event, raw derive.Raw) error {
	if d.Aliases == nil {
		return nil
	}
	var phones map[string]string
	for i := range events {
		data := events[i].Data.(Data)
		if data.ChatType != string(chatid.LID) {
			continue
		}
		phone, ok := phones[data.ChatID]
		if !ok {
			var err error
			if phone, err = derive.PhoneOf(ctx, d.Aliases, raw, data.ChatID); err != nil {
				return fmt.Errorf("label: %w", err)
			}
			if phones == nil {
				phones = map[string]string{}
			}
			phones[data.ChatID] = phone
		}
		if phone == "" {
			continue
		}
		data.ChatRef = derive.PhoneForm(data.ChatRef, phone)
		events[i].Data, events[i].Subject, events[i].Chat = data, phone, phone
	}
	return nil
}

// builder collects one raw event's label events, dropping repeats (the same
// label twice in one list, or in a list and an association).
type builder struct {
	raw    derive.Raw
	common derive.Common
	events []derive.Event
}

// add appends an event with id, about chat when chat is set. Events are
// few, so repeats are found by a scan rather than a map.
func (b *builder) add(id, typ, chat, chatRaw string, ct chatid.Type, l Label, prev *Previous) {
	for i := range b.events {
		if b.events[i].ID == id {
			return
		}
	}
	data := Data{Common: b.common, Label: l, Previous: prev}
	subject := b.raw.Subject
	if chat != "" {
		data.ChatRef = derive.ChatRef{ChatID: chat, ChatIDRaw: chatRaw, ChatType: string(ct)}
		subject = chat
	}
	b.events = append(b.events, derive.Event{
		ID:      id,
		Stream:  derive.LabelChanged,
		Type:    typ,
		Subject: subject,
		Chat:    chat,
		Data:    data,
	})
}

// id is the id of a label event: the stream and the parts that tell this
// raw event's label events apart, never what the registry said.
func (b *builder) id(parts ...string) string {
	return derive.ID(b.raw.ID, parts...)
}

// ref names a label in ids: by id, else by name, so that an id and a name
// that happen to be equal never collide.
func ref(id, name string) (string, string) {
	if id != "" {
		return "id", id
	}
	return "name", name
}

// same reports whether two list entries are one label: equal ids, or equal
// names when either lacks its id.
func same(a, b fact.Label) bool {
	if a.ID != "" && b.ID != "" {
		return a.ID == b.ID
	}
	return a.Name != "" && a.Name == b.Name
}

// only returns the labels of from that are not in other, once each, sorted.
func only(from, other []fact.Label) []fact.Label {
	var out []fact.Label
	for _, l := range from {
		in := func(o fact.Label) bool { return same(l, o) }
		if !slices.ContainsFunc(other, in) && !slices.ContainsFunc(out, in) {
			out = append(out, l)
		}
	}
	slices.SortFunc(out, func(a, b fact.Label) int {
		if c := compareIDs(a.ID, b.ID); c != 0 {
			return c
		}
		return cmp.Compare(a.Name, b.Name)
	})
	return out
}

// compareIDs orders numeric ids by value ("9" before "10"), others as text.
func compareIDs(a, b string) int {
	if digits(a) && digits(b) && len(a) != len(b) {
		return cmp.Compare(len(a), len(b))
	}
	return cmp.Compare(a, b)
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func (b *builder) diff(s fact.LabelSet) error {
	chat, ct := chatid.Canonical(s.Chat)
	if chat == "" {
		return broker.Permanent(fmt.Errorf("label: label set of %s names no chat", b.raw.ID))
	}
	if !named(s.Before) || !named(s.After) {
		return broker.Permanent(fmt.Errorf("label: label set of %s has a label without id or name", b.raw.ID))
	}
	for _, l := range only(s.After, s.Before) {
		kind, key := ref(l.ID, l.Name)
		b.add(b.id(derive.LabelChanged, "added", chat, kind, key), TypeAdded, chat, s.Chat, ct, labelOf(l), nil)
	}
	for _, l := range only(s.Before, s.After) {
		kind, key := ref(l.ID, l.Name)
		b.add(b.id(derive.LabelChanged, "removed", chat, kind, key), TypeRemoved, chat, s.Chat, ct, labelOf(l), nil)
	}
	return nil
}

// named reports whether every label has an id or a name.
func named(ls []fact.Label) bool {
	for _, l := range ls {
		if l.ID == "" && l.Name == "" {
			return false
		}
	}
	return true
}

func (d Deriver) assoc(ctx context.Context, b *builder, a fact.LabelAssoc) error {
	chat, ct := chatid.Canonical(a.Chat)
	if chat == "" || a.Label.ID == "" {
		return broker.Permanent(fmt.Errorf("label: label association of %s lacks its chat or label id", b.raw.ID))
	}
	l := a.Label
	if d.Registry != nil && (l.Name == "" || (l.Color == "" && l.ColorHex == "")) {
		known, ok, err := d.Registry.Lookup(ctx, b.raw.Provider, b.raw.Channel, l.ID)
		if err != nil {
			return fmt.Errorf("label: look up label %s: %w", l.ID, err)
		}
		if ok && l.Name == "" {
			l.Name = known.Name
		}
		if ok && l.Color == "" && l.ColorHex == "" {
			l.Color, l.ColorHex = known.Color, known.ColorHex
		}
	}
	typ, action := TypeAdded, "added"
	if !a.Assigned {
		typ, action = TypeRemoved, "removed"
	}
	// Same id parts as a label list's difference: both mean this label on
	// this chat.
	b.add(b.id(derive.LabelChanged, action, chat, "id", a.Label.ID), typ, chat, a.Chat, ct, labelOf(l), nil)
	return nil
}

func (d Deriver) upsert(ctx context.Context, b *builder, l fact.Label) error {
	if l.ID == "" {
		return broker.Permanent(fmt.Errorf("label: label upsert of %s has no label id", b.raw.ID))
	}
	if d.Registry == nil {
		return errNoRegistry
	}
	created, prev, err := d.Registry.Upsert(ctx, b.raw.Provider, b.raw.Channel, l, b.raw.ID)
	if err != nil {
		return fmt.Errorf("label: upsert label %s: %w", l.ID, err)
	}
	// The id says "upsert", not created or updated: that is learnt from
	// the registry, and ids must not depend on state.
	id := b.id(derive.LabelChanged, "upsert", "id", l.ID)
	if created {
		b.add(id, TypeCreated, "", "", chatid.Unknown, labelOf(l), nil)
		return nil
	}
	b.add(id, TypeUpdated, "", "", chatid.Unknown, labelOf(l), &Previous{Name: prev.Name, Color: color(prev)})
	return nil
}

func (d Deriver) delete(ctx context.Context, b *builder, r fact.LabelRef) error {
	if r.ID == "" && r.Name == "" {
		return broker.Permanent(fmt.Errorf("label: label deletion of %s names no label", b.raw.ID))
	}
	if d.Registry == nil {
		return errNoRegistry
	}
	l, known, err := d.Registry.Delete(ctx, b.raw.Provider, b.raw.Channel, r, b.raw.ID)
	if err != nil {
		return fmt.Errorf("label: delete label %s: %w", cmp.Or(r.ID, r.Name), err)
	}
	if !known {
		l = fact.Label{}
	}
	// What the provider said wins over the registry's memory.
	l.ID, l.Name = cmp.Or(r.ID, l.ID), cmp.Or(r.Name, l.Name)
	kind, key := ref(r.ID, r.Name)
	b.add(b.id(derive.LabelChanged, "deleted", kind, key), TypeDeleted, "", "", chatid.Unknown, labelOf(l), nil)
	return nil
}

// labelOf is a label's data; color_hex only when it is a hex colour.
func labelOf(l fact.Label) Label {
	out := Label{ID: l.ID, Name: l.Name, Color: l.Color}
	if hexColor(l.ColorHex) {
		out.ColorHex = l.ColorHex
	}
	return out
}

// color is a label's colour, its hex form when it has no other.
func color(l fact.Label) string { return cmp.Or(l.Color, l.ColorHex) }

// hexColor reports "#RGB", "#RRGGBB" or "#RRGGBBAA".
func hexColor(s string) bool {
	if (len(s) != 4 && len(s) != 7 && len(s) != 9) || s[0] != '#' {
		return false
	}
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return false
		}
	}
	return true
}
