package kafkastate_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// TestTopicsHaveMinInSyncReplicas checks that the state topics Open creates
// carry the configured min.insync.replicas, as the broker's topics do: a
// state write is acknowledged before the derived events that depend on it
// are published, so it must be on as many brokers.
func TestTopicsHaveMinInSyncReplicas(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(3))
	if err != nil {
		t.Fatalf("kfake.NewCluster: %v", err)
	}
	t.Cleanup(c.Close)
	cfg := freshConfig(c)
	cfg.ReplicationFactor, cfg.MinInSyncReplicas = 3, 2
	open(t, cfg)

	topics := []string{cfg.LabelsTopic, cfg.ChatsTopic, cfg.DedupTopic, cfg.TimesTopic}
	req := &kafka.DescribeConfigsRequest{}
	want := map[string]string{}
	for _, topic := range topics {
		req.Resources = append(req.Resources, kafka.DescribeConfigRequestResource{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{"min.insync.replicas"},
		})
		want[topic] = "2"
	}
	resp, err := (&kafka.Client{Addr: kafka.TCP(c.ListenAddrs()...)}).DescribeConfigs(testCtx(t), req)
	if err != nil {
		t.Fatalf("DescribeConfigs: %v", err)
	}
	got := map[string]string{}
	for _, r := range resp.Resources {
		if r.Error != nil {
			t.Fatalf("DescribeConfigs(%s): %v", r.ResourceName, r.Error)
		}
		for _, e := range r.ConfigEntries {
			got[r.ResourceName] = e.ConfigValue
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("min.insync.replicas of the state topics (-want +got):\n%s", diff)
	}
}
