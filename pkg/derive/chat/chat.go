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
// still hashes the form given.
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
	inferring := len(f.ChatsSeen) > 0
	if len(f.ChatsCreated) == 0 && !inferring {
		return nil, nil
	}
	if d.Registry == nil {
		return nil, errNoRegistry
	}
	common := derive.NewCommon(raw)
	var out []derive.Event
	done := map[string]bool{}
	seen := func(chat string) (bool, error) {
		first, err := d.Registry.FirstSeen(ctx, raw.Provider, raw.Channel, chat, raw.ID)
		if err != nil {
			return false, fmt.Errorf("chat: record chat %s: %w", chat, err)
		}
		return first, nil
	}
	for _, c := range f.ChatsCreated {
		chat, typ := chatid.Canonical(c.Chat)
		if chat == "" || chat == statusChat || done[chat] {
			continue
		}
		done[chat] = true
		// Only so that a later message does not infer the chat again;
		// the provider has said it is new either way.
		first, err := seen(chat)
		if err != nil {
			return nil, err
		}
		ref := derive.ChatRef{ChatID: chat, ChatIDRaw: c.Chat, ChatType: string(typ)}
		phone, err := derive.PhoneOf(ctx, d.Aliases, raw, chat)
		if err != nil {
			return nil, fmt.Errorf("chat: %w", err)
		}
		if phone != "" && !done[phone] {
			done[phone] = true
			firstPhone, err := seen(phone)
			if err != nil {
				return nil, err
			}
			first = first && firstPhone
			ref = derive.PhoneForm(ref, phone)
		}
		if c.Repeated && !first {
			continue
		}
		out = append(out, event(raw, common, chat, ref, false, c.Name, c.Direction))
	}
	if !inferring {
		return out, nil
	}
	for _, c := range f.ChatsSeen {
		chat, typ := chatid.Canonical(c.Chat)
		if chat == "" || chat == statusChat || done[chat] {
			continue
		}
		done[chat] = true
		ref := derive.ChatRef{ChatID: chat, ChatIDRaw: c.Chat, ChatType: string(typ)}
		lid := lidOf(c.LID, typ)
		if lid != "" && done[lid] {
			continue
		}
		firstLID := true
		if lid != "" {
			done[lid] = true
			// The LID is recorded as seen too, so that a later event giving
			// only the LID infers nothing; a chat first seen under either
			// form is not created again under the other.
			var err error
			if firstLID, err = seen(lid); err != nil {
				return nil, err
			}
			ref.ChatLID = lid
		}
		first, err := seen(chat)
		if err != nil {
			return nil, err
		}
		if !first || !firstLID {
			continue
		}
		if lid == "" {
			// A form never seen: its alias, when one was learnt, may have
			// been. Only new chats pay this lookup.
			other, err := derive.OtherForm(ctx, d.Aliases, raw, chat)
			if err != nil {
				return nil, fmt.Errorf("chat: %w", err)
			}
			if other != "" {
				if done[other] {
					continue
				}
				done[other] = true
				firstOther, err := seen(other)
				if err != nil {
					return nil, err
				}
				if !firstOther {
					continue
				}
				if typ == chatid.LID {
					ref = derive.PhoneForm(ref, other)
				} else {
					ref.ChatLID = other
				}
			}
		}
		out = append(out, event(raw, common, chat, ref, true, c.Name, c.Direction))
	}
	return out, nil
}

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
