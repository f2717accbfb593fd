package kafkabroker

import (
	"testing"

	"github.com/wahook/wahook/pkg/broker"
)

func TestCheckAllocs(t *testing.T) {
	b := &Broker{cfg: Config{Topics: TopicsConfig{MaxMessageBytes: DefaultMaxMessageBytes}}}
	m := broker.Message{
		Topic: IngressTopic, Key: "whapi/CH/4915112345678@s.whatsapp.net", ID: "0123456789abcdef0123456789abcdef",
		Header: broker.Header{
			"ce_specversion": {"1.0"}, "ce_id": {"0123456789abcdef0123456789abcdef"}, "ce_source": {"/whapi/CH"},
			"ce_type": {"io.wahook.ingress.whapi.messages.post"}, "ce_time": {"2026-01-02T03:04:05.678Z"},
			"ce_provider": {"whapi"}, "ce_channel": {"CH"}, "ce_partitionkey": {"whapi/CH/4915112345678@s.whatsapp.net"},
			"content-type": {"application/json"},
		},
		Data: []byte(`{"id":"m1","text":{"body":"hi"}}`),
	}
	if n := testing.AllocsPerRun(100, func() {
		if err := b.check(&m); err != nil {
			t.Fatalf("check: %v", err)
		}
	}); n != 0 {
		t.Errorf("check of a valid message allocates %.0f times, want 0", n)
	}
}

// TestCheckSize: the size check is kafka-go's estimate, whose largest
// accepted value is BatchBytes.
func TestCheckSize(t *testing.T) {
	const max = 4096
	b := &Broker{cfg: Config{Topics: TopicsConfig{MaxMessageBytes: max}}}
	hdr := broker.Header{"ce_type": {"t"}, "multi": {"a", "bb"}}
	// 22 fixed, key, value, varint(3 headers), then per header varint+name+varint+value.
	fixed := 22 + len("key") + 1 + (1 + 7 + 1 + 1) + (1 + 5 + 1 + 1) + (1 + 5 + 1 + 2)
	at := broker.Message{Topic: IngressTopic, Key: "key", Header: hdr, Data: make([]byte, max-recordBatchOverhead-fixed)}
	if err := b.check(&at); err != nil {
		t.Errorf("check(record of exactly BatchBytes) = %v, want nil", err)
	}
	over := at
	over.Data = make([]byte, len(at.Data)+1)
	if err := b.check(&over); err == nil {
		t.Error("check(record of BatchBytes+1) = nil, want ErrTooLarge")
	}
}
