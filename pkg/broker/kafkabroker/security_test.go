package kafkabroker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/kafkabroker"
	"github.com/wahook/wahook/pkg/internal/testtls"
)

// secureCluster starts a kfake cluster with extra options (SASL users,
// TLS), closed when the test ends.
func secureCluster(t *testing.T, opts ...kfake.Opt) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{
		kfake.NumBrokers(1),
		kfake.DefaultNumPartitions(testPartitions),
		kfake.GroupMinSessionTimeout(500 * time.Millisecond),
	}, opts...)...)
	if err != nil {
		t.Fatalf("kfake.NewCluster: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

// secured fills cfg's TLS and SASL from s.
func secured(t *testing.T, s kafkabroker.Security) kafkabroker.Config {
	t.Helper()
	tc, err := s.TLSConfig()
	if err != nil {
		t.Fatalf("TLSConfig: %v", err)
	}
	m, err := s.SASLMechanism()
	if err != nil {
		t.Fatalf("SASLMechanism: %v", err)
	}
	return kafkabroker.Config{TLS: tc, SASL: m, Subscribe: fastGroups}
}

// roundTrip publishes a record and reads it back through a consumer group:
// the writer, the admin client (topic creation), the group and its readers
// all pass the cluster's security.
func roundTrip(t *testing.T, c *kfake.Cluster, cfg kafkabroker.Config) {
	t.Helper()
	b := connect(t, c, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Ready(ctx); err != nil {
		t.Fatalf("Ready: %v", err)
	}
	if err := b.Publish(ctx, testMsg("secure", 1)); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	got := make(chan broker.Received, 1)
	subscribe(t, b, broker.Subscription{Topic: kafkabroker.IngressTopic, Group: "secure-group"},
		func(_ context.Context, m broker.Received) error {
			select {
			case got <- m:
			default:
			}
			return nil
		})
	select {
	case m := <-got:
		if m.ID != "secure/1" {
			t.Errorf("received %q, want secure/1", m.ID)
		}
	case <-ctx.Done():
		t.Fatal("the consumer group received nothing")
	}
}

// refused requires Connect to fail.
func refused(t *testing.T, c *kfake.Cluster, cfg kafkabroker.Config) {
	t.Helper()
	cfg.Brokers = c.ListenAddrs()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := kafkabroker.Connect(ctx, cfg)
	if err == nil {
		_ = b.Close(ctx)
		t.Fatal("Connect succeeded, want it refused")
	}
}

func TestSASL(t *testing.T) {
	for _, mech := range []string{kafkabroker.SASLPlain, kafkabroker.SASLScramSHA256, kafkabroker.SASLScramSHA512} {
		t.Run(mech, func(t *testing.T) {
			c := secureCluster(t, kfake.EnableSASL(), kfake.Superuser(mech, "wahook", "s3cret"))
			roundTrip(t, c, secured(t, kafkabroker.Security{Mechanism: mech, User: "wahook", Password: "s3cret"}))
			refused(t, c, secured(t, kafkabroker.Security{Mechanism: mech, User: "wahook", Password: "wrong"}))
			refused(t, c, kafkabroker.Config{})
		})
	}
}

func TestTLS(t *testing.T) {
	files := testtls.Generate(t, t.TempDir())
	c := secureCluster(t, kfake.TLS(files.ServerConfig(t)),
		kfake.EnableSASL(), kfake.Superuser(kafkabroker.SASLScramSHA512, "wahook", "s3cret"))
	full := kafkabroker.Security{CA: files.CA, Cert: files.ClientCert, Key: files.ClientKey,
		Mechanism: kafkabroker.SASLScramSHA512, User: "wahook", Password: "s3cret"}
	roundTrip(t, c, secured(t, full))

	noCert := full
	noCert.Cert, noCert.Key = "", ""
	refused(t, c, secured(t, noCert))
	other := full
	other.CA = testtls.Generate(t, t.TempDir()).CA
	refused(t, c, secured(t, other))
	refused(t, c, secured(t, kafkabroker.Security{Mechanism: kafkabroker.SASLScramSHA512, User: "wahook", Password: "s3cret"}))
}

func TestSecurityErrors(t *testing.T) {
	for name, s := range map[string]kafkabroker.Security{
		"unknown mechanism":   {Mechanism: "GSSAPI", User: "u", Password: "p"},
		"mechanism, no user":  {Mechanism: "PLAIN", Password: "p"},
		"user, no mechanism":  {User: "u", Password: "p"},
		"missing CA":          {CA: "/nonexistent/ca.pem"},
		"cert without key":    {Cert: "c.pem"},
		"unreadable key pair": {Cert: "/nonexistent/c.pem", Key: "/nonexistent/k.pem"},
	} {
		_, terr := s.TLSConfig()
		_, serr := s.SASLMechanism()
		if terr == nil && serr == nil {
			t.Errorf("%s: no error", name)
		}
		for _, err := range []error{terr, serr} {
			if err != nil && strings.Contains(err.Error(), "\"p\"") {
				t.Errorf("%s: error shows the password: %v", name, err)
			}
		}
	}
	if tc, err := (kafkabroker.Security{TLS: true}).TLSConfig(); err != nil || tc == nil || tc.RootCAs != nil {
		t.Errorf("TLS with the system's CAs = %v, %v", tc, err)
	}
	if tc, err := (kafkabroker.Security{}).TLSConfig(); err != nil || tc != nil {
		t.Errorf("no TLS = %v, %v", tc, err)
	}
}
