// Package call derives the call stream: io.wahook.call.offered, .missed,
// .accepted, .rejected and .ended, one per call state change a provider
// reports, with the provider's own word for it in status. It keeps no state.
// A state told twice by one provider (fact.Call.PerCall) derives one id for
// the call, whichever raw event tells it.
//
// The chat fields name the call's chat when the provider gives one (else the
// caller); a call the provider tells by id alone (WAHA call.accepted) has no
// chat fields and keeps its raw event's subject. A chat id of a kind chatid
// does not recognise has no chat_type.
package call

import (
	"context"
	"fmt"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/chatid"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/fact"
)

// Event types of the call stream.
const (
	TypeOffered  = derive.TypePrefix + "call." + fact.CallOffered
	TypeMissed   = derive.TypePrefix + "call." + fact.CallMissed
	TypeAccepted = derive.TypePrefix + "call." + fact.CallAccepted
	TypeRejected = derive.TypePrefix + "call." + fact.CallRejected
	TypeEnded    = derive.TypePrefix + "call." + fact.CallEnded
)

var types = map[string]string{
	fact.CallOffered:  TypeOffered,
	fact.CallMissed:   TypeMissed,
	fact.CallAccepted: TypeAccepted,
	fact.CallRejected: TypeRejected,
	fact.CallEnded:    TypeEnded,
}

// Data is the data of every call event.
type Data struct {
	derive.Common
	derive.ChatRef
	CallID string `json:"call_id"`
	// From is the caller's canonical id, when the provider tells it.
	From      string `json:"from,omitempty"`
	Video     bool   `json:"video"`
	GroupCall bool   `json:"group_call"`
	// Status is the provider's own word, e.g. "ringing", "CALL_MISSED_VIDEO".
	Status string `json:"status"`
}

// Deriver derives the call stream. Aliases, when set, learns the LID↔phone
// pairs of each raw event before deriving, and gives a one-to-one call
// whose chat is a …@lid the phone-number form learnt for it.
type Deriver struct {
	Aliases derive.AliasRegistry
}

var _ derive.Deriver = Deriver{}

// Stream is derive.Call.
func (Deriver) Stream() string { return derive.Call }

// Derive returns one event per call fact.
func (d Deriver) Derive(ctx context.Context, raw derive.Raw, f fact.Facts) ([]derive.Event, error) {
	if err := derive.LearnAliases(ctx, d.Aliases, raw, f.Aliases); err != nil {
		return nil, fmt.Errorf("call: %w", err)
	}
	if len(f.Calls) == 0 {
		return nil, nil
	}
	common := derive.NewCommon(raw)
	out := make([]derive.Event, 0, len(f.Calls))
	seen := make(map[string]bool, len(f.Calls))
	for _, c := range f.Calls {
		typ, ok := types[c.State]
		if !ok || c.CallID == "" {
			return nil, broker.Permanent(fmt.Errorf("call: call fact of %s has state %q and id %q", raw.ID, c.State, c.CallID))
		}
		chatRaw := c.Chat
		if chatRaw == "" {
			chatRaw = c.From
		}
		chat, ct := chatid.Canonical(chatRaw)
		base := raw.ID
		if c.PerCall {
			// Not the raw event's id: every raw event of this call in
			// this state derives the same id, which subscribers and
			// the broker's duplicate window drop after the first.
			base = "call\x00" + raw.Provider + "\x00" + raw.Channel
		}
		id := derive.ID(base, derive.Call, "call."+c.State, c.CallID, chat)
		if seen[id] {
			continue
		}
		seen[id] = true
		data := Data{
			Common:    common,
			CallID:    c.CallID,
			From:      chatid.ID(c.From),
			Video:     c.Video,
			GroupCall: c.Group,
			// The provider's own word; the state stands in when it
			// gives none, since status is required.
			Status: c.Status,
		}
		if data.Status == "" {
			data.Status = c.State
		}
		subject := raw.Subject
		if chat != "" {
			data.ChatRef = derive.ChatRef{ChatID: chat, ChatIDRaw: chatRaw, ChatType: string(ct)}
			// A one-to-one call with a LID gets the contact's phone
			// form, as its messages do; the id above keeps the LID.
			if phone, pt := chatid.Canonical(c.ChatPhone); ct == chatid.LID && pt == chatid.Contact {
				data.ChatRef = derive.ChatRef{ChatID: phone, ChatIDRaw: c.ChatPhone, ChatType: string(pt), ChatLID: chat}
				chat = phone
			} else if ct == chatid.LID && !c.Group {
				// Else the phone form learnt for it, if any.
				phone, err := derive.PhoneOf(ctx, d.Aliases, raw, chat)
				if err != nil {
					return nil, fmt.Errorf("call: %w", err)
				}
				if phone != "" {
					data.ChatRef = derive.PhoneForm(data.ChatRef, phone)
					chat = phone
				}
			}
			subject = chat
		}
		out = append(out, derive.Event{ID: id, Stream: derive.Call, Type: typ, Subject: subject, Chat: chat, Data: data})
	}
	return out, nil
}
