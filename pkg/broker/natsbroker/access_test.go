package natsbroker

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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

func TestEmbeddedAccess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	e, err := StartEmbedded(ctx, EmbeddedConfig{
		Addr: "127.0.0.1:-1", StoreDir: t.TempDir(),
		Subscribers:        []Subscriber{{User: "reader", Password: "reader-secret"}},
		ProtectedConsumers: []string{"wahook-label-changed"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Shutdown(context.Background()) })

	// wahook in-process and over TCP.
	b := connect(t, Config{Embedded: e})
	if err := b.Publish(ctx, ingressMsg("CH", 1, jsonBody(1))); err != nil {
		t.Fatalf("in-process publish: %v", err)
	}
	tcp := connect(t, Config{URL: e.ClientURL(), Auth: e.ServiceAuth()})
	if err := tcp.Publish(ctx, ingressMsg("CH", 2, jsonBody(2))); err != nil {
		t.Fatalf("TCP publish as the service user: %v", err)
	}
	kv, err := b.JetStream().CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "WAHOOK_LABELS"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "whapi.CH.1", []byte(`{"name":"VIP"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.JetStream().CreateOrUpdateConsumer(ctx, IngressStream, jetstream.ConsumerConfig{
		Durable: "wahook-label-changed", AckPolicy: jetstream.AckExplicitPolicy,
	}); err != nil {
		t.Fatal(err)
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

	nc, v := dialAs(t, e.ClientURL(), "reader", "reader-secret")
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("reads through its own consumer", func(t *testing.T) {
		cons, err := js.CreateOrUpdateConsumer(ctx, IngressStream, jetstream.ConsumerConfig{
			Durable: "reader-archive", AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: IngressSubjects,
		})
		if err != nil {
			t.Fatalf("create consumer: %v", err)
		}
		batch, err := cons.Fetch(2, jetstream.FetchMaxWait(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			if m.Headers().Get("ce-channel") != "CH" {
				t.Errorf("event headers %v", m.Headers())
			}
			if err := m.DoubleAck(ctx); err != nil {
				t.Errorf("ack: %v", err)
			}
			n++
		}
		if n != 2 {
			t.Fatalf("read %d events, want 2 (batch error %v)", n, batch.Error())
		}
		if err := js.DeleteConsumer(ctx, IngressStream, "reader-archive"); err != nil {
			t.Errorf("delete own consumer: %v", err)
		}
		// An ordered consumer, as services/tail and `nats sub --stream` use.
		oc, err := js.OrderedConsumer(ctx, IngressStream, jetstream.OrderedConsumerConfig{})
		if err != nil {
			t.Fatalf("ordered consumer: %v", err)
		}
		if m, err := oc.Next(jetstream.FetchMaxWait(10 * time.Second)); err != nil || m.Headers().Get("ce-id") == "" {
			t.Fatalf("ordered consumer Next = %v, %v", m, err)
		}
	})

	t.Run("reads the KV buckets", func(t *testing.T) {
		kv, err := js.KeyValue(ctx, "WAHOOK_LABELS")
		if err != nil {
			t.Fatal(err)
		}
		entry, err := kv.Get(ctx, "whapi.CH.1")
		if err != nil || string(entry.Value()) != `{"name":"VIP"}` {
			t.Fatalf("Get = %v, %v", entry, err)
		}
		w, err := kv.WatchAll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Stop()
		if u := <-w.Updates(); u == nil || u.Key() != "whapi.CH.1" {
			t.Fatalf("watch = %v", u)
		}
	})

	t.Run("cannot write or manage", func(t *testing.T) {
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
	})

	t.Run("cannot touch wahook's consumers", func(t *testing.T) {
		refused(t, v, "$JS.API.CONSUMER.MSG.NEXT."+IngressStream+".wahook-label-changed", func(ctx context.Context) error {
			cons, err := js.Consumer(ctx, IngressStream, "wahook-label-changed")
			if err != nil {
				return err
			}
			_, err = cons.Next(jetstream.FetchContext(ctx))
			return err
		})
		refused(t, v, "$JS.API.CONSUMER.DELETE."+IngressStream+".wahook-label-changed", func(ctx context.Context) error {
			return js.DeleteConsumer(ctx, IngressStream, "wahook-label-changed")
		})
		refused(t, v, "$JS.API.CONSUMER.CREATE."+IngressStream+".wahook-label-changed", func(ctx context.Context) error {
			_, err := js.UpdateConsumer(ctx, IngressStream, jetstream.ConsumerConfig{
				Durable: "wahook-label-changed", AckPolicy: jetstream.AckExplicitPolicy, Description: "taken over",
			})
			return err
		})
		// The legacy form names the consumer in the body only.
		refused(t, v, "$JS.API.CONSUMER.CREATE."+IngressStream, func(ctx context.Context) error {
			_, err := nc.RequestWithContext(ctx, "$JS.API.CONSUMER.CREATE."+IngressStream,
				[]byte(`{"stream_name":"`+IngressStream+`","config":{"name":"wahook-label-changed","ack_policy":"explicit"}}`))
			return err
		})
	})

	// Nothing the subscriber tried changed what wahook stored.
	if n := streamCount(t, b.JetStream(), IngressStream); n != 2 {
		t.Errorf("%s holds %d messages, want 2", IngressStream, n)
	}
	if entry, err := kv.Get(ctx, "whapi.CH.1"); err != nil || string(entry.Value()) != `{"name":"VIP"}` {
		t.Errorf("KV value after the subscriber's attempts = %v, %v", entry, err)
	}
	if info, err := b.JetStream().Consumer(ctx, IngressStream, "wahook-label-changed"); err != nil || info.CachedInfo().Config.Description != "" {
		t.Errorf("wahook's consumer after the subscriber's attempts = %v, %v", info, err)
	}
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
		"user without password":  {User: "svc"},
		"password without user":  {Password: "x"},
		"subscriber is service":  {User: "svc", Password: "p", Subscribers: []Subscriber{{User: "svc", Password: "q"}}},
		"subscriber bad name":    {Subscribers: []Subscriber{{User: "a b", Password: "q"}}},
		"subscriber no password": {Subscribers: []Subscriber{{User: "ab"}}},
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
	for _, bad := range []string{"reader", "reader:", ":pw", "a b:pw", "r:1,r:2"} {
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
