package natsbroker

import (
	"fmt"
	"math"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/wahook/wahook/pkg/broker"
)

// What nats-server refuses by closing the connection, and JetStream by
// refusing to store. Publish checks a message against them before it sends
// anything: a line the server cannot parse is answered with -ERR and the
// connection closed, which nats.go treats as fatal, so one bad field would
// stop every publisher and subscriber of the process.
const (
	// maxControlLine is nats-server's max_control_line (4096 unless its
	// configuration says otherwise). The INFO does not announce it, so the
	// default is assumed: a server configured lower is not supported.
	maxControlLine = 4096
	// maxHeaderBytes is the largest header block JetStream stores.
	maxHeaderBytes = math.MaxUint16
	// hdrFraming is the header block's fixed part: "NATS/1.0\r\n" and the
	// final "\r\n".
	hdrFraming = len("NATS/1.0\r\n") + len("\r\n")
	// asyncReplyTokens is what jetstream.PublishMsgAsync appends to the
	// inbox prefix for the reply subject: "{6 chars}.{6 chars}".
	asyncReplyTokens = 6 + 1 + 6
)

// asyncReplyLen is the length of the reply subject nats.go's async
// publisher writes on every HPUB line of this connection.
func asyncReplyLen(nc *nats.Conn) int {
	if p := nc.Opts.InboxPrefix; p != "" {
		return len(p) + 1 + asyncReplyTokens
	}
	return len(nats.InboxPrefix) + asyncReplyTokens
}

// limits are what one Publish call checks its messages against.
type limits struct {
	// maxPayload is the server's max_payload as last known; nc, when set,
	// tells the current one for a message over it.
	maxPayload int
	nc         *nats.Conn
	replyLen   int
}

// check refuses m, with an error wrapping broker.ErrRejected, when the
// server would refuse it or it could break the protocol: an invalid
// subject, a header that is not sent as given, a control line or header
// block over the server's limits, headers and data over max_payload (also
// broker.ErrTooLarge). needID tells that Publish adds Nats-Msg-Id; a
// missing KeyHeader is added as well. It does not allocate unless m is
// refused.
func (l limits) check(m *broker.Message, needID bool) error {
	if err := checkSubject(m.Subject); err != nil {
		return broker.Rejected(err)
	}
	hdr := 0
	if len(m.Header) > 0 || needID || m.Key != "" {
		hdr = hdrFraming
	}
	for k, vs := range m.Header {
		if !broker.ValidHeaderKey(k) {
			return broker.Rejected(fmt.Errorf("header name %q: want printable ASCII without separators", clip(k)))
		}
		for _, v := range vs {
			if err := checkHeaderValue(v); err != nil {
				return broker.Rejected(fmt.Errorf("header %s: %w", k, err))
			}
			hdr += len(k) + len(": ") + len(v) + len("\r\n")
		}
	}
	if needID {
		if err := checkHeaderValue(m.ID); err != nil {
			return broker.Rejected(fmt.Errorf("id: %w", err))
		}
		hdr += len(jetstream.MsgIDHeader) + len(": ") + len(m.ID) + len("\r\n")
	}
	if m.Key != "" && len(m.Header[KeyHeader]) == 0 {
		hdr += len(KeyHeader) + len(": ") + escapedLen(m.Key) + len("\r\n")
	}
	if hdr > maxHeaderBytes {
		return broker.Rejected(fmt.Errorf("header block of %d bytes, JetStream stores at most %d", hdr, maxHeaderBytes))
	}
	total := hdr + len(m.Data)
	if total > l.maxPayload && l.nc != nil {
		l.maxPayload = int(l.nc.MaxPayload())
	}
	if total > l.maxPayload {
		return broker.TooLarge(total, l.maxPayload)
	}
	if n := controlLineLen(len(m.Subject), l.replyLen, hdr, total); n > maxControlLine {
		return broker.Rejected(fmt.Errorf("subject of %d bytes: control line of %d bytes, the server takes at most %d",
			len(m.Subject), n, maxControlLine))
	}
	return nil
}

// controlLineLen is the length nats-server measures of a publish line,
// "HPUB <subject> <reply> <hdr_len> <total_len>" (PUB without headers),
// from the first argument to the last.
func controlLineLen(subject, reply, hdr, total int) int {
	n := subject + 1 + reply + 1 + digits(total)
	if hdr > 0 {
		n += digits(hdr) + 1
	}
	return n
}

func digits(n int) int {
	d := 1
	for n >= 10 {
		n /= 10
		d++
	}
	return d
}

// checkSubject accepts a literal subject: tokens separated by '.', none
// empty or a wildcard ("*", ">"), no white space or control bytes.
func checkSubject(s string) error {
	if s == "" {
		return fmt.Errorf("empty subject")
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] != '.' {
			if c := s[i]; c <= ' ' || c == 0x7f {
				return fmt.Errorf("subject %q: white space or control byte at %d", clip(s), i)
			}
			continue
		}
		switch tok := s[start:i]; {
		case tok == "":
			return fmt.Errorf("subject %q: empty token at %d", clip(s), i)
		case tok == "*" || tok == ">":
			return fmt.Errorf("subject %q: wildcard %q in a publish subject", clip(s), tok)
		}
		start = i + 1
	}
	return nil
}

// checkHeaderValue refuses what nats.go would change silently (CR and LF
// become spaces, leading and trailing white space is trimmed) and other
// control bytes, so that a header is stored exactly as given or not at all.
// Tabs inside a value and bytes above 0x7f pass.
func checkHeaderValue(v string) error {
	if v == "" {
		return nil
	}
	if c := v[0]; c == ' ' || c == '\t' {
		return fmt.Errorf("value %q starts with white space", clip(v))
	}
	if c := v[len(v)-1]; c == ' ' || c == '\t' {
		return fmt.Errorf("value %q ends with white space", clip(v))
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return fmt.Errorf("value %q: control byte 0x%02x at %d", clip(v), c, i)
		}
	}
	return nil
}

// escapedLen is len(broker.EscapeHeader(s)) without building it.
func escapedLen(s string) int {
	n := len(s)
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '%' {
			n += 2
		}
	}
	return n
}

// clip shortens what an error message quotes.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return s[:max] + "..."
}
