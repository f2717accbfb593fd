package main

import (
	"bytes"
	"encoding/json"

	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/envelope"
	"github.com/wahook/wahook/pkg/eventlog"
	"github.com/wahook/wahook/pkg/redrive"
)

// line is one printed event: the subject (NATS) or topic (Kafka) it came
// on and the CloudEvent. A part of a dead letter's body is printed without
// its data, as Part; a dead-letter record whose body is in parts gets the
// body reassembled from the parts printed before it, in Body or
// BodyBase64.
type line struct {
	Subject    string          `json:"subject"`
	Event      json.RawMessage `json:"event,omitempty"`
	Part       *partLine       `json:"part,omitempty"`
	Body       *string         `json:"body,omitempty"`
	BodyBase64 string          `json:"body_base64,omitempty"`
	Error      string          `json:"error,omitempty"`
	Data       string          `json:"data,omitempty"`
}

type partLine struct {
	DeadLetterID string `json:"deadletter_id"`
	Bytes        int    `json:"bytes"`
}

// printer prints events and holds the parts of dead letters until their
// record comes.
type printer struct {
	enc *json.Encoder
	// data prints only the events' data.
	data bool
	// match selects the events printed by type and chat; nil: all.
	match func(typ string, chats ...string) bool
	parts redrive.Parts
}

// print prints r when it is selected, and tells whether it did.
func (p *printer) print(r eventlog.Record) (bool, error) {
	m, b := r.Message()
	l := line{Subject: r.Subject}
	ev := r.Event
	isPart := ev.Type() == envelope.DeadLetterPartType
	if isPart {
		// Held whatever the filter: the record they belong to may be selected.
		p.parts.Hold(m)
	}
	if p.match != nil && !p.match(ev.Type(), ev.Subject(), dataChatID(ev.Data())) {
		return false, nil
	}
	switch {
	case isPart:
		id, _ := envelope.DeadLetterPart(m, b)
		l.Part = &partLine{DeadLetterID: id, Bytes: len(m.Data)}
		ev.DataEncoded = nil
	case ev.Type() == envelope.DeadLetterType:
		p.reassemble(&l, m, b)
	}
	if p.data {
		return true, p.printData(l, ev.Data())
	}
	var err error
	if l.Event, err = json.Marshal(ev); err != nil {
		l.Error, l.Data = err.Error(), string(m.Data)
	}
	return true, p.enc.Encode(l)
}

// printData prints an event's data as one JSON value: the data itself when
// it is JSON (a dead letter's with its body reassembled), else a string.
func (p *printer) printData(l line, data []byte) error {
	if l.Body != nil || l.BodyBase64 != "" {
		var rec map[string]any
		if json.Unmarshal(data, &rec) == nil {
			delete(rec, "body_parts")
			if l.Body != nil {
				rec["body"] = *l.Body
			} else {
				rec["body_base64"] = l.BodyBase64
			}
			return p.enc.Encode(rec)
		}
	}
	if json.Valid(data) {
		var buf bytes.Buffer
		if err := json.Compact(&buf, data); err == nil {
			return p.enc.Encode(json.RawMessage(buf.Bytes()))
		}
	}
	return p.enc.Encode(string(data))
}

// dataChatID is the chat_id of a derived event's data.
func dataChatID(data []byte) string {
	if len(data) == 0 || data[0] != '{' {
		return ""
	}
	var d struct {
		ChatID string `json:"chat_id"`
	}
	if json.Unmarshal(data, &d) != nil {
		return ""
	}
	return d.ChatID
}

// reassemble puts the body of a record whose body is in parts into l, and
// lets the parts go.
func (p *printer) reassemble(l *line, m broker.Message, b envelope.Binding) {
	id, d, err := envelope.DecodeDeadLetter(m, b)
	if err != nil || d.BodyParts == nil {
		return
	}
	raw, err := p.parts.Body(id, d, b)
	if err != nil {
		l.Error = "body in parts: " + err.Error()
		return
	}
	d.SetBody(raw)
	l.Body, l.BodyBase64 = d.Body, d.BodyBase64
}
