// Package chat derives the chat-created stream (io.wahook.chat.created).
//
// A chat the provider reports as new (Whapi chats.post and groups.post, WAHA
// group.v2.join, Evolution groups.upsert, and Evolution chats.upsert when the
// chat was not seen before, since Evolution re-sends known chats) is created
// with inferred false. Providers without such
// events (by default every provider but Whapi) get an inferred creation
// (inferred true) the first time a chat is seen in a message or
// notification; the ChatRegistry tells the first sighting, and it learns of
// explicitly created chats too so that their first message infers nothing.
//
// The event id is derived from the raw event and the canonical chat only, the
// same for an explicit and an inferred creation, so reprocessing yields the
// same id whatever the registry answered. Chats whose canonical id is empty
// or status@broadcast (stories) are skipped. A chat id of a kind chatid does
// not recognise has no chat_type.
//
// A contact seen with both its phone-number id and its hidden (…@lid) id
// gets chat_id in the phone form and chat_lid; both forms are recorded as
// seen, so a later event giving only the LID infers nothing, and a chat
// first seen under one form is not created again when both are given. A
// chat given in one form whose other form was learnt as an alias (from any
// payload giving both) is created only when neither form was seen, and a
// …@lid one then gets chat_id in the phone form and chat_lid; the event id
// still hashes the form given. Markers in the registry (see learntForm)
// keep that decision when the raw event is derived again after the alias
// was learnt, and make two events seeing the two forms at once create the
// contact once.
package chat

import (
	"context"
	"errors"
	"fmt"

	"github.com/wahook/wahook/pkg/chatid"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/fact"
)

// Type is the CloudEvent type of the chat-created stream.
const Type = derive.TypePrefix + "chat.created"

// statusChat is WhatsApp's stories pseudo-chat, which nobody opens.
const statusChat = "status@broadcast"

// Data is the data of io.wahook.chat.created.
type Data struct {
	derive.Common
	derive.ChatRef
	Inferred  bool   `json:"inferred"`
	Name      string `json:"name,omitempty"`
	Direction string `json:"direction,omitempty"`
}

// Deriver derives the chat-created stream. Registry is required. A chat
// seen (fact.Facts.ChatsSeen) is created on first sight whatever the
// provider: a provider that announces new chats itself (Whapi's chats.post)
// reports chats created, not seen, so nothing of it is inferred. Aliases,
// when set, learns the LID↔phone pairs of each raw event before its chats
// are derived, and ties a chat given in one form to its other.
type Deriver struct {
	Registry derive.ChatRegistry
	Aliases  derive.AliasRegistry
}

var _ derive.Deriver = Deriver{}

// Stream is derive.ChatCreated.
func (Deriver) Stream() string { return derive.ChatCreated }

// errNoRegistry is not permanent: the event is fine, the deployment is not.
var errNoRegistry = errors.New("chat: no chat registry configured")

// Derive returns the chat creations one raw event tells or implies.
func (d Deriver) Derive(ctx context.Context, raw derive.Raw, f fact.Facts) ([]derive.Event, error) {
	if err := derive.LearnAliases(ctx, d.Aliases, raw, f.Aliases); err != nil {
		return nil, fmt.Errorf("chat: %w", err)
	}
	if len(f.ChatsCreated) == 0 && len(f.ChatsSeen) == 0 {
		return nil, nil
	}
	if d.Registry == nil {
		return nil, errNoRegistry
	}
	r := run{d: d, ctx: ctx, raw: raw, common: derive.NewCommon(raw), done: map[string]bool{}}
	for _, c := range f.ChatsCreated {
		if err := r.created(c); err != nil {
			return nil, err
		}
	}
	for _, c := range f.ChatsSeen {
		if err := r.seen(c); err != nil {
			return nil, err
		}
	}
	return r.out, nil
}

// run is the derivation of one raw event: done holds the canonical forms
// it has recorded already, so that none is recorded or created twice.
type run struct {
	d      Deriver
	ctx    context.Context
	raw    derive.Raw
	common derive.Common
	done   map[string]bool
	out    []derive.Event
}

// first records chat as seen and reports whether this raw event saw it
// first.
func (r *run) first(chat string) (bool, error) {
	first, err := r.d.Registry.FirstSeen(r.ctx, r.raw.Provider, r.raw.Channel, chat, r.raw.ID)
	if err != nil {
		return false, fmt.Errorf("chat: record chat %s: %w", chat, err)
	}
	return first, nil
}

// created derives a chat the provider says is new.
func (r *run) created(c fact.ChatCreated) error {
	chat, typ := chatid.Canonical(c.Chat)
	if chat == "" || chat == statusChat || r.done[chat] {
		return nil
	}
	r.done[chat] = true
	// Only so that a later message does not infer the chat again; the
	// provider has said it is new either way.
	first, err := r.first(chat)
	if err != nil {
		return err
	}
	ref := derive.ChatRef{ChatID: chat, ChatIDRaw: c.Chat, ChatType: string(typ)}
	phone, err := derive.PhoneOf(r.ctx, r.d.Aliases, r.raw, chat)
	if err != nil {
		return fmt.Errorf("chat: %w", err)
	}
	if phone != "" && !r.done[phone] {
		r.done[phone] = true
		firstPhone, err := r.first(phone)
		if err != nil {
			return err
		}
		first = first && firstPhone
		ref = derive.PhoneForm(ref, phone)
	} else if first && r.tied(typ) {
		// Created alone: the first event of its other form, once
		// an alias ties them, must not create the contact again.
		if _, err := r.first(aloneMarker(chat)); err != nil {
			return err
		}
	}
	if c.Repeated && !first {
		return nil
	}
	r.out = append(r.out, event(r.raw, r.common, chat, ref, false, c.Name, c.Direction))
	return nil
}

