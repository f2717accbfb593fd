package backbone

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wahook/wahook/pkg/broker/kafkabroker"
	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/internal/testtls"
)

// TestEmbeddedNATSAccess: the embedded server takes its subscribers and
// their consumers from the configuration, refuses anonymous clients, the
// start log tells how to connect with the nats CLI without showing a
// password, and a subscriber consumer someone deleted comes back.
func TestEmbeddedNATSAccess(t *testing.T) {
	dir := t.TempDir()
	core, logs := observer.New(zap.InfoLevel)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	bb, err := Open(ctx, Config{Broker: "nats", NATSEmbeddedAddr: "127.0.0.1:-1", DataDir: dir, NATSDuplicateWindow: time.Minute,
		NATSSubscribers: "reader:r-secret", NATSSubscriberConsumers: "reader:feed:wahook.label-changed.>",
		ProtectedConsumers: ConsumerNames("wahook-", 1), subscriberCheck: 10 * time.Millisecond}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	defer bb.Close(context.Background())
	check(t, bb, envelope.NATS)

	ctxFile := filepath.Join(dir, natsbroker.ContextFile)
	entries := logs.FilterMessageSnippet("embedded NATS server started").All()
	if len(entries) != 1 {
		t.Fatalf("start log lines: %v", logs.All())
	}
	fields := entries[0].ContextMap()
	connect, _ := fields["connect"].(string)
	abs, _ := filepath.Abs(ctxFile)
	if !strings.Contains(connect, "nats --context "+abs) {
		t.Errorf("connect hint %q, want the context file %s", connect, abs)
	}
	for _, e := range logs.All() {
		for k, v := range e.ContextMap() {
			if s, ok := v.(string); ok && strings.Contains(s, bb.Embedded.ServiceAuth().Password) {
				t.Errorf("log %q field %s shows the service password", e.Message, k)
			}
		}
	}
	b, err := os.ReadFile(ctxFile)
	if err != nil {
		t.Fatal(err)
	}
	var c struct{ URL, User, Password string }
	if err := json.Unmarshal(b, &c); err != nil || c.URL != bb.Embedded.ClientURL() {
		t.Fatalf("context %s: %+v, %v", b, c, err)
	}

	if got, _ := fields["subscriber_consumers"].([]any); len(got) != 1 || got[0] != "WAHOOK_DERIVED/sub-reader-feed" {
		t.Errorf("start log subscriber_consumers = %v", fields["subscriber_consumers"])
	}

	// The subscriber reads its consumer; deleted, it is re-created.
	nc, err := nats.Connect(c.URL, nats.UserInfo("reader", "r-secret"))
	if err != nil {
		t.Fatalf("subscriber: %v", err)
	}
	defer nc.Close()
	sub, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Consumer(ctx, natsbroker.DerivedStream, "sub-reader-feed"); err != nil {
		t.Fatalf("subscriber's consumer: %v", err)
	}
	svc, err := nats.Connect(c.URL, nats.UserInfo(c.User, c.Password))
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	js, err := jetstream.New(svc)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteConsumer(ctx, natsbroker.DerivedStream, "sub-reader-feed"); err != nil {
		t.Fatal(err)
	}
	for logs.FilterMessageSnippet("had disappeared").Len() == 0 {
		select {
		case <-ctx.Done():
			t.Fatalf("the deleted subscriber consumer was not re-created: %v", logs.All())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if _, err := sub.Consumer(ctx, natsbroker.DerivedStream, "sub-reader-feed"); err != nil {
		t.Errorf("subscriber's consumer after re-creation: %v", err)
	}
	if nc, err := nats.Connect(c.URL); err == nil {
		nc.Close()
		t.Error("anonymous client connected")
	}
}

func TestConsumerNames(t *testing.T) {
	got := strings.Join(ConsumerNames("wahook-", 2), " ")
	for _, want := range []string{"wahook-label-changed", "wahook-call-p0of2", "wahook-group-notification-p1of2", "wahook-chat-created"} {
		if !strings.Contains(" "+got+" ", " "+want+" ") {
			t.Errorf("ConsumerNames = %s; want %s among them", got, want)
		}
	}
}

// TestKafkaSecure opens everything a service needs (writer, groups, admin,
// state) on a cluster requiring TLS with client certificates and SCRAM.
func TestKafkaSecure(t *testing.T) {
	files := testtls.Generate(t, t.TempDir())
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(files.ServerConfig(t)),
		kfake.EnableSASL(), kfake.Superuser(kafkabroker.SASLScramSHA512, "wahook", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	bb := open(t, Config{Broker: "kafka", KafkaBrokers: strings.Join(c.ListenAddrs(), ","), KafkaPartitions: 3,
		KafkaReplication: 1, KafkaDedupWindow: time.Hour,
		KafkaSecurity: kafkabroker.Security{CA: files.CA, Cert: files.ClientCert, Key: files.ClientKey,
			Mechanism: kafkabroker.SASLScramSHA512, User: "wahook", Password: "s3cret"}})
	check(t, bb, envelope.Kafka)
}
