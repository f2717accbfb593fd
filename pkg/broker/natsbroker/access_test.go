package natsbroker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// violations collects the permission errors the server sends a connection.
type violations chan error

func (v violations) handler(_ *nats.Conn, _ *nats.Subscription, err error) {
	if errors.Is(err, nats.ErrPermissionViolation) {
		select {
		case v <- err:
		default:
		}
	}
}

// dialAs connects over TCP as user (anonymously when user is empty) and
// reports permission errors to the returned channel.
func dialAs(t *testing.T, url, user, pass string) (*nats.Conn, violations) {
	t.Helper()
	v := make(violations, 64)
	opts := []nats.Option{nats.ErrorHandler(v.handler), nats.MaxReconnects(0)}
	if user != "" {
		opts = append(opts, nats.UserInfo(user, pass))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("connect as %q: %v", user, err)
	}
	t.Cleanup(nc.Close)
	return nc, v
}

// refused runs op and requires the server to refuse a publish on a subject
// starting with subject: a permission violation arrives and op fails.
func refused(t *testing.T, v violations, subject string, op func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- op(ctx) }()
	for {
		select {
		case err := <-v:
			if !strings.Contains(err.Error(), subject) {
				continue // an earlier, unrelated refusal
			}
			cancel()
			if opErr := <-done; opErr == nil {
				t.Errorf("%s: refused by the server, yet the call reported success", subject)
			}
			return
		case err := <-done:
			if err == nil {
				t.Fatalf("%s: allowed, want a permissions violation", subject)
			}
			// A publish-only op returns at once; wait for the refusal.
			done <- err
			select {
			case verr := <-v:
				if !strings.Contains(verr.Error(), subject) {
					t.Fatalf("%s: refusal for another subject: %v", subject, verr)
				}
				return
			case <-ctx.Done():
				t.Fatalf("%s: failed with %v but no permissions violation", subject, err)
			}
		case <-ctx.Done():
			t.Fatalf("%s: neither refused nor done", subject)
		}
	}
}

// The subscribers of newAccessFixture's server, each with a consumer wahook
// keeps for it.
var (
	readerFeed = SubscriberConsumer{User: "reader", Name: "feed", Filter: "wahook.label-changed.>", AckWait: time.Second}
	otherFeed  = SubscriberConsumer{User: "other", Name: "feed", Filter: IngressSubjects}
)

// wahookDurables are durable consumers of wahook's own on the raw stream,
// named as its consumers name them: unpartitioned, a partition of two, and
// a replay under another group prefix.
var wahookDurables = []string{"wahook-label-changed", "wahook-call-p0of2", "replay-2026-11-label-changed"}

// newAccessFixture starts an embedded server with the subscribers reader
// and other and their consumers, and fills it as wahook would: raw and
// derived events, the label and chat buckets, wahook's durable consumers
// (the first holding an event it has not acked). It returns the server and
// wahook's broker, connected in-process.
func newAccessFixture(t *testing.T) (*Embedded, *Broker) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e, err := StartEmbedded(ctx, EmbeddedConfig{
		Addr: "127.0.0.1:-1", StoreDir: t.TempDir(),
		Subscribers:         []Subscriber{{User: "reader", Password: "reader-secret"}, {User: "other", Password: "other-secret"}},
		SubscriberConsumers: []SubscriberConsumer{readerFeed, otherFeed},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Shutdown(context.Background()) })
	b := connect(t, Config{Embedded: e})
	if err := b.EnsureSubscriberConsumers(ctx, []SubscriberConsumer{readerFeed, otherFeed}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if err := b.Publish(ctx, ingressMsg("CH", i, jsonBody(i))); err != nil {
			t.Fatal(err)
		}
	}
	js := b.JetStream()
	for i := 1; i <= 2; i++ {
		publishDerived(t, js, i)
	}
	for _, bucket := range []string{"WAHOOK_LABELS", "WAHOOK_CHATS"} {
		kv, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bucket})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, "whapi.CH.1", []byte(`{"name":"VIP"}`)); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range wahookDurables {
		if _, err := js.CreateOrUpdateConsumer(ctx, IngressStream, jetstream.ConsumerConfig{
			Durable: name, AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: IngressSubjects, AckWait: time.Hour,
		}); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := js.Consumer(ctx, IngressStream, wahookDurables[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return e, b
}

// publishDerived stores the i-th derived label event of channel CH.
func publishDerived(t *testing.T, js jetstream.JetStream, i int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id := fmt.Sprintf("derived-%d", i)
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: "wahook.label-changed.whapi.CH.added", Data: []byte(`{"label":"VIP"}`),
		Header: nats.Header{"ce-id": {id}, "ce-type": {"io.wahook.label.added"}, jetstream.MsgIDHeader: {id}}}); err != nil {
		t.Fatal(err)
	}
}

