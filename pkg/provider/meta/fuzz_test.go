package meta_test

import (
	"encoding/json"
	"testing"

	"github.com/wahook/wahook/pkg/chatid"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/meta"
)

// seeds are shapes beside the fixtures: odd members, other fields, types
// Meta does not send.
var seeds = []string{
	`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":77},"contacts":[{"wa_id":"5511"},{"wa_id":5522}],"messages":[{"from":"5511","id":"wamid.1","timestamp":"1700000000"},{"from":"5522","group_id":"G","id":"wamid.2"}],"statuses":"x"}}]}]}`,
	`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"calls","value":{"metadata":{"phone_number_id":"77"},"calls":[{"id":"wacid.1","from":"5511","to":"1555","event":"terminate","direction":"BUSINESS_INITIATED","status":"FAILED","duration":0}],"statuses":[{"id":"wacid.1","status":"REJECTED","recipient_id":"5511"}],"errors":[{"code":1}]}}]}]}`,
	`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"group_participants_update","value":{"metadata":{"phone_number_id":"77"},"groups":[{"group_id":"G","type":"group_participants_remove","initiated_by":"5511","removed_participants":[{"wa_id":"5511"},{"input":"5522"}],"errors":[]}]}},{"field":"account_update","value":null}]}]}`,
	`{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"group_settings_update","value":{"metadata":{"phone_number_id":"77"},"groups":[{"group_id":"G","type":"group_settings_update","request_id":"r","group_subject":{"text":"S","update_successful":true},"group_description":{"update_successful":false}}]}}]}]}`,
}

func FuzzSplit(f *testing.F) {
	for _, name := range fixtures(f) {
		f.Add(load(f, name))
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	p := meta.New()
	f.Fuzz(func(t *testing.T, body []byte) {
		items, err := p.Split(body, provider.Delivery{Method: "POST", MaxItems: 1000})
		if err != nil {
			return
		}
		if len(items) == 0 || len(items) > 1000 {
			t.Fatalf("Split(%q): %d items", body, len(items))
		}
		for _, it := range items {
			if !provider.ValidKind(it.Kind) {
				t.Fatalf("Split(%q): kind %.80q is not a bounded kind", body, it.Kind)
			}
			if !json.Valid(it.Data) {
				t.Fatalf("Split(%q): Data is not valid JSON", body)
			}
			again, err := p.Split(it.Data, provider.Delivery{Method: "POST"})
			if err != nil || len(again) != 1 || again[0].Kind != it.Kind || again[0].Key != it.Key ||
				again[0].Chat != it.Chat || again[0].Channel != it.Channel || !again[0].Time.Equal(it.Time) {
				t.Fatalf("Split(%q): item %s does not split into itself: %+v, %v", body, it.Data, again, err)
			}
			id, err := provider.EventID(meta.Name, it)
			if err != nil {
				t.Fatalf("Split(%q): EventID: %v", body, err)
			}
			if !provider.ValidChannel(it.Channel) {
				continue // the ingress refuses the delivery
			}
			msg := envelope.Ingress(envelope.Raw{
				ID: id, Provider: meta.Name, Channel: it.Channel, Kind: it.Kind,
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
	p := meta.New()
	add := func(body []byte) {
		items, err := p.Split(body, provider.Delivery{Method: "POST"})
		if err != nil {
			f.Add("messages", body)
			return
		}
		for _, it := range items {
			f.Add(it.Kind, it.Data)
		}
	}
	for _, name := range fixtures(f) {
		add(load(f, name))
	}
	for _, s := range seeds {
		add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, kind string, data []byte) {
		_, _ = p.Interpret(kind, data)
	})
}
