package envelope

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/provider"
)

// DeadLetterType is the CloudEvent type of every dead-letter record.
const DeadLetterType = "io.wahook.deadletter"

// DeadLetterPartType is the CloudEvent type of one part of a dead letter's
// body, when the body does not fit in the record.
const DeadLetterPartType = "io.wahook.deadletter.part"

// Extensions of a dead letter's parts: the record's id, the part's index
// (from 0) and how many parts there are.
const (
	ExtDeadLetterID = "deadletterid"
	ExtPartIndex    = "partindex"
	ExtPartCount    = "partcount"
)

// OctetStream is the content type of a part's data: raw bytes of the body.
const OctetStream = "application/octet-stream"

// DeadLetterSchema is the dataschema of dead-letter records.
const DeadLetterSchema = SchemaBase + "deadletter.v1.json"

// SchemaBase prefixes every wahook schema URI; the file names are those in schemas/.
const SchemaBase = "https://wahook.dev/schemas/"

// minPartData is the least room for data a part must leave: below it a
// limit is too small to be worth splitting for.
const minPartData = 256

// DeadLetter is the data of a dead-letter record: input that could not be
// turned into events, kept whole so that it can be inspected and replayed.
type DeadLetter struct {
	Reason   string `json:"reason"`
	Provider string `json:"provider"`
	Channel  string `json:"channel,omitempty"`
	// ReceivedAt is when the ingress received the request, or when a
	// consumer gave up on a raw event.
	ReceivedAt time.Time `json:"received_at"`
	Method     string    `json:"method,omitempty"`
	Path       string    `json:"path,omitempty"`
	// Headers are the request's headers worth keeping; secrets never are.
	Headers map[string]string `json:"headers,omitempty"`
	// Body holds the raw bytes when they are valid UTF-8, else BodyBase64;
	// BodyParts instead of either when the body is stored in parts.
	Body       *string    `json:"body,omitempty"`
	BodyBase64 string     `json:"body_base64,omitempty"`
	BodyParts  *BodyParts `json:"body_parts,omitempty"`
	// SourceEventID is the raw event a consumer could not interpret.
	SourceEventID string `json:"source_event_id,omitempty"`
}

// BodyParts describes a body stored in parts: Count parts of PartSize
// bytes (the last one shorter), Size bytes in all, whose SHA-256 is SHA256
// (hex). Part i's id is DeadLetterPartID(record id, PartSize, i).
type BodyParts struct {
	Count    int    `json:"count"`
	Size     int    `json:"size"`
	PartSize int    `json:"part_size"`
	SHA256   string `json:"sha256"`
}

// SetBody stores raw as text or base64, whichever keeps it exact.
func (d *DeadLetter) SetBody(raw []byte) {
	d.BodyParts = nil
	if utf8.Valid(raw) {
		s := string(raw)
		d.Body = &s
		d.BodyBase64 = ""
		return
	}
	d.Body = nil
	d.BodyBase64 = base64.StdEncoding.EncodeToString(raw)
}

// inlineBody returns the raw bytes of Body or BodyBase64.
func (d *DeadLetter) inlineBody() ([]byte, error) {
	switch {
	case d.Body != nil:
		return []byte(*d.Body), nil
	case d.BodyBase64 != "":
		raw, err := base64.StdEncoding.DecodeString(d.BodyBase64)
		if err != nil {
			return nil, fmt.Errorf("body_base64: %w", err)
		}
		return raw, nil
	}
	return nil, nil
}

// DeadLetterSubject is the NATS subject of a provider's dead letters.
func DeadLetterSubject(provider string) string {
	return DeadLetterTopic + "." + Token(provider)
}

// DeadLetterPartID is the id of part i of the record id split in parts of
// partSize bytes. The part size is in it so that parts of one dead letter
// split under two limits (a retry on another server) never share an id.
func DeadLetterPartID(id string, partSize, i int) string {
	return id + "-" + strconv.Itoa(partSize) + "-" + strconv.Itoa(i)
}

