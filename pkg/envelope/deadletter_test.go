package envelope_test

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/schemas"
)

func sampleDeadLetter(body []byte) envelope.DeadLetter {
	d := envelope.DeadLetter{
		Reason:     "invalid payload: not JSON",
		Provider:   "whapi",
		Channel:    "MANTIS-M72HC",
		ReceivedAt: time.Date(2024, 4, 22, 13, 27, 33, 0, time.UTC),
		Method:     "POST",
		Path:       "/v1/webhooks/whapi",
		Headers:    map[string]string{"Content-Type": "application/json"},
	}
	d.SetBody(body)
	return d
}

// TestDeadLetterNoHTMLEscape: '<', '>' and '&' are written as themselves,
// not as 6-byte escapes.
func TestDeadLetterNoHTMLEscape(t *testing.T) {
	body := []byte(`<html>&amp;</html>`)
	m, err := envelope.DeadLetterMessage(sampleDeadLetter(body), envelope.NATS)
	if err != nil {
		t.Fatalf("DeadLetterMessage: %v", err)
	}
	if !bytes.Contains(m.Data, body) || bytes.Contains(m.Data, []byte(`\u003c`)) {
		t.Errorf("record data %s, want the body %s unescaped", m.Data, body)
	}
	if bytes.HasSuffix(m.Data, []byte("\n")) {
		t.Errorf("record data ends with a newline: %q", m.Data)
	}
	if err := schemas.Validate(envelope.DeadLetterSchema, m.Data); err != nil {
		t.Errorf("record data invalid: %v", err)
	}
}

func TestDeadLetterMessagesOneWhenItFits(t *testing.T) {
	d := sampleDeadLetter(bytes.Repeat([]byte("x"), 1000))
	one, err := envelope.DeadLetterMessage(d, envelope.NATS)
	if err != nil {
		t.Fatalf("DeadLetterMessage: %v", err)
	}
	for _, limit := range []int{0, -1, broker.Size(one), 1 << 20} {
		msgs, err := envelope.DeadLetterMessages(d, envelope.NATS, limit)
		if err != nil {
			t.Fatalf("DeadLetterMessages(limit %d): %v", limit, err)
		}
		if len(msgs) != 1 || msgs[0].ID != one.ID || !bytes.Equal(msgs[0].Data, one.Data) {
			t.Errorf("DeadLetterMessages(limit %d) = %d messages, want the one record", limit, len(msgs))
		}
	}
}

