package chat_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/chat"
	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/provider/waha"
	"github.com/wahook/wahook/pkg/provider/whapi"
	"github.com/wahook/wahook/pkg/provider/zapi"
)

func fixture(provider, name string) string {
	return filepath.Join("..", "..", "provider", provider, "testdata", name)
}

// created is the chat.created event of chat (canonical id, raw id, type).
func created(raw derive.Raw, id, idRaw, typ string, inferred bool, name, direction string) derive.Event {
	return derive.Event{
		ID:      derive.ID(raw.ID, derive.ChatCreated, "chat.created", id),
		Stream:  derive.ChatCreated,
		Type:    chat.Type,
		Subject: id,
		Chat:    id,
		Data: chat.Data{
			Common: derive.Common{
				Provider:      raw.Provider,
				Channel:       raw.Channel,
				OccurredAt:    raw.Time.UTC().Format(time.RFC3339Nano),
				SourceEventID: raw.ID,
			},
			ChatRef:   derive.ChatRef{ChatID: id, ChatIDRaw: idRaw, ChatType: typ},
			Inferred:  inferred,
			Name:      name,
			Direction: direction,
		},
	}
}

// withLID sets e's chat_lid.
func withLID(e derive.Event, lid string) derive.Event {
	d := e.Data.(chat.Data)
	d.ChatLID = lid
	e.Data = d
	return e
}

func TestStream(t *testing.T) {
	if got := (chat.Deriver{}).Stream(); got != derive.ChatCreated {
		t.Errorf("Stream() = %q, want %q", got, derive.ChatCreated)
	}
}

