// Package group derives the group-notification stream: io.wahook.group.{change}
// for every group change a provider reports (created, deleted, joined,
// participants.added, .removed, .left, .promoted, .demoted, subject.changed,
// description.changed, icon.changed, settings.changed, join.requested,
// join.revoked, join.rejected). It keeps no state.
//
// The chat fields name the group; participants and actor are canonical ids,
// participants always present (possibly empty), in the provider's order
// without repeats. subject.changed and description.changed always carry the
// new value, "" when it was cleared; other changes carry them only when the
// provider gives them. A group id of a kind chatid does not recognise has no
// chat_type.
package group

import (
	"context"
	"fmt"
	"strconv"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/chatid"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/fact"
)

// TypePrefix starts every group event type; the change follows.
const TypePrefix = derive.TypePrefix + "group."

// Data is the data of every group event.
type Data struct {
	derive.Common
	derive.ChatRef
	Participants  []string `json:"participants"`
	Actor         string   `json:"actor,omitempty"`
	Subject       *string  `json:"subject,omitempty"`
	Description   *string  `json:"description,omitempty"`
	Setting       *Setting `json:"setting,omitempty"`
	RequestMethod string   `json:"request_method,omitempty"`
}

// Setting is a group setting's new value.
type Setting struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Deriver derives the group-notification stream.
type Deriver struct {
	// Aliases, when set, learns the LID↔phone pairs of each raw event
	// (group members' ids beside their phone-number ids); participants
	// stay as given.
	Aliases derive.AliasRegistry
}

var _ derive.Deriver = Deriver{}

// Stream is derive.GroupNotification.
func (Deriver) Stream() string { return derive.GroupNotification }

// Derive returns one event per group change.
func (d Deriver) Derive(ctx context.Context, raw derive.Raw, f fact.Facts) ([]derive.Event, error) {
	if err := derive.LearnAliases(ctx, d.Aliases, raw, f.Aliases); err != nil {
		return nil, fmt.Errorf("group: %w", err)
	}
	if len(f.Groups) == 0 {
		return nil, nil
	}
	common := derive.NewCommon(raw)
	out := make([]derive.Event, 0, len(f.Groups))
	seen := make(map[string]bool, len(f.Groups))
	for _, g := range f.Groups {
		chat, ct := chatid.Canonical(g.Chat)
		if chat == "" || g.Change == "" || (g.Setting != nil && g.Setting.Name == "") {
			return nil, broker.Permanent(fmt.Errorf("group: group fact of %s has group %q and change %q", raw.ID, g.Chat, g.Change))
		}
		parts := []string{derive.GroupNotification, g.Change, chat}
		if g.Setting != nil {
			parts = append(parts, g.Setting.Name)
		}
		id := derive.ID(raw.ID, parts...)
		// Two alike changes of one group in one raw event stay apart by
		// their place, which is the same on every reprocessing.
		for n := 2; seen[id]; n++ {
			id = derive.ID(raw.ID, append(parts, "#"+strconv.Itoa(n))...)
		}
		seen[id] = true
		data := Data{
			Common:        common,
			ChatRef:       derive.ChatRef{ChatID: chat, ChatIDRaw: g.Chat, ChatType: string(ct)},
			Participants:  participants(g.Participants),
			Actor:         chatid.ID(g.Actor),
			Subject:       text(g.Subject, g.Change == fact.GroupSubjectChanged),
			Description:   text(g.Description, g.Change == fact.GroupDescriptionChanged),
			RequestMethod: g.RequestMethod,
		}
		if g.Setting != nil {
			data.Setting = &Setting{Name: g.Setting.Name, Value: g.Setting.Value}
		}
		out = append(out, derive.Event{
			ID:      id,
			Stream:  derive.GroupNotification,
			Type:    TypePrefix + g.Change,
			Subject: chat,
			Chat:    chat,
			Data:    data,
		})
	}
	return out, nil
}

// participants canonicalises ids, dropping empty ones and repeats (one
// member written as "123@c.us" and "123").
func participants(ids []string) []string {
	out := make([]string, 0, len(ids))
	seen := make(map[string]bool, len(ids))
	for _, p := range ids {
		id := chatid.ID(p)
		if id == "" || seen[id] {
			continue
		}
		seen[id] = true
		out = append(out, id)
	}
	return out
}

// text is s, or nothing when s is empty and not the change's point.
func text(s string, always bool) *string {
	if s == "" && !always {
		return nil
	}
	return &s
}
