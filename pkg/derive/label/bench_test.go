package label_test

import (
	"testing"

	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/derive/label"
	"github.com/wahook/wahook/pkg/provider/whapi"
)

// BenchmarkDeriveChatsPatch is the label-changed consumer's work for one
// Whapi chats.patch item: interpret it, then derive its label changes.
func BenchmarkDeriveChatsPatch(b *testing.B) {
	p := whapi.New()
	in := derivetest.One(b, p, whapiBody("chats_updates", "chats", "patch", `{
		"before_update":{"id":"919984351847@s.whatsapp.net","type":"contact","timestamp":1747059575,"name":"Jonathan",
			"mute_until":18446744073709552000,"not_spam":true,"last_message":{"id":"yqJjeEsm3q7aMd8-gIcNRJKDPQ","from_name":"Whapi"},
			"labels":[{"id":"1","name":"A","color":"gold"},{"id":"2","name":"B","color":"salmon"}]},
		"after_update":{"id":"919984351847@s.whatsapp.net","type":"contact","timestamp":1747059575,"name":"Jonathan",
			"mute_until":18446744073709552000,"not_spam":true,"last_message":{"id":"yqJjeEsm3q7aMd8-gIcNRJKDPQ","from_name":"Whapi"},
			"labels":[{"id":"2","name":"B","color":"salmon"},{"id":"3","name":"C","color":"lightsteelblue"}]},
		"changes":["labels"]}`))
	d := label.Deriver{Registry: derivetest.NewLabelRegistry()}
	ctx := b.Context()
	b.ReportAllocs()
	b.SetBytes(int64(len(in.Raw.Data)))
	for b.Loop() {
		f, err := p.Interpret(in.Raw.Kind, in.Raw.Data)
		if err != nil {
			b.Fatalf("Interpret: %v", err)
		}
		events, err := d.Derive(ctx, in.Raw, f)
		if err != nil {
			b.Fatalf("Derive: %v", err)
		}
		if len(events) != 2 {
			b.Fatalf("Derive = %d events, want 2", len(events))
		}
	}
}
