package provider

// maxJSONDepth is encoding/json's nesting limit: deeper input is invalid
// there, and so here.
const maxJSONDepth = 10000

// ValidJSON reports whether data is one JSON value, with the verdict of
// encoding/json.Valid (FuzzValidJSON holds it to that) at a fraction of its
// cost: the ingress checks every delivery and the consumers every raw event.
// Like encoding/json it accepts any byte from 0x20 up in strings, valid
// UTF-8 or not.
func ValidJSON(data []byte) bool {
	var buf [64]byte
	open := buf[:0] // '{' or '[' per container not closed yet
	i := skipSpace(data, 0)
	for {
		// A value starts at i.
		if i >= len(data) {
			return false
		}
		switch c := data[i]; {
		case c == '{' || c == '[':
			if len(open) >= maxJSONDepth {
				return false
			}
			open = append(open, c)
			i = skipSpace(data, i+1)
			if i < len(data) && data[i] == c+2 { // '}' or ']'
				open = open[:len(open)-1]
				i++
				break
			}
			if c == '{' {
				if i = memberName(data, i); i < 0 {
					return false
				}
			}
			continue
		case c == '"':
			i = skipJSONString(data, i)
		case c == '-' || '0' <= c && c <= '9':
			i = skipJSONNumber(data, i)
		case c == 't':
			i = skipLiteral(data, i, "true")
		case c == 'f':
			i = skipLiteral(data, i, "false")
		case c == 'n':
			i = skipLiteral(data, i, "null")
		default:
			return false
		}
		if i < 0 {
			return false
		}
		// A value ended at i: close containers until a ',' asks for the
		// next value, or the top-level value ends.
		for {
			i = skipSpace(data, i)
			if len(open) == 0 {
				return i == len(data)
			}
			if i >= len(data) {
				return false
			}
			top := open[len(open)-1]
			if data[i] == top+2 {
				open = open[:len(open)-1]
				i++
				continue
			}
			if data[i] != ',' {
				return false
			}
			i = skipSpace(data, i+1)
			if top == '{' {
				if i = memberName(data, i); i < 0 {
					return false
				}
			}
			break
		}
	}
}

// memberName reads an object member's name and colon at i and returns where its
// value starts, or -1.
func memberName(data []byte, i int) int {
	if i >= len(data) || data[i] != '"' {
		return -1
	}
	if i = skipJSONString(data, i); i < 0 {
		return -1
	}
	i = skipSpace(data, i)
	if i >= len(data) || data[i] != ':' {
		return -1
	}
	return skipSpace(data, i+1)
}

// inString marks the bytes a string cannot hold as they are: the quote
// ending it, the backslash of an escape, and control characters.
var inString = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'], t['\\'] = true, true
	return t
}()

// skipJSONString returns the index after the string starting at i, or -1.
func skipJSONString(data []byte, i int) int {
	for i++; i < len(data); i++ {
		c := data[i]
		if !inString[c] {
			continue
		}
		switch c {
		case '"':
			return i + 1
		case '\\':
			i++
			if i >= len(data) {
				return -1
			}
			switch data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(data) {
					return -1
				}
				for _, h := range data[i+1 : i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return -1
					}
				}
				i += 4
			default:
				return -1
			}
		default:
			return -1 // a control character
		}
	}
	return -1
}

// skipJSONNumber returns the index after the number starting at i, or -1.
func skipJSONNumber(data []byte, i int) int {
	if data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && '1' <= data[i] && data[i] <= '9':
		i = digits(data, i+1)
	default:
		return -1
	}
	if i < len(data) && data[i] == '.' {
		j := digits(data, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		j := digits(data, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

// skipLiteral returns the index after word at i, or -1.
func skipLiteral(data []byte, i int, word string) int {
	if len(data)-i < len(word) || string(data[i:i+len(word)]) != word {
		return -1
	}
	return i + len(word)
}