func TestDeriveFacts(t *testing.T) {
	raw := func(provider, id string) derive.Raw {
		return derive.Raw{ID: id, Provider: provider, Channel: "C1", Time: time.Date(2024, 4, 22, 13, 27, 33, 0, time.UTC)}
	}
	for name, tc := range map[string]struct {
		raws  []derive.Raw // derived in order, on one registry
		facts []fact.Facts
		want  func(raws []derive.Raw) []derive.Event
	}{
		"explicit creation, then a message in it infers nothing": {
			raws: []derive.Raw{raw("zapi", "r1"), raw("zapi", "r2")},
			facts: []fact.Facts{
				{ChatsCreated: []fact.ChatCreated{{Chat: "5544999999999", Name: "Ana", Direction: fact.Incoming}}},
				{ChatsSeen: []fact.ChatSeen{{Chat: "5544999999999@c.us"}}},
			},
			want: func(r []derive.Raw) []derive.Event {
				return []derive.Event{created(r[0], "5544999999999@s.whatsapp.net", "5544999999999", "contact", false, "Ana", "incoming")}
			},
		},
		"created and seen in one raw event: one explicit event": {
			raws: []derive.Raw{raw("waha", "r1")},
			facts: []fact.Facts{{
				ChatsCreated: []fact.ChatCreated{{Chat: "1234567890@g.us", Name: "Team"}},
				ChatsSeen:    []fact.ChatSeen{{Chat: "1234567890@g.us"}, {Chat: "11111111111@c.us", Direction: fact.Outgoing}, {Chat: "11111111111"}},
			}},
			want: func(r []derive.Raw) []derive.Event {
				return []derive.Event{
					created(r[0], "1234567890@g.us", "1234567890@g.us", "group", false, "Team", ""),
					created(r[0], "11111111111@s.whatsapp.net", "11111111111@c.us", "contact", true, "", "outgoing"),
				}
			},
		},
		"stories, empty ids and unknown directions": {
			raws: []derive.Raw{raw("zapi", "r1")},
			facts: []fact.Facts{{
				ChatsCreated: []fact.ChatCreated{{Chat: "status@broadcast"}, {Chat: "  "}},
				ChatsSeen:    []fact.ChatSeen{{Chat: "status@broadcast"}, {Chat: ""}, {Chat: "someone@example.org", Direction: "sideways"}},
			}},
			want: func(r []derive.Raw) []derive.Event {
				return []derive.Event{created(r[0], "someone@example.org", "someone@example.org", "", true, "", "")}
			},
		},
		"a chat seen is inferred whatever the provider": {
			raws:  []derive.Raw{raw("whapi", "r1")},
			facts: []fact.Facts{{ChatsSeen: []fact.ChatSeen{{Chat: "919984351847@s.whatsapp.net", Name: "Jonathan", Direction: fact.Incoming}}}},
			want: func(r []derive.Raw) []derive.Event {
				return []derive.Event{created(r[0], "919984351847@s.whatsapp.net", "919984351847@s.whatsapp.net", "contact", true, "Jonathan", "incoming")}
			},
		},
		"both forms, then the LID alone: one chat, phone form, LID kept": {
			raws: []derive.Raw{raw("evolution", "r1"), raw("evolution", "r2"), raw("evolution", "r3")},
			facts: []fact.Facts{
				{ChatsSeen: []fact.ChatSeen{{Chat: "5511988887777@s.whatsapp.net", LID: "27033333333333:4@lid", Direction: fact.Incoming}}},
				{ChatsSeen: []fact.ChatSeen{{Chat: "27033333333333@lid"}}},
				{ChatsSeen: []fact.ChatSeen{{Chat: "5511988887777@s.whatsapp.net"}}},
			},
			want: func(r []derive.Raw) []derive.Event {
				return []derive.Event{withLID(created(r[0], "5511988887777@s.whatsapp.net", "5511988887777@s.whatsapp.net", "contact", true, "", "incoming"), "27033333333333@lid")}
			},
		},
		"the LID alone, then both forms: the chat stays the LID one": {
			raws: []derive.Raw{raw("evolution", "r1"), raw("evolution", "r2"), raw("evolution", "r3")},
			facts: []fact.Facts{
				{ChatsSeen: []fact.ChatSeen{{Chat: "27033333333333@lid"}}},
				{ChatsSeen: []fact.ChatSeen{{Chat: "5511988887777@s.whatsapp.net", LID: "27033333333333@lid"}}},
				{ChatsSeen: []fact.ChatSeen{{Chat: "5511988887777@s.whatsapp.net"}}},
			},
			want: func(r []derive.Raw) []derive.Event {
				return []derive.Event{created(r[0], "27033333333333@lid", "27033333333333@lid", "lid", true, "", "")}
			},
		},
		"the phone form, then both forms: nothing new": {
			raws: []derive.Raw{raw("evolution", "r1"), raw("evolution", "r2"), raw("evolution", "r3")},
			facts: []fact.Facts{
				{ChatsSeen: []fact.ChatSeen{{Chat: "5511988887777@s.whatsapp.net"}}},
				{ChatsSeen: []fact.ChatSeen{{Chat: "5511988887777@s.whatsapp.net", LID: "27033333333333@lid"}}},
				{ChatsSeen: []fact.ChatSeen{{Chat: "27033333333333@lid"}}},
			},
			want: func(r []derive.Raw) []derive.Event {
				return []derive.Event{created(r[0], "5511988887777@s.whatsapp.net", "5511988887777@s.whatsapp.net", "contact", true, "", "")}
			},
		},
		"a LID beside a group is ignored": {
			raws:  []derive.Raw{raw("evolution", "r1")},
			facts: []fact.Facts{{ChatsSeen: []fact.ChatSeen{{Chat: "1234567890@g.us", LID: "27033333333333@lid"}}}},
			want: func(r []derive.Raw) []derive.Event {
				return []derive.Event{created(r[0], "1234567890@g.us", "1234567890@g.us", "group", true, "", "")}
			},
		},
		"chats are known per provider and channel": {
			raws: []derive.Raw{raw("zapi", "r1"), {ID: "r2", Provider: "zapi", Channel: "C2", Time: time.Date(2024, 4, 22, 13, 27, 33, 0, time.UTC)}, raw("waha", "r3")},
			facts: []fact.Facts{
				{ChatsSeen: []fact.ChatSeen{{Chat: "5544999999999"}}},
				{ChatsSeen: []fact.ChatSeen{{Chat: "5544999999999"}}},
				{ChatsSeen: []fact.ChatSeen{{Chat: "5544999999999@c.us"}}},
			},
			want: func(r []derive.Raw) []derive.Event {
				return []derive.Event{
					created(r[0], "5544999999999@s.whatsapp.net", "5544999999999", "contact", true, "", ""),
					created(r[1], "5544999999999@s.whatsapp.net", "5544999999999", "contact", true, "", ""),
					created(r[2], "5544999999999@s.whatsapp.net", "5544999999999@c.us", "contact", true, "", ""),
				}
			},
		},
	} {
		t.Run(name, func(t *testing.T) {
			d := chat.Deriver{Registry: derivetest.NewChatRegistry()}
			var got []derive.Event
			for i, r := range tc.raws {
				got = append(got, derivetest.Derive(t, d, derivetest.Input{Raw: r, Facts: tc.facts[i]})...)
			}
			derivetest.CheckSchema(t, got)
			if diff := cmp.Diff(tc.want(tc.raws), got); diff != "" {
				t.Errorf("Derive mismatch (-want +got):\n%s", diff)
			}
			// Reprocessing every raw event answers the same.
			var again []derive.Event
			for i, r := range tc.raws {
				again = append(again, derivetest.Derive(t, d, derivetest.Input{Raw: r, Facts: tc.facts[i]})...)
			}
			if diff := cmp.Diff(got, again); diff != "" {
				t.Errorf("reprocessing mismatch (-first +again):\n%s", diff)
			}
		})
	}
}

