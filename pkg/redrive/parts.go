package redrive

import (
	"github.com/wahook/wahook/pkg/broker"
	"github.com/wahook/wahook/pkg/envelope"
)

// MaxHeldParts bounds the bytes of dead-letter parts a Parts holds until
// their record comes; the oldest go first.
const MaxHeldParts = 64 << 20

// Parts holds the parts of dead letters read in stored order until their
// record comes (it follows them), up to MaxHeldParts bytes. The zero value
// is ready to use.
type Parts struct {
	msgs []broker.Message
	held int
}

// Hold keeps m, a part.
func (p *Parts) Hold(m broker.Message) {
	p.msgs = append(p.msgs, m)
	p.held += len(m.Data)
	for p.held > MaxHeldParts {
		p.held -= len(p.msgs[0].Data)
		p.msgs = p.msgs[1:]
	}
}

// Body reassembles the body of record id from the parts held, and lets
// them go when it could.
func (p *Parts) Body(id string, d envelope.DeadLetter, b envelope.Binding) ([]byte, error) {
	raw, err := envelope.DeadLetterBody(id, d, p.msgs, b)
	if err != nil {
		return nil, err
	}
	kept := p.msgs[:0]
	p.held = 0
	for _, pm := range p.msgs {
		if rid, _ := envelope.DeadLetterPart(pm, b); rid != id {
			kept = append(kept, pm)
			p.held += len(pm.Data)
		}
	}
	p.msgs = kept
	return raw, nil
}