// seen derives the inferred creation of a chat a message or notification
// was seen in, when no form of its contact was seen before.
func (r *run) seen(c fact.ChatSeen) error {
	chat, typ := chatid.Canonical(c.Chat)
	if chat == "" || chat == statusChat || r.done[chat] {
		return nil
	}
	r.done[chat] = true
	ref := derive.ChatRef{ChatID: chat, ChatIDRaw: c.Chat, ChatType: string(typ)}
	lid := lidOf(c.LID, typ)
	if lid != "" && r.done[lid] {
		return nil
	}
	firstLID := true
	if lid != "" {
		r.done[lid] = true
		// The LID is recorded as seen too, so that a later event giving
		// only the LID infers nothing; a chat first seen under either form
		// is not created again under the other.
		var err error
		if firstLID, err = r.first(lid); err != nil {
			return err
		}
		ref.ChatLID = lid
	}
	first, err := r.first(chat)
	if err != nil || !first || !firstLID {
		return err
	}
	if lid == "" {
		var ok bool
		if ref, ok, err = r.learntForm(ref, chat, typ); err != nil || !ok {
			return err
		}
	}
	r.out = append(r.out, event(r.raw, r.common, chat, ref, true, c.Name, c.Direction))
	return nil
}

// learntForm decides the creation of a contact's chat given in one form,
// which this raw event saw first, against the other form learnt for it:
// ok is false when another event creates the contact. Only new chats pay
// the lookup.
//
// The answer must not change when the raw event is derived again with an
// alias learnt since, nor when the two forms are first seen at once by two
// events (two partitions, or a redelivery racing the other form): so
// besides the forms themselves it records, with the registry's
// first-event rule, two markers. alone(X) is claimed by the event that
// saw X first and knew no alias (it creates when it gets it), or by the
// first event of the other form, to stop that; contact(LID) is claimed by
// the events that each saw one form first knowing the alias, and the one
// that gets it creates.
func (r *run) learntForm(ref derive.ChatRef, chat string, typ chatid.Type) (derive.ChatRef, bool, error) {
	if !r.tied(typ) {
		return ref, true, nil
	}
	other, err := derive.OtherForm(r.ctx, r.d.Aliases, r.raw, chat)
	if err != nil {
		return ref, false, fmt.Errorf("chat: %w", err)
	}
	if other == "" {
		ok, err := r.first(aloneMarker(chat))
		return ref, ok, err
	}
	if r.done[other] {
		return ref, false, nil
	}
	r.done[other] = true
	firstOther, err := r.first(other)
	if err != nil {
		return ref, false, err
	}
	if !firstOther {
		lid := chat
		if typ != chatid.LID {
			lid = other
		}
		// The other form's first event created the contact when it
		// knew no alias and got its marker; else this event and it
		// (when it knew the alias too) race for the contact.
		for _, m := range [...]string{aloneMarker(other), contactMarker(lid)} {
			if ok, err := r.first(m); err != nil || !ok {
				return ref, false, err
			}
		}
	}
	if typ == chatid.LID {
		return derive.PhoneForm(ref, other), true, nil
	}
	ref.ChatLID = other
	return ref, true, nil
}

// tied reports whether a chat of type typ may have an alias to decide.
func (r *run) tied(typ chatid.Type) bool {
	return r.d.Aliases != nil && (typ == chatid.LID || typ == chatid.Contact)
}

// aloneMarker and contactMarker are the registry ids of learntForm's
// markers: a canonical …@lid or phone-number id has no ':' before its '@',
// so no chat has these ids.
func aloneMarker(form string) string  { return "alone:" + form }
func contactMarker(lid string) string { return "contact:" + lid }

// lidOf returns the canonical form of lid when it is a hidden id given
// beside a contact's phone-number id, else "".
func lidOf(lid string, chatType chatid.Type) string {
	if chatType != chatid.Contact {
		return ""
	}
	if id, typ := chatid.Canonical(lid); typ == chatid.LID {
		return id
	}
	return ""
}

// event returns the creation of ref's chat; its id hashes idChat, the
// canonical form the raw event gave (the phone form when it gave both), so
// that an alias learnt later does not change it.
func event(raw derive.Raw, common derive.Common, idChat string, ref derive.ChatRef, inferred bool, name, direction string) derive.Event {
	if direction != fact.Incoming && direction != fact.Outgoing {
		direction = ""
	}
	return derive.Event{
		ID:      derive.ID(raw.ID, derive.ChatCreated, "chat.created", idChat),
		Stream:  derive.ChatCreated,
		Type:    Type,
		Subject: ref.ChatID,
		Chat:    ref.ChatID,
		Data: Data{
			Common:    common,
			ChatRef:   ref,
			Inferred:  inferred,
			Name:      name,
			Direction: direction,
		},
	}
}
