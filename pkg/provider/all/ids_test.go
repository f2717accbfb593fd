package all_test

import (
	"strings"
	"testing"

	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/all"
)

// The contract promises deterministic event ids: the same delivery gives the
// same ids in every version, so that a retry across an upgrade is still
// dropped as a duplicate. These ids were computed before the id hashing was
// shared between providers and must never change. The bodies are fixtures of
// each provider's testdata, compacted (their sources are in the testdata
// READMEs), and two made-up bodies that are identified by their content.
func TestEventIDsStayPinned(t *testing.T) {
	cases := []struct {
		provider, body string
		want           []string // "kind id" per item
	}{
		{"whapi", `{"statuses":[{"id":"YhNqCveDWW90_t8lzrW25w-wO4Twl0rVw","code":4,"status":"read","recipient_id":"919984351847@s.whatsapp.net","timestamp":"1712995581"}],"event":{"type":"statuses","event":"post"},"channel_id":"MANTIS-M72HC"}`,
			[]string{"statuses.post 7b39531e93140ff6844c66e3d578eda9"}},
		{"whapi", `{"labels":[{"id":"76","name":"Order complete","color":"lightsteelblue"}],"event":{"type":"labels","event":"post"},"channel_id":"MANTIS-M72HC"}`,
			[]string{"labels.post 7bb8766311cecba56266dbbc9e52e2ca"}},
		// A collection Whapi may add later: keyed by its canonical content.
		{"whapi", `{"event":{"type":"labels","event":"post"},"channel_id":"C1","labels":[{"id":"1"}],"mystery":[{"b":1.50,"a":"<x> \u00e9"}, "two"]}`,
			[]string{"labels.post 28535a582dd169352eee7b413106db40", "unknown 95a1330559d4a7eb38a5627b73c5091b", "unknown 0f4ddf84af84353f2694039ee9884204"}},
		{"zapi", `{"status":"READ","ids":["999999999999999999999"],"momment":1632234645000,"phone":"5544999999999","type":"MessageStatusCallback","instanceId":"instance.id"}`,
			[]string{"message-status 1e70507a245988ba19109c5fbfdaeee5"}},
		{"zapi", `{"type":"PresenceChatCallback","phone":"5544999999999","status":"COMPOSING","lastSeen":null,"instanceId":"instance.id"}`,
			[]string{"presence-chat 3f38a1c87a36ccf8aab553e3f52ff5b8"}},
		// No type Z-API documents: identified by its content alone.
		{"zapi", `{"type":"SomethingNewCallback","instanceId":"i1", "what": {"z":[1,2,{"y":null}],"a":true}}`,
			[]string{"unknown ab73786313a02d52cdf988572f6c4ce1"}},
		{"waha", `{"id":"evt_01...","timestamp":1634567890123,"session":"default","metadata":{"user.id":"123","user.email":"email@example.com"},"engine":"WEBJS","event":"label.chat.added","payload":{"chatId":"11111111111@c.us","labelId":"1"},"me":{"id":"11111111111@c.us","lid":"123@lid","pushName":"Instance"}}`,
			[]string{"label.chat.added f7cb2ecdc101c9eb1a27ce27b3a0e430"}},
		{"evolution", `{"event":"labels.edit","instance":"evo-sales","data":{"id":"7","name":"Novo cliente","color":2,"deleted":false,"predefinedId":"1","instance":"evo-sales"},"destination":"https://hooks.example.com/v1/webhooks/evolution","date_time":"2025-06-10T14:10:00.000Z","sender":"5511999990000@s.whatsapp.net","server_url":"https://evo.example.com","apikey":"B6D711FCDE4D4FD5936544120E713976"}`,
			[]string{"labels.edit d35baa66c30d09e53ed3cdf981b457fa"}},
	}
	byName := map[string]provider.Provider{}
	for _, p := range all.Providers() {
		byName[p.Name()] = p
	}
	for _, tc := range cases {
		items, err := byName[tc.provider].Split([]byte(tc.body), provider.Delivery{Method: "POST"})
		if err != nil {
			t.Fatalf("%s Split: %v", tc.provider, err)
		}
		var got []string
		for _, it := range items {
			id, err := provider.EventID(tc.provider, it)
			if err != nil {
				t.Fatalf("%s EventID: %v", tc.provider, err)
			}
			got = append(got, it.Kind+" "+id)
		}
		if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("%s %.60s: ids\n%q\nwant\n%q", tc.provider, tc.body, got, tc.want)
		}
	}
}

func TestContentKeysStayPinned(t *testing.T) {
	for body, want := range map[string]string{
		`{"b":[1,2.50,"<&>"],"a":{"y":null,"x":"\u00e9\ud83d\ude00"}}`: "sha256:5763d7d939ffccf75d02aed6a0e0b14a236ad87ae152626e14c2a98b677e30b1",
		` "plain" `: "sha256:945603a8f587786b463c3f94fce115c0fae88fac2728cc96ddf5981cf7f61741",
	} {
		got, err := provider.ContentKey([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("ContentKey(%s) = %s, want %s", body, got, want)
		}
	}
}
