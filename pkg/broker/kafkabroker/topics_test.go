package kafkabroker_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/wahook/wahook/pkg/broker/kafkabroker"
)

// topicMinInSync reads min.insync.replicas of wahook's topics.
func topicMinInSync(t *testing.T, addrs []string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := &kafka.DescribeConfigsRequest{}
	for _, topic := range kafkabroker.Topics() {
		req.Resources = append(req.Resources, kafka.DescribeConfigRequestResource{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{"min.insync.replicas"},
		})
	}
	resp, err := (&kafka.Client{Addr: kafka.TCP(addrs...)}).DescribeConfigs(ctx, req)
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
	return got
}

func threeBrokers(t *testing.T) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.DefaultNumPartitions(testPartitions))
	if err != nil {
		t.Fatalf("kfake.NewCluster: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestCreatedTopicsHaveMinInSyncReplicas(t *testing.T) {
	c := threeBrokers(t)
	connect(t, c, kafkabroker.Config{Topics: kafkabroker.TopicsConfig{ReplicationFactor: 3, MinInSyncReplicas: 2}})
	want := map[string]string{}
	for _, topic := range kafkabroker.Topics() {
		want[topic] = "2"
	}
	if diff := cmp.Diff(want, topicMinInSync(t, c.ListenAddrs())); diff != "" {
		t.Errorf("min.insync.replicas per topic (-want +got):\n%s", diff)
	}
}

func TestExistingTopicWithFewerInSyncReplicasIsLogged(t *testing.T) {
	c := threeBrokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := (&kafka.Client{Addr: kafka.TCP(c.ListenAddrs()...)}).CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: []kafka.TopicConfig{{
		Topic: kafkabroker.IngressTopic, NumPartitions: 2, ReplicationFactor: 3,
		ConfigEntries: []kafka.ConfigEntry{{ConfigName: "min.insync.replicas", ConfigValue: "1"}},
	}}})
	if err != nil || resp.Errors[kafkabroker.IngressTopic] != nil {
		t.Fatalf("CreateTopics = %v, %v", resp, err)
	}

	core, logs := observer.New(zap.WarnLevel)
	connect(t, c, kafkabroker.Config{Logger: zap.New(core), Topics: kafkabroker.TopicsConfig{ReplicationFactor: 3, MinInSyncReplicas: 2}})
	warned := logs.FilterMessageSnippet("min.insync.replicas is below").FilterField(zap.String("topic", kafkabroker.IngressTopic))
	if warned.Len() != 1 {
		t.Errorf("warnings about %s: %d, want 1; all: %v", kafkabroker.IngressTopic, warned.Len(), logs.All())
	}
	if n := logs.FilterMessageSnippet("min.insync.replicas is below").Len(); n != 1 {
		t.Errorf("%d warnings about min.insync.replicas, want 1 (only the topic created before)", n)
	}
	if got := topicMinInSync(t, c.ListenAddrs())[kafkabroker.IngressTopic]; got != "1" {
		t.Errorf("%s min.insync.replicas = %s after Connect, want the operator's 1 left as it is", kafkabroker.IngressTopic, got)
	}
}
