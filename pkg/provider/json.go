package provider

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Unix returns the time a Unix timestamp names, whatever its unit: providers
// send seconds, milliseconds and strings of either. The unit is told by
// magnitude (seconds until the year 5138, then milliseconds, microseconds,
// nanoseconds). Null, empty, zero, negative and non-numeric values report false.
func Unix(raw json.RawMessage) (time.Time, bool) {
	s := string(bytes.TrimSpace(raw))
	if len(s) >= 2 && s[0] == '"' {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	if s == "" || s == "null" {
		return time.Time{}, false
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return UnixInt(n)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return time.Time{}, false
	}
	return UnixNumber(f)
}

// UnixInt is Unix for an integer already decoded, exact to the nanosecond.
func UnixInt(n int64) (time.Time, bool) {
	switch {
	case n <= 0:
		return time.Time{}, false
	case n < 1e11:
		return time.Unix(n, 0).UTC(), true
	case n < 1e14:
		return time.UnixMilli(n).UTC(), true
	case n < 1e17:
		return time.UnixMicro(n).UTC(), true
	default:
		return time.Unix(0, n).UTC(), true
	}
}

// UnixNumber is Unix for a number already decoded as a float.
func UnixNumber(f float64) (time.Time, bool) {
	if f <= 0 || math.IsNaN(f) || math.IsInf(f, 0) || f >= 9.2e18 {
		return time.Time{}, false
	}
	if f == math.Trunc(f) {
		return UnixInt(int64(f))
	}
	var ns float64
	switch {
	case f < 1e11:
		ns = f * 1e9
	case f < 1e14:
		ns = f * 1e6
	case f < 1e17:
		ns = f * 1e3
	default:
		ns = f
	}
	return time.Unix(0, int64(ns)).UTC(), true
}

// String returns the JSON string raw holds, or "" for anything else
// (null, numbers, objects). Numbers are ids too in some payloads: use Text.
func String(raw json.RawMessage) string {
	if len(raw) == 0 || raw[0] != '"' {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}

// Text returns a JSON string's value, or a number's literal text, or "".
func Text(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	switch c := raw[0]; {
	case c == '"':
		return String(raw)
	case c == '-' || (c >= '0' && c <= '9'):
		return string(raw)
	}
	return ""
}

// ContentKey identifies a JSON value by its canonical form (object keys
// sorted, insignificant white space dropped), so that a retried delivery
// re-serialised by the provider keeps its identity. The form is the one
// json.Marshal gives the value decoded into an any with UseNumber, written
// in one pass without building the value: identities stored by earlier
// versions stay valid.
func ContentKey(data []byte) (string, error) {
	var key [len(contentKeyPrefix) + 2*sha256.Size]byte
	b, err := appendContentKey(key[:0], data)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

const contentKeyPrefix = "sha256:"

// appendContentKey appends ContentKey(data) to dst.
func appendContentKey(dst, data []byte) ([]byte, error) {
	c := canonPool.Get().(*canon)
	defer c.release()
	form, err := c.canonicalize(data)
	if err != nil {
		return dst, fmt.Errorf("canonical json: %w", err)
	}
	sum := Sum(form)
	dst = append(dst, contentKeyPrefix...)
	return hex.AppendEncode(dst, sum[:]), nil
}
