package consumer_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/broker/natsbroker/natstest"
	"github.com/wahook/wahook/pkg/consumer"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/derive/label"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/provider"
	"github.com/wahook/wahook/pkg/provider/evolution"
	"github.com/wahook/wahook/pkg/provider/meta"
	"github.com/wahook/wahook/pkg/provider/waha"
	"github.com/wahook/wahook/pkg/provider/whapi"
	"github.com/wahook/wahook/pkg/provider/zapi"
	"github.com/wahook/wahook/pkg/state/natsstate"
)

var allProviders = []provider.Provider{evolution.New(), meta.New(), waha.New(), whapi.New(), zapi.New()}

// Raw events of each kind, on channel CH, about chat n.
func chatOf(n int) string { return fmt.Sprintf("55119%08d@s.whatsapp.net", n) }

func chatsPatch(id string, n, from, to int) envelope.Raw {
	return envelope.Raw{ID: id, Provider: "whapi", Channel: "CH", Kind: whapi.KindChatsPatch, Chat: chatOf(n), Time: time.Unix(1747391325, 0),
		Data: fmt.Appendf(nil, `{"before_update":{"id":%q,"labels":[{"id":"%d","name":"L%d"}]},"after_update":{"id":%q,"labels":[{"id":"%d","name":"L%d"}]},"changes":["labels"]}`,
			chatOf(n), from, from, chatOf(n), to, to)}
}

func messagesPost(id string, n int) envelope.Raw {
	return envelope.Raw{ID: id, Provider: "whapi", Channel: "CH", Kind: whapi.KindMessagesPost, Chat: chatOf(n), Time: time.Unix(1747391325, 0),
		Data: fmt.Appendf(nil, `{"id":%q,"from_me":false,"type":"text","chat_id":%q,"timestamp":1747391325,"text":{"body":"hi"}}`, id, chatOf(n))}
}

func statusesPost(id string, n int) envelope.Raw {
	return envelope.Raw{ID: id, Provider: "whapi", Channel: "CH", Kind: whapi.KindStatusesPost, Chat: chatOf(n), Time: time.Unix(1747391325, 0),
		Data: fmt.Appendf(nil, `{"id":%q,"code":3,"status":"read","recipient_id":%q,"timestamp":"1747391325"}`, id, chatOf(n))}
}

// outcomes returns the label-changed consumer's raw events by outcome.
func outcomes(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "wahook_consumer_raw_events_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			// Outcomes are present from the start at 0: count those that
			// happened.
			if v := m.GetCounter().GetValue(); labels["stream"] == derive.LabelChanged && v > 0 {
				out[labels["outcome"]] += v
			}
		}
	}
	return out
}

// consumerInfo returns the state of a durable consumer of the raw stream.
func consumerInfo(t *testing.T, b *natsbroker.Broker, name string) *jetstream.ConsumerInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	c, err := b.JetStream().Consumer(ctx, natsbroker.IngressStream, name)
	if err != nil {
		t.Fatalf("consumer %s: %v", name, err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatalf("consumer %s info: %v", name, err)
	}
	return info
}

func filters(c jetstream.ConsumerConfig) []string {
	if c.FilterSubject != "" {
		return []string{c.FilterSubject}
	}
	return c.FilterSubjects
}

