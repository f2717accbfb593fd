package backbone

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats-server/v2/conf"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.yaml.in/yaml/v3"

	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/envelope"
)

// composeNATSConfig is the NATS configuration docker-compose runs.
const composeNATSConfig = "../../deployments/nats/nats-server.conf"

// composeSubscriberAccount is the account of compose's subscriber user.
const composeSubscriberAccount = "SUBSCRIBER"

// TestComposeNATSConfig loads the compose NATS configuration into a real
// nats-server: its accounts export and import exactly what the embedded
// server's do (natsbroker.AccountsConfig), its subscriber has exactly the
// embedded server's subscriber permissions, monitoring stays inside the
// container, writes are fsynced, and wahook runs on it while the subscriber
// reads but cannot write, not even through a consumer's deliver subject,
// and anonymous clients cannot connect.
func TestComposeNATSConfig(t *testing.T) {
	// As docker-compose.yml sets them: quoted, so that any password stays
	// a string (here digits only, and one with white space and '#').
	t.Setenv("WAHOOK_NATS_USER", `"wahook"`)
	t.Setenv("WAHOOK_NATS_PASSWORD", `"svc Pa55:w#rd/+="`)
	t.Setenv("WAHOOK_NATS_SUBSCRIBER_USER", `"reader"`)
	t.Setenv("WAHOOK_NATS_SUBSCRIBER_PASSWORD", `"123456"`)
	opts, err := server.ProcessConfigFile(composeNATSConfig)
	if err != nil {
		t.Fatalf("ProcessConfigFile: %v", err)
	}
	if opts.HTTPHost != "127.0.0.1" {
		t.Errorf("monitoring listens on %q, want 127.0.0.1 inside the container", opts.HTTPHost)
	}
	if !opts.SyncAlways || opts.MaxPayload < 8<<20 {
		t.Errorf("sync always %v, max payload %d; want fsync and 8 MiB", opts.SyncAlways, opts.MaxPayload)
	}
	users := map[string]*server.User{}
	for _, u := range opts.Users {
		users[u.Username] = u
	}
	svc, reader := users["wahook"], users["reader"]
	if len(users) != 2 || svc == nil || reader == nil || svc.Password != "svc Pa55:w#rd/+=" {
		t.Fatalf("users %v; want wahook and reader, from the environment", users)
	}
	if svc.Account.Name != natsbroker.ServiceAccount || reader.Account.Name != composeSubscriberAccount {
		t.Errorf("wahook in account %s, reader in %s; want %s and %s", svc.Account.Name, reader.Account.Name,
			natsbroker.ServiceAccount, composeSubscriberAccount)
	}
	if svc.Permissions != nil {
		t.Errorf("the service user is limited: %+v", svc.Permissions)
	}
	want, got := natsbroker.SubscriberPermissions(nil), reader.Permissions
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("subscriber permissions differ from the embedded server's (-want +conf):\n%s", diff)
	}
	if diff := cmp.Diff(embeddedAccounts(t), composeAccounts(t)); diff != "" {
		t.Errorf("accounts differ from the embedded server's (-embedded +conf):\n%s", diff)
	}

	// Run it, on a free port and a temporary store.
	opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", -1, 0
	opts.StoreDir, opts.NoSigs, opts.NoLog = t.TempDir(), true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(20 * time.Second) {
		t.Fatal("server not ready")
	}
	bb := open(t, Config{Broker: "nats", NATSURL: srv.ClientURL(), NATSDuplicateWindow: time.Minute,
		NATSAuth: natsbroker.Auth{User: "wahook", Password: "svc Pa55:w#rd/+="}})
	check(t, bb, envelope.NATS)

	if nc, err := nats.Connect(srv.ClientURL()); err == nil {
		nc.Close()
		t.Error("anonymous client connected")
	}
	refusals := make(chan error, 16)
	nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo("reader", "123456"),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrPermissionViolation) {
				refusals <- err
			}
		}))
	if err != nil {
		t.Fatalf("subscriber: %v", err)
	}
	defer nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// refused runs op and waits for the server to refuse its publish on
	// subject, then ends op, which waits in vain for an answer.
	refused := func(subject string, op func(context.Context) error) {
		t.Helper()
		opCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- op(opCtx) }()
		defer func() {
			stop()
			if err := <-done; err == nil {
				t.Errorf("%s: refused, yet the call reported success", subject)
			}
		}()
		for {
			select {
			case err := <-refusals:
				if strings.Contains(err.Error(), subject) {
					return
				}
			case <-ctx.Done():
				t.Fatalf("the subscriber's publish on %s was not refused", subject)
			}
		}
	}

	// It reads: live events, and the history with direct gets.
	live, err := nc.SubscribeSync("wahook.ingress.>")
	if err != nil {
		t.Fatalf("subscriber subscribe: %v", err)
	}
	if err := nc.FlushWithContext(ctx); err != nil {
		t.Fatal(err)
	}
	var ids []string
	if _, _, err := natsbroker.DirectBatch(ctx, nc, natsbroker.IngressStream, natsbroker.DirectRequest{Seq: 1, Batch: 10},
		func(m natsbroker.StoredMsg) error { ids = append(ids, m.Header.Get("ce-id")); return nil }); err != nil || !slices.Equal(ids, []string{"bb-1"}) {
		t.Errorf("direct get as the subscriber: %v, %v; want bb-1", ids, err)
	}
	msg := envelope.Ingress(envelope.Raw{ID: "bb-2", Provider: "whapi", Channel: "CH", Kind: "labels.post",
		Time: time.Now(), Data: []byte(`{"id":"2"}`)}, bb.Binding)
	if err := bb.Publisher.Publish(ctx, msg); err != nil {
		t.Fatal(err)
	}
	if m, err := live.NextMsgWithContext(ctx); err != nil || m.Header.Get("ce-id") != "bb-2" {
		t.Errorf("live event %v, %v; want bb-2", m, err)
	}

	// It cannot write: neither publish on wahook's subjects nor create a
	// push consumer delivering into another stream (nats-server#8274).
	refused("wahook.ingress.whapi.CH.messages.post", func(context.Context) error {
		if err := nc.Publish("wahook.ingress.whapi.CH.messages.post", []byte(`{}`)); err != nil {
			return err
		}
		return errors.New("published")
	})
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	refused("$JS.API.CONSUMER.CREATE.KV_WAHOOK_CHATS", func(ctx context.Context) error {
		_, err := js.CreateConsumer(ctx, "KV_WAHOOK_CHATS", jetstream.ConsumerConfig{Name: "copy",
			DeliverSubject: "wahook.ingress.whapi.CH.messages.post", AckPolicy: jetstream.AckNonePolicy})
		return err
	})
	s, err := bb.nats.JetStream().Stream(ctx, natsbroker.IngressStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := s.CachedInfo().State.Msgs; n != 2 {
		t.Errorf("%s holds %d events, want wahook's 2", natsbroker.IngressStream, n)
	}
}

