package e2e

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/consumer"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/state/natsstate"
)

// dying is a deriver process's state that hangs on one raw event, as a
// process about to be killed does: the call never returns a result.
type dying struct {
	labels derive.LabelRegistry
	chats  derive.ChatRegistry
	// on is the raw event ids to hang on; reached is told each id once.
	on      map[string]bool
	reached chan string
}

func (d *dying) hang(ctx context.Context, eventID string) error {
	if !d.on[eventID] {
		return nil
	}
	select {
	case d.reached <- eventID:
	default:
	}
	<-ctx.Done()
	return ctx.Err()
}

func (d *dying) Upsert(ctx context.Context, provider, channel string, l fact.Label, eventID string) (bool, fact.Label, error) {
	if err := d.hang(ctx, eventID); err != nil {
		return false, fact.Label{}, err
	}
	return d.labels.Upsert(ctx, provider, channel, l, eventID)
}

func (d *dying) Delete(ctx context.Context, provider, channel string, ref fact.LabelRef, eventID string) (fact.Label, bool, error) {
	return d.labels.Delete(ctx, provider, channel, ref, eventID)
}

func (d *dying) Lookup(ctx context.Context, provider, channel, id string) (fact.Label, bool, error) {
	return d.labels.Lookup(ctx, provider, channel, id)
}

func (d *dying) FirstSeen(ctx context.Context, provider, channel, chat, eventID string) (bool, error) {
	if err := d.hang(ctx, eventID); err != nil {
		return false, err
	}
	return d.chats.FirstSeen(ctx, provider, channel, chat, eventID)
}

// crashConfig is a deriver's: a dead instance is taken over within a
// second or two.
var crashConfig = natsbroker.SubscribeConfig{AckWait: 2 * time.Second, RetryMax: time.Second,
	LeaseTTL: 2 * time.Second, ShutdownGrace: time.Second}

// deriver runs the label-changed and chat-created consumers in-process on
// a connection of their own; wrap, when set, replaces their state.
func (p *pipeline) deriver(wrap func(derive.LabelRegistry, derive.ChatRegistry) (derive.LabelRegistry, derive.ChatRegistry)) (kill func()) {
	p.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b, err := natsbroker.Connect(ctx, natsbroker.Config{URL: p.emb.ClientURL(), Auth: p.emb.ServiceAuth(), Name: "e2e-deriver", Subscribe: crashConfig})
	if err != nil {
		p.t.Fatal(err)
	}
	st, err := natsstate.Open(ctx, b.JetStream(), natsstate.Config{})
	if err != nil {
		p.t.Fatal(err)
	}
	var labels derive.LabelRegistry = st.Labels()
	var chats derive.ChatRegistry = st.Chats()
	if wrap != nil {
		labels, chats = wrap(labels, chats)
	}
	done := make(chan error, 1)
	go func() {
		done <- consumer.Streams{Names: []string{derive.LabelChanged, derive.ChatCreated}, GroupPrefix: "e2e-", Concurrency: 16}.Run(ctx, consumer.Deps{
			Subscriber: b, Publisher: b, Binding: envelope.NATS, Labels: labels, Chats: chats,
			Providers: providers, Metrics: consumer.NewMetrics(prometheus.NewRegistry()),
		})
	}()
	var once sync.Once
	kill = func() {
		once.Do(func() {
			// The connection dies first: nothing is acknowledged, handed
			// back or released, as when the process is killed.
			b.Conn().Close()
			cancel()
			<-done
		})
	}
	p.t.Cleanup(func() {
		once.Do(func() {
			cancel()
			<-done
			cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer ccancel()
			_ = b.Close(cctx)
		})
	})
	return kill
}

// TestOrderAfterDeriverKilled kills the deriver, without a graceful stop,
// while it handles the first of two raw events of a label and the first of
// two messages of a new chat; the second ones arrive after the crash, and
// the deriver is restarted at once: the restarted
// deriver takes over the consumers and handles every key's events in
// stream order, so the label is created then updated, and the chat is
// created by its first message.
func TestOrderAfterDeriverKilled(t *testing.T) {
	p := newPipeline(t)
	created := p.post("/v1/webhooks/whapi", []byte(`{"labels":[{"id":"9","name":"New","color":"gold"}],"event":{"type":"labels","event":"post"},"channel_id":"CH"}`))
	first := p.post("/v1/webhooks/zapi", zapiText("5511900000001", "crash-1", false))

	d := &dying{on: map[string]bool{created[0]: true, first[0]: true}, reached: make(chan string, 2)}
	kill := p.deriver(func(l derive.LabelRegistry, c derive.ChatRegistry) (derive.LabelRegistry, derive.ChatRegistry) {
		d.labels, d.chats = l, c
		return d, d
	})
	for range 2 {
		select {
		case <-d.reached:
		case <-time.After(30 * time.Second):
			t.Fatal("the deriver did not reach the first events")
		}
	}
	kill()
	// The second events arrive while the deriver is down and restarting.
	edited := p.post("/v1/webhooks/whapi", []byte(`{"labels":[{"id":"9","name":"Paid","color":"green"}],"event":{"type":"labels","event":"post"},"channel_id":"CH"}`))
	second := p.post("/v1/webhooks/zapi", zapiText("5511900000001", "crash-2", false))
	p.deriver(nil)

	labels := p.await("wahook.label-changed.whapi.CH", 2)
	var got []string
	for _, ev := range labels {
		id, name, previous := labelOf(t, ev)
		got = append(got, ev.Type()+" "+id+" "+name+" previous:"+previous["name"])
	}
	want := []string{"io.wahook.label.created 9 New previous:", "io.wahook.label.updated 9 Paid previous:New"}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("label events = %q, want %q", got, want)
	}
	for i, ev := range labels {
		if cause, _ := ev.Extensions()["causationid"].(string); i < 2 && cause != []string{created[0], edited[0]}[i] {
			t.Errorf("label event %d caused by %s, want %s", i, cause, []string{created[0], edited[0]}[i])
		}
	}
	chats := p.await("wahook.chat-created.zapi.INST-1", 1)
	if cause, _ := chats[0].Extensions()["causationid"].(string); cause != first[0] {
		t.Errorf("chat.created caused by %s, want the first message %s (not %s)", cause, first[0], second[0])
	}
}