// TestFilterSubjects: a consumer's filter is, per provider and any
// channel, the kinds its stream reads, without overlaps; a provider
// without Feeds is read whole, and a stream no Feeds name reads everything.
func TestFilterSubjects(t *testing.T) {
	metrics := consumer.NewMetrics(prometheus.NewRegistry())
	b := natstest.Broker(t, natsbroker.Config{})
	filter := func(d derive.Deriver, ps ...provider.Provider) []string {
		c, err := consumer.New(consumer.Config{Deriver: d, Providers: ps, Subscriber: b, Publisher: b, Metrics: metrics})
		if err != nil {
			t.Fatal(err)
		}
		return c.Filter()
	}
	got := filter(label.Deriver{}, allProviders...)
	want := []string{
		"wahook.ingress.evolution.*.labels.association", "wahook.ingress.evolution.*.labels.edit",
		"wahook.ingress.waha.*.label.chat.added", "wahook.ingress.waha.*.label.chat.deleted",
		"wahook.ingress.waha.*.label.deleted", "wahook.ingress.waha.*.label.upsert",
		"wahook.ingress.whapi.*.chats.patch", "wahook.ingress.whapi.*.labels.delete", "wahook.ingress.whapi.*.labels.post",
		"wahook.ingress.zapi.*.received.notification",
	}
	if !slices.Equal(got, want) {
		t.Errorf("label-changed filter = %q, want %q", got, want)
	}
	// received.notification is under received.>: JetStream refuses
	// overlapping filters.
	if got, want := filter(streamOf(derive.ChatCreated), zapi.New()), []string{"wahook.ingress.zapi.*.delivery", "wahook.ingress.zapi.*.received.>"}; !slices.Equal(got, want) {
		t.Errorf("chat-created filter of zapi = %q, want %q", got, want)
	}
	if got, want := filter(label.Deriver{}, undeclared{}), []string{"wahook.ingress.acme.>"}; !slices.Equal(got, want) {
		t.Errorf("filter of a provider without Feeds = %q, want %q", got, want)
	}
	if got := filter(streamOf("elsewhere"), allProviders...); got != nil {
		t.Errorf("filter of a stream no Feeds name = %q, want none", got)
	}
}

// TestFilterMatchesFeeds: a raw event's subject matches a stream's filter
// exactly when its provider's Feeds say the stream reads its kind, for
// every kind of the providers' documented examples, on any channel.
func TestFilterMatchesFeeds(t *testing.T) {
	metrics := consumer.NewMetrics(prometheus.NewRegistry())
	b := natstest.Broker(t, natsbroker.Config{})
	for _, d := range []derive.Deriver{label.Deriver{}, streamOf(derive.ChatCreated), streamOf(derive.Call), streamOf(derive.GroupNotification)} {
		c, err := consumer.New(consumer.Config{Deriver: d, Providers: allProviders, Subscriber: b, Publisher: b, Metrics: metrics})
		if err != nil {
			t.Fatal(err)
		}
		filter := c.Filter()
		for _, p := range allProviders {
			feeds, _ := provider.FeedsOf(p)
			kinds := []string{provider.KindUnknown}
			for _, it := range derivetest.Fixtures(t, p, filepath.Join("..", "provider", p.Name(), "testdata")) {
				kinds = append(kinds, it.Kind)
			}
			for _, kind := range kinds {
				for _, channel := range []string{"CH", "instance.id"} {
					subject := envelope.IngressSubject(p.Name(), channel, kind)
					matched := slices.ContainsFunc(filter, func(f string) bool { return subjectMatch(f, subject) })
					if want := feeds.Reads(d.Stream(), kind); matched != want {
						t.Errorf("%s: %s matches the filter: %v; Feeds say the stream reads it: %v", d.Stream(), subject, matched, want)
					}
				}
			}
		}
	}
}

// subjectMatch reports whether subject matches the NATS filter f.
func subjectMatch(f, subject string) bool {
	ft, st := strings.Split(f, "."), strings.Split(subject, ".")
	for i, tok := range ft {
		switch {
		case tok == ">":
			return len(st) > i
		case i >= len(st):
			return false
		case tok != "*" && tok != st[i]:
			return false
		}
	}
	return len(ft) == len(st)
}

// streamOf derives nothing for the stream it names.
type streamOf string

func (s streamOf) Stream() string { return string(s) }
func (streamOf) Derive(context.Context, derive.Raw, fact.Facts) ([]derive.Event, error) {
	return nil, nil
}

// undeclared is a provider that declares no Feeds.
type undeclared struct{ provider.Provider }

func (undeclared) Name() string { return "acme" }

