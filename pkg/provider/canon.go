package provider

import (
	"bytes"
	"encoding/binary"
	"io"
	"slices"
	"strconv"
	"sync"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// The canonical form of a JSON value is what encoding/json writes for it
// after decoding it into an any with UseNumber: object members sorted by
// their decoded names (the last of equal names wins), numbers as written,
// strings re-escaped as json.Marshal escapes them. Event ids stored by
// earlier versions were derived from exactly these bytes, so the writer
// below follows encoding/json byte for byte, errors included: only the
// first value is read, as a json.Decoder reads it, and the rest is ignored.

// maxNesting is encoding/json's limit on nested objects and arrays.
const maxNesting = 10000

// canon writes the canonical form of one JSON value. It is pooled: its
// buffers are the only memory ContentKey needs once they have grown.
type canon struct {
	in    []byte
	out   []byte   // the canonical form so far
	keys  []byte   // member names that differ from their text, decoded
	str   []byte   // a string value that needs escaping, decoded
	tmp   []byte   // an object's members while they are reordered
	mems  []member // members of the objects being read, innermost last
	depth int
	// order sorts the members of an object small enough for an
	// insertion sort.
	order [24]sortKey
}

// member is one object member: its decoded name, in the input or in keys,
// and its canonical `"name":value` in out. The name's first 8 bytes, big
// endian, decide most comparisons without looking at the name.
type member struct {
	prefix        uint64
	name, nameEnd int
	inKeys        bool
	start, end    int
}

var canonPool = sync.Pool{New: func() any { return new(canon) }}

// maxPooled and maxPooledMembers bound the buffers kept for reuse, so that
// one huge item does not stay in memory for good.
const (
	maxPooled        = 256 << 10
	maxPooledMembers = 4 << 10
)

// canonicalize returns the canonical form of the first JSON value in data,
// valid until c is used again.
func (c *canon) canonicalize(data []byte) ([]byte, error) {
	c.in, c.out, c.keys, c.mems, c.depth = data, c.out[:0], c.keys[:0], c.mems[:0], 0
	i := skipSpace(data, 0)
	if i == len(data) {
		return nil, io.EOF // a json.Decoder's answer to nothing but white space
	}
	if _, err := c.value(i); err != nil {
		return nil, err
	}
	return c.out, nil
}

func (c *canon) release() {
	c.in = nil
	if cap(c.out) > maxPooled || cap(c.keys) > maxPooled || cap(c.str) > maxPooled ||
		cap(c.tmp) > maxPooled || cap(c.mems) > maxPooledMembers {
		return
	}
	canonPool.Put(c)
}

func skipSpace(in []byte, i int) int {
	for i < len(in) && isSpace(in[i]) {
		i++
	}
	return i
}

func isSpace(b byte) bool { return b == ' ' || b == '\n' || b == '\t' || b == '\r' }

// value writes the value at or after i, returning the index after it.
func (c *canon) value(i int) (int, error) {
	in := c.in
	i = skipSpace(in, i)
	if i == len(in) {
		return i, io.ErrUnexpectedEOF
	}
	switch b := in[i]; {
	case b == '"':
		return c.string(i)
	case b == '{':
		return c.object(i)
	case b == '[':
		return c.array(i)
	case b == '-' || '0' <= b && b <= '9':
		return c.number(i)
	case b == 't':
		return c.literal(i, "true")
	case b == 'f':
		return c.literal(i, "false")
	case b == 'n':
		return c.literal(i, "null")
	default:
		return i, syntaxError(b, "looking for beginning of value")
	}
}

func (c *canon) object(i int) (int, error) {
	if c.depth++; c.depth > maxNesting {
		return i, syntaxError('{', "exceeded max depth")
	}
	in := c.in
	start, base, keysBase := len(c.out), len(c.mems), len(c.keys)
	c.out = append(c.out, '{')
	if i = skipSpace(in, i+1); i == len(in) {
		return i, io.ErrUnexpectedEOF
	}
	sorted := true
	if in[i] != '}' {
		for {
			if in[i] != '"' {
				return i, syntaxError(in[i], "looking for beginning of object key string")
			}
			m := member{start: len(c.out)}
			var err error
			if i, err = c.name(i, &m); err != nil {
				return i, err
			}
			if i = skipSpace(in, i); i == len(in) {
				return i, io.ErrUnexpectedEOF
			}
			if in[i] != ':' {
				return i, syntaxError(in[i], "after object key")
			}
			c.out = append(c.out, ':')
			if i, err = c.value(i + 1); err != nil {
				return i, err
			}
			m.end = len(c.out)
			m.prefix = c.prefixOf(m)
			// Providers rarely sort their members: the check is cheap and
			// spares the copy when they do, or when there is one member.
			if sorted && len(c.mems) > base && c.compare(c.mems[len(c.mems)-1], m) >= 0 {
				sorted = false
			}
			c.mems = append(c.mems, m)
			if i = skipSpace(in, i); i == len(in) {
				return i, io.ErrUnexpectedEOF
			}
			if in[i] == '}' {
				break
			}
			if in[i] != ',' {
				return i, syntaxError(in[i], "after object key:value pair")
			}
			c.out = append(c.out, ',')
			if i = skipSpace(in, i+1); i == len(in) {
				return i, io.ErrUnexpectedEOF
			}
		}
	}
	if !sorted {
		c.reorder(start+1, c.mems[base:])
	}
	c.out = append(c.out, '}')
	c.mems, c.keys = c.mems[:base], c.keys[:keysBase]
	c.depth--
	return i + 1, nil
}

// reorder rewrites the members written from out[from:] sorted by name,
// keeping the last of equal names as a map does.
func (c *canon) reorder(from int, ms []member) {
	if len(ms) > len(c.order) {
		slices.SortStableFunc(ms, c.compare)
		c.emit(from, ms)
		return
	}
	// Insertion sort, stable, for the objects providers send: of indices
	// and name prefixes, which decide almost every comparison, rather
	// than of whole members. Equal names meet while sorting, so the pass
	// that drops all but the last of them runs only when they do.
	ord := c.order[:len(ms)]
	dup := false
	for i := range ms {
		k, j := sortKey{ms[i].prefix, i}, i
		for ; j > 0; j-- {
			p := ord[j-1]
			if k.prefix > p.prefix {
				break
			}
			if k.prefix == p.prefix {
				d := bytes.Compare(c.nameOf(ms[k.i]), c.nameOf(ms[p.i]))
				if d > 0 {
					break
				}
				if d == 0 {
					dup = true
					break
				}
			}
			ord[j] = p
		}
		ord[j] = k
	}
	c.tmp = append(c.tmp[:0], c.out[from:]...)
	c.out = c.out[:from]
	for j, k := range ord {
		if dup && j+1 < len(ord) && c.compare(ms[k.i], ms[ord[j+1].i]) == 0 {
			continue
		}
		if len(c.out) > from {
			c.out = append(c.out, ',')
		}
		m := ms[k.i]
		c.out = append(c.out, c.tmp[m.start-from:m.end-from]...)
	}
}

// emit rewrites the members written from out[from:] in the order of ms,
// sorted, dropping all but the last of equal names.
func (c *canon) emit(from int, ms []member) {
	c.tmp = append(c.tmp[:0], c.out[from:]...)
	c.out = c.out[:from]
	for j, m := range ms {
		if j+1 < len(ms) && c.compare(m, ms[j+1]) == 0 {
			continue
		}
		if len(c.out) > from {
			c.out = append(c.out, ',')
		}
		c.out = append(c.out, c.tmp[m.start-from:m.end-from]...)
	}
}

// sortKey is a member being sorted: its name's prefix and its index.
type sortKey struct {
	prefix uint64
	i      int
}

// compare orders members by name, byte by byte, as strings.Compare does.
func (c *canon) compare(a, b member) int {
	if a.prefix != b.prefix {
		if a.prefix < b.prefix {
			return -1
		}
		return 1
	}
	return bytes.Compare(c.nameOf(a), c.nameOf(b))
}

// namePrefix is the first 8 bytes of name, big endian, zero-padded: when two
// prefixes differ they order the names as the names themselves do.
func namePrefix(name []byte) uint64 {
	if len(name) >= 8 {
		return binary.BigEndian.Uint64(name)
	}
	var p uint64
	for k := range 8 {
		p <<= 8
		if k < len(name) {
			p |= uint64(name[k])
		}
	}
	return p
}

// prefixOf is namePrefix(c.nameOf(m)), read in one load where the name's
// buffer holds 8 bytes from its start.
func (c *canon) prefixOf(m member) uint64 {
	buf := c.in
	if m.inKeys {
		buf = c.keys
	}
	if m.name+8 > len(buf) {
		return namePrefix(buf[m.name:m.nameEnd])
	}
	p := binary.BigEndian.Uint64(buf[m.name:])
	if n := m.nameEnd - m.name; n < 8 {
		p &= ^uint64(0) << (8 * (8 - n)) // a shift of 64 leaves 0
	}
	return p
}

func (c *canon) nameOf(m member) []byte {
	if m.inKeys {
		return c.keys[m.name:m.nameEnd]
	}
	return c.in[m.name:m.nameEnd]
}

// name writes the member name whose quote is at i and records it in m.
func (c *canon) name(i int, m *member) (int, error) {
	j, plain := plainEnd(c.in, i+1)
	if plain {
		m.name, m.nameEnd = i+1, j
		c.out = append(c.out, c.in[i:j+1]...)
		return j + 1, nil
	}
	from := len(c.keys)
	c.keys = append(c.keys, c.in[i+1:j]...)
	var err error
	if c.keys, j, err = unquote(c.keys, c.in, j); err != nil {
		return j, err
	}
	m.name, m.nameEnd, m.inKeys = from, len(c.keys), true
	c.out = append(c.out, '"')
	c.out = appendEscaped(c.out, c.keys[from:])
	c.out = append(c.out, '"')
	return j, nil
}

// string writes the string value whose quote is at i.
func (c *canon) string(i int) (int, error) {
	in, from := c.in, i
	j, plain := plainEnd(in, i+1)
	// <, > and & (in URLs, mostly) stand for themselves when decoded: escape
	// them and go on scanning.
	for !plain && j < len(in) && (in[j] == '<' || in[j] == '>' || in[j] == '&') {
		c.out = append(c.out, in[from:j]...)
		c.out = append(c.out, '\\', 'u', '0', '0', hexDigits[in[j]>>4], hexDigits[in[j]&0xF])
		from = j + 1
		j, plain = plainEnd(in, from)
	}
	if plain {
		c.out = append(c.out, in[from:j+1]...)
		return j + 1, nil
	}
	c.out = append(c.out, in[from:j]...)
	var err error
	if c.str, j, err = unquote(c.str[:0], c.in, j); err != nil {
		return j, err
	}
	c.out = appendEscaped(c.out, c.str)
	c.out = append(c.out, '"')
	return j, nil
}

func (c *canon) array(i int) (int, error) {
	if c.depth++; c.depth > maxNesting {
		return i, syntaxError('[', "exceeded max depth")
	}
	in := c.in
	c.out = append(c.out, '[')
	if i = skipSpace(in, i+1); i == len(in) {
		return i, io.ErrUnexpectedEOF
	}
	if in[i] != ']' {
		for {
			var err error
			if i, err = c.value(i); err != nil {
				return i, err
			}
			if i = skipSpace(in, i); i == len(in) {
				return i, io.ErrUnexpectedEOF
			}
			if in[i] == ']' {
				break
			}
			if in[i] != ',' {
				return i, syntaxError(in[i], "after array element")
			}
			c.out = append(c.out, ',')
			i++
		}
	}
	c.out = append(c.out, ']')
	c.depth--
	return i + 1, nil
}

// number writes the number at i as written (UseNumber keeps the literal).
// It ends at the first byte that cannot continue it, as encoding/json's
// scanner ends it: `01` at the top is the number 0 followed by ignored text.
func (c *canon) number(i int) (int, error) {
	in, start := c.in, i
	if in[i] == '-' {
		if i++; i == len(in) {
			return i, io.ErrUnexpectedEOF
		}
		if !isDigit(in[i]) {
			return i, syntaxError(in[i], "in numeric literal")
		}
	}
	if in[i] == '0' {
		i++
	} else {
		i = digits(in, i)
	}
	if i < len(in) && in[i] == '.' {
		if i++; i == len(in) {
			return i, io.ErrUnexpectedEOF
		}
		if !isDigit(in[i]) {
			return i, syntaxError(in[i], "after decimal point in numeric literal")
		}
		i = digits(in, i)
	}
	if i < len(in) && (in[i] == 'e' || in[i] == 'E') {
		if i++; i < len(in) && (in[i] == '+' || in[i] == '-') {
			i++
		}
		if i == len(in) {
			return i, io.ErrUnexpectedEOF
		}
		if !isDigit(in[i]) {
			return i, syntaxError(in[i], "in exponent of numeric literal")
		}
		i = digits(in, i)
	}
	c.out = append(c.out, in[start:i]...)
	return i, nil
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

func digits(in []byte, i int) int {
	for i < len(in) && isDigit(in[i]) {
		i++
	}
	return i
}

// literal writes true, false or null, whose first letter is at i.
func (c *canon) literal(i int, lit string) (int, error) {
	for k := 1; k < len(lit); k++ {
		if i+k == len(c.in) {
			return i + k, io.ErrUnexpectedEOF
		}
		if b := c.in[i+k]; b != lit[k] {
			return i + k, syntaxError(b, "in literal "+lit+" (expecting "+quoteChar(lit[k])+")")
		}
	}
	c.out = append(c.out, lit...)
	return i + len(lit), nil
}

// verbatim marks the ASCII bytes that stand for themselves both in a JSON
// string and in its canonical form.
var verbatim = func() (t [utf8.RuneSelf]bool) {
	for b := ' '; b < utf8.RuneSelf; b++ {
		t[b] = b != '"' && b != '\\' && b != '<' && b != '>' && b != '&'
	}
	return t
}()

// plainEnd looks for the end of the string whose text starts at i. It
// reports the index of the closing quote and true when the text is its own
// canonical form (no escapes, nothing json.Marshal escapes, valid UTF-8),
// else the index up to which it is.
func plainEnd(in []byte, i int) (int, bool) {
	for i < len(in) {
		b := in[i]
		if b < utf8.RuneSelf {
			if verbatim[b] {
				i++
				continue
			}
			return i, b == '"'
		}
		r, n := utf8.DecodeRune(in[i:])
		if r == utf8.RuneError && n == 1 || r == '\u2028' || r == '\u2029' {
			return i, false
		}
		i += n
	}
	return i, false
}

// unquote appends the decoded text of the string from in[i:] to dst and
// returns the index after its closing quote. It decodes as encoding/json
// does: invalid UTF-8 and unpaired surrogates become U+FFFD.
func unquote(dst, in []byte, i int) ([]byte, int, error) {
	for i < len(in) {
		switch b := in[i]; {
		case b == '"':
			return dst, i + 1, nil
		case b == '\\':
			if i++; i == len(in) {
				return dst, i, io.ErrUnexpectedEOF
			}
			switch e := in[i]; e {
			case '"', '\\', '/':
				dst = append(dst, e)
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r, err := hex4(in, i+1)
				if err != nil {
					return dst, i, err
				}
				i += 4
				if utf16.IsSurrogate(r) {
					// A pair only if the next escape completes it; else
					// U+FFFD, and the next escape is read on its own.
					if r2 := getu4(in[i+1:]); r2 >= 0 {
						if d := utf16.DecodeRune(r, r2); d != unicode.ReplacementChar {
							dst = utf8.AppendRune(dst, d)
							i += 7
							continue
						}
					}
					r = unicode.ReplacementChar
				}
				dst = utf8.AppendRune(dst, r)
			default:
				return dst, i, syntaxError(e, "in string escape code")
			}
			i++
		case b < ' ':
			return dst, i, syntaxError(b, "in string literal")
		case b < utf8.RuneSelf:
			dst = append(dst, b)
			i++
		default:
			r, n := utf8.DecodeRune(in[i:])
			dst = utf8.AppendRune(dst, r)
			i += n
		}
	}
	return dst, i, io.ErrUnexpectedEOF
}

// hex4 reads the four hex digits of a \u escape at in[i:].
func hex4(in []byte, i int) (rune, error) {
	var r rune
	for k := i; k < i+4; k++ {
		if k == len(in) {
			return 0, io.ErrUnexpectedEOF
		}
		d := hexDigit(in[k])
		if d < 0 {
			return 0, syntaxError(in[k], `in \u hexadecimal character escape`)
		}
		r = r<<4 | d
	}
	return r, nil
}

// getu4 decodes a \uXXXX escape at the start of s, or returns -1.
func getu4(s []byte) rune {
	if len(s) < 6 || s[0] != '\\' || s[1] != 'u' {
		return -1
	}
	var r rune
	for _, b := range s[2:6] {
		d := hexDigit(b)
		if d < 0 {
			return -1
		}
		r = r<<4 | d
	}
	return r
}

func hexDigit(b byte) rune {
	switch {
	case '0' <= b && b <= '9':
		return rune(b - '0')
	case 'a' <= b && b <= 'f':
		return rune(b - 'a' + 10)
	case 'A' <= b && b <= 'F':
		return rune(b - 'A' + 10)
	}
	return -1
}

const hexDigits = "0123456789abcdef"

// appendEscaped appends s as json.Marshal writes a string's text (HTML
// escaping on, as for any value it marshals).
func appendEscaped(dst, s []byte) []byte {
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if verbatim[b] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRune(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += n
			continue
		}
		i += n
		start = i
	}
	return append(dst, s[start:]...)
}

// jsonSyntaxError words a syntax error as encoding/json does.
type jsonSyntaxError struct {
	c       byte
	context string
}

func syntaxError(c byte, context string) error { return &jsonSyntaxError{c, context} }

func (e *jsonSyntaxError) Error() string {
	return "invalid character " + quoteChar(e.c) + " " + e.context
}

func quoteChar(c byte) string {
	switch c {
	case '\'':
		return `'\''`
	case '"':
		return `'"'`
	}
	s := strconv.Quote(string(rune(c)))
	return "'" + s[1:len(s)-1] + "'"
}
