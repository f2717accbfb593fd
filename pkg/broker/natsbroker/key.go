package natsbroker

import (
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// Headers that carry a message's key and id on NATS, where a message has
// neither: the CloudEvents NATS binding's partitionkey extension and id
// attribute, as package envelope writes them (percent-encoded).
const (
	KeyHeader = "ce-partitionkey"
	IDHeader  = "ce-id"
)

// keyOf is a received message's ordering key: its KeyHeader decoded, else
// its subject (one subject's messages then keep their order).
func keyOf(h map[string][]string, subject string) string {
	if v := h[KeyHeader]; len(v) > 0 && v[0] != "" {
		return unescapeHeader(v[0])
	}
	return subject
}

// idOf is a received message's de-duplication id: Nats-Msg-Id, else the
// CloudEvent id.
func idOf(h map[string][]string) string {
	if v := h[jetstream.MsgIDHeader]; len(v) > 0 && v[0] != "" {
		return v[0]
	}
	if v := h[IDHeader]; len(v) > 0 {
		return unescapeHeader(v[0])
	}
	return ""
}

// escapeHeader percent-encodes what the NATS binding forbids in a header
// value (space and controls, '"', '%', non-ASCII), as package envelope does.
func escapeHeader(v string) string {
	i := 0
	for i < len(v) && !needsEscape(v[i]) {
		i++
	}
	if i == len(v) {
		return v
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(v) + 8)
	b.WriteString(v[:i])
	for ; i < len(v); i++ {
		c := v[i]
		if needsEscape(c) {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func needsEscape(c byte) bool { return c <= ' ' || c >= 0x7f || c == '"' || c == '%' }

// unescapeHeader reverses escapeHeader; a '%' not followed by two hex digits
// is kept as is.
func unescapeHeader(v string) string {
	if !strings.Contains(v, "%") {
		return v
	}
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		if v[i] == '%' && i+2 < len(v) {
			hi, ok1 := unhex(v[i+1])
			lo, ok2 := unhex(v[i+2])
			if ok1 && ok2 {
				out = append(out, hi<<4|lo)
				i += 2
				continue
			}
		}
		out = append(out, v[i])
	}
	return string(out)
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