func TestDeriveErrors(t *testing.T) {
	raw := derive.Raw{ID: "r1", Provider: "zapi", Channel: "C1", Time: derivetest.Received}
	seen := fact.Facts{ChatsSeen: []fact.ChatSeen{{Chat: "5544999999999"}}}
	createdFacts := fact.Facts{ChatsCreated: []fact.ChatCreated{{Chat: "5544999999999"}}}
	for name, tc := range map[string]struct {
		d     chat.Deriver
		facts fact.Facts
	}{
		"no registry, seen":    {facts: seen},
		"no registry, created": {facts: createdFacts},
		"registry fails, seen": {d: chat.Deriver{Registry: failing{}}, facts: seen},
		"registry fails":       {d: chat.Deriver{Registry: failing{}}, facts: createdFacts},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := tc.d.Derive(t.Context(), raw, tc.facts)
			if err == nil {
				t.Fatalf("Derive: no error")
			}
			// The raw event is fine: it must be retried, not dead-lettered.
			if broker.IsPermanent(err) {
				t.Errorf("Derive error %v is permanent", err)
			}
		})
	}
}

type failing struct{}

func (failing) FirstSeen(context.Context, string, string, string, string) (bool, error) {
	return false, errors.New("store down")
}

// TestWhapi: chats.post and groups.post say a chat is new.
func TestWhapi(t *testing.T) {
	p := whapi.New()
	d := chat.Deriver{Registry: derivetest.NewChatRegistry()}
	const contact, group = "919984351847@s.whatsapp.net", "120363271212442249@g.us"
	for _, tc := range []struct {
		name string
		in   derivetest.Input
		want func(raw derive.Raw) []derive.Event
	}{
		{"chats.post incoming", derivetest.Fixture(t, p, fixture("whapi", "chats.post_incoming-new-chat.json"))[0], func(raw derive.Raw) []derive.Event {
			return []derive.Event{created(raw, contact, contact, "contact", false, "", "incoming")}
		}},
		{"chats.post outgoing", derivetest.Fixture(t, p, fixture("whapi", "chats.post_outgoing-new-chat.json"))[0], func(raw derive.Raw) []derive.Event {
			return []derive.Event{created(raw, contact, contact, "contact", false, "", "")}
		}},
		{"groups.post", derivetest.Fixture(t, p, fixture("whapi", "groups.post_new-group.json"))[0], func(raw derive.Raw) []derive.Event {
			return []derive.Event{created(raw, group, group, "group", false, "Group name! 😃", "")}
		}},
		{"messages.post in a chat never created", derivetest.Fixture(t, p, fixture("whapi", "messages.post_incoming-text.json"))[0], func(derive.Raw) []derive.Event {
			return nil
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := derivetest.Derive(t, d, tc.in)
			if diff := cmp.Diff(tc.want(tc.in.Raw), got); diff != "" {
				t.Errorf("Derive mismatch (-want +got):\n%s", diff)
			}
			// The provider said so: reprocessing says so again.
			if diff := cmp.Diff(got, derivetest.Derive(t, d, tc.in)); diff != "" {
				t.Errorf("Derive reprocessed mismatch (-first +again):\n%s", diff)
			}
		})
	}
}

