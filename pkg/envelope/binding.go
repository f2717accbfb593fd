// Package envelope maps wahook's events onto broker messages as CloudEvents
// in binary content mode: the attributes travel as headers, the data is the
// message body unchanged. It is the one place that knows the CloudEvents
// bindings, the subject and topic names and the id rules of the contract.
package envelope

import (
	"strings"

	"github.com/wahook/wahook/pkg/broker"
)

// Binding is a CloudEvents protocol binding's binary-mode header convention.
type Binding struct {
	// Name is "nats" or "kafka".
	Name string
	// Prefix is put before attribute names: "ce-" (NATS), "ce_" (Kafka).
	Prefix string
	// ContentType is the header carrying datacontenttype.
	ContentType string
	// PercentEncode escapes header values as the HTTP and NATS bindings
	// require (space, '"', '%' and anything outside printable ASCII).
	PercentEncode bool
	// IDHeader, when set, also carries the event id for the broker's own
	// de-duplication (Nats-Msg-Id). Writing it here spares the broker a
	// copy of every message's headers.
	IDHeader string
}

// The bindings wahook writes and reads.
var (
	NATS  = Binding{Name: "nats", Prefix: "ce-", ContentType: "content-type", PercentEncode: true, IDHeader: "Nats-Msg-Id"}
	Kafka = Binding{Name: "kafka", Prefix: "ce_", ContentType: "content-type"}
)

// attrIndex numbers the attributes whose header names are built once per
// binding: every raw and derived event carries about ten of them.
type attrIndex int

const (
	iSpecVersion attrIndex = iota
	iID
	iSource
	iType
	iSubject
	iTime
	iDataSchema
	iDataContentType
	iProvider
	iChannel
	iPartitionKey
	iCausationID
	iTraceParent
	iTraceState
	iTimeSource
	iRequestID
	nAttrs
)

var attrNames = [nAttrs]string{
	iSpecVersion: AttrSpecVersion, iID: AttrID, iSource: AttrSource, iType: AttrType, iSubject: AttrSubject,
	iTime: AttrTime, iDataSchema: AttrDataSchema, iDataContentType: AttrDataContentType,
	iProvider: ExtProvider, iChannel: ExtChannel, iPartitionKey: ExtPartitionKey, iCausationID: ExtCausationID,
	iTraceParent: ExtTraceParent, iTraceState: ExtTraceState, iTimeSource: ExtTimeSource, iRequestID: ExtRequestID,
}

// headerNames are the attributes' header names under one prefix.
type headerNames [nAttrs]string

func namesWith(prefix string) *headerNames {
	var n headerNames
	for i, a := range attrNames {
		n[i] = prefix + a
	}
	return &n
}

// headerSets are the header names of the two bindings, built once.
var headerSets = func() map[string]*headerNames {
	m := map[string]*headerNames{}
	for _, p := range []string{NATS.Prefix, Kafka.Prefix} {
		m[p] = namesWith(p)
	}
	return m
}()

// names are b's header names: one look-up for all of an event's headers.
func (b Binding) names() *headerNames {
	if n, ok := headerSets[b.Prefix]; ok {
		return n
	}
	return namesWith(b.Prefix)
}

// prefixed are the same names by attribute name, for attr.
var prefixed = func() map[string]map[string]string {
	m := map[string]map[string]string{}
	for p, n := range headerSets {
		m[p] = make(map[string]string, nAttrs)
		for i, a := range attrNames {
			m[p][a] = n[i]
		}
	}
	return m
}()

// attr is the header name of attribute name.
func (b Binding) attr(name string) string {
	if s, ok := prefixed[b.Prefix][name]; ok {
		return s
	}
	return b.Prefix + name
}

func (b Binding) encode(v string) string {
	if !b.PercentEncode {
		return v
	}
	return broker.EscapeHeader(v)
}

func (b Binding) decode(v string) string {
	if !b.PercentEncode {
		return v
	}
	return broker.UnescapeHeader(v)
}

// Token makes s one NATS subject token, injectively: ASCII letters, digits,
// '-' and '_' stay as they are, and every other byte, '~' included, is
// written as '~' and two upper-case hex digits ("instance.id" becomes
// "instance~2Eid"). Two strings never share a token, so a subscriber
// filtering on one channel's token sees that channel's events only, and
// ordinary channel ids keep their own text as their token. "" is "~".
func Token(s string) string {
	if s == "" {
		return "~"
	}
	escapes := 0
	for i := 0; i < len(s); i++ {
		if !plainToken[s[i]] {
			escapes++
		}
	}
	if escapes == 0 {
		return s
	}
	return string(appendToken(make([]byte, 0, len(s)+2*escapes), s))
}

// appendToken appends Token(s) to b.
func appendToken(b []byte, s string) []byte {
	if s == "" {
		return append(b, '~')
	}
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		if c := s[i]; plainToken[c] {
			b = append(b, c)
		} else {
			b = append(b, '~', hex[c>>4], hex[c&0xf])
		}
	}
	return b
}

// plainToken are the bytes Token keeps as they are.
var plainToken = func() (t [256]bool) {
	for c := 0; c < 256; c++ {
		t[c] = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
	}
	return t
}()

// appendKindTokens appends a kind such as "chats.patch" as subject tokens,
// keeping its dots as separators.
func appendKindTokens(b []byte, kind string) []byte {
	if kind == "" {
		return append(b, '_')
	}
	for {
		part, rest, more := strings.Cut(kind, ".")
		b = appendToken(b, part)
		if !more {
			return b
		}
		b, kind = append(b, '.'), rest
	}
}
