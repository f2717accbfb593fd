package console

import (
	"context"
	"slices"
	"time"

	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/eventlog"
	"github.com/wahook/wahook/pkg/state"
)

// ChatLookup tells what a chat registry knows of a chat (natsstate.Chats,
// kafkastate.Chats): the raw event that first saw it, and when.
type ChatLookup interface {
	Lookup(ctx context.Context, provider, channel, chat string) (c state.Chat, known bool, err error)
}

// AliasLookup finds a contact's other id, hidden (…@lid) or phone number,
// as derive.AliasRegistry does.
type AliasLookup interface {
	Lookup(ctx context.Context, provider, channel, id string) (other string, ok bool, err error)
}

// maxChatChannels bounds the channels whose registries a chat page reads:
// two lookups and an alias lookup each.
const maxChatChannels = 8

// sighting is a chat's first sighting as a chat registry records it.
type sighting struct {
	state.Chat
	Provider, Channel string
	// Form is the chat id the registry knows it under: the page's chat or
	// its other form.
	Form string
	// Range is the smallest event page range that reaches back to it.
	Range string
}

func (c *Console) chats() ChatLookup {
	if c.cfg.Chats == nil {
		return nil
	}
	return c.cfg.Chats()
}

func (c *Console) aliases() AliasLookup {
	if c.cfg.Aliases == nil {
		return nil
	}
	return c.cfg.Aliases()
}

// chatChannels returns the channels to read the registries of: the one the
// filters name, else to with those of the events found added, at most
// maxChatChannels in all.
func chatChannels(f filters, recs []eventlog.Record, to []state.ProviderChannel) []state.ProviderChannel {
	if f.Provider != "" && f.Channel != "" {
		return []state.ProviderChannel{{Provider: f.Provider, Channel: f.Channel}}
	}
	for _, rec := range recs {
		if len(to) >= maxChatChannels {
			break
		}
		pc := state.ProviderChannel{Provider: eventlog.Extension(rec.Event, envelope.ExtProvider), Channel: eventlog.Extension(rec.Event, envelope.ExtChannel)}
		if pc.Provider == "" || f.Provider != "" && pc.Provider != f.Provider || slices.Contains(to, pc) {
			continue
		}
		to = append(to, pc)
	}
	return to
}

// otherForms records in known chat's other form in each of channels not
// in it yet: "" where the alias registry knows none (nil reg: reads
// nothing).
func otherForms(ctx context.Context, reg AliasLookup, chat string, channels []state.ProviderChannel, known map[state.ProviderChannel]string) error {
	if reg == nil {
		return nil
	}
	for _, pc := range channels {
		if _, done := known[pc]; done {
			continue
		}
		other, ok, err := reg.Lookup(ctx, pc.Provider, pc.Channel, chat)
		if err != nil {
			return err
		}
		if !ok {
			other = ""
		}
		known[pc] = other
	}
	return nil
}

// firstSighting returns the earliest first sighting the chat registry
// records of chat, or of its other form in forms, in channels: false when
// it knows none.
func firstSighting(ctx context.Context, reg ChatLookup, chat string, channels []state.ProviderChannel, forms map[state.ProviderChannel]string, now time.Time) (sighting, bool, error) {
	var best sighting
	found := false
	for _, pc := range channels {
		for _, form := range []string{chat, forms[pc]} {
			if form == "" {
				continue
			}
			c, known, err := reg.Lookup(ctx, pc.Provider, pc.Channel, form)
			if err != nil {
				return sighting{}, false, err
			}
			if known && (!found || c.FirstSeenAt.Before(best.FirstSeenAt)) {
				best, found = sighting{Chat: c, Provider: pc.Provider, Channel: pc.Channel, Form: form}, true
			}
		}
	}
	if found {
		best.Range = rangeSince(now.Sub(best.FirstSeenAt))
	}
	return best, found, nil
}

// rangeSince is the shortest range reaching back d, with a minute to
// spare for the click; the longest when none does.
func rangeSince(d time.Duration) string {
	d += time.Minute
	short, long := -1, 0
	for i, rg := range ranges {
		if rg.D >= d && (short < 0 || rg.D < ranges[short].D) {
			short = i
		}
		if rg.D > ranges[long].D {
			long = i
		}
	}
	if short < 0 {
		return ranges[long].Name
	}
	return ranges[short].Name
}
