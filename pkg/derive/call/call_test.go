package call_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/call"
	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/provider/waha"
	"github.com/wahook/wahook/pkg/provider/whapi"
	"github.com/wahook/wahook/pkg/provider/zapi"
)

func fixture(provider, name string) string {
	return filepath.Join("..", "..", "provider", provider, "testdata", name)
}

// chat is a canonical chat as an event names it; zero for none.
type chat struct{ id, raw, typ string }

func event(raw derive.Raw, typ, state string, c chat, data call.Data) derive.Event {
	data.Common = derive.Common{
		Provider:      raw.Provider,
		Channel:       raw.Channel,
		OccurredAt:    raw.Time.UTC().Format(time.RFC3339Nano),
		SourceEventID: raw.ID,
	}
	subject := raw.Subject
	if c.id != "" {
		data.ChatRef = derive.ChatRef{ChatID: c.id, ChatIDRaw: c.raw, ChatType: c.typ}
		subject = c.id
	}
	return derive.Event{
		ID:      derive.ID(raw.ID, derive.Call, "call."+state, data.CallID, c.id),
		Stream:  derive.Call,
		Type:    typ,
		Subject: subject,
		Chat:    c.id,
		Data:    data,
	}
}

// perCall gives ev the id of a call state derived once per call.
func perCall(raw derive.Raw, ev derive.Event, state string) derive.Event {
	ev.ID = derive.ID("call\x00"+raw.Provider+"\x00"+raw.Channel, derive.Call, "call."+state, ev.Data.(call.Data).CallID, ev.Chat)
	return ev
}

func TestStream(t *testing.T) {
	if got := (call.Deriver{}).Stream(); got != derive.Call {
		t.Errorf("Stream() = %q, want %q", got, derive.Call)
	}
}

type row struct {
	name string
	in   derivetest.Input
	want func(raw derive.Raw) []derive.Event
}

