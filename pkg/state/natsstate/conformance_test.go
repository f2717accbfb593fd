package natsstate_test

import (
	"testing"

	"github.com/wahook/wahook/pkg/broker/natsbroker"
	"github.com/wahook/wahook/pkg/derive"
	"github.com/wahook/wahook/pkg/derive/derivetest"
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