// TestConsumerReceivesOnlyWhatItReads runs the label-changed consumer on
// the embedded server over raw events of every provider, most of kinds it
// does not read: JetStream delivers it the others only, which it derives;
// an unreadable event of a kind it reads is dead-lettered, one of a kind it
// does not read is not its business, nor is a provider it does not serve.
func TestConsumerReceivesOnlyWhatItReads(t *testing.T) {
	e := newNATS(t)
	read := []envelope.Raw{
		chatsPatch("patch-1", 1, 1, 2),
		{ID: "zapi-label", Provider: "zapi", Channel: "CH", Kind: zapi.KindNotification, Chat: "5511999999999", Time: time.Unix(1747391325, 0),
			Data: []byte(`{"type":"ReceivedCallback","instanceId":"CH","messageId":"M1","phone":"5511999999999","fromMe":false,"momment":1747391325000,` +
				`"notification":"CHAT_LABEL_ASSOCIATION","notificationParameters":[{"phone":"5511999999999","label":"7","assigned":true}]}`)},
		{ID: "waha-label", Provider: "waha", Channel: "CH", Kind: waha.KindLabelChatAdded, Time: time.Unix(1747391325, 0),
			Data: []byte(`{"event":"label.chat.added","session":"CH","payload":{"chatId":"5511888888888@c.us","labelId":"3","label":null}}`)},
	}
	bad := envelope.Raw{ID: "patch-bad", Provider: "whapi", Channel: "CH", Kind: whapi.KindChatsPatch, Time: time.Unix(1747391325, 0), Data: []byte(`"nope"`)}
	unread := []envelope.Raw{
		messagesPost("msg-1", 1), statusesPost("status-1", 1),
		{ID: "status-bad", Provider: "whapi", Channel: "CH", Kind: whapi.KindStatusesPost, Time: time.Unix(1747391325, 0), Data: []byte(`not JSON`)},
		{ID: "zapi-text", Provider: "zapi", Channel: "CH", Kind: "received.text", Chat: "5511999999999", Time: time.Unix(1747391325, 0),
			Data: []byte(`{"type":"ReceivedCallback","instanceId":"CH","messageId":"M2","phone":"5511999999999","fromMe":false,"text":{"message":"hi"}}`)},
		{ID: "waha-message", Provider: "waha", Channel: "CH", Kind: waha.KindMessage, Time: time.Unix(1747391325, 0),
			Data: []byte(`{"event":"message","session":"CH","payload":{"id":"x","from":"5511888888888@c.us","fromMe":false}}`)},
		{ID: "acme", Provider: "acme", Channel: "CH", Kind: "chats.patch", Time: time.Unix(1747391325, 0), Data: []byte(`{}`)},
	}
	for i := range max(len(read), len(unread)) {
		if i < len(unread) {
			e.publish(t, unread[i])
		}
		if i < len(read) {
			e.publish(t, read[i])
		}
	}
	e.publish(t, bad)

	reg := prometheus.NewRegistry()
	c, err := consumer.New(consumer.Config{
		Deriver: label.Deriver{Registry: e.st.Labels()}, Providers: allProviders,
		Subscriber: e.b, Publisher: e.b, Binding: envelope.NATS, Metrics: consumer.NewMetrics(reg),
	})
	if err != nil {
		t.Fatal(err)
	}
	run(t, c)
	waitFor(t, "the label events derived and the bad one dead-lettered", func() bool {
		o := outcomes(t, reg)
		return o["derived"] == 3 && o["dead_lettered"] == 1
	})
	time.Sleep(200 * time.Millisecond)

	info := consumerInfo(t, e.b, "wahook-label-changed")
	if got, want := filters(info.Config), c.Filter(); !slices.Equal(got, want) {
		t.Errorf("consumer filters = %q, want %q", got, want)
	}
	if info.Delivered.Consumer != uint64(len(read)+1) || info.NumPending != 0 || info.NumAckPending != 0 || info.NumRedelivered != 0 {
		t.Errorf("consumer delivered %d (pending %d, ack pending %d, redelivered %d), want the %d raw events of kinds it reads, once each",
			info.Delivered.Consumer, info.NumPending, info.NumAckPending, info.NumRedelivered, len(read)+1)
	}
	if o := outcomes(t, reg); o["skipped"] != 0 || o["not_read"] != 0 || o["error"] != 0 {
		t.Errorf("outcomes %v: a raw event of a kind it does not read reached the consumer", o)
	}
	var dead []string
	for _, m := range e.messages(t, natsbroker.DeadLetterStream, "wahook.deadletter.>") {
		var dl envelope.DeadLetter
		if err := json.Unmarshal(m.Data, &dl); err != nil {
			t.Fatal(err)
		}
		dead = append(dead, dl.SourceEventID)
	}
	if !slices.Equal(dead, []string{bad.ID}) {
		t.Errorf("dead letters of %q, want only %s's", dead, bad.ID)
	}
	if got := len(e.derivedTypes(t, derive.LabelChanged, "CH")); got != 2 {
		t.Errorf("%d label events of the whapi chats.patch, want 2 (one added, one removed)", got)
	}
}