// DeadLetterMessage builds the broker message of a dead-letter record with
// its body inline, whatever its size: DeadLetterMessages with no limit.
func DeadLetterMessage(d DeadLetter, b Binding) (broker.Message, error) {
	msgs, err := DeadLetterMessages(d, b, 0)
	if err != nil {
		return broker.Message{}, err
	}
	return msgs[0], nil
}

// DeadLetterMessages builds the broker messages of a dead letter: one
// record when its broker.Size is at most maxBytes (or maxBytes is 0 or
// less: no limit); else the body's parts, each a CloudEvent of type
// DeadLetterPartType whose data is a chunk of the raw body and each of
// broker.Size at most maxBytes, followed by the record, which names them in
// body_parts instead of carrying the body. Publish them with
// PublishDeadLetter, the parts before the record, so that a reader who
// finds the record finds its parts.
//
// The record's id is derived from its content (without the receive time)
// and the parts' ids from it, so the same bad delivery retried by a
// provider is stored once within the duplicate window. It fails, wrapping
// broker.ErrTooLarge, when even the record without its body, or a part
// with little data, would exceed maxBytes.
func DeadLetterMessages(d DeadLetter, b Binding, maxBytes int) ([]broker.Message, error) {
	if d.BodyParts != nil {
		return nil, errors.New("dead letter: body_parts is set; give the body instead")
	}
	id := deadLetterID(&d)
	rec, err := deadLetterRecord(&d, id, b)
	if err != nil {
		return nil, err
	}
	if maxBytes <= 0 || broker.Size(rec) <= maxBytes {
		return []broker.Message{rec}, nil
	}
	raw, err := d.inlineBody()
	if err != nil {
		return nil, fmt.Errorf("dead letter %s: %w", id, err)
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("dead letter %s: record of %d bytes without a body, limit %d: %w", id, broker.Size(rec), maxBytes, broker.ErrTooLarge)
	}
	// What a part leaves for data: its attributes with indexes as long as
	// they can be (a part holds at least one byte).
	n := len(raw)
	probe, err := deadLetterPart(&d, id, b, n, n, n, nil)
	if err != nil {
		return nil, err
	}
	room := maxBytes - broker.Size(probe)
	if room < minPartData {
		return nil, fmt.Errorf("dead letter %s: a limit of %d bytes leaves %d for a part's data, want %d: %w",
			id, maxBytes, room, minPartData, broker.ErrTooLarge)
	}
	partSize := min(room, n)
	count := (len(raw) + partSize - 1) / partSize
	sum := sha256.Sum256(raw)
	r := d
	r.Body, r.BodyBase64 = nil, ""
	r.BodyParts = &BodyParts{Count: count, Size: len(raw), PartSize: partSize, SHA256: hex.EncodeToString(sum[:])}
	rec, err = deadLetterRecord(&r, id, b)
	if err != nil {
		return nil, err
	}
	if size := broker.Size(rec); size > maxBytes {
		return nil, fmt.Errorf("dead letter %s: record without its body of %d bytes, limit %d: %w", id, size, maxBytes, broker.ErrTooLarge)
	}
	msgs := make([]broker.Message, 0, count+1)
	for i := range count {
		chunk := raw[i*partSize : min((i+1)*partSize, len(raw))]
		m, err := deadLetterPart(&d, id, b, partSize, i, count, chunk)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
	}
	return append(msgs, rec), nil
}

// PublishDeadLetter publishes what DeadLetterMessages built: the parts in
// one call, then, once they are stored, the record.
func PublishDeadLetter(ctx context.Context, publish func(context.Context, ...broker.Message) error, msgs []broker.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if parts := msgs[:len(msgs)-1]; len(parts) > 0 {
		if err := publish(ctx, parts...); err != nil {
			return fmt.Errorf("dead letter parts: %w", err)
		}
	}
	return publish(ctx, msgs[len(msgs)-1])
}

