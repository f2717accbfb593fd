package backbone

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/envelope"
)

// composeNATSConfig is the NATS configuration docker-compose runs.
const composeNATSConfig = "../../deployments/nats/nats-server.conf"

// TestComposeNATSConfig loads the compose NATS configuration into a real
// nats-server: its subscriber has exactly the embedded server's subscriber
// permissions, monitoring stays inside the container, writes are fsynced,
// and wahook runs on it while the subscriber and anonymous clients cannot
// write.
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
	if len(users) != 2 || svc == nil || reader == nil || svc.Password != "svc Pa55:w#rd/+=" || svc.Account.Name != reader.Account.Name {
		t.Fatalf("users %v; want wahook and reader in one account, from the environment", users)
	}
	if svc.Permissions != nil {
		t.Errorf("the service user is limited: %+v", svc.Permissions)
	}
	want := natsbroker.SubscriberPermissions(ConsumerNames("wahook-", 1))
	got := reader.Permissions
	for name, pair := range map[string][2][]string{
		"publish allow":   {want.Publish.Allow, got.Publish.Allow},
		"publish deny":    {want.Publish.Deny, got.Publish.Deny},
		"subscribe allow": {want.Subscribe.Allow, got.Subscribe.Allow},
	} {
		w, g := slices.Sorted(slices.Values(pair[0])), slices.Sorted(slices.Values(pair[1]))
		if !slices.Equal(w, g) {
			t.Errorf("subscriber %s differs from the embedded server's:\n conf %q\n want %q", name, g, w)
		}
	}
	if got.Subscribe.Deny != nil {
		t.Errorf("subscriber subscribe deny %v", got.Subscribe.Deny)
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
	refusals := make(chan error, 4)
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
	if _, err := nc.SubscribeSync("wahook.ingress.>"); err != nil {
		t.Errorf("subscriber subscribe: %v", err)
	}
	if err := nc.Publish("wahook.ingress.whapi.CH.messages.post", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	select {
	case <-refusals:
	case <-ctx.Done():
		t.Fatal("the subscriber's publish on wahook.ingress was not refused")
	}
}
