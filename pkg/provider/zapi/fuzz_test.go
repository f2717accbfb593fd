package zapi

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/chatid"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/provider"
)

func addFixtures(f *testing.F) {
	f.Helper()
	for _, name := range fixtures(f) {
		f.Add(load(f, name))
	}
	for _, s := range []string{
		`{"type":"ReceivedCallback","isEdit":true,"messageId":"m","phone":"1","text":{}}`,
		`{"type":"MessageStatusCallback","id":"a","ids":["b",1],"status":"READ"}`,
		`{"\u0074ype":"ReceivedCallback","notification":"GROUP_CHANGE_X","notificationParameters":"y"}`,
		`{"type":"ReceivedCallback","notification":"CHAT_LABEL_ASSOCIATION","notificationParameters":[{"phone":1,"label":2,"assigned":true}]}`,
	} {
		f.Add([]byte(s))
	}
}

func FuzzSplit(f *testing.F) {
	addFixtures(f)
	p := New()
	f.Fuzz(func(t *testing.T, body []byte) {
		items, err := p.Split(body, provider.Delivery{Method: "POST"})
		if err != nil {
			return
		}
		if len(items) != 1 {
			t.Fatalf("Split = %d items, want 1", len(items))
		}
		again, err := p.Split(body, provider.Delivery{Method: "POST"})
		if err != nil {
			t.Fatalf("second Split failed: %v", err)
		}
		for i, it := range items {
			if !provider.ValidKind(it.Kind) {
				t.Fatalf("item %d: kind %.80q is not a bounded kind", i, it.Kind)
			}
			if !json.Valid(it.Data) {
				t.Fatalf("item %d data is not JSON: %q", i, it.Data)
			}
			id, err := provider.EventID(Name, it)
			if err != nil {
				t.Fatalf("EventID: %v", err)
			}
			if id2, _ := provider.EventID(Name, again[i]); id2 != id {
				t.Fatalf("ids differ between two Splits: %s, %s", id, id2)
			}
			channel, when := it.Channel, it.Time
			if channel == "" {
				channel = "pinned" // the ingress requires ?channel= then
			}
			if when.IsZero() {
				when = time.Now()
			}
			msg := envelope.Ingress(envelope.Raw{ID: id, Provider: Name, Channel: channel, Kind: it.Kind,
				Chat: chatid.ID(it.Chat), Time: when, Data: it.Data}, envelope.NATS)
			ev, err := envelope.Decode(msg, envelope.NATS)
			if err != nil {
				t.Fatalf("Decode(Ingress(%+v)): %v", it, err)
			}
			if err := ev.Validate(); err != nil {
				t.Fatalf("event invalid: %v", err)
			}
			_, _ = p.Interpret(it.Kind, it.Data)
		}
	})
}

func FuzzInterpret(f *testing.F) {
	p := New()
	for _, name := range fixtures(f) {
		body := load(f, name)
		items, err := p.Split(body, provider.Delivery{})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(items[0].Kind, body)
	}
	for _, k := range []string{KindNotification, KindDelivery, KindStatus, provider.KindUnknown, "received.text"} {
		f.Add(k, []byte(`{"type":"ReceivedCallback","notification":"CALL_VOICE","phone":"1-group","isGroup":"true"}`))
	}
	f.Fuzz(func(t *testing.T, kind string, data []byte) {
		facts, err := p.Interpret(kind, data)
		if err != nil && !facts.Empty() {
			t.Fatalf("Interpret failed with facts: %+v, %v", facts, err)
		}
	})
}
