package e2e

// The Kafka pipeline, end to end: HTTP deliveries into the real ingress,
// an in-process Kafka (kfake) over TCP with several partitions per topic,
// the derived-stream consumers with their state in compacted topics
// (kafkastate), and the derived topics read back with another client.
//
// Kafka keeps no duplicate window: a provider's retried webhook is stored
// twice in wahook.ingress, and the consumers drop the repeat through
// kafkastate's Dedup, so await checks exact record counts: no record
// missing and none repeated. After a crash between a publish and its
// commit a raw event is derived again with the same ids; there the tests
// count distinct ids and apply the subscriber's recipe (drop a ce_id seen
// before).

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/schemas"
)

func TestKafkaLabelChanged(t *testing.T) {
	p := newKafkaPipeline(t)
	p.consumers([]string{derive.LabelChanged}, "e2e-", 0, 1, instanceOpts{})
	ids := labelChanged(t, p)
	if n := p.rawCount(ids[0]); n != 2 {
		t.Errorf("wahook.ingress holds the retried delivery %d times; want 2 (Kafka drops no repeat)", n)
	}
}

func TestKafkaChatCreated(t *testing.T) {
	p := newKafkaPipeline(t)
	p.consumers([]string{derive.ChatCreated}, "e2e-", 0, 1, instanceOpts{})

	ids := p.post("/v1/webhooks/zapi", zapiText("5544911111111", "m1", false))
	p.post("/v1/webhooks/zapi", zapiText("5544911111111", "m2", false))
	p.post("/v1/webhooks/zapi", zapiText("5544911111111", "m1", false)) // retried delivery
	if n := p.rawCount(ids[0]); n != 2 {
		t.Errorf("wahook.ingress holds the retried delivery %d times; want 2 (Kafka drops no repeat)", n)
	}
	// Without Dedup the retry would be derived again: it is the chat's
	// first event, so it would announce the chat a second time.
	evs := p.await(derive.ChatCreated, "zapi", "INST-1", 1)
	var d struct {
		Inferred  bool
		Direction string
		ChatID    string `json:"chat_id"`
	}
	_ = json.Unmarshal(evs[0].Data(), &d)
	if !d.Inferred || d.ChatID != "5544911111111@s.whatsapp.net" || d.Direction != "incoming" {
		t.Errorf("inferred chat.created = %s", evs[0].Data())
	}
	if c := evs[0].Extensions()[envelope.ExtCausationID]; c != ids[0] {
		t.Errorf("chat.created caused by %v; want the first message %s", c, ids[0])
	}

	p.post("/v1/webhooks/whapi", p.fixture("whapi", "chats.post_incoming-new-chat.json"))
	p.post("/v1/webhooks/whapi", p.fixture("whapi", "messages.post_incoming-text.json"))
	evs = p.await(derive.ChatCreated, "whapi", "", 1)
	d = struct {
		Inferred  bool
		Direction string
		ChatID    string `json:"chat_id"`
	}{}
	_ = json.Unmarshal(evs[0].Data(), &d)
	if d.Inferred || d.ChatID != "919984351847@s.whatsapp.net" {
		t.Errorf("Whapi chat.created = %s", evs[0].Data())
	}
}

func TestKafkaCallsAndGroups(t *testing.T) {
	p := newKafkaPipeline(t)
	p.consumers([]string{derive.Call, derive.GroupNotification}, "e2e-", 0, 1, instanceOpts{})
	callsAndGroups(t, p)
}

