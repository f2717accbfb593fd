package kafkabroker_test

import (
	"testing"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/brokertest"
	"github.com/wahook/wahook/pkg/broker/kafkabroker"
)

func TestConformance(t *testing.T) {
	brokertest.Run(t, func(t *testing.T) brokertest.Pair {
		c := startCluster(t)
		b := connect(t, c, kafkabroker.Config{Subscribe: fastGroups})
		return brokertest.Pair{
			Publisher:  b,
			Subscriber: b,
			Topic:      kafkabroker.IngressTopic,
			// Kafka routes by topic alone.
			Subject: func(string, int) string { return kafkabroker.IngressTopic },
			Crash: func(t *testing.T) (broker.Subscriber, func()) {
				cut := &cutter{}
				other := connect(t, c, kafkabroker.Config{Subscribe: fastGroups, Dial: cut.dial})
				return other, cut.kill
			},
			Redelivery: fastGroups.SessionTimeout,
		}
	})
}
