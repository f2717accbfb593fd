package provider

import (
	"encoding/json"
	"strings"
)

// Redactor is implemented by providers whose deliveries carry a credential
// in the body (Evolution's "apikey"). The ingress applies Redact to every
// body once it is authenticated and before anything else reads it, so that
// neither raw events, nor dead letters, nor logs ever hold the credential.
// Redact may work in place; it returns the body to keep.
type Redactor interface {
	Redact(body []byte) []byte
}

// Redact applies p's Redactor, if it has one.
func Redact(p Provider, body []byte) []byte {
	if r, ok := p.(Redactor); ok {
		return r.Redact(body)
	}
	return body
}

// RemoveMember removes, in place, every top-level member of the JSON object
// body whose name is name as encoding/json would match it (escapes decoded,
// case folded), and returns the shortened body and how many it removed.
// The other bytes are kept as they are, so the result is the same JSON less
// those members. A body that is not a valid JSON object cannot be read as
// members: each `"name": "..."` written plainly in it has its string's
// content removed instead, so that a dead letter of a broken body does not
// keep the value either.
func RemoveMember(body []byte, name string) ([]byte, int) {
	open := skipSpace(body, 0)
	if open >= len(body) || body[open] != '{' || !ValidJSON(body) {
		return blankMember(body, name)
	}
	type span struct{ start, end int }
	var members []span
	var drop []bool
	i := skipSpace(body, open+1)
	if body[i] == '}' {
		return body, 0
	}
	for {
		nameEnd := skipJSONString(body, i)
		v := memberName(body, i)
		end := skipValue(body, v)
		members = append(members, span{i, end})
		drop = append(drop, sameName(body[i:nameEnd], name))
		j := skipSpace(body, end)
		if body[j] == '}' {
			break
		}
		i = skipSpace(body, j+1)
	}
	n := 0
	for _, d := range drop {
		if d {
			n++
		}
	}
	if n == 0 {
		return body, 0
	}
	// Kept members are moved left, each with the separator (comma and
	// white space) that preceded it; writes never overtake reads.
	w := members[0].start
	first := true
	for k, m := range members {
		if drop[k] {
			continue
		}
		if !first {
			w += copy(body[w:], body[members[k-1].end:m.start])
		}
		first = false
		w += copy(body[w:], body[m.start:m.end])
	}
	last := members[len(members)-1].end
	w += copy(body[w:], body[last:])
	return body[:w], n
}

// sameName reports whether the JSON string lit, decoded, names name as
// encoding/json matches member names to fields (case-insensitively).
func sameName(lit []byte, name string) bool {
	s := string(lit[1 : len(lit)-1])
	if strings.IndexByte(s, '\\') >= 0 {
		if json.Unmarshal(lit, &s) != nil {
			return false
		}
	}
	return strings.EqualFold(s, name)
}

// skipValue returns the index after the valid JSON value starting at i.
func skipValue(data []byte, i int) int {
	depth := 0
	for i < len(data) {
		switch c := data[i]; {
		case c == '"':
			i = skipJSONString(data, i)
		case c == '{' || c == '[':
			depth++
			i++
		case c == '}' || c == ']':
			depth--
			i++
		case c == '-' || '0' <= c && c <= '9':
			i = skipJSONNumber(data, i)
		case c == 't':
			i += len("true")
		case c == 'f':
			i += len("false")
		case c == 'n':
			i += len("null")
		default: // white space, ',' and ':' inside a container
			i++
			continue
		}
		if i < 0 {
			return len(data)
		}
		if depth == 0 {
			return i
		}
	}
	return len(data)
}

// blankMember empties, in place, the string value of every plainly written
// `"name"` member (ASCII case folded) of a body that is not valid JSON.
func blankMember(body []byte, name string) ([]byte, int) {
	n := 0
	for i := 0; i+len(name)+2 <= len(body); i++ {
		if body[i] != '"' || body[i+len(name)+1] != '"' || !strings.EqualFold(string(body[i+1:i+1+len(name)]), name) {
			continue
		}
		j := skipSpace(body, i+len(name)+2)
		if j >= len(body) || body[j] != ':' {
			continue
		}
		j = skipSpace(body, j+1)
		if j >= len(body) || body[j] != '"' {
			continue
		}
		end := skipJSONString(body, j)
		if end < 0 {
			end = len(body) // unterminated: everything after the quote
		} else {
			end-- // keep the closing quote
		}
		if end == j+1 {
			continue
		}
		body = append(body[:j+1], body[end:]...)
		n++
	}
	return body, n
}