// TestZapiFirstMessage: Z-API has no chat-created event; the first message
// from a new phone creates the chat, later ones do not.
func TestZapiFirstMessage(t *testing.T) {
	p := zapi.New()
	text := derivetest.Fixture(t, p, fixture("zapi", "ReceivedCallback_text.json"))[0]
	image := derivetest.Fixture(t, p, fixture("zapi", "ReceivedCallback_image.json"))[0]
	if text.Raw.ID == image.Raw.ID {
		t.Fatalf("the two messages have one raw id")
	}
	const contact = "5544999999999@s.whatsapp.net"

	t.Run("in order", func(t *testing.T) {
		d := chat.Deriver{Registry: derivetest.NewChatRegistry()}
		want := []derive.Event{created(text.Raw, contact, "5544999999999", "contact", true, "name", "incoming")}
		if diff := cmp.Diff(want, derivetest.Derive(t, d, text)); diff != "" {
			t.Errorf("first message: Derive mismatch (-want +got):\n%s", diff)
		}
		if got := derivetest.Derive(t, d, image); len(got) != 0 {
			t.Errorf("second message: Derive = %v, want nothing", got)
		}
		// Reprocessing changes nothing: the first still creates, with the
		// same id, the second still does not.
		if diff := cmp.Diff(want, derivetest.Derive(t, d, text)); diff != "" {
			t.Errorf("first message reprocessed: Derive mismatch (-want +got):\n%s", diff)
		}
		if got := derivetest.Derive(t, d, image); len(got) != 0 {
			t.Errorf("second message reprocessed: Derive = %v, want nothing", got)
		}
	})

	t.Run("racing", func(t *testing.T) {
		for round := range 50 {
			d := chat.Deriver{Registry: derivetest.NewChatRegistry()}
			got := make([][]derive.Event, 2)
			var wg sync.WaitGroup
			for i, in := range []derivetest.Input{text, image} {
				wg.Go(func() {
					// Derive, not derivetest.Derive: t.Fatalf is not for
					// other goroutines.
					events, err := d.Derive(t.Context(), in.Raw, in.Facts)
					if err != nil {
						t.Errorf("round %d: Derive(%s): %v", round, in.Raw.Kind, err)
					}
					got[i] = events
				})
			}
			wg.Wait()
			all := append(got[0], got[1]...)
			derivetest.CheckSchema(t, all)
			if len(all) != 1 {
				t.Fatalf("round %d: %d chat.created events from two racing first messages, want 1: %v", round, len(all), all)
			}
			if data := all[0].Data.(chat.Data); !data.Inferred || data.ChatID != contact {
				t.Errorf("round %d: event data %+v, want an inferred creation of %s", round, data, contact)
			}
		}
	})

	t.Run("outgoing delivery first", func(t *testing.T) {
		d := chat.Deriver{Registry: derivetest.NewChatRegistry()}
		in := derivetest.One(t, p, []byte(`{"phone":"554499999999","zaapId":"Z1","messageId":"M1","type":"DeliveryCallback","instanceId":"I1","momment":1736797729000}`))
		want := []derive.Event{created(in.Raw, "554499999999@s.whatsapp.net", "554499999999", "contact", true, "", "outgoing")}
		if diff := cmp.Diff(want, derivetest.Derive(t, d, in)); diff != "" {
			t.Errorf("Derive mismatch (-want +got):\n%s", diff)
		}
	})

	t.Run("group notification", func(t *testing.T) {
		d := chat.Deriver{Registry: derivetest.NewChatRegistry()}
		in := derivetest.Fixture(t, p, fixture("zapi", "ReceivedCallback_notification-MEMBERSHIP_APPROVAL_REQUEST-invite_link.json"))[0]
		want := []derive.Event{created(in.Raw, "5544999999999@g.us", "5544999999999-group", "group", true, "name", "incoming")}
		if diff := cmp.Diff(want, derivetest.Derive(t, d, in)); diff != "" {
			t.Errorf("Derive mismatch (-want +got):\n%s", diff)
		}
	})
}

// TestWaha: you joining a group is its creation; a message in a chat never
// seen infers one.
func TestWaha(t *testing.T) {
	p := waha.New()
	d := chat.Deriver{Registry: derivetest.NewChatRegistry()}
	const group = "120363019502650977@g.us"
	body := func(id, event, payload string) []byte {
		return fmt.Appendf(nil, `{"id":%q,"timestamp":1666943582000,"session":"default","engine":"NOWEB","event":%q,"payload":%s}`, id, event, payload)
	}
	for _, tc := range []struct {
		name string
		in   derivetest.Input
		want func(raw derive.Raw) []derive.Event
	}{
		{"message (fixture)", derivetest.Fixture(t, p, fixture("waha", "message.json"))[0], func(raw derive.Raw) []derive.Event {
			return []derive.Event{created(raw, "11111111111@s.whatsapp.net", "11111111111@c.us", "contact", true, "", "outgoing")}
		}},
		{"group.v2.join (WAHA engine)", derivetest.One(t, p, body("evt_j", "group.v2.join",
			`{"timestamp":1666943582,"group":{"id":"`+group+`","subject":"Team","participants":[{"id":"1@lid","pn":"5511999999999@c.us","role":"superadmin"}]},"_data":{}}`)),
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{created(raw, group, group, "group", false, "Team", "")}
			}},
		{"message in the joined group", derivetest.One(t, p, body("evt_m", "message",
			`{"id":"false_`+group+`_ABC_5511999999999@c.us","timestamp":1666943590,"from":"`+group+`","fromMe":false,"participant":"5511999999999@c.us","body":"hi"}`)),
			func(derive.Raw) []derive.Event { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := derivetest.Derive(t, d, tc.in)
			if diff := cmp.Diff(tc.want(tc.in.Raw), got); diff != "" {
				t.Errorf("Derive mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