func deadLetterID(d *DeadLetter) string {
	var body string
	if d.Body != nil {
		body = *d.Body
	}
	return provider.HashID(d.Provider, d.Channel, d.Reason, d.SourceEventID, d.BodyBase64, body)
}

// deadLetterEvent has the attributes a record and its parts share.
func deadLetterEvent(d *DeadLetter, id, typ string) event.Event {
	ev := event.New(event.CloudEventsVersionV1)
	ev.SetID(id)
	ev.SetType(typ)
	if d.Channel != "" {
		ev.SetSource(Source(d.Provider, d.Channel))
	} else {
		ev.SetSource("/" + url.PathEscape(d.Provider))
	}
	ev.SetTime(d.ReceivedAt)
	ev.SetExtension(ExtProvider, d.Provider)
	if d.Channel != "" {
		ev.SetExtension(ExtChannel, d.Channel)
	}
	// One key for the record and its parts: on Kafka they share a
	// partition, in the order they were published.
	ev.SetExtension(ExtPartitionKey, PartitionKey(d.Provider, d.Channel, ""))
	return ev
}

func deadLetterRecord(d *DeadLetter, id string, b Binding) (broker.Message, error) {
	// No HTML escaping: '<', '>' and '&' would take 6 bytes each.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(d); err != nil {
		return broker.Message{}, fmt.Errorf("dead letter: %w", err)
	}
	ev := deadLetterEvent(d, id, DeadLetterType)
	ev.SetDataSchema(DeadLetterSchema)
	if d.SourceEventID != "" {
		ev.SetExtension(ExtCausationID, d.SourceEventID)
	}
	ev.SetDataContentType(JSON)
	ev.DataEncoded = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	return Encode(ev, DeadLetterTopic, DeadLetterSubject(d.Provider), b)
}

func deadLetterPart(d *DeadLetter, id string, b Binding, partSize, i, count int, chunk []byte) (broker.Message, error) {
	ev := deadLetterEvent(d, DeadLetterPartID(id, partSize, i), DeadLetterPartType)
	ev.SetExtension(ExtDeadLetterID, id)
	ev.SetExtension(ExtPartIndex, i)
	ev.SetExtension(ExtPartCount, count)
	ev.SetDataContentType(OctetStream)
	ev.DataEncoded = chunk
	return Encode(ev, DeadLetterTopic, DeadLetterSubject(d.Provider), b)
}

// DecodeDeadLetter reads a dead-letter record: its id and its data.
func DecodeDeadLetter(m broker.Message, b Binding) (string, DeadLetter, error) {
	ev, err := Decode(m, b)
	if err != nil {
		return "", DeadLetter{}, err
	}
	if ev.Type() != DeadLetterType {
		return "", DeadLetter{}, fmt.Errorf("decode dead letter %s: type %q, want %s", ev.ID(), ev.Type(), DeadLetterType)
	}
	var d DeadLetter
	if err := json.Unmarshal(ev.Data(), &d); err != nil {
		return "", DeadLetter{}, fmt.Errorf("decode dead letter %s: %w", ev.ID(), err)
	}
	return ev.ID(), d, nil
}

// DeadLetterPart tells whether m is a part of a dead letter's body, and
// whose: the record's id.
func DeadLetterPart(m broker.Message, b Binding) (recordID string, ok bool) {
	if b.decode(m.Header.Get(b.attr(AttrType))) != DeadLetterPartType {
		return "", false
	}
	return b.decode(m.Header.Get(b.attr(ExtDeadLetterID))), true
}

