package whapi

import (
	"bytes"
	"encoding/json"
	"iter"
	"strconv"
	"unicode/utf8"
)

// The helpers below read JSON that json.Valid has already accepted. They find
// member and element boundaries without decoding anything, so Split touches
// only the bytes it needs and every Item.Data is a sub-slice of the body.
// Object keys match exactly (JSON is case-sensitive); of duplicate keys the
// last one wins, as with encoding/json.

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// trim drops the white space around a JSON value.
func trim(b []byte) []byte {
	i, j := 0, len(b)
	for i < j && isSpace(b[i]) {
		i++
	}
	for j > i && isSpace(b[j-1]) {
		j--
	}
	return b[i:j]
}

// stringEnd returns the index just past the string whose quote is at b[i].
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// valueEnd returns the index just past the value starting at b[i].
func valueEnd(b []byte, i int) int {
	if i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for i < len(b) {
		switch c := b[i]; {
		case c == ',' || c == '}' || c == ']' || isSpace(c):
			return i
		}
		i++
	}
	return i
}

// first reports the first byte of a trimmed value: '{', '[', '"', 'n'
// (null), 't', 'f', or a number's first character; 0 when empty.
func first(v []byte) byte {
	if len(v) == 0 {
		return 0
	}
	return v[0]
}

// absent reports whether a member is missing or null.
func absent(v []byte) bool { return len(v) == 0 || v[0] == 'n' }

// pick stores in dst[i] the value of obj's member named names[i], the last
// one when a name repeats (as encoding/json keeps); absent members stay nil.
func pick(obj []byte, dst [][]byte, names ...string) {
	for k, v := range members(obj) {
		for i, n := range names {
			if string(k) == n {
				dst[i] = v
				break
			}
		}
	}
}

// members yields an object's members: the key (unescaped) and the trimmed
// value. A value that is not an object yields nothing.
func members(obj []byte) iter.Seq2[[]byte, []byte] {
	return func(yield func(key, val []byte) bool) {
		b := obj
		i := skipSpace(b, 0)
		if i >= len(b) || b[i] != '{' {
			return
		}
		i++
		for {
			i = skipSpace(b, i)
			if i < len(b) && b[i] == ',' {
				i = skipSpace(b, i+1)
			}
			if i >= len(b) || b[i] != '"' {
				return
			}
			ke := stringEnd(b, i)
			if ke-1 <= i {
				return
			}
			key := b[i+1 : ke-1]
			if bytes.IndexByte(key, '\\') >= 0 {
				key = []byte(str(b[i:ke]))
			}
			i = skipSpace(b, ke)
			if i >= len(b) || b[i] != ':' {
				return
			}
			i = skipSpace(b, i+1)
			ve := valueEnd(b, i)
			if !yield(key, b[i:ve]) {
				return
			}
			i = ve
		}
	}
}

// elements yields an array's elements, trimmed. A value that is not an
// array yields nothing.
func elements(arr []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		b := arr
		i := skipSpace(b, 0)
		if i >= len(b) || b[i] != '[' {
			return
		}
		i++
		for {
			i = skipSpace(b, i)
			if i < len(b) && b[i] == ',' {
				i = skipSpace(b, i+1)
			}
			if i >= len(b) || b[i] == ']' {
				return
			}
			ve := valueEnd(b, i)
			if ve <= i || !yield(b[i:ve]) {
				return
			}
			i = ve
		}
	}
}

// lookup returns the value of obj's member name, nil when absent.
func lookup(obj []byte, name string) []byte {
	var found []byte
	for k, v := range members(obj) {
		if string(k) == name {
			found = v
		}
	}
	return found
}

// str returns the text of a JSON string, "" for any other value. Strings
// without escapes are copied as they are; the rest go through encoding/json,
// which also replaces invalid UTF-8, so the result is always valid UTF-8.
func str(v []byte) string {
	if len(v) < 2 || v[0] != '"' {
		return ""
	}
	s := v[1 : len(v)-1]
	if bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
		return string(s)
	}
	var out string
	if json.Unmarshal(v, &out) != nil {
		return ""
	}
	return out
}

// text is str, or a number's literal: ids and labels are sometimes numbers.
func text(v []byte) string {
	switch c := first(v); {
	case c == '"':
		return str(v)
	case c == '-' || (c >= '0' && c <= '9'):
		return string(v)
	}
	return ""
}

// boolean reads true, or the string "true".
func boolean(v []byte) (value, ok bool) {
	switch string(v) {
	case "true", `"true"`:
		return true, true
	case "false", `"false"`:
		return false, true
	}
	return false, false
}

// number reads a number, or a string holding one.
func number(v []byte) (float64, bool) {
	s := v
	if first(s) == '"' && len(s) >= 2 {
		s = trim(s[1 : len(s)-1])
	}
	f, err := strconv.ParseFloat(string(s), 64)
	return f, err == nil
}

// maxDepth is encoding/json's nesting limit: deeper items could not be
// identified by their canonical content (provider.ContentKey).
const maxDepth = 10000

// tooDeep reports whether b nests objects and arrays more than max levels.
func tooDeep(b []byte, max int) bool {
	if len(b) <= 2*max {
		return false // too short to nest that deep
	}
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			i = stringEnd(b, i) - 1
		case '{', '[':
			if depth++; depth > max {
				return true
			}
		case '}', ']':
			depth--
		}
	}
	return false
}
