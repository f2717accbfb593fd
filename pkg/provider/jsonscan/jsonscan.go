// Package jsonscan reads JSON that has already been validated (by
// provider.ValidJSON or encoding/json.Valid). It finds where members and
// elements begin and end without decoding anything and hands out
// sub-slices of its input, so reading a few fields of a delivery on the
// ingress hot path allocates nothing; a struct decode costs several times
// more and copies every json.RawMessage.
//
// On input that is not valid JSON the functions do not panic, but what they
// return is unspecified. Object keys match exactly (JSON is case-sensitive,
// encoding/json is not); of duplicate keys the last one wins, as with
// encoding/json.
package jsonscan

import (
	"bytes"
	"encoding/json"
	"iter"
	"strconv"
	"unicode/utf8"
)

// MaxDepth is encoding/json's nesting limit.
const MaxDepth = 10000

// IsSpace reports whether c is JSON white space.
func IsSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// SkipSpace returns the index of the first byte at or after i that is not
// white space, or len(b).
func SkipSpace(b []byte, i int) int {
	for i < len(b) && IsSpace(b[i]) {
		i++
	}
	return i
}

// Trim drops the white space around a value.
func Trim(b []byte) []byte {
	i, j := 0, len(b)
	for i < j && IsSpace(b[i]) {
		i++
	}
	for j > i && IsSpace(b[j-1]) {
		j--
	}
	return b[i:j]
}

// StringEnd returns the index just past the string whose opening quote is
// at b[i] (len(b) when it is not closed).
func StringEnd(b []byte, i int) int {
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

// ValueEnd returns the index just past the value that starts at b[i].
func ValueEnd(b []byte, i int) int {
	if i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		return StringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = StringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for ; i < len(b); i++ {
		if c := b[i]; c == ',' || c == '}' || c == ']' || IsSpace(c) {
			return i
		}
	}
	return i
}

// First returns the first byte of a value after any white space: '{', '[',
// '"', 'n' (null), 't', 'f', or a number's first character; 0 when empty.
func First(v []byte) byte {
	if i := SkipSpace(v, 0); i < len(v) {
		return v[i]
	}
	return 0
}

// Absent reports whether a value read by this package is missing or null.
func Absent(v []byte) bool { return len(v) == 0 || v[0] == 'n' }

// Members yields the members of an object: each key, unescaped (a
// sub-slice of obj unless it holds an escape), and its value without the
// white space around it. A value that is not an object has none.
//
// An iter.Seq2 rather than a struct with a Next method: the compiler
// inlines the loop into the caller, which measured faster
// (BenchmarkMembers).
func Members(obj []byte) iter.Seq2[[]byte, []byte] {
	return func(yield func(key, val []byte) bool) {
		for k, f := range scan(obj, false) {
			if !yield(k, f.Value) {
				return
			}
		}
	}
}

// Elements yields the elements of an array without the white space around
// them. A value that is not an array has none.
func Elements(arr []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		b := arr
		i := SkipSpace(b, 0)
		if i >= len(b) || b[i] != '[' {
			return
		}
		i++
		for {
			i = SkipSpace(b, i)
			if i < len(b) && b[i] == ',' {
				i = SkipSpace(b, i+1)
			}
			if i >= len(b) || b[i] == ']' {
				return
			}
			ve := ValueEnd(b, i)
			if ve <= i || !yield(b[i:ve]) {
				return
			}
			i = ve
		}
	}
}

// Field is a member's value as Fields yields it, with Len, the number of
// elements when the value is an array (0 otherwise).
type Field struct {
	Value []byte
	Len   int
}

// Fields is Members, also counting the elements of array values in the
// same scan that finds where they end: a caller that goes on to read an
// array's elements can size what it collects without another pass.
func Fields(obj []byte) iter.Seq2[[]byte, Field] {
	return scan(obj, true)
}