// snapshot describes everything a subscriber must not change: each
// stream's messages and each consumer's definition and position.
func snapshot(t *testing.T, js jetstream.JetStream) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := map[string]string{}
	streams := js.ListStreams(ctx)
	for info := range streams.Info() {
		got[info.Config.Name] = fmt.Sprintf("%d messages, %d bytes, last %d", info.State.Msgs, info.State.Bytes, info.State.LastSeq)
		s, err := js.Stream(ctx, info.Config.Name)
		if err != nil {
			t.Fatal(err)
		}
		consumers := s.ListConsumers(ctx)
		for ci := range consumers.Info() {
			c := ci.Config
			got[info.Config.Name+"/"+ci.Name] = fmt.Sprintf("filter %q deliver %q %q ack wait %s; delivered %d, ack floor %d, %d unacked",
				c.FilterSubject, c.DeliverSubject, c.Description, c.AckWait, ci.Delivered.Stream, ci.AckFloor.Stream, ci.NumAckPending)
		}
		if err := consumers.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if err := streams.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestSubscriberCannotWrite: a subscriber cannot make the server write into
// wahook's streams or buckets, neither by creating a push consumer that
// delivers there (nats-server#8274) nor by naming one of their subjects as
// the reply of a request it may make.
func TestSubscriberCannotWrite(t *testing.T) {
	e, b := newAccessFixture(t)
	before := snapshot(t, b.JetStream())
	nc, v := dialAs(t, e.ClientURL(), "reader", "reader-secret")

	t.Run("push consumers delivering into wahook's streams", func(t *testing.T) {
		for _, tc := range []struct{ stream, deliver string }{
			{"KV_WAHOOK_CHATS", "$KV.WAHOOK_LABELS.x"},
			{"KV_WAHOOK_CHATS", "wahook.ingress.whapi.CH.messages.post"},
			{DerivedStream, "wahook.ingress.whapi.CH.messages.post"},
			{DerivedStream, "$KV.WAHOOK_LABELS.x"},
		} {
			cfg := fmt.Sprintf(`{"stream_name":%q,"config":{"name":"copy","deliver_subject":%q,"ack_policy":"none","deliver_policy":"all"}}`, tc.stream, tc.deliver)
			for _, subj := range []string{
				"$JS.API.CONSUMER.CREATE." + tc.stream + ".copy",
				"$JS.API.CONSUMER.CREATE." + tc.stream,
				"$JS.API.CONSUMER.DURABLE.CREATE." + tc.stream + ".copy",
			} {
				refused(t, v, subj, func(ctx context.Context) error {
					_, err := nc.RequestWithContext(ctx, subj, []byte(cfg))
					return err
				})
			}
		}
	})

	t.Run("replies into wahook's streams", func(t *testing.T) {
		// The subscriber may listen on wahook.>: each answer arriving
		// there shows the server handled the request, and where the
		// answer went.
		answers, err := nc.SubscribeSync("wahook.ingress.whapi.EVIL.>")
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, req := range []struct{ subject, body string }{
			{"$JS.API.INFO", ""},
			{"$JS.API.STREAM.INFO." + IngressStream, ""},
			{"$JS.API.STREAM.MSG.GET." + IngressStream, `{"seq":1}`},
			{"$JS.API.DIRECT.GET." + DerivedStream, `{"seq":1}`},
			{"$JS.API.DIRECT.GET." + DerivedStream, `{"seq":1,"batch":10}`},
			{"$JS.API.DIRECT.GET.KV_WAHOOK_CHATS.$KV.WAHOOK_CHATS.whapi.CH.1", ""},
			{"$JS.API.CONSUMER.MSG.NEXT." + DerivedStream + "." + readerFeed.Durable(), `{"batch":10,"no_wait":true}`},
		} {
			for _, reply := range []string{"$KV.WAHOOK_LABELS.evil", fmt.Sprintf("wahook.ingress.whapi.EVIL.%d.post", n)} {
				if err := nc.PublishRequest(req.subject, reply, []byte(req.body)); err != nil {
					t.Fatal(err)
				}
			}
			n++
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		seen := map[string]bool{}
		for len(seen) < n {
			m, err := answers.NextMsgWithContext(ctx)
			if err != nil {
				t.Fatalf("answers seen on wahook.ingress.whapi.EVIL.> %v, want %d: %v", seen, n, err)
			}
			seen[m.Subject] = true
		}
		select {
		case err := <-v:
			t.Errorf("a read was refused: %v", err)
		default:
		}
	})

	// The pull request above delivered events of the subscriber's own
	// consumer to its own account: that changed its position, nothing else.
	after := snapshot(t, b.JetStream())
	delete(before, DerivedStream+"/"+readerFeed.Durable())
	delete(after, DerivedStream+"/"+readerFeed.Durable())
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("the subscriber changed wahook's streams or consumers (-before +after):\n%s", diff)
	}
}

// TestSubscriberCannotTouchConsumers: a subscriber can neither delete,
// update, pull from, ack nor read wahook's durable consumers (of every
// partitioning and group prefix) or another subscriber's, nor create,
// update or delete any consumer.
func TestSubscriberCannotTouchConsumers(t *testing.T) {
	e, b := newAccessFixture(t)
	before := snapshot(t, b.JetStream())
	nc, v := dialAs(t, e.ClientURL(), "reader", "reader-secret")
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	targets := []struct{ stream, name string }{{DerivedStream, readerFeed.Durable()}, {IngressStream, otherFeed.Durable()}}
	for _, n := range wahookDurables {
		targets = append(targets, struct{ stream, name string }{IngressStream, n})
	}
	for i, tc := range targets {
		own := i == 0
		api := "$JS.API.CONSUMER."
		ops := map[string]func(context.Context) error{
			api + "DELETE." + tc.stream + "." + tc.name: func(ctx context.Context) error {
				return js.DeleteConsumer(ctx, tc.stream, tc.name)
			},
			api + "CREATE." + tc.stream + "." + tc.name: func(ctx context.Context) error {
				_, err := js.UpdateConsumer(ctx, tc.stream, jetstream.ConsumerConfig{
					Durable: tc.name, AckPolicy: jetstream.AckExplicitPolicy, Description: "taken over"})
				return err
			},
			api + "PAUSE." + tc.stream + "." + tc.name: func(ctx context.Context) error {
				_, err := js.PauseConsumer(ctx, tc.stream, tc.name, time.Now().Add(time.Hour))
				return err
			},
			api + "RESET." + tc.stream + "." + tc.name: func(ctx context.Context) error {
				_, err := nc.RequestWithContext(ctx, api+"RESET."+tc.stream+"."+tc.name, nil)
				return err
			},
			// The v1 ack form, and the v2 form of the subscriber's own
			// consumer carrying another's stream and name in its
			// domain and account tokens.
			"$JS.ACK." + tc.stream + "." + tc.name + ".1.1.1.1.0": func(ctx context.Context) error {
				_, err := nc.RequestWithContext(ctx, "$JS.ACK."+tc.stream+"."+tc.name+".1.1.1.1.0", []byte("+ACK"))
				return err
			},
		}
		if !own {
			ops[api+"INFO."+tc.stream+"."+tc.name] = func(ctx context.Context) error {
				_, err := js.Consumer(ctx, tc.stream, tc.name)
				return err
			}
			ops[api+"MSG.NEXT."+tc.stream+"."+tc.name] = func(ctx context.Context) error {
				_, err := nc.RequestWithContext(ctx, api+"MSG.NEXT."+tc.stream+"."+tc.name, []byte(`{"batch":1,"no_wait":true}`))
				return err
			}
		}
		for subj, op := range ops {
			if own && strings.HasPrefix(subj, "$JS.ACK.") {
				continue
			}
			refused(t, v, subj, op)
		}
	}
	// An ack in the v2 form the subscriber may send, for its own consumer,
	// built to look like another's: nothing in wahook's account answers.
	crafted := "$JS.ACK." + IngressStream + "." + wahookDurables[0] + "." + DerivedStream + "." + readerFeed.Durable() + ".1.1.1.1.0"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := nc.RequestWithContext(ctx, crafted, []byte("+ACK")); !errors.Is(err, nats.ErrNoResponders) {
		t.Errorf("crafted ack %s = %v, want no responders", crafted, err)
	}
	refused(t, v, "$JS.API.CONSUMER.CREATE."+DerivedStream+".mine", func(ctx context.Context) error {
		_, err := js.CreateConsumer(ctx, DerivedStream, jetstream.ConsumerConfig{Durable: "mine", AckPolicy: jetstream.AckExplicitPolicy})
		return err
	})
	refused(t, v, "$JS.API.CONSUMER.CREATE."+DerivedStream, func(ctx context.Context) error {
		_, err := js.OrderedConsumer(ctx, DerivedStream, jetstream.OrderedConsumerConfig{})
		return err
	})
	refused(t, v, "$JS.API.CONSUMER.LIST."+IngressStream, func(ctx context.Context) error {
		s, err := js.Stream(ctx, IngressStream)
		if err != nil {
			return err
		}
		l := s.ListConsumers(ctx)
		for range l.Info() {
		}
		return l.Err()
	})
	if diff := cmp.Diff(before, snapshot(t, b.JetStream())); diff != "" {
		t.Errorf("the subscriber changed wahook's streams or consumers (-before +after):\n%s", diff)
	}
}

// TestSubscriberCannotManage: no publish on wahook's subjects, no KV write,
// no stream management, no message delete.
func TestSubscriberCannotManage(t *testing.T) {
	e, b := newAccessFixture(t)
	before := snapshot(t, b.JetStream())
	nc, v := dialAs(t, e.ClientURL(), "reader", "reader-secret")
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	refused(t, v, "wahook.ingress.x.y.z", func(context.Context) error {
		if err := nc.Publish("wahook.ingress.x.y.z", []byte(`{}`)); err != nil {
			return err
		}
		return errors.New("published")
	})
	refused(t, v, "wahook.ingress.x.y.z", func(ctx context.Context) error {
		_, err := js.Publish(ctx, "wahook.ingress.x.y.z", []byte(`{}`))
		return err
	})
	refused(t, v, "$JS.API.STREAM.DELETE."+IngressStream, func(ctx context.Context) error {
		return js.DeleteStream(ctx, IngressStream)
	})
	refused(t, v, "$JS.API.STREAM.PURGE."+IngressStream, func(ctx context.Context) error {
		s, err := js.Stream(ctx, IngressStream)
		if err != nil {
			return err
		}
		return s.Purge(ctx)
	})
	refused(t, v, "$JS.API.STREAM.UPDATE."+IngressStream, func(ctx context.Context) error {
		s, err := js.Stream(ctx, IngressStream)
		if err != nil {
			return err
		}
		cfg := s.CachedInfo().Config
		cfg.MaxAge = time.Minute
		_, err = js.UpdateStream(ctx, cfg)
		return err
	})
	refused(t, v, "$JS.API.STREAM.CREATE.EVIL", func(ctx context.Context) error {
		_, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "EVIL", Subjects: []string{"evil.>"}})
		return err
	})
	refused(t, v, "$JS.API.STREAM.MSG.DELETE."+IngressStream, func(ctx context.Context) error {
		s, err := js.Stream(ctx, IngressStream)
		if err != nil {
			return err
		}
		return s.DeleteMsg(ctx, 1)
	})
	refused(t, v, "$KV.WAHOOK_LABELS.whapi.CH.1", func(ctx context.Context) error {
		kv, err := js.KeyValue(ctx, "WAHOOK_LABELS")
		if err != nil {
			return err
		}
		_, err = kv.Put(ctx, "whapi.CH.1", []byte(`{"name":"forged"}`))
		return err
	})
	// KV watchers and key listings need a consumer: not available.
	refused(t, v, "$JS.API.CONSUMER.CREATE.KV_WAHOOK_LABELS", func(ctx context.Context) error {
		kv, err := js.KeyValue(ctx, "WAHOOK_LABELS")
		if err != nil {
			return err
		}
		_, err = kv.WatchAll(ctx)
		return err
	})
	if diff := cmp.Diff(before, snapshot(t, b.JetStream())); diff != "" {
		t.Errorf("the subscriber changed wahook's streams or consumers (-before +after):\n%s", diff)
	}
}

