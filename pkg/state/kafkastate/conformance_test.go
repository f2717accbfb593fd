package kafkastate_test

import (
	"testing"

	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/state"
	"github.com/wahook/wahook/pkg/state/statetest"
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

func TestLabelListing(t *testing.T) {
	c := newCluster(t)
	statetest.TestLabelListing(t, func(t *testing.T) statetest.LabelLister {
		return open(t, freshConfig(c)).Labels()
	})
}

func TestChatLookup(t *testing.T) {
	c := newCluster(t)
	statetest.TestChatLookup(t, func(t *testing.T) statetest.ChatLookup {
		return open(t, freshConfig(c)).Chats()
	})
}

// TestLabelListingRestored: a store opened later lists what the topic holds.
func TestLabelListingRestored(t *testing.T) {
	c := newCluster(t)
	cfg := freshConfig(c)
	s1 := open(t, cfg)
	if _, _, err := s1.Labels().Upsert(testCtx(t), prov, chan1, fact.Label{ID: "7", Name: "VIP", Color: "red"}, "ev1"); err != nil {
		t.Fatalf("Upsert: %v", err)
	}
	s2 := open(t, cfg)
	chans, err := s2.Labels().Channels(testCtx(t))
	if err != nil || len(chans) != 1 || chans[0] != (state.ProviderChannel{Provider: prov, Channel: chan1}) {
		t.Errorf("restored Channels = %v, %v; want %s/%s", chans, err, prov, chan1)
	}
	got, err := s2.Labels().List(testCtx(t), prov, chan1)
	if err != nil || len(got) != 1 || got[0].Name != "VIP" || got[0].CreatedBy != "ev1" {
		t.Errorf("restored List = %+v, %v; want label 7 VIP created by ev1", got, err)
	}
}
