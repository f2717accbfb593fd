package kafkastate_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/wahook/wahook/pkg/broker/kafkabroker"
	"github.com/wahook/wahook/pkg/internal/testtls"
	"github.com/wahook/wahook/pkg/state/kafkastate"
)

// TestSecureCluster opens the store on a cluster that requires TLS with
// client certificates and SCRAM: creating, restoring and tailing the topics
// and writing state all pass.
func TestSecureCluster(t *testing.T) {
	files := testtls.Generate(t, t.TempDir())
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.TLS(files.ServerConfig(t)),
		kfake.EnableSASL(), kfake.Superuser(kafkabroker.SASLScramSHA256, "wahook", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	sec := kafkabroker.Security{CA: files.CA, Cert: files.ClientCert, Key: files.ClientKey,
		Mechanism: kafkabroker.SASLScramSHA256, User: "wahook", Password: "s3cret"}
	cfg := freshConfig(c)
	if cfg.TLS, err = sec.TLSConfig(); err != nil {
		t.Fatal(err)
	}
	if cfg.SASL, err = sec.SASLMechanism(); err != nil {
		t.Fatal(err)
	}
	s := open(t, cfg)
	ctx := testCtx(t)
	if first, err := s.Chats().FirstSeen(ctx, prov, chan1, "1@s.whatsapp.net", "ev-1"); err != nil || !first {
		t.Fatalf("FirstSeen = %v, %v", first, err)
	}
	// A second store restores what the first wrote, over the same security.
	s2 := open(t, cfg)
	if first, err := s2.Chats().FirstSeen(ctx, prov, chan1, "1@s.whatsapp.net", "ev-2"); err != nil || first {
		t.Fatalf("restored FirstSeen = %v, %v; want known", first, err)
	}

	// Without credentials the store does not open.
	plain := freshConfig(c)
	plain.TLS = cfg.TLS
	octx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if s, err := kafkastate.Open(octx, plain); err == nil {
		closeStore(t, s)
		t.Fatal("Open without SASL succeeded")
	}
}