// counting counts Derive calls by raw event id.
type counting struct {
	derive.Deriver
	mu    sync.Mutex
	calls map[string]int
}

func (c *counting) Derive(ctx context.Context, raw derive.Raw, f fact.Facts) ([]derive.Event, error) {
	c.mu.Lock()
	c.calls[raw.ID]++
	c.mu.Unlock()
	return c.Deriver.Derive(ctx, raw, f)
}

func (c *counting) count(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[id]
}

// TestUpgradeFromUnfilteredConsumer: the label-changed durable consumer as
// an earlier version left it, unfiltered, with raw events acknowledged,
// some delivered and held (handed back at a clean stop, or unacknowledged
// by a crash) and the rest not delivered yet, is taken over by a consumer
// that reads its kinds only: its filters are updated in place, every
// chats.patch is derived exactly once over both, none acknowledged before
// comes again, the held events of kinds it no longer reads are passed over
// unread, and nothing is left pending.
func TestUpgradeFromUnfilteredConsumer(t *testing.T) {
	for _, crash := range []bool{false, true} {
		t.Run(map[bool]string{false: "clean stop", true: "crash"}[crash], func(t *testing.T) {
			testUpgrade(t, crash)
		})
	}
}

func testUpgrade(t *testing.T, crash bool) {
	emb := natstest.Start(t, natsbroker.EmbeddedConfig{})
	sub := natsbroker.SubscribeConfig{RetryMin: 10 * time.Millisecond, RetryMax: 50 * time.Millisecond, LeaseTTL: time.Second}
	old := sub
	old.MaxAckPending = 4
	// The earlier version, on a connection of its own so that it can die.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b1, err := natsbroker.Connect(ctx, natsbroker.Config{Embedded: emb, Name: "old", Subscribe: old})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b1.Close(context.Background()) }()
	b2 := natstest.Connect(t, emb, natsbroker.Config{Name: "new", Subscribe: sub})
	st, err := natsstate.Open(ctx, b2.JetStream(), natsstate.Config{})
	if err != nil {
		t.Fatal(err)
	}
	e := &natsEnv{b: b2, st: st}

	// Three chats in turn; every other raw event a chats.patch.
	raws := []envelope.Raw{
		chatsPatch("e01", 1, 1, 2), messagesPost("e02", 2), chatsPatch("e03", 3, 1, 2), statusesPost("e04", 1),
		chatsPatch("e05", 2, 1, 2), messagesPost("e06", 3), chatsPatch("e07", 1, 2, 3), statusesPost("e08", 2),
		chatsPatch("e09", 3, 2, 3), messagesPost("e10", 1), chatsPatch("e11", 2, 2, 3), statusesPost("e12", 3),
	}
	e.publish(t, raws...)
	derivations := &counting{Deriver: label.Deriver{Registry: st.Labels()}, calls: map[string]int{}}
	newConsumer := func(b *natsbroker.Broker, reg *prometheus.Registry) *consumer.Consumer {
		c, err := consumer.New(consumer.Config{
			Deriver: derivations, Providers: allProviders, Subscriber: b, Publisher: b, Binding: envelope.NATS,
			Metrics: consumer.NewMetrics(reg),
		})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}

	// Before: every raw event, through the handler. The first four are
	// handled; the next four are held until the end (at most 4
	// unacknowledged), so the last four are not delivered yet.
	c1 := newConsumer(b1, prometheus.NewRegistry())
	octx, stopOld := context.WithCancel(context.Background())
	oldDone := make(chan error, 1)
	go func() {
		oldDone <- b1.Subscribe(octx, broker.Subscription{Topic: envelope.IngressTopic, Group: "wahook-label-changed", Concurrency: 4},
			func(ctx context.Context, m broker.Received) error {
				if slices.Contains([]string{"e01", "e02", "e03", "e04"}, m.ID) {
					return c1.Handle(ctx, m)
				}
				<-octx.Done()
				return octx.Err()
			})
	}()
	waitFor(t, "the first eight delivered, four of them handled", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		c, err := b2.JetStream().Consumer(ctx, natsbroker.IngressStream, "wahook-label-changed")
		if err != nil {
			return false // not created yet
		}
		info := c.CachedInfo()
		return info.AckFloor.Stream == 4 && info.Delivered.Stream == 8 && info.NumAckPending == 4
	})
	if crash {
		// Nothing acknowledged or handed back, as when a process dies.
		b1.Conn().Close()
	}
	stopOld()
	if err := <-oldDone; err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("the earlier version's Subscribe: %v", err)
	}
	if info := consumerInfo(t, b2, "wahook-label-changed"); info.NumAckPending+int(info.NumRedelivered) == 0 || info.NumPending != 4 {
		t.Fatalf("before the upgrade: ack pending %d, redelivered %d, not delivered %d; want events held and four not delivered",
			info.NumAckPending, info.NumRedelivered, info.NumPending)
	}

	// After: the consumer reading its kinds only, on the same durable.
	reg := prometheus.NewRegistry()
	c2 := newConsumer(b2, reg)
	run(t, c2)
	waitFor(t, "every chats.patch derived", func() bool {
		return len(e.derivedTypes(t, derive.LabelChanged, "CH")) == 12
	})
	waitFor(t, "nothing left pending", func() bool {
		info := consumerInfo(t, b2, "wahook-label-changed")
		return info.NumPending == 0 && info.NumAckPending == 0 && info.NumRedelivered == 0
	})

	info := consumerInfo(t, b2, "wahook-label-changed")
	if got, want := filters(info.Config), c2.Filter(); !slices.Equal(got, want) {
		t.Errorf("consumer filters after the upgrade = %q, want %q", got, want)
	}
	for _, r := range raws {
		want := 0
		if r.Kind == whapi.KindChatsPatch {
			want = 1
		}
		if got := derivations.count(r.ID); got != want {
			t.Errorf("%s (%s) derived %d times, want %d", r.ID, r.Kind, got, want)
		}
	}
	o := outcomes(t, reg)
	if o["derived"] != 4 || o["skipped"] != 0 || o["dead_lettered"] != 0 || o["error"] != 0 {
		t.Errorf("outcomes after the upgrade %v, want the four chats.patch not handled before derived, nothing else handled", o)
	}
	// A clean stop handed the held events back: they are delivered again
	// although the new filters do not match e06 and e08, which are passed
	// over. After a crash the consumer is reset to its ack floor and
	// delivers by the new filters only.
	if want := map[bool]float64{false: 2, true: 0}[crash]; o["not_read"] != want {
		t.Errorf("raw events passed over unread %v, want %v", o["not_read"], want)
	}
}