// TestKafkaConsumerCrash kills the chat-created consumer mid-stream, right
// after Kafka acknowledged one of its chat.created records and before it
// could mark the raw event done or commit anything more, and starts
// another instance of the group: every chat is announced, by its first
// message, under one id. The raw events whose records were acknowledged
// as the process died are derived again by the survivor under the same
// ids: the records repeated carry ids seen before, and the subscriber's
// recipe (drop a ce_id seen before) yields exactly one event per chat.
func TestKafkaConsumerCrash(t *testing.T) {
	p := newKafkaPipeline(t)
	const chats = 150 // two messages each: 300 raw events
	chat := func(c int) string { return fmt.Sprintf("55119%08d", c) }
	var firsts, seconds [][]byte
	for c := range chats {
		firsts = append(firsts, zapiText(chat(c), fmt.Sprintf("r-%d-0", c), false))
		seconds = append(seconds, zapiText(chat(c), fmt.Sprintf("r-%d-1", c), c%2 == 0))
	}
	first := p.postAll("/v1/webhooks/zapi", firsts)
	p.postAll("/v1/webhooks/zapi", seconds)

	victim := p.consumers([]string{derive.ChatCreated}, "e2e-", 0, 1, instanceOpts{crashAt: chats / 3})
	select {
	case <-victim.died:
	case <-time.After(45 * time.Second):
		t.Fatalf("the first instance published %d records in 45s; want %d before it crashes", victim.published.Load(), chats/3)
	}
	victim.crash()
	before, _ := distinct(p.derived(derive.ChatCreated, "zapi", "INST-1"))
	p.consumers([]string{derive.ChatCreated}, "e2e-", 0, 1, instanceOpts{})
	p.settle()

	all := p.derived(derive.ChatCreated, "zapi", "INST-1")
	evs, repeats := distinct(all)
	t.Logf("crashed after %d of %d chats announced; %d records, %d distinct, %d repeated by id", len(before), chats, len(all), len(evs), repeats)
	if len(before) == 0 || len(before) >= chats {
		t.Errorf("%d chats announced before the crash; want some, not all", len(before))
	}
	if repeats == 0 {
		t.Errorf("no record repeated: the crash between a publish and its commit did not happen as meant")
	}
	idOf := map[string]string{}
	for _, ev := range all {
		if id, ok := idOf[ev.Subject()]; ok && id != ev.ID() {
			t.Errorf("chat %s announced under two ids, %s and %s", ev.Subject(), id, ev.ID())
		}
		idOf[ev.Subject()] = ev.ID()
	}
	if len(evs) != chats || len(idOf) != chats {
		t.Errorf("%d distinct ids for %d chats; want %d of each", len(evs), len(idOf), chats)
	}
	for c := range chats {
		want := chat(c) + "@s.whatsapp.net"
		for _, ev := range evs {
			if ev.Subject() == want && ev.Extensions()[envelope.ExtCausationID] != first[c] {
				t.Errorf("chat %s announced by %v; want its first message %s", want, ev.Extensions()[envelope.ExtCausationID], first[c])
			}
		}
		if _, ok := idOf[want]; !ok {
			t.Errorf("chat %s never announced", want)
		}
	}
}

