package e2e

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/derive"
)

// TestEvolution posts Evolution's fixtures (pkg/provider/evolution/testdata,
// built from its source) through the whole pipeline: every derived stream
// gets the events the other providers' give, valid against the same
// schemas, and no stored raw event keeps the instance's apikey.
func TestEvolution(t *testing.T) {
	p := newPipeline(t)
	p.consumers(derive.Streams, "e2e-", 0, 1)
	for _, name := range []string{
		"groups.upsert.json", "groups.upsert_joined.json", "groups.update.json",
		"group-participants.update_add.json", "group-participants.update_promote.json", "group-participants.update_leave.json",
		"chats.upsert.json", "chats.upsert.json", "chats.upsert_empty.json",
		"messages.upsert.json", "messages.upsert_outgoing-group.json",
		"labels.edit.json", "labels.association_add.json", "labels.association_remove.json", "labels.edit_deleted.json",
		"call_offer.json", "call_timeout.json", "call_terminate-video-lid.json",
		"connection.update.json",
	} {
		p.post("/v1/webhooks/evolution", p.fixture("evolution", name))
	}
	// The URL of "webhook by events" names the event the body also names.
	p.post("/v1/webhooks/evolution/labels-edit", p.fixture("evolution", "labels.edit_deleted.json"))

	// created (vip), joined, subject + announce, added, promoted, left
	p.await("wahook.group-notification.evolution.>", 7)
	// vip and Fornecedores (groups.upsert), Carla (chats.upsert, once), Maria (first message)
	chats := p.await("wahook.chat-created.evolution.>", 4)
	inferred := 0
	for _, ev := range chats {
		var d struct{ Inferred bool }
		_ = json.Unmarshal(ev.Data(), &d)
		if d.Inferred {
			inferred++
		}
	}
	if inferred != 1 {
		t.Errorf("%d inferred chat creations; want Maria's only: %v", inferred, types(chats))
	}
	// offered, missed, ended
	p.await("wahook.call.evolution.>", 3)
	// created, added, removed, deleted: the deletion posted twice is one raw event
	p.await("wahook.label-changed.evolution.>", 4)

	for _, m := range p.rawEvents() {
		if bytes.Contains(m, []byte("B6D711FCDE4D4FD5936544120E713976")) {
			t.Errorf("a stored raw event keeps the apikey: %s", m)
		}
	}
}

// rawEvents returns the data of every raw event stored.
func (p *pipeline) rawEvents() [][]byte {
	p.t.Helper()
	ctx := p.t.Context()
	s, err := p.broker.JetStream().Stream(ctx, natsbroker.IngressStream)
	if err != nil {
		p.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		p.t.Fatal(err)
	}
	var out [][]byte
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			p.t.Fatal(err)
		}
		out = append(out, m.Data)
	}
	if len(out) == 0 {
		p.t.Fatal("no raw events stored")
	}
	return out
}
