package kafkabroker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/broker/kafkabroker"
)

// estimate is kafka-go's size of a record without id or headers: what its
// BatchBytes counts.
func estimate(key string, data int) int { return 22 + len(key) + data + 1 }

func TestPublishRefusesBeforeSending(t *testing.T) {
	const maxBytes = 16 << 10
	c := startCluster(t)
	b := connect(t, c, kafkabroker.Config{Topics: kafkabroker.TopicsConfig{MaxMessageBytes: maxBytes}})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	ok := broker.Message{Topic: kafkabroker.IngressTopic, Key: "k", ID: "ok", Data: []byte(`{}`)}
	withHeader := func(k string) broker.Message {
		m := ok
		m.Header = broker.Header{k: {"v"}}
		return m
	}
	for name, tc := range map[string]struct {
		msg      broker.Message
		tooLarge bool
	}{
		"no topic":              {msg: broker.Message{Key: "k", Data: []byte(`{}`)}},
		"unknown topic":         {msg: broker.Message{Topic: "wahook.nope", Key: "k", Data: []byte(`{}`)}},
		"empty header name":     {msg: withHeader("")},
		"header name colon":     {msg: withHeader("ce_a:b")},
		"header name space":     {msg: withHeader("ce a")},
		"header name CRLF":      {msg: withHeader("ce_a\r\nx")},
		"header name non-ASCII": {msg: withHeader("ce_café")},
		"over max.message.bytes": {
			msg: broker.Message{Topic: kafkabroker.IngressTopic, Key: "k", Data: bytes.Repeat([]byte("x"), maxBytes)}, tooLarge: true,
		},
		// What kafka-go's own check let through with BatchBytes at
		// max.message.bytes: the broker refused it once the batch header
		// was added.
		"at max.message.bytes by kafka-go's estimate": {
			msg:      broker.Message{Topic: kafkabroker.IngressTopic, Key: "k", Data: bytes.Repeat([]byte("x"), maxBytes-estimate("k", 0))},
			tooLarge: true,
		},
	} {
		t.Run(name, func(t *testing.T) {
			err := b.Publish(ctx, tc.msg)
			if !errors.Is(err, broker.ErrRejected) || errors.Is(err, broker.ErrUnavailable) {
				t.Fatalf("Publish = %v, want ErrRejected and not ErrUnavailable", err)
			}
			if got := errors.Is(err, broker.ErrTooLarge); got != tc.tooLarge {
				t.Errorf("Publish = %v: errors.Is(ErrTooLarge) = %v, want %v", err, got, tc.tooLarge)
			}
			if err := b.Publish(ctx, ok); err != nil {
				t.Errorf("Publish after a refused message: %v", err)
			}
		})
	}
}

// TestMaxMessageBytes: the limit is max.message.bytes less the record batch
// header; a message of broker.Size up to it is stored, and so is the
// largest record Publish lets through.
func TestMaxMessageBytes(t *testing.T) {
	const maxBytes = 16 << 10
	c := startCluster(t)
	b := connect(t, c, kafkabroker.Config{Topics: kafkabroker.TopicsConfig{MaxMessageBytes: maxBytes}})
	if got, want := b.MaxMessageBytes(), maxBytes-61; got != want {
		t.Fatalf("MaxMessageBytes() = %d, want %d", got, want)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()

	m := broker.Message{
		Topic: kafkabroker.IngressTopic, Key: "whapi/CH/chat", ID: "0123456789abcdef0123456789abcdef",
		Header: broker.Header{"ce_specversion": {"1.0"}, "ce_type": {"io.wahook.ingress.whapi.messages.post"}, "content-type": {"application/json"}},
	}
	m.Data = bytes.Repeat([]byte("s"), b.MaxMessageBytes()-broker.Size(m))
	if err := b.Publish(ctx, m); err != nil {
		t.Errorf("Publish(Size == MaxMessageBytes) = %v, want stored", err)
	}
	largest := broker.Message{Topic: kafkabroker.IngressTopic, Key: "k", Data: bytes.Repeat([]byte("l"), maxBytes-61-estimate("k", 0))}
	if err := b.Publish(ctx, largest); err != nil {
		t.Errorf("Publish(largest record Publish takes) = %v, want stored", err)
	}
	if got := readTopic(t, c.ListenAddrs(), kafkabroker.IngressTopic, 2); len(got) != 2 {
		t.Errorf("read %d records, want 2", len(got))
	}
}

// TestPublishSharedBatchFits: two records of one partition, each half of
// max.message.bytes, are each valid; kafka-go put them in one batch, which
// the broker refused whole when BatchBytes left no room for the batch
// header, failing both (concurrent callers' records with them).
func TestPublishSharedBatchFits(t *testing.T) {
	const maxBytes = 16 << 10
	c := startCluster(t)
	b := connect(t, c, kafkabroker.Config{Topics: kafkabroker.TopicsConfig{MaxMessageBytes: maxBytes}})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	half := bytes.Repeat([]byte("h"), maxBytes/2-estimate("k", 0))
	msgs := []broker.Message{
		{Topic: kafkabroker.IngressTopic, Key: "k", Data: half},
		{Topic: kafkabroker.IngressTopic, Key: "k", Data: half},
	}
	if err := b.Publish(ctx, msgs...); err != nil {
		t.Fatalf("Publish(two records of half max.message.bytes) = %v, want stored", err)
	}
	if got := readTopic(t, c.ListenAddrs(), kafkabroker.IngressTopic, 2); len(got) != 2 {
		t.Errorf("read %d records, want 2", len(got))
	}
}

// TestPublishPerCallBound: a call with many records of one partition no
// longer queues all of them ahead of a concurrent caller's record in that
// partition: small publishes, one after another, complete while the big
// call is still far from done.
func TestPublishPerCallBound(t *testing.T) {
	c := startCluster(t)
	b := connect(t, c, kafkabroker.Config{})
	cl := &kafka.Client{Addr: kafka.TCP(c.ListenAddrs()...)}
	stored := func() int64 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var req []kafka.OffsetRequest
		for p := range testPartitions {
			req = append(req, kafka.LastOffsetOf(p))
		}
		resp, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{kafkabroker.IngressTopic: req}})
		if err != nil {
			t.Fatalf("ListOffsets: %v", err)
		}
		var n int64
		for _, p := range resp.Topics[kafkabroker.IngressTopic] {
			n += p.LastOffset
		}
		return n
	}

	huge := make([]broker.Message, 50000)
	for i := range huge {
		huge[i] = broker.Message{Topic: kafkabroker.IngressTopic, Key: "same-partition", Data: fmt.Appendf(nil, `{"n":%d}`, i)}
	}
	var hugeDone atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := b.Publish(ctx, huge...); err != nil {
			t.Errorf("Publish(%d records): %v", len(huge), err)
		}
		hugeDone.Store(true)
	}()
	// The big call is being written.
	waitFor(t, 30*time.Second, "records of the big call stored", func() bool { return stored() >= 1000 })

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 5 {
		m := broker.Message{Topic: kafkabroker.IngressTopic, Key: "same-partition", Data: fmt.Appendf(nil, `{"small":%d}`, i)}
		if err := b.Publish(ctx, m); err != nil {
			t.Fatalf("small Publish %d: %v", i, err)
		}
	}
	if hugeDone.Load() {
		t.Errorf("5 small publishes completed only after the %d-record call: they waited behind all of it", len(huge))
	}
	wg.Wait()
}