// TestDeadLetterMessagesParts: a body over the limit is stored in parts
// that each fit, the record last; the body is reassembled exactly from
// them, in any order and among other messages; the ids are the same on
// every call.
func TestDeadLetterMessagesParts(t *testing.T) {
	text := []byte(strings.Repeat(`{"text":"<b>ação</b> & \u0001"}`, 700))
	binary := make([]byte, 20000)
	for i := range binary {
		binary[i] = byte(i * 7)
	}
	for _, b := range []envelope.Binding{envelope.NATS, envelope.Kafka} {
		for name, body := range map[string][]byte{"text": text, "binary": binary} {
			t.Run(b.Name+"/"+name, func(t *testing.T) {
				const limit = 2048
				d := sampleDeadLetter(body)
				d.SourceEventID = "evt-1"
				msgs, err := envelope.DeadLetterMessages(d, b, limit)
				if err != nil {
					t.Fatalf("DeadLetterMessages: %v", err)
				}
				if len(msgs) < 3 {
					t.Fatalf("DeadLetterMessages = %d messages, want parts and a record", len(msgs))
				}
				for i, m := range msgs {
					if s := broker.Size(m); s > limit {
						t.Errorf("message %d (%s) has Size %d, over the limit %d", i, m.ID, s, limit)
					}
					if m.Topic != envelope.DeadLetterTopic || m.Subject != "wahook.deadletter.whapi" || m.Key != "whapi/MANTIS-M72HC" {
						t.Errorf("message %d: topic %q subject %q key %q", i, m.Topic, m.Subject, m.Key)
					}
				}
				rec := msgs[len(msgs)-1]
				id, got, err := envelope.DecodeDeadLetter(rec, b)
				if err != nil {
					t.Fatalf("DecodeDeadLetter(last message): %v", err)
				}
				whole, _ := envelope.DeadLetterMessage(d, b)
				if id != whole.ID || rec.ID != id {
					t.Errorf("record id %s, want %s, the id of the dead letter in one record", id, whole.ID)
				}
				if err := schemas.Validate(envelope.DeadLetterSchema, rec.Data); err != nil {
					t.Errorf("record data %s invalid: %v", rec.Data, err)
				}
				p := got.BodyParts
				if p == nil || got.Body != nil || got.BodyBase64 != "" || p.Count != len(msgs)-1 || p.Size != len(body) {
					t.Fatalf("record %s, want body_parts of %d parts and %d bytes instead of the body", rec.Data, len(msgs)-1, len(body))
				}
				if got.Reason != d.Reason || got.SourceEventID != d.SourceEventID || got.Headers["Content-Type"] != "application/json" {
					t.Errorf("record lost fields: %+v", got)
				}
				for i, m := range msgs[:len(msgs)-1] {
					ev, err := envelope.Decode(m, b)
					if err != nil {
						t.Fatalf("Decode(part %d): %v", i, err)
					}
					ext := ev.Extensions()
					if ev.Type() != envelope.DeadLetterPartType || ev.ID() != envelope.DeadLetterPartID(id, p.PartSize, i) ||
						ext[envelope.ExtDeadLetterID] != id || ext[envelope.ExtPartIndex] != strconv.Itoa(i) ||
						ext[envelope.ExtPartCount] != strconv.Itoa(p.Count) || ev.DataContentType() != envelope.OctetStream {
						t.Errorf("part %d: %s", i, ev)
					}
				}

				// Any order, with other messages about.
				other, _ := envelope.DeadLetterMessages(sampleDeadLetter(binary[:5000]), b, limit)
				mixed := append(append([]broker.Message(nil), other...), msgs...)
				rand.Shuffle(len(mixed), func(i, j int) { mixed[i], mixed[j] = mixed[j], mixed[i] })
				raw, err := envelope.DeadLetterBody(id, got, mixed, b)
				if err != nil {
					t.Fatalf("DeadLetterBody: %v", err)
				}
				if !bytes.Equal(raw, body) {
					t.Errorf("reassembled body of %d bytes differs from the %d published", len(raw), len(body))
				}

				again, _ := envelope.DeadLetterMessages(d, b, limit)
				for i := range again {
					if again[i].ID != msgs[i].ID {
						t.Errorf("message %d: id %s on the second call, %s on the first", i, again[i].ID, msgs[i].ID)
					}
				}
				// Another limit: other part ids, never mixed with these.
				smaller, _ := envelope.DeadLetterMessages(d, b, limit-100)
				for _, m := range smaller[:len(smaller)-1] {
					for _, o := range msgs {
						if m.ID == o.ID {
							t.Errorf("part %s under two limits", m.ID)
						}
					}
				}
			})
		}
	}
}

func TestDeadLetterBodyErrors(t *testing.T) {
	b := envelope.NATS
	d := sampleDeadLetter(bytes.Repeat([]byte("y"), 10000))
	msgs, err := envelope.DeadLetterMessages(d, b, 2048)
	if err != nil {
		t.Fatalf("DeadLetterMessages: %v", err)
	}
	id, rec, err := envelope.DecodeDeadLetter(msgs[len(msgs)-1], b)
	if err != nil {
		t.Fatalf("DecodeDeadLetter: %v", err)
	}
	parts := msgs[:len(msgs)-1]

	if _, err := envelope.DeadLetterBody(id, rec, parts[1:], b); err == nil {
		t.Error("DeadLetterBody without part 0 = nil error")
	}
	tampered := append([]broker.Message(nil), parts...)
	tampered[1].Data = bytes.Repeat([]byte("z"), len(parts[1].Data))
	if _, err := envelope.DeadLetterBody(id, rec, tampered, b); err == nil {
		t.Error("DeadLetterBody with a tampered part = nil error")
	}
	short := append([]broker.Message(nil), parts...)
	short[0].Data = parts[0].Data[:10]
	if _, err := envelope.DeadLetterBody(id, rec, short, b); err == nil {
		t.Error("DeadLetterBody with a short part = nil error")
	}
	if _, err := envelope.DeadLetterBody("other", rec, parts, b); err == nil {
		t.Error("DeadLetterBody of another id = nil error")
	}
	if _, _, err := envelope.DecodeDeadLetter(parts[0], b); err == nil {
		t.Error("DecodeDeadLetter(a part) = nil error")
	}

	// Too small a limit to split for, or to hold the record.
	for _, limit := range []int{broker.Size(parts[0]) - len(parts[0].Data) + 10, 100} {
		if _, err := envelope.DeadLetterMessages(d, b, limit); !errors.Is(err, broker.ErrTooLarge) {
			t.Errorf("DeadLetterMessages(limit %d) = %v, want ErrTooLarge", limit, err)
		}
	}
	huge := sampleDeadLetter([]byte("x"))
	huge.Reason = strings.Repeat("r", 4096)
	if _, err := envelope.DeadLetterMessages(huge, b, 2048); !errors.Is(err, broker.ErrTooLarge) {
		t.Errorf("DeadLetterMessages(record over the limit without its body) = %v, want ErrTooLarge", err)
	}
	withParts := d
	withParts.BodyParts = rec.BodyParts
	if _, err := envelope.DeadLetterMessages(withParts, b, 0); err == nil {
		t.Error("DeadLetterMessages(a record with body_parts) = nil error")
	}
}