// embeddedAccounts are the embedded server's accounts for one subscriber,
// renamed as compose names its account, without users.
func embeddedAccounts(t *testing.T) map[string]any {
	t.Helper()
	text := natsbroker.AccountsConfig([]natsbroker.Subscriber{{User: "reader"}}, nil)
	text = strings.ReplaceAll(text, natsbroker.SubscriberAccount("reader"), composeSubscriberAccount)
	m, err := conf.Parse(text)
	if err != nil {
		t.Fatalf("embedded accounts: %v\n%s", err, text)
	}
	return m["accounts"].(map[string]any)
}

// composeAccounts are the accounts of the compose configuration, without
// users.
func composeAccounts(t *testing.T) map[string]any {
	t.Helper()
	m, err := conf.ParseFile(composeNATSConfig)
	if err != nil {
		t.Fatal(err)
	}
	accounts := m["accounts"].(map[string]any)
	for _, a := range accounts {
		delete(a.(map[string]any), "users")
	}
	return accounts
}

// helmNATSValues are the NATS chart's values the Kubernetes walk-through
// installs (docs/operations.md, Deploying).
const helmNATSValues = "../../deployments/helm/nats-values.yaml"

// helmNATSConfig renders the values' config.merge as the NATS chart does:
// JSON, with "<< x >>" written unquoted.
func helmNATSConfig(t *testing.T) (text string, secretKeys map[string]string) {
	t.Helper()
	b, err := os.ReadFile(helmNATSValues)
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		Config struct {
			Cluster struct {
				Enabled  bool
				Replicas int
			}
			JetStream struct{ Enabled bool } `yaml:"jetstream"`
			Merge     map[string]any
		}
		Container struct {
			Env map[string]struct {
				ValueFrom struct {
					SecretKeyRef struct{ Name, Key string } `yaml:"secretKeyRef"`
				} `yaml:"valueFrom"`
			}
		}
	}
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatal(err)
	}
	if c := values.Config; !c.JetStream.Enabled || !c.Cluster.Enabled || c.Cluster.Replicas < 3 {
		t.Errorf("jetstream %v, cluster %+v; want JetStream on 3 servers (the chart's nats.replicas)", c.JetStream.Enabled, c.Cluster)
	}
	secrets := map[string]string{}
	for name, e := range values.Container.Env {
		if e.ValueFrom.SecretKeyRef.Name != "wahook-nats" {
			t.Errorf("%s from secret %q, want wahook-nats (the chart's nats.existingSecret)", name, e.ValueFrom.SecretKeyRef.Name)
		}
		secrets[name] = e.ValueFrom.SecretKeyRef.Key
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(values.Config.Merge); err != nil {
		t.Fatal(err)
	}
	return regexp.MustCompile(`"<<\s+(.*)\s+>>"`).ReplaceAllString(buf.String(), "${1}"), secrets
}

