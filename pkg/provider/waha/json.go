package waha

import (
	"bytes"
	"encoding/json"
	"sort"
	"strconv"

	"github.com/wahook/wahook/pkg/fact"
	"github.com/wahook/wahook/pkg/provider"
)

// isNull reports a missing or null value.
func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

// serialized returns an id written as a string, a number, or a
// whatsapp-web.js id object {"_serialized": ...}.
func serialized(raw json.RawMessage) string {
	if len(raw) == 0 || raw[0] != '{' {
		return provider.Text(raw)
	}
	var id struct {
		Serialized json.RawMessage `json:"_serialized"`
	}
	if json.Unmarshal(raw, &id) != nil {
		return ""
	}
	return provider.String(id.Serialized)
}

// scalar returns a string's value or a number's or boolean's literal, else "".
func scalar(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if s := string(raw); s == "true" || s == "false" {
		return s
	}
	return provider.Text(raw)
}

// boolean reads true/false, "true"/"false" and 1/0; ok is false otherwise.
func boolean(raw json.RawMessage) (v, ok bool) {
	switch scalar(raw) {
	case "true", "1":
		return true, true
	case "false", "0":
		return false, true
	}
	return false, false
}

// elements returns the values of a list: a JSON array, or the {"0": ..., "1": ...}
// object Wawp's docs render arrays as (in index order). Any other value is a
// list of itself; null or absent is empty.
func elements(raw json.RawMessage) ([]json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if isNull(raw) {
		return nil, nil
	}
	switch raw[0] {
	case '[':
		var list []json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil {
			return nil, err
		}
		return list, nil
	case '{':
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			return nil, err
		}
		type entry struct {
			i int
			v json.RawMessage
		}
		list := make([]entry, 0, len(obj))
		for k, v := range obj {
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 {
				return []json.RawMessage{raw}, nil
			}
			list = append(list, entry{i, v})
		}
		sort.Slice(list, func(a, b int) bool { return list[a].i < list[b].i })
		out := make([]json.RawMessage, len(list))
		for i, e := range list {
			out[i] = e.v
		}
		return out, nil
	}
	return []json.RawMessage{raw}, nil
}

// participant is a group member as WAHA writes it: an id (…@c.us or …@lid)
// and, when known, the phone-number id pn.
type participant struct {
	ID json.RawMessage `json:"id"`
	PN json.RawMessage `json:"pn"`
}

// participantAliases returns the LID↔phone pairs of a participant list:
// each member's id beside its pn (WAHA's GroupParticipant).
func participantAliases(raw json.RawMessage) []fact.Alias {
	list, _ := elements(raw)
	var pairs [][2]string
	for _, e := range list {
		var p participant
		if len(e) > 0 && e[0] == '{' && json.Unmarshal(e, &p) == nil {
			pairs = append(pairs, [2]string{serialized(p.ID), serialized(p.PN)})
		}
	}
	return provider.Aliases(pairs...)
}

// participants returns the member ids of a list of ids or of WAHA
// GroupParticipant objects, preferring the phone-number id.
func participants(raw json.RawMessage) ([]string, error) {
	list, err := elements(raw)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range list {
		if len(e) > 0 && e[0] == '{' {
			var p participant
			if err := json.Unmarshal(e, &p); err != nil {
				return nil, err
			}
			if pn := serialized(p.PN); pn != "" {
				ids = append(ids, pn)
			} else if id := serialized(p.ID); id != "" {
				ids = append(ids, id)
			}
			continue
		}
		if id := provider.Text(e); id != "" {
			ids = append(ids, id)
		}
	}
	return ids, nil
}
