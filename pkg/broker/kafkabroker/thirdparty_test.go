package kafkabroker_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/binding/spec"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/google/go-cmp/cmp"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/wahook/wahook/pkg/broker/kafkabroker"
	"github.com/wahook/wahook/pkg/envelope"
)

// The CloudEvents Kafka protocol binding, binary mode: attributes in ce_
// headers, datacontenttype in content-type.
const (
	cePrefix          = "ce_"
	contentTypeHeader = "content-type"
)

var ceSpecs = spec.WithPrefix(cePrefix)

// kgoMessage reads a franz-go record as a CloudEvents binding message, the
// way the SDK's Kafka bindings (kafka_sarama, kafka_confluent) read theirs.
type kgoMessage struct {
	rec     *kgo.Record
	version spec.Version
}

func newKgoMessage(r *kgo.Record) *kgoMessage {
	m := &kgoMessage{rec: r}
	for _, h := range r.Headers {
		if strings.EqualFold(h.Key, ceSpecs.PrefixedSpecVersionName()) {
			m.version = ceSpecs.Version(string(h.Value))
		}
	}
	return m
}

func (m *kgoMessage) ReadEncoding() binding.Encoding {
	if m.version != nil {
		return binding.EncodingBinary
	}
	return binding.EncodingUnknown
}

// header returns the first value of the header named name, or nil.
func (m *kgoMessage) header(name string) any {
	for _, h := range m.rec.Headers {
		if strings.EqualFold(h.Key, name) {
			return string(h.Value)
		}
	}
	return nil
}

func (m *kgoMessage) GetAttribute(k spec.Kind) (spec.Attribute, any) {
	if m.version == nil {
		return nil, nil
	}
	attr := m.version.AttributeFromKind(k)
	if attr == nil {
		return nil, nil
	}
	if k == spec.DataContentType {
		return attr, m.header(contentTypeHeader)
	}
	return attr, m.header(attr.PrefixedName())
}

func (m *kgoMessage) GetExtension(name string) any { return m.header(cePrefix + name) }

func (m *kgoMessage) ReadStructured(context.Context, binding.StructuredWriter) error {
	return binding.ErrNotStructured
}

func (m *kgoMessage) ReadBinary(ctx context.Context, w binding.BinaryWriter) error {
	if m.version == nil {
		return binding.ErrNotBinary
	}
	for _, h := range m.rec.Headers {
		k := strings.ToLower(h.Key)
		switch {
		case k == contentTypeHeader:
			if err := w.SetAttribute(m.version.AttributeFromKind(spec.DataContentType), string(h.Value)); err != nil {
				return err
			}
		case strings.HasPrefix(k, cePrefix):
			if attr := m.version.Attribute(k); attr != nil {
				if err := w.SetAttribute(attr, string(h.Value)); err != nil {
					return err
				}
			} else if err := w.SetExtension(strings.TrimPrefix(k, cePrefix), string(h.Value)); err != nil {
				return err
			}
		}
	}
	if m.rec.Value != nil {
		return w.SetData(bytes.NewReader(m.rec.Value))
	}
	return nil
}

// TestThirdPartyReader: a raw event published through kafkabroker is a
// valid binary-mode CloudEvent to a consumer written with another Kafka
// client and the CloudEvents SDK, keyed by its partitionkey.
func TestThirdPartyReader(t *testing.T) {
	c := startCluster(t)
	b := connect(t, c, kafkabroker.Config{})
	raw := envelope.Raw{
		ID:          "whapi-MANTIS-M72HC-messages-ABCD",
		Provider:    "whapi",
		Channel:     "MANTIS-M72HC",
		Kind:        "messages",
		Chat:        "5511999999999@s.whatsapp.net",
		Time:        time.Date(2026, 3, 4, 5, 6, 7, 890_000_000, time.UTC),
		TraceParent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		Data:        []byte(`{"id":"ABCD","from_me":false,"text":{"body":"olá \"mundo\" 100%"}}`),
	}
	msg := envelope.Ingress(raw, envelope.Kafka)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Publish(ctx, msg); err != nil {
		t.Fatalf("Publish(%s): %v", raw.ID, err)
	}

	recs := readTopic(t, c.ListenAddrs(), kafkabroker.IngressTopic, 1)
	m := newKgoMessage(recs[0])
	if enc := m.ReadEncoding(); enc != binding.EncodingBinary {
		t.Fatalf("record encoding %s, want binary (headers %v)", enc, recs[0].Headers)
	}
	ev, err := binding.ToEvent(ctx, m)
	if err != nil {
		t.Fatalf("binding.ToEvent: %v", err)
	}
	if err := ev.Validate(); err != nil {
		t.Fatalf("event.Validate: %v", err)
	}

	want := event.New(event.CloudEventsVersionV1)
	want.SetID(raw.ID)
	want.SetSource("/whapi/MANTIS-M72HC")
	want.SetType("io.wahook.ingress.whapi.messages")
	want.SetSubject(raw.Chat)
	want.SetTime(raw.Time)
	for name, v := range map[string]string{
		"provider":     raw.Provider,
		"channel":      raw.Channel,
		"partitionkey": "whapi/MANTIS-M72HC/5511999999999@s.whatsapp.net",
		"traceparent":  raw.TraceParent,
	} {
		want.SetExtension(name, v)
	}
	want.SetDataContentType(event.ApplicationJSON)
	want.DataEncoded = raw.Data
	if diff := cmp.Diff(want.String(), ev.String()); diff != "" {
		t.Errorf("event read by the third party mismatch (-want +got):\n%s", diff)
	}
	if !bytes.Equal(ev.Data(), raw.Data) {
		t.Errorf("event data = %s, want %s", ev.Data(), raw.Data)
	}
	if key, pk := string(recs[0].Key), ev.Extensions()["partitionkey"]; key != pk {
		t.Errorf("record key %q, partitionkey extension %v: want them equal", key, pk)
	}
}
