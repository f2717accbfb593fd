package kafkastate_test

import (
	"testing"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/derivetest"
)

// The shared conformance suites, each subtest on fresh topics of one
// cluster.

func TestConformanceLabelRegistry(t *testing.T) {
	c := newCluster(t)
	derivetest.TestLabelRegistry(t, func(t *testing.T) derive.LabelRegistry {
		return open(t, freshConfig(c)).Labels()
	})
}

func TestConformanceChatRegistry(t *testing.T) {
	c := newCluster(t)
	derivetest.TestChatRegistry(t, func(t *testing.T) derive.ChatRegistry {
		return open(t, freshConfig(c)).Chats()
	})
}

// TestConformanceLabelRegistryRaces races two stores on one cluster, as two
// processes would.
func TestConformanceLabelRegistryRaces(t *testing.T) {
	c := newCluster(t)
	derivetest.TestLabelRegistryRaces(t, func(t *testing.T) [2]derive.LabelRegistry {
		cfg := freshConfig(c)
		return [2]derive.LabelRegistry{open(t, cfg).Labels(), open(t, cfg).Labels()}
	})
}

func TestConformanceTimeRegistry(t *testing.T) {
	c := newCluster(t)
	derivetest.TestTimeRegistry(t, func(t *testing.T) derive.TimeRegistry {
		return open(t, freshConfig(c)).Times()
	})
}

func TestConformanceAliasRegistry(t *testing.T) {
	c := newCluster(t)
	derivetest.TestAliasRegistry(t, func(t *testing.T) derive.AliasRegistry {
		return open(t, freshConfig(c)).Aliases()
	})
}
