package backbone

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/consumer"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/provider/all"
	"github.com/wahook/wahook/pkg/state/natsstate"
)

func open(t *testing.T, cfg Config) *Backbone {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bb, err := Open(ctx, cfg, zap.NewNop())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := bb.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return bb
}

// check opens everything a service needs and publishes one raw event.
func check(t *testing.T, bb *Backbone, wantBinding envelope.Binding) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := bb.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if bb.Binding.Name != wantBinding.Name {
		t.Errorf("binding %q; want %q", bb.Binding.Name, wantBinding.Name)
	}
	deps, err := bb.ConsumerDeps(ctx, all.Providers(), consumer.NewMetrics(prometheus.NewRegistry()), zap.NewNop())
	if err != nil {
		t.Fatalf("ConsumerDeps: %v", err)
	}
	if deps.Subscriber == nil || deps.Publisher == nil || deps.Labels == nil || deps.Chats == nil || len(deps.Providers) != len(all.Providers()) {
		t.Errorf("deps = %+v", deps)
	}
	if (deps.Dedup != nil) != (wantBinding.Name == "kafka") {
		t.Errorf("dedup set = %v; want it on Kafka only", deps.Dedup != nil)
	}
	msg := envelope.Ingress(envelope.Raw{ID: "bb-1", Provider: "whapi", Channel: "CH", Kind: "labels.post",
		Time: time.Now(), Data: []byte(`{"id":"1"}`)}, bb.Binding)
	if err := bb.Publisher.Publish(ctx, msg); err != nil {
		t.Errorf("Publish: %v", err)
	}
}

func TestEmbeddedNATS(t *testing.T) {
	bb := open(t, Config{Broker: "nats", NATSEmbeddedAddr: "127.0.0.1:-1", DataDir: t.TempDir(), NATSDuplicateWindow: time.Minute})
	if bb.Embedded == nil {
		t.Fatal("no embedded server started")
	}
	check(t, bb, envelope.NATS)
}

func TestExternalNATS(t *testing.T) {
	emb := open(t, Config{Broker: "nats", NATSEmbeddedAddr: "127.0.0.1:-1", DataDir: t.TempDir(), NATSDuplicateWindow: time.Minute})
	bb := open(t, Config{Broker: "nats", NATSURL: emb.Embedded.ClientURL(), NATSAuth: emb.Embedded.ServiceAuth(), NATSDuplicateWindow: time.Minute})
	if bb.Embedded != nil {
		t.Fatal("an embedded server was started although a URL was given")
	}
	check(t, bb, envelope.NATS)
}

func TestKafka(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	bb := open(t, Config{Broker: "kafka", KafkaBrokers: strings.Join(c.ListenAddrs(), ","), KafkaPartitions: 3,
		KafkaReplication: 1, KafkaDedupWindow: time.Hour})
	check(t, bb, envelope.Kafka)
}

// TestReceivedTimePerCopy checks that the option leaves consumers without
// the first-time registry, and that they have one by default.
func TestReceivedTimePerCopy(t *testing.T) {
	for _, perCopy := range []bool{false, true} {
		bb := open(t, Config{Broker: "nats", NATSEmbeddedAddr: "127.0.0.1:-1", DataDir: t.TempDir(),
			NATSDuplicateWindow: time.Minute, ReceivedTimePerCopy: perCopy})
		st, err := bb.State(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Times != nil; got == perCopy {
			t.Errorf("ReceivedTimePerCopy %v: a first-time registry: %v", perCopy, got)
		}
	}
}

func TestValidate(t *testing.T) {
	for name, cfg := range map[string]Config{
		"unknown broker":        {Broker: "rabbit"},
		"kafka without brokers": {Broker: "kafka", KafkaBrokers: " , "},
		"embedded without dir":  {Broker: "nats"},
		"embedded with a token": {Broker: "nats", DataDir: "d", NATSAuth: natsbroker.Auth{Token: "t"}},
		"embedded with TLS":     {Broker: "nats", DataDir: "d", NATSAuth: natsbroker.Auth{TLSCA: "ca.pem"}},
		"bad subscribers":       {Broker: "nats", DataDir: "d", NATSSubscribers: "reader"},
		"external subscribers":  {Broker: "nats", NATSURL: "nats://h:4222", NATSSubscribers: "r:p"},
		"external two logins":   {Broker: "nats", NATSURL: "nats://h:4222", NATSAuth: natsbroker.Auth{Token: "t", CredsFile: "c"}},
		"bad subscriber consumer": {Broker: "nats", DataDir: "d", NATSSubscribers: "r:p",
			NATSSubscriberConsumers: "r:feed:wahook.>"},
		"consumer of no subscriber": {Broker: "nats", DataDir: "d", NATSSubscribers: "r:p",
			NATSSubscriberConsumers: "s:feed:wahook.call.>"},
		"subscriber consumer on kafka": {Broker: "kafka", KafkaBrokers: "k:9092", NATSSubscriberConsumers: "r:feed:wahook.call.>"},
		"group prefix of subscribers":  {Broker: "nats", DataDir: "d", ProtectedConsumers: ConsumerNames("sub-", 1)},
	} {
		if err := cfg.Validate(); err == nil {
			t.Errorf("%s: Validate = nil", name)
		}
	}
}

// TestReadState: a process deriving nothing reads the state once a deriving
// one created it, and never creates it; Kafka offers none.
func TestReadState(t *testing.T) {
	deriver := open(t, Config{Broker: "nats", NATSEmbeddedAddr: "127.0.0.1:-1", DataDir: t.TempDir(), NATSDuplicateWindow: time.Minute})
	reader := open(t, Config{Broker: "nats", NATSURL: deriver.Embedded.ClientURL(), NATSAuth: deriver.Embedded.ServiceAuth(), NATSDuplicateWindow: time.Minute})
	if _, err := reader.ReadState(t.Context()); !errors.Is(err, natsstate.ErrNoState) {
		t.Fatalf("ReadState before any deriver: %v; want natsstate.ErrNoState", err)
	}
	if _, err := reader.ReadState(t.Context()); !errors.Is(err, natsstate.ErrNoState) {
		t.Fatalf("ReadState again: %v; want natsstate.ErrNoState: the first created nothing", err)
	}
	st, err := deriver.State(t.Context())
	if err != nil {
		t.Fatalf("State: %v", err)
	}
	if _, err := st.Chats.FirstSeen(t.Context(), "whapi", "CH", "1@s.whatsapp.net", "e1"); err != nil {
		t.Fatalf("FirstSeen: %v", err)
	}
	rs, err := reader.ReadState(t.Context())
	if err != nil {
		t.Fatalf("ReadState: %v", err)
	}
	c, known, err := rs.Chats.(*natsstate.Chats).Lookup(t.Context(), "whapi", "CH", "1@s.whatsapp.net")
	if err != nil || !known || c.FirstEvent != "e1" {
		t.Errorf("read Lookup = %+v, %t, %v; want e1", c, known, err)
	}

	k, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	kb := open(t, Config{Broker: "kafka", KafkaBrokers: strings.Join(k.ListenAddrs(), ","), KafkaPartitions: 1,
		KafkaReplication: 1, KafkaDedupWindow: time.Hour})
	if _, err := kb.ReadState(t.Context()); !errors.Is(err, ErrNoReadState) {
		t.Errorf("ReadState on Kafka: %v; want ErrNoReadState", err)
	}
}
