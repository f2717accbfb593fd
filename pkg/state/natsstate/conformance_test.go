package natsstate_test

import (
	"testing"

	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/derivetest"
	"github.com/wahook/wahook/pkg/state/statetest"
)

// The shared conformance suites, each subtest on fresh buckets of one
// server, reached over TCP as another process would.

func TestConformanceLabelRegistry(t *testing.T) {
	e := startServer(t, t.TempDir())
	b := connect(t, natsbroker.Config{URL: e.ClientURL(), Auth: e.ServiceAuth()})
	derivetest.TestLabelRegistry(t, func(t *testing.T) derive.LabelRegistry {
		return open(t, b.JetStream(), freshConfig()).Labels()
	})
}

func TestConformanceChatRegistry(t *testing.T) {
	e := startServer(t, t.TempDir())
	b := connect(t, natsbroker.Config{URL: e.ClientURL(), Auth: e.ServiceAuth()})
	derivetest.TestChatRegistry(t, func(t *testing.T) derive.ChatRegistry {
		return open(t, b.JetStream(), freshConfig()).Chats()
	})
}

// TestConformanceLabelRegistryRaces races two stores as two processes
// would: one over an in-process connection, one over TCP.
func TestConformanceLabelRegistryRaces(t *testing.T) {
	e := startServer(t, t.TempDir())
	b1 := connect(t, natsbroker.Config{Embedded: e})
	b2 := connect(t, natsbroker.Config{URL: e.ClientURL(), Auth: e.ServiceAuth()})
	derivetest.TestLabelRegistryRaces(t, func(t *testing.T) [2]derive.LabelRegistry {
		cfg := freshConfig()
		return [2]derive.LabelRegistry{open(t, b1.JetStream(), cfg).Labels(), open(t, b2.JetStream(), cfg).Labels()}
	})
}

func TestConformanceTimeRegistry(t *testing.T) {
	e := startServer(t, t.TempDir())
	b := connect(t, natsbroker.Config{URL: e.ClientURL(), Auth: e.ServiceAuth()})
	derivetest.TestTimeRegistry(t, func(t *testing.T) derive.TimeRegistry {
		return open(t, b.JetStream(), freshConfig()).Times()
	})
}

func TestConformanceAliasRegistry(t *testing.T) {
	e := startServer(t, t.TempDir())
	b := connect(t, natsbroker.Config{URL: e.ClientURL(), Auth: e.ServiceAuth()})
	derivetest.TestAliasRegistry(t, func(t *testing.T) derive.AliasRegistry {
		return open(t, b.JetStream(), freshConfig()).Aliases()
	})
}

func TestLabelListing(t *testing.T) {
	e := startServer(t, t.TempDir())
	b := connect(t, natsbroker.Config{URL: e.ClientURL(), Auth: e.ServiceAuth()})
	statetest.TestLabelListing(t, func(t *testing.T) statetest.LabelLister {
		return open(t, b.JetStream(), freshConfig()).Labels()
	})
}

func TestChatLookup(t *testing.T) {
	e := startServer(t, t.TempDir())
	b := connect(t, natsbroker.Config{URL: e.ClientURL(), Auth: e.ServiceAuth()})
	statetest.TestChatLookup(t, func(t *testing.T) statetest.ChatLookup {
		return open(t, b.JetStream(), freshConfig()).Chats()
	})
}
