package waha_test

import (
	"encoding/json"
	"testing"

	"github.com/wahook/wahook/pkg/chatid"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/waha"
)

// seeds are engine-shaped bodies beside the fixtures.
var seeds = []string{
	`{"event":"message","session":"s1","payload":{"id":"false_5511@c.us_AAA","timestamp":1666943582,"from":"5511@c.us","fromMe":false}}`,
	`{"event":"group.v2.participants","session":"s1","payload":{"group":{"id":"1@g.us"},"type":"leave","participants":[{"id":"9@lid","pn":"5511@c.us"}],"_data":{"action":"remove","author":"8@lid"}}}`,
	`{"event":"group.v2.update","session":"s1","payload":{"group":{"id":"1@g.us","subject":"S","membersCanSendMessages":false},"_data":{"type":"subject"}}}`,
	`{"event":"label.chat.added","session":"s1","payload":{"labelId":"1","label":{"id":"1","name":"L","color":0,"colorHex":"#ff9485"},"chatId":"5511@c.us"}}`,
	`{"event":"group.join","session":"s1","payload":{"id":{"remote":"1@g.us","_serialized":"false_1@g.us_N"},"recipientIds":["5511@c.us"],"type":"add"}}`,
	`{"event":"group.v2.participants.join-request","session":"s1","engine":"GOWS","payload":{"group":{"id":"1@g.us"},"action":"rejected","requesterId":"9@lid","requesterPn":"5511@c.us","_data":{"Sender":"8@lid","SenderPN":"5599@s.whatsapp.net"}}}`,
	`{"event":"call.received","session":"s1","engine":"GOWS","payload":{"id":"C1","from":"9@lid","_data":{"CallCreator":"9@lid","CallCreatorAlt":"","Data":{"Attrs":{"caller_pn":"5511@s.whatsapp.net"}}}}}`,
	`{"event":"group.v2.leave","session":"s1","engine":"GOWS","payload":{"group":{"id":"1@g.us"},"_data":{"JID":"1@g.us","Sender":"8@lid"}},"me":{"id":"5500@c.us","lid":"8@lid"}}`,
	`{"event":"group.v2.update","session":"s1","engine":"NOWEB","payload":{"group":{"id":"1@g.us","membersCanSendMessages":true},"_data":{"id":"1@g.us","announce":true,"restrict":false}}}`,
	`{"event":"poll.vote","session":"s1","payload":{"vote":{"id":"v","from":"5511@c.us"},"poll":{"id":"p","fromMe":true,"to":"5511@c.us"}}}`,
}

func FuzzSplit(f *testing.F) {
	for _, name := range fixtures(f) {
		f.Add(load(f, name))
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	p := waha.New()
	f.Fuzz(func(t *testing.T, body []byte) {
		items, err := p.Split(body, provider.Delivery{Method: "POST"})
		if err != nil {
			return
		}
		for _, it := range items {
			if !provider.ValidKind(it.Kind) {
				t.Fatalf("Split(%q): kind %.80q is not a bounded kind", body, it.Kind)
			}
			if !json.Valid(it.Data) {
				t.Fatalf("Split(%q): Data is not valid JSON", body)
			}
			id, err := provider.EventID(waha.Name, it)
			if err != nil {
				t.Fatalf("Split(%q): EventID: %v", body, err)
			}
			msg := envelope.Ingress(envelope.Raw{
				ID: id, Provider: waha.Name, Channel: it.Channel, Kind: it.Kind,
				Chat: chatid.ID(it.Chat), Time: it.Time, Data: it.Data,
			}, envelope.NATS)
			if _, err := envelope.Decode(msg, envelope.NATS); err != nil {
				t.Fatalf("Split(%q): item %+v does not make a valid event: %v", body, it, err)
			}
			_, _ = p.Interpret(it.Kind, it.Data)
		}
	})
}

func FuzzInterpret(f *testing.F) {
	for _, name := range fixtures(f) {
		b := load(f, name)
		var env struct{ Event string }
		_ = json.Unmarshal(b, &env)
		f.Add(env.Event, b)
	}
	for _, s := range seeds {
		var env struct{ Event string }
		_ = json.Unmarshal([]byte(s), &env)
		f.Add(env.Event, []byte(s))
	}
	p := waha.New()
	f.Fuzz(func(t *testing.T, kind string, data []byte) {
		_, _ = p.Interpret(kind, data)
	})
}