func run(t *testing.T, rows []row) {
	t.Helper()
	for _, tc := range rows {
		t.Run(tc.name, func(t *testing.T) {
			got := derivetest.Derive(t, call.Deriver{}, tc.in)
			if diff := cmp.Diff(tc.want(tc.in.Raw), got); diff != "" {
				t.Errorf("Derive mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(got, derivetest.Derive(t, call.Deriver{}, tc.in)); diff != "" {
				t.Errorf("Derive reprocessed mismatch (-first +again):\n%s", diff)
			}
		})
	}
}

func TestZapi(t *testing.T) {
	p := zapi.New()
	const id = "F44E0E2011E7C784BB9A4AC11749C436"
	phone := chat{"5544999999999@s.whatsapp.net", "5544999999999", "contact"}
	group := chat{"120363019502650977@g.us", "120363019502650977-group", "group"}
	run(t, []row{
		{"CALL_VOICE", derivetest.Fixture(t, p, fixture("zapi", "ReceivedCallback_notification-CALL_VOICE.json"))[0], func(raw derive.Raw) []derive.Event {
			return []derive.Event{event(raw, call.TypeOffered, fact.CallOffered, phone, call.Data{CallID: id, From: phone.id, Status: "CALL_VOICE"})}
		}},
		{"CALL_MISSED_VOICE", derivetest.Fixture(t, p, fixture("zapi", "ReceivedCallback_notification-CALL_MISSED_VOICE.json"))[0], func(raw derive.Raw) []derive.Event {
			return []derive.Event{event(raw, call.TypeMissed, fact.CallMissed, phone, call.Data{CallID: id, From: phone.id, Status: "CALL_MISSED_VOICE"})}
		}},
		{"CALL_MISSED_VIDEO", derivetest.Fixture(t, p, fixture("zapi", "ReceivedCallback_notification-CALL_MISSED_VIDEO.json"))[0], func(raw derive.Raw) []derive.Event {
			return []derive.Event{event(raw, call.TypeMissed, fact.CallMissed, phone, call.Data{CallID: id, From: phone.id, Video: true, Status: "CALL_MISSED_VIDEO"})}
		}},
		{"CALL_MISSED_GROUP_VIDEO", derivetest.One(t, p, []byte(`{"isGroup":true,"instanceId":"I1","messageId":"1679655074-90",
			"phone":"120363019502650977-group","participantPhone":"5511988887777","fromMe":false,"momment":1679661190000,
			"type":"ReceivedCallback","notification":"CALL_MISSED_GROUP_VIDEO","notificationParameters":[],"callId":"G1"}`)),
			func(raw derive.Raw) []derive.Event {
				return []derive.Event{event(raw, call.TypeMissed, fact.CallMissed, group, call.Data{CallID: "G1", From: "5511988887777@s.whatsapp.net",
					Video: true, GroupCall: true, Status: "CALL_MISSED_GROUP_VIDEO"})}
			}},
	})
}

func whapiCall(status, extra string) []byte {
	return fmt.Appendf(nil, `{"calls":[{"id":"ED3D9B4864F90327F10D24BAEED6CFB9","from":"919984351847@s.whatsapp.net",
		"chat_id":"919984351847@s.whatsapp.net","status":%q,"timestamp":1713792460000%s}],
		"event":{"type":"calls","event":"post"},"channel_id":"MANTIS-M72HC"}`, status, extra)
}

func TestWhapi(t *testing.T) {
	p := whapi.New()
	const id = "ED3D9B4864F90327F10D24BAEED6CFB9"
	contact := chat{"919984351847@s.whatsapp.net", "919984351847@s.whatsapp.net", "contact"}
	rows := []row{}
	for _, f := range []struct{ file, status, state, typ string }{
		{"calls.post_initiated.json", "initiated", fact.CallOffered, call.TypeOffered},
		{"calls.post_ringing.json", "ringing", fact.CallOffered, call.TypeOffered},
		{"calls.post_missed.json", "missed", fact.CallMissed, call.TypeMissed},
	} {
		rows = append(rows, row{f.file, derivetest.Fixture(t, p, fixture("whapi", f.file))[0], func(raw derive.Raw) []derive.Event {
			ev := event(raw, f.typ, f.state, contact, call.Data{CallID: id, From: contact.id, Status: f.status})
			if f.state == fact.CallOffered {
				ev = perCall(raw, ev, f.state)
			}
			return []derive.Event{ev}
		}})
	}
	for _, c := range []struct{ status, state, typ, extra string }{
		{"answered", fact.CallAccepted, call.TypeAccepted, ""},
		{"rejected", fact.CallRejected, call.TypeRejected, ""},
		{"canceled", fact.CallEnded, call.TypeEnded, ""},
		{"ringing", fact.CallOffered, call.TypeOffered, `,"video_call":true,"group_call":true`},
	} {
		rows = append(rows, row{"calls.post " + c.status + c.extra, derivetest.One(t, p, whapiCall(c.status, c.extra)), func(raw derive.Raw) []derive.Event {
			ev := event(raw, c.typ, c.state, contact, call.Data{CallID: id, From: contact.id, Status: c.status,
				Video: strings.Contains(c.extra, "video"), GroupCall: strings.Contains(c.extra, "group")})
			if c.state == fact.CallOffered {
				ev = perCall(raw, ev, c.state)
			}
			return []derive.Event{ev}
		}})
	}
	rows = append(rows, row{"calls.post unknown status", derivetest.One(t, p, whapiCall("transferred", "")), func(derive.Raw) []derive.Event { return nil }})
	run(t, rows)
}

// TestWhapiOneOffer: Whapi reports one incoming call's offer twice,
// initiated then ringing (calls.post_initiated.json, calls.post_ringing.json:
// Whapi's help desk examples of one call): both derive one id.
func TestWhapiOneOffer(t *testing.T) {
	p := whapi.New()
	initiated := derivetest.Derive(t, call.Deriver{}, derivetest.Fixture(t, p, fixture("whapi", "calls.post_initiated.json"))[0])
	ringing := derivetest.Derive(t, call.Deriver{}, derivetest.Fixture(t, p, fixture("whapi", "calls.post_ringing.json"))[0])
	missed := derivetest.Derive(t, call.Deriver{}, derivetest.Fixture(t, p, fixture("whapi", "calls.post_missed.json"))[0])
	if len(initiated) != 1 || len(ringing) != 1 || len(missed) != 1 {
		t.Fatalf("events: %d initiated, %d ringing, %d missed; want one each", len(initiated), len(ringing), len(missed))
	}
	if initiated[0].ID != ringing[0].ID {
		t.Errorf("initiated id %s, ringing id %s: want one offer", initiated[0].ID, ringing[0].ID)
	}
	if missed[0].ID == initiated[0].ID {
		t.Errorf("missed has the offer's id %s", missed[0].ID)
	}
}

func TestWaha(t *testing.T) {
	p := waha.New()
	contact := chat{"11111111111@s.whatsapp.net", "11111111111@c.us", "contact"}
	run(t, []row{
		{"call.received (Wawp fixture)", derivetest.Fixture(t, p, fixture("waha", "call.received.json"))[0], func(raw derive.Raw) []derive.Event {
			return []derive.Event{event(raw, call.TypeOffered, fact.CallOffered, contact, call.Data{CallID: "call_12345", From: contact.id, Status: "call.received"})}
		}},
		{"call.accepted (Wawp fixture): the call id alone", derivetest.Fixture(t, p, fixture("waha", "call.accepted.json"))[0], func(raw derive.Raw) []derive.Event {
			return []derive.Event{event(raw, call.TypeAccepted, fact.CallAccepted, chat{}, call.Data{CallID: "call_12345", Status: "call.accepted"})}
		}},
		{"call.rejected (WAHA engine CallData)", derivetest.One(t, p, []byte(`{"id":"evt_r","timestamp":1666943582000,"session":"default","engine":"NOWEB",
			"event":"call.rejected","payload":{"id":"ABCDEF","from":"5511999999999@c.us","timestamp":1666943582,"isVideo":true,"isGroup":true}}`)),
			func(raw derive.Raw) []derive.Event {
				c := chat{"5511999999999@s.whatsapp.net", "5511999999999@c.us", "contact"}
				return []derive.Event{event(raw, call.TypeRejected, fact.CallRejected, c, call.Data{CallID: "ABCDEF", From: c.id, Video: true, GroupCall: true, Status: "call.rejected"})}
			}},
	})
}

func TestDeriveFacts(t *testing.T) {
	raw := derive.Raw{ID: "r1", Provider: "p", Channel: "C1", Subject: "x@s.whatsapp.net", Time: time.Date(2024, 4, 22, 13, 27, 33, 0, time.UTC)}
	got := derivetest.Derive(t, call.Deriver{}, derivetest.Input{Raw: raw, Facts: fact.Facts{Calls: []fact.Call{
		{CallID: "c1", Chat: "1@lid", State: fact.CallEnded},
		{CallID: "c1", Chat: "1@lid", State: fact.CallEnded}, // told twice: once
		{CallID: "c2", From: "5511999999999:12@s.whatsapp.net", State: fact.CallMissed, Status: "missed"},
	}}})
	want := []derive.Event{
		event(raw, call.TypeEnded, fact.CallEnded, chat{"1@lid", "1@lid", "lid"}, call.Data{CallID: "c1", Status: fact.CallEnded}),
		event(raw, call.TypeMissed, fact.CallMissed, chat{"5511999999999@s.whatsapp.net", "5511999999999:12@s.whatsapp.net", "contact"},
			call.Data{CallID: "c2", From: "5511999999999@s.whatsapp.net", Status: "missed"}),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Derive mismatch (-want +got):\n%s", diff)
	}

	// Once per call: the same id from any raw event of the channel, another
	// in another channel or for another call.
	offer := fact.Facts{Calls: []fact.Call{{CallID: "c1", Chat: "1@lid", State: fact.CallOffered, PerCall: true}}}
	idOf := func(r derive.Raw, f fact.Facts) string {
		evs := derivetest.Derive(t, call.Deriver{}, derivetest.Input{Raw: r, Facts: f})
		if len(evs) != 1 {
			t.Fatalf("Derive(%+v): %d events, want 1", f, len(evs))
		}
		return evs[0].ID
	}
	other := raw
	other.ID = "r2"
	otherChannel := other
	otherChannel.Channel = "C2"
	otherCall := fact.Facts{Calls: []fact.Call{{CallID: "c2", Chat: "1@lid", State: fact.CallOffered, PerCall: true}}}
	if a, b := idOf(raw, offer), idOf(other, offer); a != b {
		t.Errorf("per-call offer: ids %s and %s from two raw events, want one", a, b)
	}
	if a, b := idOf(other, offer), idOf(otherChannel, offer); a == b {
		t.Errorf("per-call offer: one id %s in two channels", a)
	}
	if a, b := idOf(raw, offer), idOf(raw, otherCall); a == b {
		t.Errorf("per-call offer: one id %s for two calls", a)
	}

	for name, f := range map[string]fact.Call{
		"unknown state": {CallID: "c1", State: "transferred"},
		"no call id":    {State: fact.CallMissed},
	} {
		if _, err := (call.Deriver{}).Derive(t.Context(), raw, fact.Facts{Calls: []fact.Call{f}}); !broker.IsPermanent(err) {
			t.Errorf("%s: Derive error = %v, want a permanent error", name, err)
		}
	}
}