// TestKafkaRebalance runs two instances of one consumer group (Partitions
// 1: Kafka shares the topic's partitions between them) while deliveries
// flow, then stops one: the other takes its partitions over. Every chat's
// labels go 1 -> 2 -> 3 -> 4: every expected event is there, under one id
// per fact, none repeated, and each chat's events are in the order of its
// changes.
func TestKafkaRebalance(t *testing.T) {
	p := newKafkaPipeline(t)
	opts := instanceOpts{concurrency: 8}
	a := p.consumers([]string{derive.LabelChanged}, "e2e-", 0, 1, opts)
	b := p.consumers([]string{derive.LabelChanged}, "e2e-", 0, 1, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := p.cluster.WaitGroupStable(ctx, "e2e-"+derive.LabelChanged, 2); err != nil {
		t.Fatalf("the group is not stable with two members: %v", err)
	}

	const chats, steps = 40, 3
	chat := func(c int) string { return fmt.Sprintf("55219%08d@s.whatsapp.net", c) }
	round := func(s int) []string {
		var bodies [][]byte
		for c := range chats {
			bodies = append(bodies, []byte(strings.ReplaceAll(string(whapiChatsPatch(chat(c),
				[]string{fmt.Sprint(s)}, []string{fmt.Sprint(s + 1)})), "MANTIS-M72HC", "REB")))
		}
		return p.postAll("/v1/webhooks/whapi", bodies)
	}
	step := map[string]int{} // raw event id -> the step it is
	record := func(s int, ids []string) {
		for _, id := range ids {
			step[id] = s
		}
	}
	record(1, round(1))
	deadline := time.Now().Add(30 * time.Second)
	for a.published.Load() == 0 || b.published.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("instances published %d and %d records; want both at work", a.published.Load(), b.published.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.settle()
	// The second round flows; the first instance leaves once it is at work
	// on it.
	atWork := a.published.Load()
	var second []string
	posted := make(chan struct{})
	go func() {
		defer close(posted)
		second = round(2)
	}()
	deadline = time.Now().Add(30 * time.Second)
	for a.published.Load() == atWork && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	a.stop()
	<-posted
	record(2, second)
	// The third round is posted once the first instance is gone: its
	// events about chats of the partitions that instance owned (it
	// published some) exist only if the other one took them over.
	record(3, round(3))
	p.settle()
	t.Logf("published %d by the instance that left, %d by the one that stayed", a.published.Load(), b.published.Load())

	all := p.derived(derive.LabelChanged, "whapi", "REB")
	evs, repeats := distinct(all)
	if repeats > 0 {
		t.Errorf("%d records repeated by id; want none: a clean rebalance hands over what is done", repeats)
	}
	type fact struct{ chat, typ, label, cause string }
	idOf := map[fact]string{}
	lastStep := map[string]int{}
	partOf := map[string]int32{}
	for _, ev := range all {
		label, _, _ := labelOf(t, ev.Event)
		cause, _ := ev.Extensions()[envelope.ExtCausationID].(string)
		f := fact{ev.Subject(), ev.Type(), label, cause}
		if id, ok := idOf[f]; ok && id != ev.ID() {
			t.Errorf("%v recorded under two ids, %s and %s", f, id, ev.ID())
		}
		idOf[f] = ev.ID()
		s, ok := step[cause]
		if !ok {
			t.Errorf("%s caused by unknown raw event %s", ev.ID(), cause)
			continue
		}
		if s < lastStep[f.chat] {
			t.Errorf("chat %s: an event of step %d after one of step %d", f.chat, s, lastStep[f.chat])
		}
		lastStep[f.chat] = s
		if pt, ok := partOf[f.chat]; ok && pt != ev.Partition {
			t.Errorf("chat %s in partitions %d and %d", f.chat, pt, ev.Partition)
		}
		partOf[f.chat] = ev.Partition
	}
	expected := 0
	for c := range chats {
		for s := 1; s <= steps; s++ {
			for _, typ := range []string{"io.wahook.label.added", "io.wahook.label.removed"} {
				label := fmt.Sprint(s)
				if typ == "io.wahook.label.added" {
					label = fmt.Sprint(s + 1)
				}
				found := false
				for f := range idOf {
					if f.chat == chat(c) && f.typ == typ && f.label == label && step[f.cause] == s {
						found = true
					}
				}
				if !found {
					t.Errorf("chat %s step %d: no %s of label %s", chat(c), s, typ, label)
				}
				expected++
			}
		}
	}
	if len(evs) != expected || len(idOf) != expected {
		t.Errorf("%d distinct ids for %d facts; want %d", len(evs), len(idOf), expected)
	}
}

// TestKafkaDeadLetter publishes a raw event its provider cannot read: it
// is dead-lettered to wahook.deadletter with the reason and its source
// event id, and the stream goes on with the next record of the same key.
func TestKafkaDeadLetter(t *testing.T) {
	p := newKafkaPipeline(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bad := envelope.Ingress(envelope.Raw{ID: "bad-1", Provider: "whapi", Channel: "CH", Kind: "labels.post",
		Time: time.Now(), Data: []byte(`{"id":{"not":"a label"}}`)}, envelope.Kafka)
	if err := p.broker.Publish(ctx, bad); err != nil {
		t.Fatal(err)
	}
	p.post("/v1/webhooks/whapi", []byte(`{"labels":[{"id":"5","name":"Next","color":"gold"}],"event":{"type":"labels","event":"post"},"channel_id":"CH"}`))
	p.consumers([]string{derive.LabelChanged}, "e2e-", 0, 1, instanceOpts{})
	p.await(derive.LabelChanged, "whapi", "CH", 1)

	recs := p.records(envelope.DeadLetterTopic)
	if len(recs) != 1 {
		t.Fatalf("wahook.deadletter holds %d records; want 1", len(recs))
	}
	ev, err := envelope.Decode(message(recs[0]), envelope.Kafka)
	if err != nil {
		t.Fatalf("dead letter is not a CloudEvent: %v", err)
	}
	if ev.Type() != "io.wahook.deadletter" || ev.DataSchema() != envelope.DeadLetterSchema {
		t.Errorf("dead letter type %q, dataschema %q", ev.Type(), ev.DataSchema())
	}
	var dl envelope.DeadLetter
	if err := json.Unmarshal(ev.Data(), &dl); err != nil {
		t.Fatal(err)
	}
	if dl.SourceEventID != "bad-1" || !strings.Contains(dl.Reason, "label-changed") || dl.Body == nil || dl.Provider != "whapi" {
		t.Errorf("dead letter = %+v", dl)
	}
	if err := schemas.Validate(envelope.DeadLetterSchema, ev.Data()); err != nil {
		t.Errorf("dead letter invalid: %v\n%s", err, ev.Data())
	}
}

// storesDuplicates: Kafka has no duplicate window.
func (p *kpipeline) storesDuplicates() bool { return true }

func (p *kpipeline) awaitEvents(stream, provider, channel string, want int) []cloudevents.Event {
	p.t.Helper()
	return p.await(stream, provider, channel, want)
}
