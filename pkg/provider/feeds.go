package provider

import (
	"fmt"
	"slices"
	"strings"
)

// Feeds says which raw kinds of one provider each derived stream reads, by
// stream name (derive.LabelChanged, derive.ChatCreated, ...). A stream reads
// a kind when Interpret can give, for some item of that kind, facts the
// stream derives from; when that depends on the item's content (a message
// is the first of its chat, a notification is a call), it reads the kind.
// Consumers subscribe to the kinds their stream reads and nothing else, so
// a kind left out here is never derived: the provider packages' tests drive
// Interpret over their examples to check that nothing is left out.
//
// An entry is a kind, or a kind prefix followed by ".>" for every kind under
// it ("received.>" is Z-API's received.text, received.image, ...), or ">"
// for every kind: the NATS full wildcard over the kind's subject tokens.
type Feeds map[string][]string

// Feeder is implemented by providers that declare their Feeds. A provider
// that does not is read whole by every stream.
type Feeder interface {
	Feeds() Feeds
}

// AnyKind is the entry of Feeds that reads every kind.
const AnyKind = ">"

// Reads reports whether stream reads kind.
func (f Feeds) Reads(stream, kind string) bool {
	for _, e := range f[stream] {
		if matchKind(e, kind) {
			return true
		}
	}
	return false
}

// Kinds returns the entries of stream, with those another entry covers left
// out (JetStream refuses filters that overlap), sorted.
func (f Feeds) Kinds(stream string) []string {
	var out []string
	for _, e := range f[stream] {
		if !slices.ContainsFunc(f[stream], func(o string) bool { return covers(o, e) }) {
			out = append(out, e)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// covers reports whether entry o covers every kind entry e does, and is
// another entry.
func covers(o, e string) bool {
	if o == e {
		return false
	}
	if o == AnyKind {
		return true
	}
	prefix, ok := strings.CutSuffix(o, ">")
	return ok && strings.HasPrefix(strings.TrimSuffix(e, ">"), prefix)
}

// matchKind reports whether entry covers kind.
func matchKind(entry, kind string) bool {
	if entry == AnyKind {
		return true
	}
	if prefix, ok := strings.CutSuffix(entry, ">"); ok {
		return strings.HasPrefix(kind, prefix) && len(kind) > len(prefix)
	}
	return entry == kind
}

// FeedsOf returns p's Feeds, and false when p declares none.
func FeedsOf(p Provider) (Feeds, bool) {
	if f, ok := p.(Feeder); ok {
		return f.Feeds(), true
	}
	return nil, false
}

// Check reports an entry that is neither a kind ValidKind accepts, nor such
// a kind followed by ".>", nor ">".
func (f Feeds) Check() error {
	for stream, entries := range f {
		for _, e := range entries {
			if e == AnyKind {
				continue
			}
			if k, _ := strings.CutSuffix(e, ".>"); !ValidKind(k) {
				return fmt.Errorf("provider feeds: stream %s: entry %q is not a kind, a kind followed by \".>\", nor \">\"", stream, e)
			}
		}
	}
	return nil
}
