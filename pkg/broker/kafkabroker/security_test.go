package kafkabroker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
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
	cfg, err := s.Config(nil, "")
	if err != nil {
		t.Fatalf("Security.Config: %v", err)
	}
	cfg.Subscribe = fastGroups
	return cfg
}

// reach tells whether a kafka-go dialer and a client on a transport that
// s builds get an answer from c: what readers outside a Broker use.
func reach(t *testing.T, c *kfake.Cluster, s kafkabroker.Security) (dialer, transport bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d, err := s.Dialer("wahook-test")
	if err != nil {
		t.Fatalf("Security.Dialer: %v", err)
	}
	if conn, err := d.DialContext(ctx, "tcp", c.ListenAddrs()[0]); err == nil {
		_, err = conn.ReadPartitions()
		dialer = err == nil
		_ = conn.Close()
	}
	tr, err := s.Transport("wahook-test")
	if err != nil {
		t.Fatalf("Security.Transport: %v", err)
	}
	defer tr.CloseIdleConnections()
	client := &kafka.Client{Addr: kafka.TCP(c.ListenAddrs()...), Transport: tr}
	_, err = client.Metadata(ctx, &kafka.MetadataRequest{})
	return dialer, err == nil
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
	if d, tr := reach(t, c, full); !d || !tr {
		t.Errorf("with TLS and SASL: dialer reached %v, transport %v; want both", d, tr)
	}

	noCert := full
	noCert.Cert, noCert.Key = "", ""
	refused(t, c, secured(t, noCert))
	if d, tr := reach(t, c, noCert); d || tr {
		t.Errorf("without the client certificate: dialer reached %v, transport %v; want neither", d, tr)
	}
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
		_, derr := s.Dialer("x")
		_, trerr := s.Transport("x")
		_, cerr := s.Config(nil, "x")
		if derr == nil || trerr == nil || cerr == nil {
			t.Errorf("%s: Dialer %v, Transport %v, Config %v; want errors", name, derr, trerr, cerr)
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