// DeadLetterBody returns the raw body of the dead letter d whose record's
// id is id: its body or body_base64, or, when d names body_parts, the data
// of its parts, found among msgs by id (in any order, other messages among
// them) and checked against the count, size and digest.
func DeadLetterBody(id string, d DeadLetter, msgs []broker.Message, b Binding) ([]byte, error) {
	p := d.BodyParts
	if p == nil {
		return d.inlineBody()
	}
	if p.Count < 1 || p.PartSize < 1 || p.Size < 0 || p.Size > p.Count*p.PartSize || p.Size <= (p.Count-1)*p.PartSize {
		return nil, fmt.Errorf("dead letter %s: inconsistent body_parts %+v", id, *p)
	}
	chunks := make([][]byte, p.Count)
	found := 0
	prefix := id + "-" + strconv.Itoa(p.PartSize) + "-"
	for _, m := range msgs {
		pid := b.decode(m.Header.Get(b.attr(AttrID)))
		if !strings.HasPrefix(pid, prefix) {
			continue
		}
		if rid, ok := DeadLetterPart(m, b); !ok || rid != id {
			continue
		}
		i, err := strconv.Atoi(pid[len(prefix):])
		if err != nil || i < 0 || i >= p.Count || pid != DeadLetterPartID(id, p.PartSize, i) {
			continue
		}
		if chunks[i] == nil {
			found++
		}
		chunks[i] = m.Data
	}
	if found < p.Count {
		return nil, fmt.Errorf("dead letter %s: %d of %d parts found", id, found, p.Count)
	}
	raw := make([]byte, 0, p.Size)
	for i, c := range chunks {
		want := p.PartSize
		if i == p.Count-1 {
			want = p.Size - i*p.PartSize
		}
		if len(c) != want {
			return nil, fmt.Errorf("dead letter %s: part %d has %d bytes, want %d", id, i, len(c), want)
		}
		raw = append(raw, c...)
	}
	if sum := sha256.Sum256(raw); hex.EncodeToString(sum[:]) != p.SHA256 {
		return nil, fmt.Errorf("dead letter %s: parts do not match sha256 %s", id, p.SHA256)
	}
	return raw, nil
}

// DeadLetterRedrivenType is the CloudEvent type of the note a redrive
// leaves beside a dead letter once its raw events are published again, so
// that a later redrive passes it over on either broker.
const DeadLetterRedrivenType = "io.wahook.deadletter.redriven"

// DeadLetterRedrivenSchema is the dataschema of redrive notes.
const DeadLetterRedrivenSchema = SchemaBase + "deadletter-redriven.v1.json"

// Redriven is the data of a redrive note: the raw event ids published.
type Redriven struct {
	DeadLetterID string    `json:"deadletter_id"`
	IDs          []string  `json:"ids"`
	RedrivenAt   time.Time `json:"redriven_at"`
}

// DeadLetterRedrivenID is the id of the redrive note of record id: one per
// dead letter, so that two notes of it are stored once on NATS.
func DeadLetterRedrivenID(id string) string { return id + "-redriven" }

// RedrivenMessage builds the redrive note of the dead letter d whose
// record's id is r.DeadLetterID, on the record's subject and key.
func RedrivenMessage(d DeadLetter, r Redriven, b Binding) (broker.Message, error) {
	data, err := json.Marshal(r)
	if err != nil {
		return broker.Message{}, fmt.Errorf("redrive note %s: %w", r.DeadLetterID, err)
	}
	ev := deadLetterEvent(&d, DeadLetterRedrivenID(r.DeadLetterID), DeadLetterRedrivenType)
	ev.SetTime(r.RedrivenAt)
	ev.SetExtension(ExtDeadLetterID, r.DeadLetterID)
	ev.SetDataSchema(DeadLetterRedrivenSchema)
	ev.SetDataContentType(JSON)
	ev.DataEncoded = data
	return Encode(ev, DeadLetterTopic, DeadLetterSubject(d.Provider), b)
}

// DeadLetterRedriven tells whether m is a redrive note, and of which
// record.
func DeadLetterRedriven(m broker.Message, b Binding) (recordID string, ok bool) {
	if b.decode(m.Header.Get(b.attr(AttrType))) != DeadLetterRedrivenType {
		return "", false
	}
	return b.decode(m.Header.Get(b.attr(ExtDeadLetterID))), true
}
