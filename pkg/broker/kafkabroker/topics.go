package kafkabroker

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"
	"go.uber.org/zap"

	"github.com/wahook/wahook/pkg/broker/internal/dispatch"
)

// wahook's Kafka topics (contract sections 2 and 3).
const (
	IngressTopic           = "wahook.ingress"
	DeadLetterTopic        = "wahook.deadletter"
	LabelChangedTopic      = "wahook.label-changed"
	ChatCreatedTopic       = "wahook.chat-created"
	CallTopic              = "wahook.call"
	GroupNotificationTopic = "wahook.group-notification"
)

// Topics lists the topics EnsureTopics creates and Ready checks.
func Topics() []string {
	return []string{IngressTopic, DeadLetterTopic, LabelChangedTopic, ChatCreatedTopic, CallTopic, GroupNotificationTopic}
}

// ErrUnknownTopic is returned by Publish and Subscribe for a topic the
// cluster does not have. It is not broker.ErrUnavailable: retrying cannot
// help until someone creates the topic.
var ErrUnknownTopic = errors.New("kafkabroker: unknown topic")

// topicsWait is the pause between two looks at the metadata while waiting
// for created topics to appear.
const topicsWait = 100 * time.Millisecond

// TopicConfigs returns the definitions EnsureTopics creates.
func (c TopicsConfig) TopicConfigs() []kafka.TopicConfig {
	def := func(name string, retention time.Duration) kafka.TopicConfig {
		ms := int64(-1)
		if retention > 0 {
			ms = retention.Milliseconds()
		}
		entries := []kafka.ConfigEntry{
			{ConfigName: "cleanup.policy", ConfigValue: "delete"},
			{ConfigName: "retention.ms", ConfigValue: strconv.FormatInt(ms, 10)},
			{ConfigName: "max.message.bytes", ConfigValue: strconv.Itoa(c.MaxMessageBytes)},
		}
		if c.MinInSyncReplicas > 0 {
			entries = append(entries, kafka.ConfigEntry{ConfigName: "min.insync.replicas", ConfigValue: strconv.Itoa(c.MinInSyncReplicas)})
		}
		return kafka.TopicConfig{
			Topic:             name,
			NumPartitions:     c.Partitions,
			ReplicationFactor: c.ReplicationFactor,
			ConfigEntries:     entries,
		}
	}
	return []kafka.TopicConfig{
		def(IngressTopic, c.IngressRetention),
		def(DeadLetterTopic, c.DeadLetterRetention),
		def(LabelChangedTopic, c.DerivedRetention),
		def(ChatCreatedTopic, c.DerivedRetention),
		def(CallTopic, c.DerivedRetention),
		def(GroupNotificationTopic, c.DerivedRetention),
	}
}

// EnsureTopics creates the topics that do not exist yet and waits until the
// cluster's metadata lists all of them. It is idempotent, so every service
// runs it at start; existing topics are left as they are (Kafka's topic
// settings are an operator's business once the topic exists), but one whose
// min.insync.replicas is below the configured one is logged.
func (b *Broker) EnsureTopics(ctx context.Context) error {
	if err := b.createTopics(ctx); err != nil {
		return err
	}
	for {
		missing, err := b.missingTopics(ctx, Topics())
		if err == nil && len(missing) == 0 {
			CheckMinInSync(ctx, b.client, Topics(), b.cfg.Topics.MinInSyncReplicas, b.log)
			return nil
		}
		if err == nil {
			// Created by another process moments ago: the metadata cache
			// learns of it within its TTL.
			err = fmt.Errorf("topics %q not in the metadata yet", missing)
		}
		if !dispatch.Sleep(ctx, topicsWait) {
			return fmt.Errorf("kafkabroker: ensure topics: %w", classify(errors.Join(err, ctx.Err())))
		}
	}
}

func (b *Broker) createTopics(ctx context.Context) error {
	resp, err := b.client.CreateTopics(ctx, &kafka.CreateTopicsRequest{Topics: b.cfg.Topics.TopicConfigs()})
	if err != nil {
		return fmt.Errorf("kafkabroker: create topics: %w", classify(err))
	}
	for topic, terr := range resp.Errors {
		if terr != nil && !errors.Is(terr, kafka.TopicAlreadyExists) {
			return fmt.Errorf("kafkabroker: create topic %s: %w", topic, classify(terr))
		}
	}
	return nil
}

// CheckMinInSync warns about topics whose min.insync.replicas is below
// want (0: no check): acks from all in-sync replicas then mean fewer
// copies than configured. Only a warning: describing configurations may be
// refused (ACLs) without the topics being unusable.
func CheckMinInSync(ctx context.Context, client *kafka.Client, topics []string, want int, log *zap.Logger) {
	if want == 0 {
		return
	}
	req := &kafka.DescribeConfigsRequest{}
	for _, t := range topics {
		req.Resources = append(req.Resources, kafka.DescribeConfigRequestResource{
			ResourceType: kafka.ResourceTypeTopic, ResourceName: t, ConfigNames: []string{"min.insync.replicas"},
		})
	}
	resp, err := client.DescribeConfigs(ctx, req)
	if err != nil {
		log.Warn("cannot check the topics' min.insync.replicas", zap.Error(err))
		return
	}
	for _, r := range resp.Resources {
		if r.Error != nil {
			log.Warn("cannot check the topic's min.insync.replicas", zap.String("topic", r.ResourceName), zap.Error(r.Error))
			continue
		}
		for _, e := range r.ConfigEntries {
			if n, err := strconv.Atoi(e.ConfigValue); e.ConfigName == "min.insync.replicas" && err == nil && n < want {
				log.Warn("topic's min.insync.replicas is below the configured one; left as it is, change it with kafka-configs",
					zap.String("topic", r.ResourceName), zap.Int("min_insync_replicas", n), zap.Int("configured", want))
			}
		}
	}
}

// missingTopics returns the topics the metadata does not list, or lists
// without leaders for all their partitions.
func (b *Broker) missingTopics(ctx context.Context, topics []string) ([]string, error) {
	meta, err := b.client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, err
	}
	found := make(map[string]bool, len(meta.Topics))
	for _, t := range meta.Topics {
		if t.Error != nil || len(t.Partitions) == 0 {
			continue
		}
		ok := true
		for _, p := range t.Partitions {
			if p.Error != nil || p.Leader.Host == "" {
				ok = false
			}
		}
		found[t.Name] = ok
	}
	var missing []string
	for _, t := range topics {
		if !found[t] {
			missing = append(missing, t)
		}
	}
	return missing, nil
}

// partitionsOf returns the partitions of topic, or an error wrapping
// ErrUnknownTopic when the cluster has no such topic.
func (b *Broker) partitionsOf(ctx context.Context, topic string) ([]int, error) {
	meta, err := b.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, classify(err)
	}
	for _, t := range meta.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
				return nil, fmt.Errorf("%w %q", ErrUnknownTopic, topic)
			}
			return nil, classify(t.Error)
		}
		ids := make([]int, len(t.Partitions))
		for i, p := range t.Partitions {
			ids[i] = p.ID
		}
		return ids, nil
	}
	return nil, fmt.Errorf("%w %q", ErrUnknownTopic, topic)
}