// TestPublishDeadLetter: the parts are stored in one call before the
// record, and a failure to store them keeps the record back.
func TestPublishDeadLetter(t *testing.T) {
	d := sampleDeadLetter(bytes.Repeat([]byte("p"), 8000))
	msgs, err := envelope.DeadLetterMessages(d, envelope.Kafka, 2048)
	if err != nil {
		t.Fatalf("DeadLetterMessages: %v", err)
	}
	var calls [][]string
	record := func(_ context.Context, ms ...broker.Message) error {
		var ids []string
		for _, m := range ms {
			ids = append(ids, m.ID)
		}
		calls = append(calls, ids)
		return nil
	}
	if err := envelope.PublishDeadLetter(context.Background(), record, msgs); err != nil {
		t.Fatalf("PublishDeadLetter: %v", err)
	}
	if len(calls) != 2 || len(calls[0]) != len(msgs)-1 || len(calls[1]) != 1 || calls[1][0] != msgs[len(msgs)-1].ID {
		t.Errorf("Publish calls %v, want the %d parts then the record", calls, len(msgs)-1)
	}

	calls = nil
	one := msgs[len(msgs)-1:]
	if err := envelope.PublishDeadLetter(context.Background(), record, one); err != nil || len(calls) != 1 {
		t.Errorf("PublishDeadLetter(one record) = %v with calls %v, want one call", err, calls)
	}

	errDown := errors.New("down")
	calls = nil
	failing := func(ctx context.Context, ms ...broker.Message) error {
		_ = record(ctx, ms...)
		return errDown
	}
	if err := envelope.PublishDeadLetter(context.Background(), failing, msgs); !errors.Is(err, errDown) || len(calls) != 1 {
		t.Errorf("PublishDeadLetter with parts failing = %v after %d calls, want errDown after 1", err, len(calls))
	}
}

// TestRedrivenMessage: the note decodes as a CloudEvent on both bindings,
// names its schema as the record does, and its data is valid against it.
func TestRedrivenMessage(t *testing.T) {
	d := sampleDeadLetter([]byte(`{"messages":[}`))
	at := time.Date(2024, 4, 23, 8, 0, 0, 0, time.UTC)
	for _, b := range []envelope.Binding{envelope.NATS, envelope.Kafka} {
		t.Run(b.Name, func(t *testing.T) {
			m, err := envelope.RedrivenMessage(d, envelope.Redriven{DeadLetterID: "dl1", IDs: []string{"r1", "r2"}, RedrivenAt: at}, b)
			if err != nil {
				t.Fatalf("RedrivenMessage: %v", err)
			}
			ev, err := envelope.Decode(m, b)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if ev.ID() != "dl1-redriven" || ev.Type() != envelope.DeadLetterRedrivenType ||
				ev.DataSchema() != envelope.DeadLetterRedrivenSchema || !ev.Time().Equal(at) ||
				ev.Extensions()[envelope.ExtDeadLetterID] != "dl1" || m.Subject != envelope.DeadLetterSubject("whapi") {
				t.Errorf("RedrivenMessage = %s on %s", ev, m.Subject)
			}
			if err := schemas.Validate(ev.DataSchema(), ev.Data()); err != nil {
				t.Errorf("note data: %v", err)
			}
			if id, ok := envelope.DeadLetterRedriven(m, b); !ok || id != "dl1" {
				t.Errorf("DeadLetterRedriven = %q, %v; want dl1, true", id, ok)
			}
		})
	}
}
