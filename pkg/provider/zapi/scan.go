package zapi

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"

	"github.com/wahook/wahook/pkg/provider"
)

// The scanner below walks JSON that json.Valid has accepted, so it only has
// to find where values end; the bounds checks are a second line of defence.
// It hands out sub-slices of the input and allocates nothing, which keeps
// Split on the ingress hot path cheap (a struct decode of a 1 KB callback
// costs several times more and copies every json.RawMessage).

// members iterates over the members of a JSON object.
type members struct {
	data []byte
	i    int
	done bool
}

// newMembers starts at the object that opens data (after white space), or
// reports false when data does not hold an object.
func newMembers(data []byte) (members, bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '{' {
		return members{}, false
	}
	return members{data: data, i: i + 1}, true
}

// next returns the next member's key (unescaped) and raw value.
func (m *members) next() (key, val []byte, ok bool) {
	if m.done {
		return nil, nil, false
	}
	d := m.data
	i := skipSpace(d, m.i)
	if i < len(d) && d[i] == ',' {
		i = skipSpace(d, i+1)
	}
	if i >= len(d) || d[i] != '"' {
		m.done = true
		return nil, nil, false
	}
	end := stringEnd(d, i)
	if end < 0 {
		m.done = true
		return nil, nil, false
	}
	key = d[i+1 : end-1]
	if bytes.IndexByte(key, '\\') >= 0 {
		var s string
		if json.Unmarshal(d[i:end], &s) != nil {
			m.done = true
			return nil, nil, false
		}
		key = []byte(s)
	}
	i = skipSpace(d, end)
	if i >= len(d) || d[i] != ':' {
		m.done = true
		return nil, nil, false
	}
	i = skipSpace(d, i+1)
	vend := valueEnd(d, i)
	if vend < 0 {
		m.done = true
		return nil, nil, false
	}
	m.i = vend
	return key, d[i:vend], true
}

// elements iterates over the elements of a JSON array.
type elements struct {
	data []byte
	i    int
	done bool
}

// newElements starts at the array that opens data, or reports false.
func newElements(data []byte) (elements, bool) {
	i := skipSpace(data, 0)
	if i >= len(data) || data[i] != '[' {
		return elements{}, false
	}
	return elements{data: data, i: i + 1}, true
}

// next returns the next element's raw value.
func (e *elements) next() ([]byte, bool) {
	if e.done {
		return nil, false
	}
	d := e.data
	i := skipSpace(d, e.i)
	if i < len(d) && d[i] == ',' {
		i = skipSpace(d, i+1)
	}
	if i >= len(d) || d[i] == ']' {
		e.done = true
		return nil, false
	}
	end := valueEnd(d, i)
	if end < 0 {
		e.done = true
		return nil, false
	}
	e.i = end
	return d[i:end], true
}

func skipSpace(d []byte, i int) int {
	for i < len(d) {
		switch d[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// stringEnd returns the index after the closing quote of the string that
// starts at d[i], or -1.
func stringEnd(d []byte, i int) int {
	for j := i + 1; j < len(d); j++ {
		switch d[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// valueEnd returns the index after the value that starts at d[i], or -1.
func valueEnd(d []byte, i int) int {
	if i >= len(d) {
		return -1
	}
	switch d[i] {
	case '"':
		return stringEnd(d, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(d); j++ {
			switch d[j] {
			case '"':
				end := stringEnd(d, j)
				if end < 0 {
					return -1
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	}
	j := i
	for j < len(d) {
		switch d[j] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return j
		}
		j++
	}
	return j
}

// text returns a JSON string's value or a number's literal ("" otherwise),
// without the decoder's allocations for the common plain string.
func text(raw []byte) string {
	if n := len(raw); n >= 2 && raw[0] == '"' && raw[n-1] == '"' {
		s := raw[1 : n-1]
		if bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
			return string(s)
		}
	}
	return provider.Text(raw)
}

// isString reports whether raw is a JSON string.
func isString(raw []byte) bool { return len(raw) > 0 && raw[0] == '"' }

// truth reads a flag written as true or "true".
func truth(raw []byte) (value, known bool) {
	switch string(raw) {
	case "true", `"true"`:
		return true, true
	case "false", `"false"`:
		return false, true
	}
	return false, false
}

// set reports whether raw carries something: not absent, null, false, "" or empty.
func set(raw []byte) bool {
	switch string(raw) {
	case "", "null", "false", `""`, "{}", "[]":
		return false
	}
	return true
}