// TestHelmNATSValues runs a nats-server with the NATS chart's configuration
// of the walk-through: its passwords come from the Secret's keys the wahook
// chart reads, hex passwords stay strings, payloads fit a full body, the
// accounts are compose's, and wahook runs on it.
func TestHelmNATSValues(t *testing.T) {
	text, secrets := helmNATSConfig(t)
	if secrets["WAHOOK_NATS_PASSWORD"] != "password" || secrets["WAHOOK_NATS_SUBSCRIBER_PASSWORD"] == "" {
		t.Errorf("environment from secret keys %v, want WAHOOK_NATS_PASSWORD from key password (nats.passwordKey)", secrets)
	}
	// As openssl rand -hex 32 makes them; one starts with digits.
	const svcPassword, subPassword = "0123abcdef0123abcdef0123abcdef0123abcdef0123abcdef0123abcdef0123", "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
	t.Setenv("WAHOOK_NATS_PASSWORD", svcPassword)
	t.Setenv("WAHOOK_NATS_SUBSCRIBER_PASSWORD", subPassword)
	// For composeAccounts, which reads compose's configuration.
	t.Setenv("WAHOOK_NATS_USER", `"wahook"`)
	t.Setenv("WAHOOK_NATS_SUBSCRIBER_USER", `"subscriber"`)
	file := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(file)
	if err != nil {
		t.Fatalf("ProcessConfigFile: %v\n%s", err, text)
	}
	if opts.MaxPayload < 8<<20 {
		t.Errorf("max payload %d, want 8 MiB", opts.MaxPayload)
	}
	users := map[string]*server.User{}
	for _, u := range opts.Users {
		users[u.Username] = u
	}
	svc, reader := users["wahook"], users["subscriber"]
	if len(users) != 2 || svc == nil || reader == nil || svc.Password != svcPassword || reader.Password != subPassword {
		t.Fatalf("users %v; want wahook (the chart's nats.user) and subscriber, passwords from the environment", users)
	}
	if diff := cmp.Diff(natsbroker.SubscriberPermissions(nil), reader.Permissions); diff != "" {
		t.Errorf("subscriber permissions differ from the embedded server's (-want +values):\n%s", diff)
	}
	m, err := conf.Parse(text)
	if err != nil {
		t.Fatal(err)
	}
	accounts := m["accounts"].(map[string]any)
	for _, a := range accounts {
		delete(a.(map[string]any), "users")
	}
	if diff := cmp.Diff(composeAccounts(t), accounts); diff != "" {
		t.Errorf("accounts differ from compose's (-compose +values):\n%s", diff)
	}

	opts.Host, opts.Port, opts.HTTPPort = "127.0.0.1", -1, 0
	opts.JetStream, opts.StoreDir, opts.NoSigs, opts.NoLog = true, t.TempDir(), true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(20 * time.Second) {
		t.Fatal("server not ready")
	}
	bb := open(t, Config{Broker: "nats", NATSURL: srv.ClientURL(), NATSDuplicateWindow: time.Minute,
		NATSAuth: natsbroker.Auth{User: "wahook", Password: svcPassword}})
	check(t, bb, envelope.NATS)
}