// TestSubscriberReads: a subscriber follows live events, reads history
// with direct gets (by sequence, last by subject, from a start time), reads
// the buckets, and consumes its own durable consumer: fetch, ack, and
// redelivery of what it had not acked when it reconnects.
func TestSubscriberReads(t *testing.T) {
	e, b := newAccessFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nc, v := dialAs(t, e.ClientURL(), "reader", "reader-secret")
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("live", func(t *testing.T) {
		sub, err := nc.SubscribeSync("wahook.>")
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		if err := nc.FlushWithContext(ctx); err != nil {
			t.Fatal(err)
		}
		if err := b.Publish(ctx, ingressMsg("LIVE", 1, jsonBody(1))); err != nil {
			t.Fatal(err)
		}
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil || m.Header.Get("ce-channel") != "LIVE" {
			t.Fatalf("live event %v, %v", m, err)
		}
	})

	t.Run("history", func(t *testing.T) {
		s, err := js.Stream(ctx, IngressStream)
		if err != nil {
			t.Fatal(err)
		}
		if !s.CachedInfo().Config.AllowDirect {
			t.Fatalf("%s does not allow direct gets", IngressStream)
		}
		m, err := s.GetMsg(ctx, 2)
		if err != nil || m.Header.Get("ce-id") != "evt-CH-00002" {
			t.Fatalf("GetMsg(2) = %v, %v", m, err)
		}
		m, err = s.GetLastMsgForSubject(ctx, "wahook.ingress.whapi.CH.>")
		if err != nil || m.Header.Get("ce-id") != "evt-CH-00003" {
			t.Fatalf("GetLastMsgForSubject = %v, %v", m, err)
		}
		// From a start time, in batches of two.
		start := time.Now().Add(-time.Hour)
		req := DirectRequest{StartTime: &start, NextBySubject: "wahook.>", Batch: 2}
		var ids []string
		for {
			last, pending, err := DirectBatch(ctx, nc, DerivedStream, req, func(m StoredMsg) error {
				if m.Subject != "wahook.label-changed.whapi.CH.added" || m.Header.Get("Nats-Sequence") != "" || m.Time.IsZero() {
					t.Errorf("stored message %+v", m)
				}
				ids = append(ids, m.Header.Get("ce-id"))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if pending == 0 {
				break
			}
			req = DirectRequest{Seq: last + 1, NextBySubject: "wahook.>", Batch: 2}
		}
		publishDerived(t, b.JetStream(), 3)
		if want := []string{"derived-1", "derived-2"}; !slices.Equal(ids, want) {
			t.Errorf("replayed %v, want %v", ids, want)
		}
		future := time.Now().Add(time.Hour)
		if last, _, err := DirectBatch(ctx, nc, DerivedStream, DirectRequest{StartTime: &future, Batch: 5}, func(StoredMsg) error { return nil }); err != nil || last != 0 {
			t.Errorf("DirectBatch from the future = %d, %v; want nothing", last, err)
		}
	})

	t.Run("buckets", func(t *testing.T) {
		for _, bucket := range []string{"WAHOOK_LABELS", "WAHOOK_CHATS"} {
			kv, err := js.KeyValue(ctx, bucket)
			if err != nil {
				t.Fatal(err)
			}
			entry, err := kv.Get(ctx, "whapi.CH.1")
			if err != nil || string(entry.Value()) != `{"name":"VIP"}` {
				t.Fatalf("%s Get = %v, %v", bucket, entry, err)
			}
		}
	})

	t.Run("own consumer", func(t *testing.T) {
		cons, err := js.Consumer(ctx, DerivedStream, readerFeed.Durable())
		if err != nil {
			t.Fatal(err)
		}
		batch, err := cons.Fetch(2, jetstream.FetchMaxWait(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for m := range batch.Messages() {
			got = append(got, m.Headers().Get("ce-id"))
			if len(got) == 1 {
				if err := m.DoubleAck(ctx); err != nil {
					t.Fatalf("ack: %v", err)
				}
			}
		}
		if err := batch.Error(); err != nil || !slices.Equal(got, []string{"derived-1", "derived-2"}) {
			t.Fatalf("fetched %v (%v), want derived-1 and derived-2", got, err)
		}
		// The subscriber goes away without acking derived-2, and comes
		// back: derived-2 is delivered again once its ack wait is over,
		// and what it missed.
		nc.Close()
		nc2, v2 := dialAs(t, e.ClientURL(), "reader", "reader-secret")
		js2, err := jetstream.New(nc2)
		if err != nil {
			t.Fatal(err)
		}
		cons, err = js2.Consumer(ctx, DerivedStream, readerFeed.Durable())
		if err != nil {
			t.Fatal(err)
		}
		got = nil
		for len(got) < 2 {
			m, err := cons.Next(jetstream.FetchMaxWait(20 * time.Second))
			if err != nil {
				t.Fatalf("after %v: %v", got, err)
			}
			md, err := m.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, fmt.Sprintf("%s#%d", m.Headers().Get("ce-id"), md.NumDelivered))
			if err := m.DoubleAck(ctx); err != nil {
				t.Fatalf("ack: %v", err)
			}
		}
		slices.Sort(got)
		if want := []string{"derived-2#2", "derived-3#1"}; !slices.Equal(got, want) {
			t.Errorf("after reconnecting got %v, want %v", got, want)
		}
		info, err := cons.Info(ctx)
		if err != nil || info.AckFloor.Stream != 3 || info.NumAckPending != 0 {
			t.Errorf("consumer info %+v, %v; want everything acked", info, err)
		}
		select {
		case err := <-v2:
			t.Errorf("refused: %v", err)
		default:
		}
	})
	select {
	case err := <-v:
		t.Errorf("refused: %v", err)
	default:
	}
}

// TestServiceUserAccess: wahook itself, in-process and over TCP, keeps
// every right in its account.
func TestServiceUserAccess(t *testing.T) {
	e, b := newAccessFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tcp := connect(t, Config{URL: e.ClientURL(), Auth: e.ServiceAuth()})
	if err := tcp.Publish(ctx, ingressMsg("CH", 9, jsonBody(9))); err != nil {
		t.Fatalf("TCP publish as the service user: %v", err)
	}
	for _, js := range []jetstream.JetStream{b.JetStream(), tcp.JetStream()} {
		kv, err := js.KeyValue(ctx, "WAHOOK_LABELS")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := kv.Put(ctx, "whapi.CH.2", []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		if _, err := js.CreateOrUpdateConsumer(ctx, IngressStream, jetstream.ConsumerConfig{Durable: "svc", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
			t.Fatal(err)
		}
		if err := js.DeleteConsumer(ctx, IngressStream, "svc"); err != nil {
			t.Fatal(err)
		}
	}
	if n := streamCount(t, b.JetStream(), IngressStream); n != 4 {
		t.Errorf("%s holds %d messages, want 4", IngressStream, n)
	}
	t.Run("anonymous", func(t *testing.T) {
		_, err := nats.Connect(e.ClientURL(), nats.MaxReconnects(0))
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), "authorization") {
			t.Fatalf("anonymous connect = %v; want an authorization violation", err)
		}
		_, err = nats.Connect(e.ClientURL(), nats.UserInfo("reader", "wrong"), nats.MaxReconnects(0))
		if err == nil {
			t.Fatal("a wrong password was accepted")
		}
	})
}

func TestEmbeddedServiceUser(t *testing.T) {
	dir := t.TempDir()
	first := startServer(t, dir)
	a := first.ServiceAuth()
	if a.User != DefaultServiceUser || len(a.Password) < 40 {
		t.Fatalf("generated service user %q with a %d-byte password", a.User, len(a.Password))
	}
	fi, err := os.Stat(filepath.Join(dir, ServiceUserFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s mode %v, want 0600", ServiceUserFile, fi.Mode().Perm())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := first.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	second := startServer(t, dir)
	if second.ServiceAuth() != a {
		t.Error("a restart on the same data dir generated another service user")
	}
	connect(t, Config{URL: second.ClientURL(), Auth: a})

	// A configured user wins and leaves nothing on disk.
	other := t.TempDir()
	e, err := StartEmbedded(ctx, EmbeddedConfig{Addr: "127.0.0.1:-1", StoreDir: other, User: "svc", Password: "configured"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Shutdown(ctx)
	if got := e.ServiceAuth(); got != (Auth{User: "svc", Password: "configured"}) {
		t.Errorf("ServiceAuth = %+v", got)
	}
	if _, err := os.Stat(filepath.Join(other, ServiceUserFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("configured user still wrote %s: %v", ServiceUserFile, err)
	}
	connect(t, Config{Embedded: e})

	for name, cfg := range map[string]EmbeddedConfig{
		"user without password":          {User: "svc"},
		"password without user":          {Password: "x"},
		"subscriber is service":          {User: "svc", Password: "p", Subscribers: []Subscriber{{User: "svc", Password: "q"}}},
		"subscriber bad name":            {Subscribers: []Subscriber{{User: "a b", Password: "q"}}},
		"subscriber no password":         {Subscribers: []Subscriber{{User: "ab"}}},
		"subscribers sharing an account": {Subscribers: []Subscriber{{User: "a.b", Password: "p"}, {User: "a_b", Password: "q"}}},
		"consumer of no subscriber": {Subscribers: []Subscriber{{User: "ab", Password: "p"}},
			SubscriberConsumers: []SubscriberConsumer{{User: "cd", Name: "x", Filter: IngressSubjects}}},
		"consumer outside the streams": {Subscribers: []Subscriber{{User: "ab", Password: "p"}},
			SubscriberConsumers: []SubscriberConsumer{{User: "ab", Name: "x", Filter: "wahook.>"}}},
	} {
		cfg.Addr, cfg.StoreDir = "127.0.0.1:-1", t.TempDir()
		if e, err := StartEmbedded(ctx, cfg); err == nil {
			_ = e.Shutdown(ctx)
			t.Errorf("%s: StartEmbedded = nil error", name)
		}
	}
}

func TestWriteContext(t *testing.T) {
	e := startServer(t, t.TempDir())
	path := filepath.Join(t.TempDir(), "ctx dir", ContextFile)
	cmd, err := e.WriteContext(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(cmd, e.ServiceAuth().Password) || !strings.Contains(cmd, "'"+path+"'") {
		t.Errorf("command %q: want the quoted path and no password", cmd)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("context file %v, %v; want mode 0600", fi, err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The nats CLI's context keys.
	var got map[string]string
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	a := e.ServiceAuth()
	if got["url"] != e.ClientURL() || got["user"] != a.User || got["password"] != a.Password || got["description"] == "" {
		t.Errorf("context = %v", got)
	}
	// What the file says connects, and LoadContext reads it back.
	url, auth, err := LoadContext(path)
	if err != nil || url != e.ClientURL() || auth != a {
		t.Fatalf("LoadContext = %s, %+v, %v", url, auth, err)
	}
	connect(t, Config{URL: url, Auth: auth})
	// A CLI context with a user and no password is a token.
	tok := filepath.Join(t.TempDir(), "tok.json")
	if err := os.WriteFile(tok, []byte(`{"url":"nats://h:4222","user":"t0ken","creds":""}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, auth, err := LoadContext(tok); err != nil || auth != (Auth{Token: "t0ken"}) {
		t.Errorf("LoadContext(token) = %+v, %v", auth, err)
	}
}

func TestParseSubscribers(t *testing.T) {
	got, err := ParseSubscribers(" reader:p1 , audit.svc:p:2,")
	if err != nil {
		t.Fatal(err)
	}
	want := []Subscriber{{"reader", "p1"}, {"audit.svc", "p:2"}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("ParseSubscribers = %+v, want %+v", got, want)
	}
	for _, bad := range []string{"reader", "reader:", ":pw", "a b:pw", "r:1,r:2", "a.b:1,a_b:2"} {
		_, err := ParseSubscribers(bad)
		if err == nil {
			t.Errorf("ParseSubscribers(%q) = nil error", bad)
			continue
		}
		if strings.Contains(err.Error(), "pw") || strings.Contains(err.Error(), ":2") {
			t.Errorf("ParseSubscribers(%q) error %q shows a password", bad, err)
		}
	}
}

// serviceLogin logs a plain nats.go connection in as e's service user.
func serviceLogin(e *Embedded) nats.Option {
	a := e.ServiceAuth()
	return nats.UserInfo(a.User, a.Password)
}