// scan is the loop behind Members and Fields; Len is counted only when
// count is set, so Members pays nothing for it.
func scan(obj []byte, count bool) iter.Seq2[[]byte, Field] {
	return func(yield func(key []byte, f Field) bool) {
		b := obj
		i := SkipSpace(b, 0)
		if i >= len(b) || b[i] != '{' {
			return
		}
		i++
		for {
			i = SkipSpace(b, i)
			if i < len(b) && b[i] == ',' {
				i = SkipSpace(b, i+1)
			}
			if i >= len(b) || b[i] != '"' {
				return
			}
			ke := StringEnd(b, i)
			if ke-1 <= i {
				return
			}
			key := b[i+1 : ke-1]
			if bytes.IndexByte(key, '\\') >= 0 {
				key = []byte(String(b[i:ke]))
			}
			i = SkipSpace(b, ke)
			if i >= len(b) || b[i] != ':' {
				return
			}
			i = SkipSpace(b, i+1)
			var f Field
			var ve int
			if count {
				ve, f.Len = valueEndLen(b, i)
			} else {
				ve = ValueEnd(b, i)
			}
			f.Value = b[i:ve]
			if !yield(key, f) {
				return
			}
			i = ve
		}
	}
}

// valueEndLen is ValueEnd, also returning the number of elements of an
// array value: its commas outside nested values, plus one unless empty.
func valueEndLen(b []byte, i int) (end, n int) {
	if i >= len(b) || b[i] != '[' {
		return ValueEnd(b, i), 0
	}
	if j := SkipSpace(b, i+1); j < len(b) && b[j] != ']' {
		n = 1
	}
	depth := 0
	for ; i < len(b); i++ {
		switch b[i] {
		case '"':
			i = StringEnd(b, i) - 1
		case '{', '[':
			depth++
		case '}', ']':
			if depth--; depth == 0 {
				return i + 1, n
			}
		case ',':
			if depth == 1 {
				n++
			}
		}
	}
	return len(b), n
}

// Lookup returns the value of obj's member name (the last one when the name
// repeats), nil when absent.
func Lookup(obj []byte, name string) []byte {
	var found []byte
	for k, v := range Members(obj) {
		if string(k) == name {
			found = v
		}
	}
	return found
}

// Pick stores in dst[i] the value of obj's member names[i] (the last one
// when a name repeats), in one pass; absent members leave dst[i] as it is.
func Pick(obj []byte, dst [][]byte, names ...string) {
	for k, v := range Members(obj) {
		for i, n := range names {
			if string(k) == n {
				dst[i] = v
				break
			}
		}
	}
}

// String returns the text of a string value, "" for any other value.
// Strings without escapes are taken as they are; the rest are decoded by
// encoding/json, which also replaces invalid UTF-8, so the result is always
// valid UTF-8.
func String(v []byte) string {
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

// AppendString appends String(v) to b: without an allocation of its own
// when v has no escapes, so that several values can share one string.
func AppendString(b, v []byte) []byte {
	if len(v) < 2 || v[0] != '"' {
		return b
	}
	s := v[1 : len(v)-1]
	if bytes.IndexByte(s, '\\') < 0 && utf8.Valid(s) {
		return append(b, s...)
	}
	return append(b, String(v)...)
}

// AppendText appends Text(v) to b, as AppendString does.
func AppendText(b, v []byte) []byte {
	v = Trim(v)
	switch c := First(v); {
	case c == '"':
		return AppendString(b, v)
	case c == '-' || '0' <= c && c <= '9':
		return append(b, v...)
	}
	return b
}

// Text is String, or a number's literal: ids are numbers in some payloads.
func Text(v []byte) string {
	v = Trim(v)
	switch c := First(v); {
	case c == '"':
		return String(v)
	case c == '-' || '0' <= c && c <= '9':
		return string(v)
	}
	return ""
}

// Bool reads true or false, also written as a string; ok is false for
// anything else.
func Bool(v []byte) (value, ok bool) {
	switch string(v) {
	case "true", `"true"`:
		return true, true
	case "false", `"false"`:
		return false, true
	}
	return false, false
}

// Number reads a number, also written as a string.
func Number(v []byte) (float64, bool) {
	s := v
	if First(s) == '"' && len(s) >= 2 {
		s = Trim(s[1 : len(s)-1])
	}
	f, err := strconv.ParseFloat(string(s), 64)
	return f, err == nil
}

// TooDeep reports whether b nests objects and arrays more than max levels.
func TooDeep(b []byte, max int) bool {
	if len(b) <= 2*max {
		return false // too short to nest that deep
	}
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			i = StringEnd(b, i) - 1
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
